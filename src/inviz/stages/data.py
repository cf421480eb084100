"""``inviz data``: get the dataset (Imagenette or synthetic), index it, carve the test pool."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inviz.data.imagenette import ImagenetteConfig
from inviz.data.index import SplitConfig
from inviz.core.tracking import TrackingConfig

HELP = "download/verify Imagenette or generate the synthetic dataset; index it and carve the test pool"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataConfig:
    """``data`` section.

    source : ``imagenette`` (the paper) or ``synthetic`` (offline demo, see ``synthetic``).
    imagenette : download / local-copy settings. synthetic : generator settings
    (:class:`inviz.data.synthetic.SyntheticConfig`). split : test-pool carving.
    check_workers : threads used to decode every image once.
    """

    source: Literal["imagenette", "synthetic"] = "imagenette"
    imagenette: ImagenetteConfig = field(default_factory=ImagenetteConfig)
    synthetic: dict[str, Any] = field(default_factory=dict)
    split: SplitConfig = field(default_factory=SplitConfig)
    check_workers: int = 4


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--images", required=True, help="output: dataset folder (<split>/<class>/<image>)")
    p.add_argument("--index", required=True, help="output: index CSV (one row per usable image)")
    p.add_argument("--skipped", required=True, help="output: CSV of files not used, with the reason")
    p.add_argument("--classes", required=True, help="output: class list JSON")
    p.add_argument("--parts", required=True, help="output: ground-truth part masks (.npz; empty for real data)")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from inviz.core.config import from_dict, load_section
    from inviz.data import synthetic
    from inviz.data.imagenette import IMAGENETTE_CLASSES, fetch_imagenette
    from inviz.data.index import carve_test_pool, scan_image_folder, split_counts
    from inviz.core.io import write_csv, write_json
    from inviz.core.tracking import stage_run

    cfg = load_section(args.params, "data", DataConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    images = Path(args.images)
    if cfg.source == "imagenette":
        fetch_imagenette(cfg.imagenette, images)
        names: dict[str, str] | None = IMAGENETTE_CLASSES
        synthetic.empty_parts().save(args.parts)
    else:
        scfg = from_dict(synthetic.SyntheticConfig, cfg.synthetic, "data.synthetic", str(args.params))
        parts = synthetic.generate_dataset(scfg, images)
        parts.save(args.parts)
        names = synthetic.class_names(scfg)

    index, skipped = scan_image_folder(images, names, workers=cfg.check_workers)
    index = carve_test_pool(index, cfg.split)
    classes = (
        index.drop_duplicates("label").sort_values("label")[["label", "class_folder", "class_name"]].to_dict("records")
    )
    write_csv(args.index, index)
    write_csv(args.skipped, skipped)
    write_json(args.classes, classes)
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
    with stage_run("data", tracking, {"data": cfg}) as tr:
        tr.log_metrics(metrics)
        tr.log_artifact(args.skipped)
        tr.log_artifact(args.classes)
    log.info("data: %s", metrics)
    return metrics
