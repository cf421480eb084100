"""Drawing a cluster map over its image (pure functions over arrays).

:func:`reveal_mask` is the game's reveal at a chosen level, drawn at any size (the soft mask of
:mod:`inviz.game.reveal`); :func:`overlay` shows a card either as ``reveal`` (the image seen through
that mask, as players saw it) or as ``heatmap`` (the upsampled map in a colour-blind-safe colormap
over the dimmed image); :func:`thumbnail` resizes an image for a tile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from inviz.game.reveal import (
    RevealConfig,
    blur_sigma,
    percentile_mask,
    soft_mask,
    upscale_factor,
    upscale_nearest,
)


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


def reveal_mask(cmap: np.ndarray, size: int, level: float, reveal_cfg: RevealConfig) -> np.ndarray:
    """The game's soft reveal mask of a cluster map at ``level`` %, drawn at ``size`` pixels.

    Same geometry as the masked images of :func:`inviz.game.reveal.reveal` at the game size
    (nearest-neighbour upscaling, top ``level`` % of the map, Gaussian blur with the game's
    sigma), with the blur scaled by ``size / game_size``.

    Parameters
    ----------
    cmap : ndarray of shape (h, w). size : output side. level : revealed percentage.

    Returns
    -------
    ndarray of float32, shape (size, size), values in [0, 1].
    """
    factor = upscale_factor(np.shape(cmap), reveal_cfg.game_size)
    sigma = blur_sigma(factor, reveal_cfg.sigma) * size / reveal_cfg.game_size
    binary = percentile_mask(upscale_nearest(np.asarray(cmap, dtype=np.float64), size), level)
    return soft_mask(binary, sigma, reveal_cfg.truncate, reveal_cfg.blur_mode).astype(np.float32)


def _resize(a: np.ndarray, size: int, mode: str) -> np.ndarray:
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(a, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size, size), mode=mode, **({"align_corners": False} if mode == "bilinear" else {}))[0, 0].numpy()


def overlay(image: np.ndarray, cmap: np.ndarray, cfg: OverlayConfig, reveal_cfg: RevealConfig) -> np.ndarray:
    """A cluster map drawn over its image.

    Parameters
    ----------
    image : ndarray of uint8, shape (S, S, 3). cmap : ndarray of shape (h, w).

    Returns
    -------
    ndarray of uint8, shape (S, S, 3).
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
    """``image`` (uint8, (S, S, 3)) resized to (size, size, 3) (antialiased)."""
    from PIL import Image

    if image.shape[0] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS))

