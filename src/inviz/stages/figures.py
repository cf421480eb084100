"""``inviz figures``: the INV figure of every explained image (paper Figure 3) and its simplified INV.

Reads the INV records (:func:`inviz.views.records.load_inv`) and draws :func:`inviz.views.figures.inv_figure`
(captioned with the image's narrative, :mod:`inviz.views.narratives`, also saved as ``<image>.txt``)
and :func:`inviz.views.figures.simplified_inv_figure` per image into ``--out`` (``<image>.png/.pdf``
and ``simplified/<image>.png/.pdf``), plus ``index.csv`` (image, class, files, card counts).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params
from inviz.stages._inv_args import INV_PATHS, load_stage_inv

HELP = "INV figures (paper Figure 3) and simplified INVs of the explained images (PNG + PDF)"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    **INV_PATHS,
    "--model": "model checkpoint (its input size)",
    "--out": "output folder of the figures",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from inviz.core.io import atomic_path, write_csv, write_json
    from inviz.core.tracking import stage_run
    from inviz.game.reveal import RevealConfig
    from inviz.views.figures import FigureConfig, draw_inv_figures, figure_images
    from inviz.views.narratives import NarrativeConfig

    cfg, reveal_cfg, narrative_cfg, tracking = load_params(
        args.params, ("figures", FigureConfig), ("masks", RevealConfig), ("narratives", NarrativeConfig)
    )
    _, invs = load_stage_inv(args, reveal_cfg.map_kind)
    invs = figure_images(invs, cfg)
    with atomic_path(args.out, directory=True) as tmp:
        index = draw_inv_figures(invs, cfg, reveal_cfg, tmp, narrative_cfg)
        write_csv(tmp / "index.csv", index)
        metrics = {
            "n_figures": len(index),
            "n_cards": int(index["n_cards"].sum()) if len(index) else 0,
            "share_cards_labelled": float(index["n_labelled"].sum() / max(1, index["n_cards"].sum()))
            if len(index)
            else 0.0,
            "merged": cfg.merged,
            "overlay": cfg.overlay.kind,
        }
    write_json(args.metrics, metrics)
    with stage_run("figures", tracking, {"figures": cfg}) as tr:
        tr.log_metrics(metrics)
        tr.log_artifact(Path(args.out), "inv")
    log.info("figures: %d INV figures (+ simplified) in %s", len(index), args.out)
    return metrics
