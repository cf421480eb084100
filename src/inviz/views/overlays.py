"""Drawing a cluster map over its image (pure functions over arrays; docs/method.md §2).

:func:`overlay` shows a card either as ``reveal`` (the image seen through the game's soft mask at a
chosen level, :func:`inviz.game.reveal.reveal_mask`, as players saw it) or as ``heatmap`` (the
upsampled map in a colour-blind-safe colormap over the dimmed image); :func:`thumbnail` resizes an
image for a tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from inviz.game.reveal import RevealConfig, reveal_mask


@dataclass(frozen=True)
class OverlayConfig:
    """How a cluster map is drawn over its image (``figures.overlay`` in ``params.yaml``).

    kind : ``reveal`` (the image seen through the game's soft mask at ``level``: what players
        saw) or ``heatmap`` (the map, bilinearly upsampled, in ``cmap`` over the image).
    level : revealed percentage for ``reveal`` (default 30: the game's last hint level).
    background : brightness kept outside the revealed region (0 = black, as in the game).
    alpha : heatmap opacity. cmap : matplotlib colormap of the heatmap (colour-blind safe).
    """

    kind: Literal["reveal", "heatmap"] = "reveal"
    level: float = 30.0
    background: float = 0.15
    alpha: float = 0.55
    cmap: str = "viridis"

    def __post_init__(self) -> None:
        if not 0 < self.level <= 100:
            raise ValueError(f"level: expected a percentage in (0, 100], got {self.level}")
        if not 0 <= self.background <= 1 or not 0 <= self.alpha <= 1:
            raise ValueError("background and alpha: expected values in [0, 1]")


def _resize(a: np.ndarray, size: int, mode: str) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(a, dtype=np.float32))[None, None]
    extra = {"align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(t, size=(size, size), mode=mode, **extra)[0, 0].numpy()


def overlay(image: np.ndarray, cmap: np.ndarray, cfg: OverlayConfig, reveal_cfg: RevealConfig) -> np.ndarray:
    """Draw a cluster map over its image.

    Parameters
    ----------
    image : ndarray of uint8, shape (S, S, 3)
        The image.
    cmap : ndarray of shape (h, w)
        The cluster map.
    cfg : OverlayConfig
        How to draw it (``reveal`` or ``heatmap``).
    reveal_cfg : RevealConfig
        The game's reveal settings (the ``reveal`` overlay uses the game's soft mask).

    Returns
    -------
    ndarray of uint8, shape (S, S, 3)
    """
    import matplotlib

    size = image.shape[0]
    img = image.astype(np.float32)
    if cfg.kind == "reveal":
        m = reveal_mask(cmap, size, cfg.level, reveal_cfg)
        out = img * (cfg.background + (1 - cfg.background) * m)[..., None]
    elif cfg.kind == "heatmap":
        up = _resize(cmap, size, "bilinear")
        lo, hi = float(up.min()), float(up.max())
        up = (up - lo) / (hi - lo) if hi > lo else np.zeros_like(up)
        colours = matplotlib.colormaps[cfg.cmap](up)[..., :3] * 255
        out = (1 - cfg.alpha) * img + cfg.alpha * colours
    else:
        raise ValueError(f"overlay kind: expected 'reveal' or 'heatmap', got {cfg.kind!r}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def thumbnail(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an image for a tile (antialiased).

    Parameters
    ----------
    image : ndarray of uint8, shape (S, S, 3)
        The image.
    size : int
        The tile side.

    Returns
    -------
    ndarray of uint8, shape (size, size, 3)
    """
    from PIL import Image

    if image.shape[0] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))
