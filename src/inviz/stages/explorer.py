"""``inviz explorer``: the static INV explorer (``reports/explorer/index.html``, opens from disk).

See :mod:`inviz.views.explorer` for what it shows and the files it writes.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = (
    "static INV explorer (HTML, no server): images, layers, cluster cards, global view with TCAV, deep links"
)
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from inviz.stages._inv_args import add_inv_arguments

    add_inv_arguments(p)
    p.add_argument("--model", required=True, help="model checkpoint (its input size)")
    p.add_argument(
        "--global-table", required=True, help="global.csv of 'inviz global' (global view and TCAV)"
    )
    p.add_argument("--out", required=True, help="output folder of the site")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import pandas as pd

    from inviz.core.config import load_section
    from inviz.core.io import atomic_path, write_json
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.game.reveal import RevealConfig
    from inviz.models.checkpoint import load_checkpoint
    from inviz.views.explorer import ExplorerConfig, build_explorer
    from inviz.views.figures import FigureConfig
    from inviz.views.records import INVPaths, load_inv

    cfg = load_section(args.params, "explorer", ExplorerConfig)
    fig_cfg = load_section(args.params, "figures", FigureConfig)
    reveal_cfg = load_section(args.params, "masks", RevealConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    loaded = load_checkpoint(args.model)
    invs = load_inv(INVPaths.from_args(args), loaded.config.input_size, reveal_cfg.map_kind)
    path = Path(args.global_table)
    table = pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()
    subtitle = f"{len(invs)} images · model {loaded.sha256[:12]}"
    with atomic_path(args.out, directory=True) as tmp:
        data = build_explorer(
            invs, table, tmp, cfg, fig_cfg.overlay, reveal_cfg, fig_cfg.top_labels, subtitle
        )
    size = sum(f.stat().st_size for f in Path(args.out).rglob("*") if f.is_file())
    metrics = {
        "n_images": len(data["images"]),
        "n_classes": len(data["classes"]),
        "n_cards": sum(
            len(cs) for im in data["images"].values() for by in im["cards"].values() for cs in by.values()
        ),
        "n_global_rows": sum(len(v) for g in data["global"].values() for v in g.values()),
        "bytes": size,
    }
    write_json(args.metrics, metrics)
    with stage_run("explorer", tracking, {"explorer": cfg}) as tr:
        tr.log_metrics(metrics)
        tr.log_artifact(Path(args.out), "explorer")
    log.info(
        "explorer: %d images, %d cards -> %s/index.html (%.1f MB)",
        metrics["n_images"],
        metrics["n_cards"],
        args.out,
        size / 1e6,
    )
    return metrics
