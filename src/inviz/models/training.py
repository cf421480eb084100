"""Fine-tuning in phases with Lightning (docs/method.md §0).

The paper trains in two phases, each with early stopping on the validation loss (patience 10,
best weights restored, at most 200 epochs): (1) backbone frozen, Adam 1e-3; (2) block5_conv1..3
and the head trainable, Adam 1e-5. Phases are data (:class:`PhaseConfig`): which parts train,
learning rate, epochs and patience, so the offline demo can train a narrow VGG-16 from scratch
with one all-trainable phase using the same code.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from inviz.data.loading import AugmentConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhaseConfig:
    """One training phase.

    name : used in logs and metric names.
    trainable : what gets gradients: ``all``, ``head`` (the classifier head: VGG-16's dense layers,
        ResNet's ``fc``, EfficientNet's ``classifier``; see :func:`inviz.models.heads.head_name`),
        ``backbone`` (everything but the head), module-name prefixes of any architecture
        (``layer4``, ``features.7``, ``features.24``) and, for VGG, Keras block names (``block5``)
        and layer names (``block5_conv1``). Everything else is frozen.
    lr : Adam learning rate. max_epochs : upper bound. patience : early-stopping patience in
    epochs on ``val_loss`` (best weights are restored at the end of the phase).
    min_delta : smallest val-loss decrease that counts as an improvement.
    weight_decay : Adam weight decay.
    schedule : ``constant`` (the paper: Adam at ``lr`` throughout) or ``onecycle`` (torch's
        ``OneCycleLR`` over ``max_epochs``, stepped per batch: warm-up from ``lr / div_factor`` to
        ``lr`` over the first ``warmup_share`` of the steps, then cosine annealing to
        ``lr / div_factor / final_div_factor``; converges in fewer epochs from scratch).
    """

    name: str
    trainable: list[str]
    lr: float
    max_epochs: int = 200
    patience: int = 10
    min_delta: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_share: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1.0e4

    def __post_init__(self) -> None:
        if not self.trainable:
            raise ValueError(f"phase {self.name!r}: trainable must name at least one part")
        if self.lr <= 0 or self.max_epochs < 1 or self.patience < 0:
            raise ValueError(f"phase {self.name!r}: need lr > 0, max_epochs >= 1, patience >= 0")
        if self.schedule not in ("constant", "onecycle"):
            raise ValueError(
                f"phase {self.name!r}: schedule must be constant or onecycle, got {self.schedule!r}"
            )
        if not 0 < self.warmup_share < 1 or self.div_factor <= 0 or self.final_div_factor <= 0:
            raise ValueError(
                f"phase {self.name!r}: need 0 < warmup_share < 1, div_factor > 0, final_div_factor > 0"
            )


def _paper_phases() -> list[PhaseConfig]:
    return [
        PhaseConfig("head", ["head"], 1e-3),
        PhaseConfig("block5", ["block5_conv1", "block5_conv2", "block5_conv3", "head"], 1e-5),
    ]


@dataclass(frozen=True)
class TrainRunConfig:
    """``train.run``: how training is executed (not what it computes; not a DVC dependency).

    num_workers : data-loader processes (0 = load in the main process).
    accelerator : Lightning accelerator (``auto`` uses a GPU when present).
    threads : torch CPU threads (0 = torch default).
    channels_last : train in the channels-last memory layout (NHWC weights and batches): oneDNN's
        CPU convolutions and cuDNN run faster in it; the numbers differ from the default layout
        by rounding only (the saved weights are in the default layout either way).
    cache_images : decode the train and val images once and keep them in memory (uint8) instead
        of reading them every epoch; same batches. Memory: 3 bytes per pixel of the stored images.
    """

    num_workers: int = 0
    accelerator: str = "auto"
    threads: int = 0
    channels_last: bool = False
    cache_images: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """``train`` section of ``params.yaml``.

    enabled : ``false`` trains nothing: the model (e.g. ``model.arch: checkpoint``, a finished
        model) is only evaluated on ``val`` (accuracy, confusion matrix) and saved.
    seed : seeds weights init, shuffling, augmentation and dropout.
    batch_size : training batch size (paper: 32).
    phases : the fine-tuning phases, run in order (default: the paper's two).
    augment : training augmentation.
    deterministic : Lightning's flag; ``warn`` because some CUDA kernels have no deterministic
        version.
    precision : Lightning's training precision: ``32-true`` (the paper) or ``bf16-mixed``
        (bfloat16 autocast, float32 weights; the saved model is float32 and every later stage runs
        it in float32). On CPUs with AMX or AVX-512 BF16 (``torch.backends.mkldnn.is_bf16_supported()``)
        and on recent GPUs it trains about 2x faster (the demo VGG on this machine: 41-49 vs 77-82 ms
        per batch of 16); elsewhere bfloat16 is emulated and slower (a warning says so). The model it
        gives differs from the float32 one like another seed's does.
    run : execution settings (:class:`TrainRunConfig`); the old top-level keys
        ``num_workers``, ``accelerator`` and ``threads`` are still accepted.
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {
        "num_workers": "run.num_workers",
        "accelerator": "run.accelerator",
        "threads": "run.threads",
    }

    enabled: bool = True
    seed: int = 432
    batch_size: int = 32
    phases: list[PhaseConfig] = field(default_factory=_paper_phases)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    deterministic: bool | Literal["warn"] = "warn"
    precision: Literal["32-true", "bf16-mixed"] = "32-true"
    run: TrainRunConfig = field(default_factory=TrainRunConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {self.batch_size}")
        if self.precision not in ("32-true", "bf16-mixed"):
            raise ValueError(f"precision: expected 32-true or bf16-mixed, got {self.precision!r}")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phases: names must be unique, got {names}")


def trainable_parameters(model: nn.Module, spec: Sequence[str], head: str | None = None) -> set[str]:
    """Names of the parameters selected by a phase's ``trainable`` list (see :class:`PhaseConfig`).

    Parameters
    ----------
    model : nn.Module
    spec : the phase's ``trainable`` list.
    head : module name of the classifier head (``model.checkpoint.head``); default: found by
        :func:`inviz.models.heads.head_name`.

    Returns
    -------
    set of str
    """
    from inviz.models.heads import head_parameters
    from inviz.models.vgg import block_of, keras_layer_names

    names = [n for n, _ in model.named_parameters()]
    features = getattr(model, "features", None)
    is_vgg = isinstance(features, nn.Sequential) and any(isinstance(m, nn.MaxPool2d) for m in features)
    aliases = keras_layer_names(features) if is_vgg else {}
    chosen: set[str] = set()
    for item in spec:
        if item == "all":
            hit = set(names)
        elif item in ("head", "backbone"):
            in_head = head_parameters(model, head)
            hit = in_head if item == "head" else set(names) - in_head
        elif item in aliases:
            hit = {n for n in names if n.startswith(aliases[item] + ".")}
        elif item.startswith("block") and item[5:].isdigit() and is_vgg:
            hit = {n for n in names if block_of(n.rsplit(".", 1)[0], features) == item}
        else:
            hit = {n for n in names if n == item or n.startswith(item + ".")}
        if not hit:
            tops = list(dict.fromkeys(n.split(".")[0] for n in names))
            vgg = f", a block ('block5'), a layer ({', '.join(list(aliases)[:3])}, ...)" if aliases else ""
            raise ValueError(
                f"trainable: {item!r} matches no parameter; use 'all', 'head', 'backbone'{vgg} or a "
                f"module name prefix ({', '.join(tops[:8])}, ...)"
            )
        chosen |= hit
    return chosen


class Classifier(L.LightningModule):
    """Wraps a logits model; cross-entropy training, accuracy, and prediction records.

    ``predict_step`` returns ``{"sample_id", "label", "logits"}`` per batch.
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        channels_last: bool = False,
        phase: PhaseConfig | None = None,
    ):
        super().__init__()
        self.model = model
        self.lr = lr
        self.weight_decay = weight_decay
        self.channels_last = channels_last
        self.phase = phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the wrapped model's logits, shape (N, n_classes)."""
        return self.model(x)

    def _step(self, batch: dict[str, Any], stage: str) -> torch.Tensor | None:
        x, y = batch["image"], batch["label"]
        if x.numel() == 0:
            return None
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(1) == y).float().mean()
        on_step = stage == "train"
        self.log(f"{stage}_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log(f"{stage}_acc", acc, on_step=False, on_epoch=True, prog_bar=not on_step, batch_size=len(y))
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        """Lightning hook: the batch's cross-entropy loss (None for an empty batch), logged with accuracy."""
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Lightning hook: log the batch's ``val_loss`` and ``val_acc``."""
        self._step(batch, "val")

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Lightning hook: the batch's ``sample_id``, ``label`` and ``logits`` (on the CPU)."""
        logits = self(batch["image"]) if batch["image"].numel() else torch.empty(0)
        return {
            "sample_id": list(batch["sample_id"]),
            "label": batch["label"].cpu(),
            "logits": logits.detach().cpu(),
        }

    def configure_optimizers(self) -> Any:
        """Lightning hook: Adam over the trainable parameters (``lr``, ``weight_decay``).

        With ``phase.schedule: onecycle`` the phase's one-cycle schedule, stepped per batch.
        """
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.phase is None or self.phase.schedule == "constant":
            return opt
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=self.lr,
            total_steps=int(self.trainer.estimated_stepping_batches),
            pct_start=self.phase.warmup_share,
            anneal_strategy="cos",
            cycle_momentum=False,
            div_factor=self.phase.div_factor,
            final_div_factor=self.phase.final_div_factor,
        )
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class RestoreBest(L.Callback):
    """Keep the weights of the epoch with the lowest monitored value; restore them at fit end.

    As Keras ``EarlyStopping(restore_best_weights=True)``. Kept in memory, no checkpoint files.
    ``best_epoch`` counts epochs from 1 across phases (``epoch_offset`` = epochs of earlier
    phases), as ``reports/train/history.csv`` and ``metrics/train.json`` do.
    """

    def __init__(self, monitor: str = "val_loss", epoch_offset: int = 0, phase: str = ""):
        self.monitor = monitor
        self.offset = epoch_offset
        self.phase = phase
        self.best: float = float("inf")
        self.best_epoch: int = 0
        self.state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning hook: copy the weights when the monitored value is the lowest so far."""
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None and float(value) < self.best:
            self.best, self.best_epoch = float(value), self.offset + trainer.current_epoch + 1
            self.state = copy.deepcopy({k: v.detach().cpu() for k, v in pl_module.state_dict().items()})

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning hook: load the best weights back into the model."""
        if self.state is not None:
            pl_module.load_state_dict(self.state)
            log.info(
                "phase %s: restored the best weights, epoch %d (%s %.4f)",
                self.phase,
                self.best_epoch,
                self.monitor,
                self.best,
            )


class History(L.Callback):
    """Collects one row of epoch metrics per training epoch (for DVC plots and reports).

    The row is taken at the end of the training epoch: Lightning runs validation before that
    hook, so both the epoch's ``train_*`` and ``val_*`` values exist (at validation end the
    epoch's training loss is not aggregated yet). Epochs count from 1 across phases.
    """

    def __init__(self, phase: str, epoch_offset: int = 0):
        self.phase = phase
        self.offset = epoch_offset
        self.rows: list[dict[str, Any]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning hook: append the epoch's losses and accuracies."""
        m = {k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith(("_loss", "_acc"))}
        self.rows.append({"epoch": self.offset + trainer.current_epoch + 1, "phase": self.phase, **m})


@dataclass
class PhaseResult:
    """One training phase: its name, epochs run, best epoch and validation loss, metric history."""

    name: str
    epochs: int
    best_epoch: int
    best_val_loss: float
    history: list[dict[str, Any]]


def set_trainable(model: nn.Module, names: set[str]) -> None:
    """Make exactly the parameters named in ``names`` trainable."""
    for n, p in model.named_parameters():
        p.requires_grad_(n in names)


@dataclass(frozen=True)
class MLflowTarget:
    """An open MLflow run that training curves are logged into (one metric prefix per phase)."""

    experiment: str
    tracking_uri: str
    run_id: str


def _phase_logger(target: MLflowTarget | None, phase: str) -> Any:
    """Return Lightning's MLflow logger writing into ``target`` with prefix ``phase`` (False: none)."""
    if target is None:
        return False
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(
        experiment_name=target.experiment,
        tracking_uri=target.tracking_uri,
        run_id=target.run_id,
        prefix=phase,
    )


def fit_phases(
    model: nn.Module,
    datamodule: L.LightningDataModule,
    cfg: TrainConfig,
    mlflow: MLflowTarget | None = None,
    callbacks: Sequence[L.Callback] = (),
    head: str | None = None,
) -> list[PhaseResult]:
    """Train ``model`` in place through ``cfg.phases``; each phase restores its best weights.

    Parameters
    ----------
    model : nn.Module
        The network (modified in place; returned in eval mode, every parameter trainable).
    datamodule : LightningDataModule
        Training and validation loaders.
    cfg : TrainConfig
        The phases, seed, run settings.
    mlflow : MLflowTarget, optional
        Log each phase's curves into this MLflow run.
    callbacks : sequence of lightning Callback
        Extra callbacks for every phase (e.g. progress printing).
    head : str, optional
        Module name of the classifier head for the ``head`` / ``backbone`` shorthands (default: found).

    Returns
    -------
    list of PhaseResult, one per phase (none with ``cfg.enabled`` false: the model is only put in eval mode).
    """
    if not cfg.enabled:
        log.info("train.enabled: false: the model is evaluated as it is, nothing is trained")
        model.eval()
        return []
    results: list[PhaseResult] = []
    offset = 0
    if cfg.precision == "bf16-mixed" and not _accelerated_bf16(cfg.run.accelerator):
        log.warning(
            "train.precision bf16-mixed: this CPU has no bfloat16 instructions (AMX / AVX-512 BF16): "
            "bfloat16 is emulated and training is slower than in float32 (32-true)"
        )
    if cfg.run.channels_last:
        model.to(memory_format=torch.channels_last)
    for phase in cfg.phases:
        names = trainable_parameters(model, phase.trainable, head)
        set_trainable(model, names)
        n_train = sum(p.numel() for n, p in model.named_parameters() if n in names)
        log.info(
            "phase %s: %d trainable parameters, lr %g (%s)", phase.name, n_train, phase.lr, phase.schedule
        )
        module = Classifier(model, phase.lr, phase.weight_decay, cfg.run.channels_last, phase)
        best = RestoreBest("val_loss", offset, phase.name)
        hist = History(phase.name, offset)
        stop = L.pytorch.callbacks.EarlyStopping(
            monitor="val_loss", patience=phase.patience, min_delta=phase.min_delta, mode="min"
        )
        trainer = L.Trainer(
            max_epochs=phase.max_epochs,
            accelerator=cfg.run.accelerator,
            devices=1,
            deterministic=cfg.deterministic,
            precision=cfg.precision,
            callbacks=[stop, best, hist, *callbacks],
            logger=_phase_logger(mlflow, phase.name),
            enable_checkpointing=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            log_every_n_steps=1,
        )
        model.train()  # Lightning keeps the modes it finds; dropout must be active
        trainer.fit(module, datamodule=datamodule)
        epochs = trainer.current_epoch
        results.append(PhaseResult(phase.name, epochs, best.best_epoch, best.best, hist.rows))
        offset += epochs
    set_trainable(model, {n for n, _ in model.named_parameters()})
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return results


def _accelerated_bf16(accelerator: str) -> bool:
    """Whether training in bfloat16 is fast here: a CUDA GPU (when used) or a CPU with bf16 instructions."""
    if accelerator != "cpu" and torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


@torch.no_grad()
def predict_logits(model: nn.Module, loader: Any, accelerator: str = "auto") -> dict[str, Any]:
    """Run ``model`` over a loader with ``Trainer.predict``.

    Returns ``{"sample_id": list[str], "label": LongTensor (N,), "logits": Tensor (N, K)}``.
    """
    trainer = L.Trainer(
        accelerator=accelerator, devices=1, logger=False, enable_progress_bar=True, enable_model_summary=False
    )
    outs = trainer.predict(Classifier(model), dataloaders=loader)
    ids = [s for o in outs for s in o["sample_id"]]
    labels = torch.cat([o["label"] for o in outs]) if outs else torch.empty(0, dtype=torch.long)
    logits = torch.cat([o["logits"] for o in outs if o["logits"].numel()]) if outs else torch.empty(0)
    return {"sample_id": ids, "label": labels, "logits": logits}
