"""``inviz data``: get the dataset (Imagenette, synthetic or your folder), index it, split it (method §0).

The step is :func:`inviz.data.dataset.prepare_dataset` (docs/method.md §0).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = (
    "download/verify Imagenette, generate the synthetic dataset or take your image folder; index it, "
    "split it (test pool), write the class list and the game's class list"
)
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--images": "output: dataset folder (<split>/<class>/<image>)",
    "--index": "output: index CSV (one row per usable image)",
    "--skipped": "output: CSV of files not used, with the reason",
    "--classes": "output: class list JSON",
    "--game-classes": "output: the game's class list CSV (game_id, game_name, class_folder, class_name)",
    "--parts": "output: ground-truth part masks (.npz; empty for real data)",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from inviz.core.io import write_csv, write_json
    from inviz.core.tracking import stage_run
    from inviz.data.dataset import DataConfig, prepare_dataset
    from inviz.data.index import split_counts

    cfg, tracking = load_params(args.params, ("data", DataConfig))
    ds = prepare_dataset(cfg, args.images, str(args.params))
    index, skipped, classes = ds.index, ds.skipped, ds.classes
    ds.parts.save(args.parts)
    write_csv(args.index, index)
    write_csv(args.skipped, skipped)
    write_json(args.classes, classes)
    write_csv(args.game_classes, ds.game_classes)
    counts = split_counts(index)
    metrics = {
        "n_images": int(len(index)),
        "n_skipped": int(len(skipped)),
        "n_classes": len(classes),
        **{f"n_{split}": int(sum(c.values())) for split, c in counts.items()},
    }
    write_json(args.metrics, {**metrics, "per_class": counts})
    if len(skipped):
        log.warning("%d file(s) skipped; see %s", len(skipped), args.skipped)
        for reason, n in skipped["reason"].value_counts().head(5).items():
            log.warning("  %d x %s", n, reason)
    with stage_run("data", tracking, {"data": cfg}) as tr:
        tr.log_metrics(metrics)
        tr.log_artifact(args.skipped)
        tr.log_artifact(args.classes)
    log.info("data: %s", metrics)
    return metrics
