"""``inviz explorer``: the static INV explorer (``reports/explorer/index.html``, opens from disk).

See :mod:`inviz.views.explorer` for what it shows and the files it writes.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params
from inviz.stages._inv_args import INV_PATHS, load_stage_inv

HELP = (
    "static INV explorer (HTML, no server): images, layers, cluster cards, global view with TCAV, deep links"
)
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    **INV_PATHS,
    "--model": "model checkpoint (its input size)",
    "--global-table": "global.csv of 'inviz global' (global view and TCAV)",
    "--out": "output folder of the site",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import pandas as pd

    from inviz.core.io import atomic_path, write_json
    from inviz.core.tracking import stage_run
    from inviz.game.reveal import RevealConfig
    from inviz.views.explorer import ExplorerConfig, build_explorer
    from inviz.views.figures import FigureConfig
    from inviz.views.narratives import NarrativeConfig

    cfg, fig_cfg, reveal_cfg, narrative_cfg, tracking = load_params(
        args.params,
        ("explorer", ExplorerConfig),
        ("figures", FigureConfig),
        ("masks", RevealConfig),
        ("narratives", NarrativeConfig),
    )
    loaded, invs = load_stage_inv(args, reveal_cfg.map_kind)
    path = Path(args.global_table)
    table = pd.read_csv(path) if path.is_file() and path.stat().st_size > 1 else pd.DataFrame()
    subtitle = f"{len(invs)} images · model {loaded.sha256[:12]}"
    with atomic_path(args.out, directory=True) as tmp:
        data = build_explorer(
            invs, table, tmp, cfg, fig_cfg.overlay, reveal_cfg, fig_cfg.top_labels, subtitle, narrative_cfg
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
