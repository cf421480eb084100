"""``inviz masks``: Deep Reveal's masked images (METHOD.md §2) and their manifest."""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "masked images of every kept cluster map at the six reveal levels (zips per layer) + manifest"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extract", required=True, help="extraction folder written by 'inviz extract'")
    p.add_argument("--selected", required=True, help="selected images CSV written by 'inviz select'")
    p.add_argument("--images", required=True, help="dataset folder written by 'inviz data'")
    p.add_argument("--model", required=True, help="model checkpoint (for the network input size)")
    p.add_argument("--out", required=True, help="output: folder of per-layer zips of masked images")
    p.add_argument("--manifest", required=True, help="output: manifest CSV (one row per cluster map and level)")
    p.add_argument("--figure", required=True, help="output: six-level strip figure (PNG; a PDF is written next to it)")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from PIL import Image

    from inviz.core.config import load_section
    from inviz.core.io import save_figure, write_csv, write_json
    from inviz.core.plotting import close
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.fmaps.extraction import load_results
    from inviz.game.assets import cluster_map_table, figure_ids, strip_figure, write_game_assets
    from inviz.game.reveal import RevealConfig, game_image
    from inviz.models.checkpoint import load_checkpoint

    cfg = load_section(args.params, "masks", RevealConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    input_size = load_checkpoint(args.model).config.input_size
    selected = pd.read_csv(args.selected, dtype={"sample_id": str, "path": str})
    results = load_results(args.extract)
    layers = results.manifest.get("layers") or None
    table = cluster_map_table(results.clusters, selected, layers)
    paths = dict(zip(selected["sample_id"].astype(str), selected["path"], strict=False))
    images_dir = Path(args.images)

    def get_image(sample_id: str) -> np.ndarray:
        with Image.open(images_dir / paths[sample_id]) as im:
            return game_image(np.asarray(im.convert("RGB")), input_size, cfg.game_size, cfg.image_resample)

    def get_map(extract_id: str) -> np.ndarray:
        return np.asarray(results.cluster_map(extract_id, cfg.map_kind), dtype=np.float64)

    ids = figure_ids(table, cfg.figure_maps, cfg.figure_seed)
    manifest, reveals = write_game_assets(table, get_map, get_image, cfg, args.out, keep=ids)
    write_csv(args.manifest, manifest)
    ext_of = dict(zip(table["cluster_id"], table["extract_id"], strict=False))
    fig = strip_figure(table, reveals, {i: get_map(ext_of[i]) for i in ids}, cfg)
    save_figure(fig, args.figure, formats=("png", "pdf"))

    per_level = manifest.groupby("level")["revealed_share"].agg(["mean", "max"]) if len(manifest) else None
    first = manifest[manifest["level"] == 0] if len(manifest) else manifest
    n_maps = int(table["cluster_id"].nunique())
    metrics = {
        "n_cluster_maps": n_maps,
        "n_images": int(table["image"].nunique()),
        "n_files": int(len(manifest)),
        "shard_bytes": int(sum(p.stat().st_size for p in Path(args.out).glob("*.zip"))),
        "maps_per_image_layer": float(n_maps / max(1, table.groupby(["image", "layer"]).ngroups)),
        "revealed_share_mean": {f"level_{int(k)}": float(v) for k, v in per_level["mean"].items()} if per_level is not None else {},
        "maps_revealing_more_than_twice_the_first_level": int((first["revealed_share"] > 2 * first["percent"] / 100).sum()),
        "upscale_factors": sorted({float(f) for f in manifest["factor"]}) if len(manifest) else [],
    }
    write_json(args.metrics, metrics)
    with stage_run("masks", tracking, {"masks": cfg}) as tr:
        tr.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
        tr.log_metrics(metrics["revealed_share_mean"], prefix="revealed_share_mean")
        tr.log_figure(fig, "masks_levels.png")
        tr.log_artifact(args.manifest)
    close(fig)
    log.info("masks: %d cluster maps of %d images, %d masked images", n_maps, metrics["n_images"], len(manifest))
    return metrics
