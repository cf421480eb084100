"""The LightningDataModule over an index table (``index.py``); its Lightning-free parts: ``loading.py``.

One loader serves Imagenette and the synthetic demo data: both are image folders indexed by
``inviz data``. Batches are dicts ``{"image", "label", "sample_id"}`` (see
:class:`~inviz.data.loading.IndexedImageDataset`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from inviz.data.loading import (
    AugmentConfig,
    IndexedImageDataset,
    collate_skip_none,
    eval_transform,
    load_rgb,
    read_index,
    train_transform,
    workers_for_shared_memory,
)

__all__ = [
    "AugmentConfig",
    "ImageDataModule",
    "IndexedImageDataset",
    "collate_skip_none",
    "eval_transform",
    "load_rgb",
    "read_index",
    "train_transform",
]

log = logging.getLogger(__name__)


class ImageDataModule(L.LightningDataModule):
    """Train/val/test/predict loaders over an index table.

    Parameters
    ----------
    index : index table (see :func:`inviz.data.index.scan_image_folder`).
    root : dataset folder the index's paths are relative to.
    input_size, mean, std : model input geometry and normalisation.
    augment : training augmentation.
    batch_size, num_workers : loader settings; fewer workers when the shared memory cannot hold
        their batches (:func:`~inviz.data.loading.workers_for_shared_memory`).
    workers_param : the params key of ``num_workers``, named in that warning.
    seed : seeds the training shuffle.
    predict_ids : sample ids for ``predict_dataloader`` (default: the test pool).
    cache_images : keep the decoded train and val images in memory (each decoded once; see
        :class:`~inviz.data.loading.IndexedImageDataset`); without augmentation, the normalised
        tensors themselves (12 instead of 3 bytes per pixel: 490 MB for the demo's 2500 images).
    """

    def __init__(
        self,
        index: pd.DataFrame,
        root: str | Path,
        input_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        augment: AugmentConfig | None = None,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        predict_ids: Sequence[str] | None = None,
        cache_images: bool = False,
        workers_param: str = "num_workers",
    ):
        super().__init__()
        self.index = index
        self.root = Path(root)
        self.input_size = input_size
        self.mean, self.std = tuple(mean), tuple(std)
        self.augment = augment or AugmentConfig(enabled=False)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.predict_ids = list(predict_ids) if predict_ids is not None else None
        self.cache_images = cache_images
        self.workers_param = workers_param

    def _split(self, split: str) -> pd.DataFrame:
        part = self.index[self.index["split"] == split]
        if part.empty:
            raise ValueError(f"index has no images in split '{split}'")
        return part

    def _loader(
        self, frame: pd.DataFrame, transform: Any, shuffle: bool, cache: bool = False, fixed: bool = True
    ) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        dataset = IndexedImageDataset(
            frame, self.root, transform, cache=cache, cache_transformed=cache and fixed
        )
        image_bytes = 3 * self.input_size**2 * torch.float32.itemsize
        workers = workers_for_shared_memory(
            self.num_workers, dataset, self.batch_size, self.workers_param, item_bytes=image_bytes
        )
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=workers,
            collate_fn=collate_skip_none,
            generator=gen,
            persistent_workers=workers > 0,
        )

    def eval_transform(self) -> v2.Compose:
        """Return the evaluation transform of this data's input size and normalisation."""
        return eval_transform(self.input_size, self.mean, self.std)

    def train_dataloader(self) -> DataLoader:
        """Load the ``train`` split, augmented and shuffled (seeded)."""
        tf = train_transform(self.input_size, self.mean, self.std, self.augment)
        fixed = not self.augment.enabled  # then the transform is the evaluation one: cache its output
        return self._loader(self._split("train"), tf, shuffle=True, cache=self.cache_images, fixed=fixed)

    def val_dataloader(self) -> DataLoader:
        """Load the ``val`` split, in index order."""
        return self._loader(self._split("val"), self.eval_transform(), shuffle=False, cache=self.cache_images)

    def test_dataloader(self) -> DataLoader:
        """Load the ``test`` split, in index order."""
        return self._loader(self._split("test"), self.eval_transform(), shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        """Load ``predict_ids`` in that order (the ``test`` split when not given)."""
        if self.predict_ids is None:
            frame = self._split("test")
        else:
            by_id = self.index.set_index("sample_id")
            unknown = [s for s in self.predict_ids if s not in by_id.index]
            if unknown:
                raise KeyError(f"unknown sample id(s): {', '.join(unknown[:5])}")
            frame = by_id.loc[self.predict_ids].reset_index()
        return self._loader(frame, self.eval_transform(), shuffle=False)
