"""Many images through the analysis with Lightning: devices, shards as it goes, resume (docs/method.md §1).

:func:`run_extraction` runs :func:`inviz.fmaps.explain.explain` under Lightning ``Trainer.predict``
(``inference_mode=False``: gradients are needed) with :class:`ShardWriter` writing shards
(:mod:`inviz.fmaps.shards`) as it goes; several devices/nodes (DDP) work unchanged; an interrupted
run resumes and skips finished images (:func:`prepare_output`, keyed by :func:`fingerprint`). Only
the ``extract`` stage imports this module (Lightning is imported here, at the top).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from inviz.core.config import to_dict
from inviz.core.io import read_json, write_json
from inviz.data.datamodule import collate_skip_none
from inviz.fmaps.explain import ExtractConfig, explain, resolve_device
from inviz.fmaps.records import ImageExplanation
from inviz.fmaps.shards import consolidate, finished_ids, remove_incomplete_shards, write_shard
from inviz.fmaps.store import FORMAT

log = logging.getLogger(__name__)


class ExplainModule(L.LightningModule):
    """A LightningModule whose ``predict_step`` returns the batch's :class:`ImageExplanation` records.

    Batches are dicts ``{"image", "label", "sample_id"}``
    (:class:`inviz.data.datamodule.IndexedImageDataset`).

    Parameters
    ----------
    model : the CNN (logits of shape (N, K)).
    cfg : the extraction settings (``target: label`` differentiates the batch's labels).

    Attributes
    ----------
    timings : seconds per step, summed over the batches of this process.
    """

    def __init__(self, model: nn.Module, cfg: ExtractConfig) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.timings: dict[str, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the model's logits, shape (N, K), for images of shape (N, 3, H, W)."""
        return self.model(x)

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> list[ImageExplanation]:
        """Explain one batch: its records (an empty list for an empty batch)."""
        images = batch["image"]
        if images.numel() == 0:
            return []
        targets = batch["label"] if self.cfg.target == "label" else None
        with torch.enable_grad():  # Trainer.predict runs under no_grad (inference_mode=False)
            return explain(
                self.model,
                images,
                self.cfg.layers,
                self.cfg,
                targets=targets,
                sample_ids=list(batch["sample_id"]),
                timings=self.timings,
            )


class ShardWriter(BasePredictionWriter):
    """Writes a shard (:func:`inviz.fmaps.shards.write_shard`) every ``shard_size`` images and at the end.

    Shard names carry the global rank and a per-run token, so ranks and resumed runs never collide.

    Parameters
    ----------
    out_dir : the extraction folder.
    shard_size : images per shard.
    """

    def __init__(self, out_dir: str | Path, shard_size: int) -> None:
        super().__init__(write_interval="batch")
        self.out_dir = Path(out_dir)
        self.shard_size = shard_size
        self.buffer: list[ImageExplanation] = []
        self.token = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
        self.count = 0

    def _flush(self, rank: int) -> None:
        if not self.buffer:
            return
        write_shard(self.out_dir, f"r{rank:03d}-{self.token}-{self.count:05d}", self.buffer)
        self.count += 1
        self.buffer = []

    def write_on_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        prediction: Any,
        batch_indices: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        """Buffer the batch's records; write a shard once ``shard_size`` are buffered."""
        self.buffer.extend(prediction or [])
        if len(self.buffer) >= self.shard_size:
            self._flush(trainer.global_rank)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the remaining records."""
        self._flush(trainer.global_rank)


@dataclass(frozen=True)
class ExtractionRun:
    """Summary of :func:`run_extraction`.

    Parameters
    ----------
    n_new, n_skipped, n_total : images done now, skipped (resumed), requested.
    seconds : wall time of the analysis.
    timings : seconds per step (this process).
    clusters, layers : the consolidated tables (None on a non-zero DDP rank).
    """

    n_new: int
    n_skipped: int
    n_total: int
    seconds: float
    timings: dict[str, float]
    clusters: pd.DataFrame | None
    layers: pd.DataFrame | None


# ----------------------------------------------------------------------------------------------
# resume


def fingerprint(cfg: ExtractConfig, model_sha256: str | None) -> str:
    """Hash everything that changes results: the method config, the batch size and the model.

    The run settings that can change results are ``RunConfig.RESULT_KEYS`` (the batch size:
    float rounding of batched convolutions); the others (threads, workers, devices …) cannot.

    Parameters
    ----------
    cfg : the extraction settings.
    model_sha256 : the model's hash (None: unknown).

    Returns
    -------
    str, 16 hex digits.
    """
    d = to_dict(cfg)
    run = d.pop("run")
    d.update({k: run[k] for k in cfg.run.RESULT_KEYS})
    blob = json.dumps({"format": FORMAT, "config": d, "model": model_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_rank_zero() -> bool:
    """Tell whether this process owns the folder: outside DDP, or global rank 0 (Lightning's env vars)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def prepare_output(out_dir: str | Path, cfg: ExtractConfig, model_sha256: str | None) -> set[str]:
    """Create or validate ``out_dir`` for a (possibly resumed) run.

    A folder written with another config or model (different :func:`fingerprint`) is emptied
    first; files of incomplete shards are removed.

    Parameters
    ----------
    out_dir : the extraction folder.
    cfg : the extraction settings.
    model_sha256 : the model's hash.

    Returns
    -------
    set of str, the ids already finished.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not _is_rank_zero():  # DDP workers only read: rank 0 owns the folder (and is launched first)
        return finished_ids(out)
    fp = fingerprint(cfg, model_sha256)
    manifest = out / "manifest.json"
    old = None
    if manifest.is_file():
        try:
            old = read_json(manifest).get("fingerprint")
        except ValueError:
            old = None
    if old != fp:
        if manifest.is_file():
            log.warning("%s: results of another configuration or model; starting afresh", out)
        shutil.rmtree(out / "shards", ignore_errors=True)
    write_json(
        manifest,
        {
            "format": FORMAT,
            "fingerprint": fp,
            "config": to_dict(cfg),
            "model_sha256": model_sha256,
            "layers": list(cfg.layers),
        },
    )
    removed = remove_incomplete_shards(out)
    if removed:
        log.info("removed %d file(s) of incomplete shards", removed)
    return finished_ids(out)


# ----------------------------------------------------------------------------------------------
# run


def _trainer(cfg: ExtractConfig, writer: ShardWriter, progress: bool) -> L.Trainer:
    """Build a predict-only Trainer on ``cfg.run``'s device(s), with gradients enabled."""
    run = cfg.run
    device = resolve_device(run.device)
    return L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index] if device.type == "cuda" and device.index is not None else run.devices,
        num_nodes=run.num_nodes,
        strategy=run.strategy,
        inference_mode=False,
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=progress,
        callbacks=[writer],
    )


def run_extraction(
    model: nn.Module,
    dataset: Dataset,
    sample_ids: Sequence[str],
    out_dir: str | Path,
    cfg: ExtractConfig,
    model_sha256: str | None = None,
    progress: bool = True,
) -> ExtractionRun:
    """Explain every image of ``dataset`` with Lightning ``Trainer.predict``, writing shards; resumable.

    Parameters
    ----------
    model : the CNN (moved to the configured device by Lightning; put in eval mode).
    dataset : map-style dataset of dicts ``{"image", "label", "sample_id"}`` (e.g.
        :class:`inviz.data.datamodule.IndexedImageDataset`); ``sample_ids[i]`` is item ``i``'s id.
    sample_ids : sequence of shape (len(dataset),), the images' ids.
    out_dir : the extraction folder (:mod:`inviz.fmaps.store`).
    cfg : the settings; ``cfg.run`` gives device(s), nodes, strategy, batch and shard size, workers.
    model_sha256 : identifies the model in the fingerprint (resume only reuses matching results).
    progress : show Lightning's progress bar.

    Returns
    -------
    :class:`ExtractionRun` with the consolidated tables.
    """
    sample_ids = [str(s) for s in sample_ids]
    done = prepare_output(out_dir, cfg, model_sha256)
    todo = [i for i, s in enumerate(sample_ids) if s not in done]
    skipped = len(sample_ids) - len(todo)
    if skipped:
        log.info("resuming: %d of %d image(s) already done", skipped, len(sample_ids))
    start = time.perf_counter()
    timings: dict[str, float] = {}
    if todo:
        model.eval()
        module = ExplainModule(model, cfg)
        trainer = _trainer(cfg, ShardWriter(out_dir, cfg.run.shard_size), progress)
        loader = DataLoader(
            Subset(dataset, todo),
            batch_size=cfg.run.batch_size,
            shuffle=False,
            num_workers=cfg.run.num_workers,
            collate_fn=collate_skip_none,
        )
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        timings = dict(module.timings)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            trainer.strategy.barrier()  # every rank has flushed its shards before rank 0 merges them
        if not trainer.is_global_zero:
            seconds = time.perf_counter() - start
            return ExtractionRun(len(todo), skipped, len(sample_ids), seconds, timings, None, None)
    seconds = time.perf_counter() - start
    clusters, layers = consolidate(out_dir, sample_ids)
    missing = set(sample_ids) - set(layers["sample_id"])
    if missing:
        log.warning(
            "%d image(s) have no results (unreadable files are dropped by the loader): %s",
            len(missing),
            ", ".join(sorted(missing)[:5]),
        )
    return ExtractionRun(len(todo), skipped, len(sample_ids), seconds, timings, clusters, layers)
