"""Many images through the analysis with Lightning: devices, nodes, shards, resume (docs/method.md §1).

:func:`run_extraction` runs :class:`inviz.fmaps.explain.Explainer` under Lightning
``Trainer.predict`` (``inference_mode=False``: gradients are needed) with :class:`ShardWriter`
writing shards (:mod:`inviz.fmaps.shards`) as it goes. Several devices and nodes (DDP, launched by
Lightning, ``torchrun`` or a cluster manager) work the same way:

1. inside the Trainer, once every process has joined, the processes check that they explain
   the same image list with the same fingerprint (:func:`inviz.fmaps.shards.fingerprint`: config,
   runtime, model); otherwise all of them stop with :class:`DistributedMismatchError`;
2. global rank 0 alone prepares the folder (:func:`inviz.fmaps.shards.prepare_output`: a folder of
   another run is emptied, incomplete shards removed) and broadcasts the images still to do;
3. every process takes every ``world_size``-th of them (no image twice, none left out; a process
   with nothing to do still joins every collective step);
4. after the last shard is written, a barrier; then rank 0 merges the shards.

An image's results do not depend on the process or batch it lands in (the last batch is padded
to the batch size), so 1 or several processes and a resumed run give identical tables. Only the
``extract`` stage imports this module (Lightning is imported here, at the top).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
import warnings
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

from inviz.core.compute import resolve_device
from inviz.core.errors import InvizError
from inviz.data.loading import collate_skip_none, workers_for_shared_memory
from inviz.fmaps.explain import Explainer, ExtractConfig, set_threads
from inviz.fmaps.records import ImageExplanation
from inviz.fmaps.shards import consolidate, fingerprint, prepare_output, write_shard

log = logging.getLogger(__name__)

#: prefix of the numbers a run leaves in ``trainer.callback_metrics`` (they survive ``ddp_spawn``)
_METRICS = "inviz_extract/"


class DistributedMismatchError(InvizError):
    """The processes of one distributed extraction disagree on the images, the configuration or the model."""


class ExplainModule(L.LightningModule):
    """A LightningModule whose ``predict_step`` returns finished :class:`ImageExplanation` records.

    Batches are dicts ``{"image", "label", "sample_id"}``
    (:class:`inviz.data.loading.IndexedImageDataset`). With ``run.overlap`` a step returns the
    records of the previous batch (clustered on the CPU meanwhile); :meth:`finish` returns the rest.

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
        self._explainer: Explainer | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the model's logits, shape (N, K), for images of shape (N, 3, H, W)."""
        return self.model(x)

    def setup(self, stage: str) -> None:
        """Apply ``run.threads`` (Lightning's launchers set their own default per process)."""
        set_threads(self.cfg.run.threads)

    def on_predict_start(self) -> None:
        """Open the :class:`inviz.fmaps.explain.Explainer` (hooks, pinned numerics, worker thread)."""
        self._explainer = Explainer(self.model, self.cfg, timings=self.timings).__enter__()

    def predict_step(
        self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0
    ) -> list[ImageExplanation]:
        """Explain one batch: the records finished by now (an empty list for an empty batch)."""
        images = batch["image"]
        if images.numel() == 0 or self._explainer is None:
            return []
        targets = batch["label"] if self.cfg.target == "label" else None
        with torch.enable_grad():  # Trainer.predict runs under no_grad (inference_mode=False)
            return self._explainer.submit(images, targets, list(batch["sample_id"]))

    def finish(self) -> list[ImageExplanation]:
        """Wait for the batch still being clustered and return its records."""
        return self._explainer.flush() if self._explainer is not None else []

    def close(self) -> None:
        """Close the explainer (remove the hooks, restore the numerics); safe to call twice."""
        if self._explainer is not None:
            self._explainer.close()
            self._explainer = None

    def on_predict_end(self) -> None:
        """Close the explainer."""
        self.close()

    def teardown(self, stage: str) -> None:
        """Leave this process's step timings where the caller finds them (also under ``ddp_spawn``)."""
        self.close()
        for key, value in self.timings.items():
            self.trainer.callback_metrics[f"{_METRICS}timing/{key}"] = torch.tensor(value)


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
        """Buffer the finished records; write a shard once ``shard_size`` are buffered."""
        self.buffer.extend(prediction or [])
        if len(self.buffer) >= self.shard_size:
            self._flush(trainer.global_rank)

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Collect the records still being clustered and write the rest."""
        if isinstance(pl_module, ExplainModule):
            self.buffer.extend(pl_module.finish())
        self._flush(trainer.global_rank)

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        """Close the explainer (its hooks and worker thread) when the run fails."""
        if isinstance(pl_module, ExplainModule):
            pl_module.close()


class ExtractionData(L.LightningDataModule):
    """The images still to explain, agreed on by every process of the run (steps 1-3 of the module docstring).

    Parameters
    ----------
    dataset : map-style dataset of dicts ``{"image", "label", "sample_id"}``.
    sample_ids : sequence of shape (len(dataset),), the images' ids.
    out_dir : the extraction folder.
    cfg : the settings (batch size, workers).
    model_sha256 : the model's hash (part of the fingerprint).

    Attributes
    ----------
    indices : this process's dataset indices (after :meth:`setup`).
    n_todo, n_skipped : images to do in this run (all processes) and already done.
    """

    def __init__(
        self,
        dataset: Dataset,
        sample_ids: Sequence[str],
        out_dir: str | Path,
        cfg: ExtractConfig,
        model_sha256: str | None,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.sample_ids = [str(s) for s in sample_ids]
        self.out_dir = Path(out_dir)
        self.cfg = cfg
        self.model_sha256 = model_sha256
        self.indices: list[int] = []
        self.n_todo = self.n_skipped = 0
        # a process may have nothing to do (fewer images left than processes): it still takes part
        self.allow_zero_length_dataloader_with_multiple_devices = True

    def setup(self, stage: str) -> None:
        """Check agreement, let rank 0 prepare the folder, take this process's share of the to-do list."""
        trainer, strategy = self.trainer, self.trainer.strategy
        fp = fingerprint(self.cfg, self.model_sha256)
        digest = hashlib.sha256(json.dumps([fp, self.sample_ids]).encode()).hexdigest()
        reference = strategy.broadcast(digest, src=0)
        if not strategy.reduce_boolean_decision(digest == reference, all=True):
            raise DistributedMismatchError(
                f"{self.out_dir}: the processes of this run disagree on the image list, the extract "
                "configuration, the runtime (device type, batch size, t-SNE backend, torch) or the model "
                f"(rank {trainer.global_rank}: {len(self.sample_ids)} images, fingerprint {fp}); give every "
                "node the same params.yaml, selected images and model"
            )
        todo = None
        if trainer.is_global_zero:
            done = prepare_output(self.out_dir, self.cfg, self.model_sha256)
            todo = [s for s in self.sample_ids if s not in done]
        todo = strategy.broadcast(todo, src=0)  # every process waits here for rank 0's folder
        self.n_todo, self.n_skipped = len(todo), len(self.sample_ids) - len(todo)
        position = {s: i for i, s in enumerate(self.sample_ids)}
        self.indices = [position[s] for s in todo[trainer.global_rank :: trainer.world_size]]
        if self.n_skipped and trainer.is_global_zero:
            log.info("resuming: %d of %d image(s) already done", self.n_skipped, len(self.sample_ids))

    def predict_dataloader(self) -> DataLoader:
        """Load this process's images in input order, ``run.batch_size`` per batch."""
        subset = Subset(self.dataset, self.indices)
        workers = workers_for_shared_memory(
            self.cfg.run.num_workers, subset, self.cfg.run.batch_size, "extract.run.num_workers"
        )
        return DataLoader(
            subset,
            batch_size=self.cfg.run.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=collate_skip_none,
        )

    def teardown(self, stage: str) -> None:
        """Leave the counts where the caller finds them (also under ``ddp_spawn``)."""
        self.trainer.callback_metrics[f"{_METRICS}n_todo"] = torch.tensor(self.n_todo)
        self.trainer.callback_metrics[f"{_METRICS}n_skipped"] = torch.tensor(self.n_skipped)


@dataclass(frozen=True)
class ExtractionRun:
    """Summary of :func:`run_extraction`.

    Parameters
    ----------
    n_new, n_skipped, n_total : images done now (all processes), skipped (resumed), requested.
    seconds : wall time of the analysis.
    timings : seconds per step (this process; global rank 0's under ``ddp_spawn``).
    clusters, layers : the consolidated tables (None on a non-zero rank).
    rank, world_size : this process's global rank and the number of processes.
    """

    n_new: int
    n_skipped: int
    n_total: int
    seconds: float
    timings: dict[str, float]
    clusters: pd.DataFrame | None
    layers: pd.DataFrame | None
    rank: int = 0
    world_size: int = 1

    @property
    def is_global_zero(self) -> bool:
        """Whether this process is global rank 0 (which merged the tables and reports)."""
        return self.rank == 0


def _trainer(cfg: ExtractConfig, writer: ShardWriter, progress: bool) -> L.Trainer:
    """Build a predict-only Trainer on ``cfg.run``'s device(s), with gradients enabled."""
    run = cfg.run
    device = resolve_device(run.device)
    return L.Trainer(
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=[device.index] if device.type == "cuda" and device.index is not None else run.devices,
        num_nodes=run.num_nodes,
        strategy=run.strategy,
        deterministic=run.deterministic,
        inference_mode=False,
        use_distributed_sampler=False,  # ExtractionData shares the images out itself
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
        :class:`inviz.data.loading.IndexedImageDataset`); ``sample_ids[i]`` is item ``i``'s id.
    sample_ids : sequence of shape (len(dataset),), the images' ids.
    out_dir : the extraction folder (:mod:`inviz.fmaps.store`).
    cfg : the settings; ``cfg.run`` gives device(s), nodes, strategy, batch and shard size, workers.
    model_sha256 : identifies the model in the fingerprint (resume only reuses matching results).
    progress : show Lightning's progress bar.

    Returns
    -------
    :class:`ExtractionRun` with the consolidated tables (on global rank 0).
    """
    sample_ids = [str(s) for s in sample_ids]
    start = time.perf_counter()
    model.eval()
    data = ExtractionData(dataset, sample_ids, out_dir, cfg, model_sha256)
    module = ExplainModule(model, cfg)
    trainer = _trainer(cfg, ShardWriter(out_dir, cfg.run.shard_size), progress)
    det = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        with warnings.catch_warnings():  # nothing (left) to do for a process is expected: see ExtractionData
            warnings.filterwarnings("ignore", message=r".*(across ranks is zero|local rank has zero length)")
            trainer.predict(module, datamodule=data, return_predictions=False)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            trainer.strategy.barrier("inviz-extract-merge")  # every rank has written its shards
    finally:
        torch.use_deterministic_algorithms(det[0], warn_only=det[1])
    seconds = time.perf_counter() - start
    numbers = {
        k[len(_METRICS) :]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(_METRICS)
    }
    timings = {k[len("timing/") :]: v for k, v in numbers.items() if k.startswith("timing/")}
    n_new, n_skipped = int(numbers.get("n_todo", 0)), int(numbers.get("n_skipped", 0))
    summary = dict(
        n_new=n_new, n_skipped=n_skipped, n_total=len(sample_ids), seconds=seconds, timings=timings
    )
    rank, world = trainer.global_rank, trainer.world_size
    if rank != 0:
        return ExtractionRun(**summary, clusters=None, layers=None, rank=rank, world_size=world)
    clusters, layers = consolidate(out_dir, sample_ids)
    missing = set(sample_ids) - set(layers["sample_id"])
    if missing:
        log.warning(
            "%d image(s) have no results (unreadable files are dropped by the loader): %s",
            len(missing),
            ", ".join(sorted(missing)[:5]),
        )
    return ExtractionRun(**summary, clusters=clusters, layers=layers, rank=0, world_size=world)
