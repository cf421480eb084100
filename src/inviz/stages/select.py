"""``inviz select``: the images to explain — N correctly classified test images per class."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = "pick N correctly classified test images per class (seeded), with prediction, confidence, logits"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--images": "dataset folder written by 'inviz data'",
    "--index": "index CSV written by 'inviz data'",
    "--model": "model checkpoint written by 'inviz train'",
    "--out": "output: selected images CSV",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from inviz.core.io import write_csv, write_json
    from inviz.core.tracking import stage_run
    from inviz.data.datamodule import ImageDataModule, read_index
    from inviz.models.checkpoint import load_checkpoint
    from inviz.models.evaluation import classification_metrics
    from inviz.models.selection import SelectConfig, select_correct
    from inviz.models.training import predict_logits

    cfg, tracking = load_params(args.params, ("select", SelectConfig))
    loaded = load_checkpoint(args.model)
    index = read_index(args.index)
    pool = index[index["split"] == cfg.split]
    dm = ImageDataModule(
        index,
        args.images,
        loaded.config.input_size,
        loaded.config.mean,
        loaded.config.std,
        batch_size=cfg.run.batch_size,
        predict_ids=pool["sample_id"].tolist(),
    )
    preds = predict_logits(loaded.model, dm.predict_dataloader())
    table, shortfall = select_correct(
        preds["sample_id"], preds["label"].numpy(), preds["logits"], loaded.class_names, cfg
    )
    table = table.merge(index[["sample_id", "path"]], on="sample_id", how="left")
    table.insert(1, "path", table.pop("path"))
    write_csv(args.out, table)
    pool_metrics = classification_metrics(
        preds["label"].numpy(), preds["logits"].argmax(1).numpy(), loaded.class_names
    )
    metrics = {
        "n_selected": int(len(table)),
        "pool_size": int(len(pool)),
        "pool_accuracy": pool_metrics["accuracy"],
        "mean_confidence": float(table["confidence"].mean()) if len(table) else float("nan"),
        "shortfall": int(sum(shortfall.values())),
        "shortfall_per_class": shortfall,
    }
    write_json(args.metrics, metrics)
    with stage_run("select", tracking, {"select": cfg}, tags={"model_sha256": loaded.sha256}) as tr:
        tr.log_metrics({k: v for k, v in metrics.items() if k != "shortfall_per_class"})
        tr.log_artifact(args.out)
    log.info("select: %d images (pool accuracy %.3f)", len(table), pool_metrics["accuracy"])
    return metrics
