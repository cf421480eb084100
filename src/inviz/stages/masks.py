"""``inviz masks``: Deep Reveal's masked images (docs/method.md §2) and their manifest."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = "masked images of every kept cluster map at the six reveal levels (zips per layer) + manifest"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--extract": "extraction folder written by 'inviz extract'",
    "--selected": "selected images CSV written by 'inviz select'",
    "--images": "dataset folder written by 'inviz data'",
    "--model": "model checkpoint (for the network input size)",
    "--out": "output: folder of per-layer zips of masked images",
    "--manifest": "output: manifest CSV (one row per cluster map and level)",
    "--figure": "output: six-level strip figure (PNG; a PDF is written next to it)",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import pandas as pd

    from inviz.core.io import save_figure, write_csv, write_json
    from inviz.core.plotting import close
    from inviz.core.tracking import stage_run
    from inviz.game.assets import make_game_assets
    from inviz.game.reveal import RevealConfig
    from inviz.models.checkpoint import load_checkpoint

    cfg, tracking = load_params(args.params, ("masks", RevealConfig))
    input_size = load_checkpoint(args.model).config.input_size
    selected = pd.read_csv(args.selected, dtype={"sample_id": str, "path": str})
    assets = make_game_assets(args.extract, selected, args.images, input_size, cfg, args.out)
    metrics = assets.metrics
    write_csv(args.manifest, assets.manifest)
    save_figure(assets.figure, args.figure, formats=("png", "pdf"))
    write_json(args.metrics, metrics)
    with stage_run("masks", tracking, {"masks": cfg}) as tr:
        tr.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, (dict, list))})
        tr.log_metrics(metrics["revealed_share_mean"], prefix="revealed_share_mean")
        tr.log_figure(assets.figure, "masks_levels.png", saved=Path(args.figure).with_suffix(".png"))
        tr.log_artifact(args.manifest)
    close(assets.figure)
    log.info(
        "masks: %d cluster maps of %d images, %d masked images",
        metrics["n_cluster_maps"],
        metrics["n_images"],
        metrics["n_files"],
    )
    return metrics
