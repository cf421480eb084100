"""The "what if" panel: the model's prediction on an image the player edits (beyond the paper).

After a round, the player sees the whole game image through an editable mask (a ``G x G`` grid
of opacities, ``game.what_if_grid``), starting from what the game showed at the round's last
level; painting reveals, erasing hides, and the server runs the checkpoint on CPU on
``mask * image`` (hidden pixels black, as in the game) and answers with the prediction. Each edit
is stored (mask, prediction before/after) and exported as ``what_if.csv``: people test their own
hypotheses of what the model uses ("interaction as explanation").

The starting mask is read off the stored masked image: per grid cell, the masked image's pixel sum
over the full image's (exact where the game's soft mask is constant over the cell).
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inviz.core.errors import InvizError


@dataclass(frozen=True)
class Prediction:
    """The model's answer on one image: class probabilities (dataset label order) and the top label."""

    probs: np.ndarray

    @property
    def label(self) -> int:
        """The predicted label."""
        return int(np.argmax(self.probs))

    def top(self, k: int = 3) -> list[tuple[int, float]]:
        """Return the ``k`` most probable labels with their probabilities."""
        order = np.argsort(-self.probs)[:k]
        return [(int(i), float(self.probs[i])) for i in order]


def encode_mask(mask: np.ndarray) -> str:
    """Encode a ``(G, G)`` uint8 mask as base64 (row-major bytes)."""
    return base64.b64encode(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()).decode("ascii")


def decode_mask(text: str, grid: int) -> np.ndarray:
    """Decode a base64 mask of ``grid * grid`` bytes into a ``(G, G)`` uint8 array.

    Raises
    ------
    ValueError
        Not base64, or not ``grid * grid`` bytes.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as err:
        raise ValueError("mask: not base64") from err
    if len(raw) != grid * grid:
        raise ValueError(f"mask: expected {grid * grid} bytes ({grid} x {grid}), got {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(grid, grid)


def cell_mask(masked: np.ndarray, full: np.ndarray, grid: int) -> np.ndarray:
    """Estimate the game's soft mask per grid cell from a masked image and the full image.

    Parameters
    ----------
    masked, full : ndarray of uint8, shape (S, S, 3)
        The masked game image and the game image (``S`` a multiple of ``grid``).
    grid : int
        Cells per side.

    Returns
    -------
    ndarray of uint8, shape (grid, grid)
        Opacity 0-255 per cell: ``255 * sum(masked) / sum(full)`` over the cell (0 where the cell is black).
    """
    s = full.shape[0]
    if s % grid:
        raise ValueError(f"what_if_grid {grid} must divide the game image side {s}")
    c = s // grid
    m = masked.astype(np.float64).reshape(grid, c, grid, c, 3).sum(axis=(1, 3, 4))
    f = full.astype(np.float64).reshape(grid, c, grid, c, 3).sum(axis=(1, 3, 4))
    ratio = np.divide(m, f, out=np.zeros_like(m), where=f > 0)
    return np.clip(np.rint(255 * ratio), 0, 255).astype(np.uint8)


def apply_mask(full: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Show ``full`` through a ``(G, G)`` opacity mask upsampled bilinearly (hidden pixels black).

    Parameters
    ----------
    full : ndarray of uint8, shape (S, S, 3)
    mask : ndarray of uint8, shape (G, G)

    Returns
    -------
    ndarray of uint8, shape (S, S, 3)
    """
    import torch
    import torch.nn.functional as F

    s = full.shape[0]
    m = torch.from_numpy(mask.astype(np.float32) / 255)[None, None]
    soft = F.interpolate(m, size=(s, s), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1).numpy()
    return np.rint(full.astype(np.float32) * soft[..., None]).astype(np.uint8)


class WhatIfModel:
    """The checkpoint and the full game images of the maps, for the "what if" panel.

    Parameters
    ----------
    loaded : LoadedModel
        The checkpoint (:func:`inviz.models.checkpoint.load_checkpoint`), on CPU.
    images : callable
        Image id -> the full game image, ndarray of uint8 (S, S, 3).
    grid : int
        Cells per side of the editable mask.
    cache : int
        Full images kept in memory.
    """

    def __init__(self, loaded: Any, images: Any, grid: int, cache: int = 64):
        self.loaded = loaded
        self.images = images
        self.grid = grid
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = cache
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: Any, content: Any) -> WhatIfModel:
        """Load the checkpoint and the image source named by the settings (``masks`` section of the params).

        Raises
        ------
        InvizError
            A missing checkpoint, selected-images table or image folder.
        """
        import pandas as pd

        from inviz.core.config import load_section
        from inviz.game.reveal import RevealConfig, game_image
        from inviz.models.checkpoint import load_checkpoint

        if settings.params is None:
            raise InvizError("game.what_if needs the params file (masks section)")
        reveal = load_section(settings.params, "masks", RevealConfig)
        loaded = load_checkpoint(settings.model)
        for path, what in (
            (settings.selected, "selected images (data/selected.csv)"),
            (settings.images, "image folder"),
        ):
            if not Path(path).exists():
                raise InvizError(
                    f"{path}: {what} not found; game.what_if needs it (or set game.what_if: false)"
                )
        paths = dict(
            pd.read_csv(settings.selected, dtype={"sample_id": str, "path": str})[
                ["sample_id", "path"]
            ].values
        )
        size = loaded.config.input_size

        def image(image_id: str) -> np.ndarray:
            from PIL import Image

            with Image.open(Path(settings.images) / paths[image_id]) as im:
                return game_image(
                    np.asarray(im.convert("RGB")), size, reveal.game_size, reveal.image_resample
                )

        return cls(loaded, image, settings.game.what_if_grid)

    def full_image(self, image_id: str) -> np.ndarray:
        """Return the full game image of an image id (cached)."""
        with self._lock:
            if image_id in self._cache:
                self._cache.move_to_end(image_id)
                return self._cache[image_id]
        img = self.images(image_id)
        with self._lock:
            self._cache[image_id] = img
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return img

    def predict(self, image: np.ndarray) -> Prediction:
        """Run the model on a game image (resized to the network input as the data pipeline does).

        Parameters
        ----------
        image : ndarray of uint8, shape (S, S, 3)

        Returns
        -------
        Prediction
        """
        import torch
        from PIL import Image

        cfg = self.loaded.config
        pil = Image.fromarray(image)
        if pil.size != (cfg.input_size, cfg.input_size):
            pil = pil.resize((cfg.input_size, cfg.input_size), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(pil, dtype=np.float32) / 255).permute(2, 0, 1)
        x = (x - torch.tensor(cfg.mean)[:, None, None]) / torch.tensor(cfg.std)[:, None, None]
        with self._lock, torch.inference_mode():
            logits = self.loaded.model(x[None])
        return Prediction(torch.softmax(logits[0].double(), dim=0).numpy())


@dataclass(frozen=True)
class WhatIfView:
    """What the panel shows: the mask grid, a prediction, the true class's probability, edits left."""

    grid: int
    mask: str
    prediction: Prediction
    true_label: int
    edits_left: int


def finished_round(state: Any, s: Any, player: Any, token: str) -> Any:
    """Return the player's round of a token if it is finished (409 otherwise)."""
    from inviz.game.web.errors import conflict

    r = state.rounds.own_round(s, player, token)
    if not r.finished:
        raise conflict("finish the round first: the 'what if' panel opens after the answer")
    return r


def _edits(s: Any, round_id: int) -> int:
    from sqlalchemy import func, select

    from inviz.game.web.db import WhatIfEdit

    return int(
        s.scalar(select(func.count()).select_from(WhatIfEdit).where(WhatIfEdit.round_id == round_id)) or 0
    )


def _seen(state: Any, r: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (the masked image the player saw last, the full image) of a round."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(state.content.image(r.cluster_id, r.level))) as im:
        masked = np.asarray(im.convert("RGB"))
    return masked, state.what_if.full_image(r.image)


def start(state: Any, s: Any, player: Any, token: str) -> WhatIfView:
    """Open the panel on a finished round: the mask of what the game showed and the model's answer to it."""
    r = finished_round(state, s, player, token)
    masked, full = _seen(state, r)
    w = state.what_if
    mask = cell_mask(masked, full, w.grid)
    truth = int(state.content.map_row(r.cluster_id)["label"])
    left = state.settings.game.what_if_max_edits - _edits(s, r.id)
    return WhatIfView(w.grid, encode_mask(mask), w.predict(apply_mask(full, mask)), truth, left)


def edit(state: Any, s: Any, player: Any, token: str, mask_text: str, now: float) -> WhatIfView:
    """Predict on the edited image and store the edit (committed before the answer)."""
    from inviz.game.web.db import WhatIfEdit
    from inviz.game.web.errors import GameRequestError, bad

    r = finished_round(state, s, player, token)
    w = state.what_if
    try:
        mask = decode_mask(mask_text, w.grid)
    except ValueError as err:
        raise bad(str(err)) from err
    used = _edits(s, r.id)
    if used >= state.settings.game.what_if_max_edits:
        raise GameRequestError(429, f"at most {state.settings.game.what_if_max_edits} edits per round")
    masked, full = _seen(state, r)
    truth = int(state.content.map_row(r.cluster_id)["label"])
    before = w.predict(apply_mask(full, cell_mask(masked, full, w.grid)))
    after = w.predict(apply_mask(full, mask))
    s.add(
        WhatIfEdit(
            round_id=r.id,
            player_id=player.id,
            mask=mask_text,
            shown_share=float(mask.mean() / 255),
            pred_before=before.label,
            prob_before=float(before.probs[before.label]),
            true_prob_before=float(before.probs[truth]),
            pred_after=after.label,
            prob_after=float(after.probs[after.label]),
            true_prob_after=float(after.probs[truth]),
            created_at=now,
        )
    )
    s.commit()
    return WhatIfView(w.grid, mask_text, after, truth, state.settings.game.what_if_max_edits - used - 1)
