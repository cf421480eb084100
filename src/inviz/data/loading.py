"""Images to tensors without Lightning: transforms, the indexed dataset, its collate, the index reader.

Stages that only read images (``evaluate``, ``survey``, ``global``, ``transfer``'s new images) import
this module instead of :mod:`inviz.data.datamodule`, which pulls in Lightning (~8 s of imports on
a 2-core machine). Images are resized (squashed, as Keras' ``target_size`` does) to the model's
input size; training adds the paper's augmentation (rotation ±30°, shifts ±50 px, zoom 0.3,
horizontal and vertical flips). Items are dicts ``{"image", "label", "sample_id"}`` so sample ids
travel with the data (needed by prediction writers).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import v2

from inviz.core.io import require_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    """``train.augment``: the paper's Keras ImageDataGenerator settings.

    rotation : degrees (±); shift : pixels at the model's input size (±); zoom : relative (±);
    hflip, vflip : random flips; enabled : switch augmentation off entirely.
    """

    enabled: bool = True
    rotation: float = 30.0
    shift: float = 50.0
    zoom: float = 0.3
    hflip: bool = True
    vflip: bool = True


def eval_transform(input_size: int, mean: Sequence[float], std: Sequence[float]) -> v2.Compose:
    """PIL image -> normalised float tensor of shape (3, S, S)."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize((input_size, input_size), antialias=True),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(list(mean), list(std)),
        ]
    )


def train_transform(
    input_size: int, mean: Sequence[float], std: Sequence[float], aug: AugmentConfig
) -> v2.Compose:
    """Build the training transform: resize, the random augmentations of ``aug``, normalise.

    Parameters
    ----------
    input_size : int
        Side of the square network input.
    mean, std : sequence of float
        Per-channel normalisation.
    aug : AugmentConfig
        Rotation, shift, zoom and flips; disabled, the evaluation transform is returned.

    Returns
    -------
    torchvision ``v2.Compose`` mapping a PIL image to a float tensor of shape (3, input_size, input_size).
    """
    if not aug.enabled:
        return eval_transform(input_size, mean, std)
    ops: list[Any] = [v2.ToImage(), v2.Resize((input_size, input_size), antialias=True)]
    shift = min(aug.shift / input_size, 1.0)
    ops.append(
        v2.RandomAffine(
            degrees=aug.rotation,
            translate=(shift, shift) if shift > 0 else None,
            scale=(max(1e-3, 1 - aug.zoom), 1 + aug.zoom) if aug.zoom > 0 else None,
        )
    )
    if aug.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if aug.vflip:
        ops.append(v2.RandomVerticalFlip())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))]
    return v2.Compose(ops)


def load_rgb(path: str | Path) -> Image.Image:
    """Read an image file as RGB (the file is closed on return)."""
    with Image.open(path) as im:
        return im.convert("RGB")


class IndexedImageDataset(Dataset):
    """Images listed in an index table (``path`` relative to ``root``, ``label``, ``sample_id``).

    An image that fails to load at read time (e.g. changed on disk after indexing) yields
    ``None``; :func:`collate_skip_none` drops it from the batch and the drop is logged.
    With ``cache`` each image is decoded once and kept in memory as a uint8 tensor of shape
    (3, H, W) (the transform, which starts with ``ToImage``, gets the same pixels, so the items are
    identical); a training run reads its images every epoch, and decoding is most of that. With
    ``cache_transformed`` as well, the transform's output is kept instead (float32, 4 bytes per
    value): only for a transform that draws nothing at random (the evaluation transform,
    training without augmentation), whose output is the same at every epoch.
    """

    def __init__(
        self,
        index: pd.DataFrame,
        root: str | Path,
        transform: Any,
        cache: bool = False,
        cache_transformed: bool = False,
    ):
        self.root = Path(root)
        self.paths = index["path"].tolist()
        self.labels = index["label"].astype(int).tolist()
        self.ids = index["sample_id"].astype(str).tolist()
        self.transform = transform
        self.cache: dict[int, torch.Tensor] | None = {} if cache else None
        self.transformed: dict[int, torch.Tensor] | None = {} if cache and cache_transformed else None

    def __len__(self) -> int:
        return len(self.paths)

    def _image(self, i: int) -> Any:
        if self.cache is None:
            return load_rgb(self.root / self.paths[i])
        image = self.cache.get(i)
        if image is None:
            image = self.cache[i] = v2.functional.pil_to_tensor(load_rgb(self.root / self.paths[i]))
        return image

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        done = None if self.transformed is None else self.transformed.get(i)
        if done is None:
            try:
                image = self._image(i)
            except Exception as err:  # unreadable at read time: dropped and logged, never a crash
                log.warning("could not read %s (%s); dropped from the batch", self.root / self.paths[i], err)
                return None
            done = self.transform(image)
            if self.transformed is not None:
                self.transformed[i] = done
                self.cache.pop(i, None)  # type: ignore[union-attr]  # the pixels are not needed again
        return {"image": done, "label": self.labels[i], "sample_id": self.ids[i]}


def collate_skip_none(batch: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack a batch, leaving out the images that failed to load (``None``); ``dropped`` counts them."""
    items = [b for b in batch if b is not None]
    dropped = len(batch) - len(items)
    if not items:
        return {
            "image": torch.empty(0),
            "label": torch.empty(0, dtype=torch.long),
            "sample_id": [],
            "dropped": dropped,
        }
    return {
        "image": torch.stack([b["image"] for b in items]),
        "label": torch.as_tensor([b["label"] for b in items], dtype=torch.long),
        "sample_id": [b["sample_id"] for b in items],
        "dropped": dropped,
    }


def read_index(path: str | Path) -> pd.DataFrame:
    """Read an index CSV written by ``inviz data`` and check its columns."""
    from inviz.data.index import INDEX_COLUMNS

    path = require_file(path, "index file", "data")
    frame = pd.read_csv(
        path, dtype={"sample_id": str, "path": str, "split": str, "class_folder": str, "class_name": str}
    )
    missing = [c for c in INDEX_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(INDEX_COLUMNS)}"
        )
    return frame
