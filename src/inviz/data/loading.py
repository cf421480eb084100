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
import shutil
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

#: where torch's DataLoader workers put the batches they hand to the main process (Linux)
SHARED_MEMORY = Path("/dev/shm")
_WARNED: set[tuple[str, int, int]] = set()  # (param, asked, used) already warned about


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


def workers_for_shared_memory(
    num_workers: int,
    dataset: Dataset,
    batch_size: int,
    param: str,
    item_bytes: int | None = None,
    prefetch_factor: int = 2,
    shm: Path = SHARED_MEMORY,
) -> int:
    """Count the data-loader workers that fit in the free shared memory: ``num_workers``, or fewer.

    Workers hand every batch to the main process through shared memory (``/dev/shm`` on Linux).
    When it is full torch loses the batch and the main process waits for it forever, with no error;
    a container's ``/dev/shm`` is 64 MB unless it was started with ``--shm-size``, and one batch of
    32 images at 224 px takes 19 MB. Each worker keeps up to ``prefetch_factor`` batches in flight
    and the main process holds about two more, so the workers need about batch bytes x
    (``prefetch_factor`` x workers + 2). When fewer fit, this returns as many as fit (0: load in the
    main process) and logs a warning naming ``param`` (once per process); predictions do not
    depend on the number of workers, an augmented training run's random draws do.

    Parameters
    ----------
    num_workers : the workers asked for (``param``).
    dataset : map-style dataset of dicts of tensors.
    batch_size : items per batch (a smaller dataset makes one smaller batch).
    param : the params key of ``num_workers``, for the message.
    item_bytes : bytes of one item's tensors; None: measured on the first readable item (read
        with torch's random state saved and restored, so a random transform draws nothing).
    prefetch_factor : the DataLoader's (torch's default 2).
    shm : the shared-memory folder.

    Returns
    -------
    int
        In [0, ``num_workers``].
    """
    if num_workers <= 0 or len(dataset) == 0 or not shm.is_dir():
        return num_workers
    if item_bytes is None:
        with torch.random.fork_rng(devices=[]):
            item_bytes = _item_bytes(dataset)
    batch = item_bytes * min(batch_size, len(dataset))
    free = shutil.disk_usage(shm).free
    if batch == 0 or batch * (prefetch_factor * num_workers + 2) <= free:
        return num_workers
    fits = max(0, min(num_workers, int((free / batch - 2) // prefetch_factor)))
    if (param, num_workers, fits) in _WARNED:
        return fits
    _WARNED.add((param, num_workers, fits))
    log.warning(
        "%s=%d: the workers need about %.1f MB of shared memory (%s) for batches of %.1f MB but "
        "%.1f MB are free; loading with %d worker(s) instead (a container: start it with a larger "
        "--shm-size; or lower the batch size)",
        param,
        num_workers,
        batch * (prefetch_factor * num_workers + 2) / 2**20,
        shm,
        batch / 2**20,
        free / 2**20,
        fits,
    )
    return fits


def _item_bytes(dataset: Dataset, tries: int = 8) -> int:
    """Bytes of the tensors in the first readable item of ``dataset`` (0 when none of ``tries`` reads)."""
    for i in range(min(tries, len(dataset))):
        item = dataset[i]
        if item is not None:
            values = item.values() if isinstance(item, dict) else item
            return sum(v.nbytes for v in values if isinstance(v, torch.Tensor))
    return 0
