"""``inviz train``: build the model of ``model.arch`` and fine-tune it in phases, or only evaluate it.

The model comes from the registry of :mod:`inviz.models.architectures` (the paper's VGG-16, any
torchvision classifier, or your finished model with ``model.arch: checkpoint``). With
``train.enabled: false`` nothing is trained: the model is evaluated on ``val`` (accuracy, per-class
scores, confusion matrix) and saved as the checkpoint every later stage reads.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from inviz.stages import load_params

HELP = (
    "build the model (VGG-16, torchvision:<name> or your checkpoint), fine-tune it in phases, evaluate on val"
)
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--images": "dataset folder written by 'inviz data'",
    "--index": "index CSV written by 'inviz data'",
    "--classes": "class list JSON written by 'inviz data'",
    "--model": "output: model checkpoint (.pt)",
    "--metrics": "output: metrics JSON",
    "--reports": "output: folder for history/confusion tables and figures",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import lightning as L
    import torch

    from inviz.core.io import read_json, write_json
    from inviz.core.tracking import stage_run
    from inviz.data.datamodule import ImageDataModule, read_index
    from inviz.models.architectures import build_model
    from inviz.models.checkpoint import CheckpointError, save_checkpoint
    from inviz.models.config import ModelConfig
    from inviz.models.evaluation import classification_metrics
    from inviz.models.training import MLflowTarget, TrainConfig, fit_phases, predict_logits

    model_cfg, cfg, tracking = load_params(args.params, ("model", ModelConfig), ("train", TrainConfig))
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    classes = read_json(args.classes)
    names = [c["class_name"] for c in classes]
    index = read_index(args.index)

    if cfg.enabled and model_cfg.checkpoint.file:
        raise CheckpointError(
            "train.enabled: a model file (model.checkpoint.file) is a finished model: set train.enabled: "
            "false to evaluate it, or give model.checkpoint.builder (+ state_dict) to fine-tune it"
        )
    L.seed_everything(cfg.seed, workers=True)
    model, model_cfg = build_model(classes, model_cfg)
    dm = ImageDataModule(
        index,
        args.images,
        model_cfg.input_size,
        model_cfg.mean,
        model_cfg.std,
        augment=cfg.augment,
        batch_size=cfg.batch_size,
        num_workers=cfg.run.num_workers,
        workers_param="train.run.num_workers",
        seed=cfg.seed,
        cache_images=cfg.run.cache_images,
    )

    with stage_run("train", tracking, {"model": model_cfg, "train": cfg}) as tr:
        target = MLflowTarget(tracking.experiment, tr.tracking_uri, tr.run_id) if tr.enabled else None
        start = time.perf_counter()
        phases = fit_phases(model, dm, cfg, mlflow=target, head=model_cfg.checkpoint.head)
        train_seconds = time.perf_counter() - start

        preds = predict_logits(model, dm.val_dataloader(), accelerator=cfg.run.accelerator)
        y = preds["label"].numpy()
        yhat = preds["logits"].argmax(1).numpy()
        metrics = classification_metrics(y, yhat, names)
        _write_reports(Path(args.reports), phases, preds["sample_id"], y, yhat, names, metrics, tr)
        out = {
            "trained": cfg.enabled,
            "arch": model_cfg.arch,
            "val_accuracy": metrics["accuracy"],
            "val_macro_f1": metrics["macro_f1"],
            "train_seconds": round(train_seconds, 1),
            "epochs": {ph.name: ph.epochs for ph in phases},
            "best_epoch": {ph.name: ph.best_epoch for ph in phases},
            "best_val_loss": {ph.name: ph.best_val_loss for ph in phases},
            "per_class": metrics["per_class"],
        }
        save_checkpoint(
            args.model,
            model,
            classes,
            extra={"val_accuracy": metrics["accuracy"], "seed": cfg.seed, "trained": cfg.enabled},
            config=model_cfg,
        )
        write_json(args.metrics, out)
        tr.log_metrics({k: v for k, v in out.items() if k != "per_class"})
        tr.log_metrics(
            {f"{n}.{m}": v for n, d in metrics["per_class"].items() for m, v in d.items()}, prefix="val"
        )
        tr.log_artifact(Path(args.reports) / "history.csv", "train")
        tr.log_artifact(Path(args.reports) / "confusion.csv", "train")
    log.info("train: val accuracy %.4f in %.0f s", metrics["accuracy"], train_seconds)
    return out


def _write_reports(
    reports: Path,
    phases: list[Any],
    sample_ids: list[str],
    y: Any,
    yhat: Any,
    names: list[str],
    metrics: dict[str, Any],
    tr: Any,
) -> None:
    """Write the history, validation predictions and confusion tables and figures; log the figures."""
    import pandas as pd

    from inviz.core.io import save_figure, write_csv
    from inviz.core.plotting import close
    from inviz.models.evaluation import confusion, confusion_figure, history_figure

    cm = confusion(y, yhat, len(names))
    columns = ["epoch", "phase", "train_loss", "train_acc", "val_loss", "val_acc"]
    history = (
        pd.DataFrame([row for ph in phases for row in ph.history])
        if phases
        else pd.DataFrame(columns=columns)
    )
    write_csv(reports / "history.csv", history)
    write_csv(
        reports / "val_predictions.csv",
        pd.DataFrame(
            {
                "sample_id": sample_ids,
                "actual": [names[i] for i in y],
                "predicted": [names[i] for i in yhat],
            }
        ),
    )
    write_csv(
        reports / "confusion.csv",
        pd.DataFrame(cm, index=names, columns=names).rename_axis("true").reset_index(),
    )
    fig = confusion_figure(cm, names, f"validation, accuracy {metrics['accuracy']:.1%}")
    save_figure(fig, reports / "confusion.png", formats=("png", "pdf"))
    tr.log_figure(fig, "train/confusion.png", saved=reports / "confusion.png")
    close(fig)
    fig = history_figure(history)
    save_figure(fig, reports / "history.png")
    tr.log_figure(fig, "train/history.png", saved=reports / "history.png")
    close(fig)
