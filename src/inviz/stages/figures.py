"""``inviz figures``: the INV figure of every explained image (paper Figure 3) and its simplified INV.

Reads the INV records (:func:`inviz.views.records.load_inv`) and draws :func:`inviz.views.figures.inv_figure`
and :func:`inviz.views.figures.simplified_inv_figure` per image into ``--out`` (``<image>.png/.pdf``
and ``simplified/<image>.png/.pdf``), plus ``index.csv`` (image, class, files, card counts).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "INV figures (paper Figure 3) and simplified INVs of the explained images (PNG + PDF)"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from inviz.stages._inv_args import add_inv_arguments

    add_inv_arguments(p)
    p.add_argument("--model", required=True, help="model checkpoint (its input size)")
    p.add_argument("--out", required=True, help="output folder of the figures")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


INDEX_COLUMNS = ["image", "class_name", "pred_name", "confidence", "file", "simplified_file", "n_cards", "n_labelled"]


def _draw_one(inv: Any, cfg: Any, reveal_cfg: Any, out: Any) -> dict[str, Any]:
    """Draw and save the INV and simplified INV of one image; its row of ``index.csv``."""
    from inviz.core.io import save_figure
    from inviz.core.plotting import close
    from inviz.views.figures import inv_figure, simplified_inv_figure
    from inviz.views.records import safe_name

    name = safe_name(inv.sample_id)
    for fig_fn, folder in ((inv_figure, out), (simplified_inv_figure, out / "simplified")):
        fig = fig_fn(inv, cfg, reveal_cfg)
        save_figure(fig, folder / f"{name}.{cfg.formats[0]}", formats=cfg.formats, dpi=cfg.dpi, tight=False)
        close(fig)
    cards = inv.cards(cfg.merged)
    return {"image": inv.sample_id, "class_name": inv.true_class, "pred_name": inv.pred_name, "confidence": inv.confidence,
            "file": f"{name}.{cfg.formats[0]}", "simplified_file": f"simplified/{name}.{cfg.formats[0]}",
            "n_cards": sum(len(v) for v in cards.values()), "n_labelled": sum(1 for v in cards.values() for c in v if c.labels)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from functools import partial
    from pathlib import Path

    import pandas as pd
    from tqdm.auto import tqdm

    from inviz.core.config import load_section
    from inviz.core.io import atomic_path, write_csv, write_json
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.game.reveal import RevealConfig
    from inviz.models.checkpoint import load_checkpoint
    from inviz.views.figures import FigureConfig
    from inviz.views.records import INVPaths, load_inv

    cfg = load_section(args.params, "figures", FigureConfig)
    reveal_cfg = load_section(args.params, "masks", RevealConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    input_size = load_checkpoint(args.model).config.input_size
    invs = load_inv(INVPaths.from_args(args), input_size, reveal_cfg.map_kind)
    if cfg.images is not None:
        invs = invs[: cfg.images]
    with atomic_path(args.out, directory=True) as tmp:
        (tmp / "simplified").mkdir()
        draw = partial(_draw_one, cfg=cfg, reveal_cfg=reveal_cfg, out=tmp)
        if cfg.workers > 1 and len(invs) > 1:
            import multiprocessing as mp

            with mp.get_context("fork").Pool(cfg.workers) as pool:
                rows = list(tqdm(pool.imap(draw, invs), total=len(invs), desc="INV figures", unit="image"))
        else:
            rows = [draw(inv) for inv in tqdm(invs, desc="INV figures", unit="image")]
        index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
        write_csv(tmp / "index.csv", index)
        metrics = {"n_figures": len(rows), "n_cards": int(index["n_cards"].sum()) if len(index) else 0,
                   "share_cards_labelled": float(index["n_labelled"].sum() / max(1, index["n_cards"].sum())) if len(index) else 0.0,
                   "merged": cfg.merged, "overlay": cfg.overlay.kind}
    write_json(args.metrics, metrics)
    with stage_run("figures", tracking, {"figures": cfg}) as tr:
        tr.log_metrics(metrics)
        tr.log_artifact(Path(args.out), "inv")
    log.info("figures: %d INV figures (+ simplified) in %s", len(rows), args.out)
    return metrics
