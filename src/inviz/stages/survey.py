"""``inviz survey``: the survey kit (METHOD.md §5) — the five explanation panels of the survey images,
an overview figure, the questionnaire and its fill-in form. See :mod:`inviz.survey.panels`.

Outputs in ``--out``: ``panels/<method>/<image>.png/.pdf`` (Grad-CAM, LIME, SHAP, INV (Simplified),
INV), ``survey_panels.png/.pdf`` (images x baseline methods), ``attributions.npz`` (the baseline
maps), ``survey_images.csv``, ``questionnaire.md``, ``questionnaire_form.csv`` (header only).
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from typing import Any

HELP = "survey kit: Grad-CAM / LIME / SHAP / INV (Simplified) / INV panels of the survey images + questionnaire"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from inviz.stages._inv_args import add_inv_arguments

    add_inv_arguments(p)
    p.add_argument("--model", required=True, help="model checkpoint ('inviz train')")
    p.add_argument("--index", required=True, help="dataset index CSV ('inviz data'): SHAP background images")
    p.add_argument("--out", required=True, help="output folder of the kit")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


def slug(method: str) -> str:
    """Folder name of a method: ``SHAP (Gradient Explainer)`` -> ``shap_gradient_explainer``."""
    return re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import numpy as np
    import pandas as pd
    import torch

    from inviz.concepts.importance import draw, to_input
    from inviz.core.config import load_section
    from inviz.core.io import atomic_path, save_figure, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.data.datamodule import read_index
    from inviz.game.reveal import RevealConfig
    from inviz.models.checkpoint import load_checkpoint
    from inviz.survey.panels import (
        EXPLAINERS,
        SurveyConfig,
        form_template,
        overview_figure,
        panel_figure,
        questionnaire_markdown,
    )
    from inviz.survey.panels import survey_images as pick
    from inviz.views.figures import FigureConfig, inv_figure, simplified_inv_figure
    from inviz.views.records import INVPaths, load_images, load_inv, safe_name

    cfg = load_section(args.params, "survey", SurveyConfig)
    fig_cfg = load_section(args.params, "figures", FigureConfig)
    reveal_cfg = load_section(args.params, "masks", RevealConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    loaded = load_checkpoint(args.model)
    size, mean, std = loaded.config.input_size, loaded.config.mean, loaded.config.std
    chosen = pick(pd.read_csv(args.selected, dtype={"sample_id": str, "path": str}), cfg)
    invs = {inv.sample_id: inv for inv in load_inv(INVPaths.from_args(args), size, reveal_cfg.map_kind, images=chosen["sample_id"])}
    index = read_index(args.index)
    bg_rows = draw(index[(index["split"] == cfg.shap_background_split) & ~index["sample_id"].isin(chosen["sample_id"])],
                   cfg.shap_background, cfg.seed)
    background = torch.stack([to_input(im, mean, std) for im in load_images(bg_rows, Path(args.images), size)])
    baselines = [m for m in cfg.methods if m in EXPLAINERS]
    maps: dict[str, list[np.ndarray]] = {m: [] for m in baselines}
    segments: list[Any] = []
    seconds = {m: 0.0 for m in baselines}
    panel_files: dict[str, list[str]] = {m: [] for m in cfg.methods}
    out = Path(args.out)
    with atomic_path(out, directory=True) as tmp:
        for m in cfg.methods:
            (tmp / "panels" / slug(m)).mkdir(parents=True)
        for r in chosen.itertuples():
            inv = invs[str(r.sample_id)]
            name = safe_name(inv.sample_id)
            x = to_input(inv.image, mean, std)
            ctx: dict[str, Any] = {"image": inv.image, "mean": mean, "std": std, "background": background}
            title = f"{inv.pred_name} ({100 * inv.confidence:.1f} %)"
            for m in baselines:
                t0 = time.perf_counter()
                a = EXPLAINERS[m](loaded.model, x, inv.pred, cfg, ctx)
                seconds[m] += time.perf_counter() - t0
                maps[m].append(a)
                fig = panel_figure(m, inv.image, a, f"{m}: {title}", cfg, ctx.get("lime_segments") if m == "LIME" else None)
                rel = f"panels/{slug(m)}/{name}.{cfg.formats[0]}"
                save_figure(fig, tmp / rel, formats=cfg.formats, dpi=cfg.dpi)
                close(fig)
                panel_files[m].append(rel)
            segments.append(ctx.get("lime_segments"))
            for m, fn in (("INV (Simplified)", simplified_inv_figure), ("INV", inv_figure)):
                if m in cfg.methods:
                    fig = fn(inv, fig_cfg, reveal_cfg)
                    rel = f"panels/{slug(m)}/{name}.{cfg.formats[0]}"
                    save_figure(fig, tmp / rel, formats=cfg.formats, dpi=cfg.dpi, tight=False)
                    close(fig)
                    panel_files[m].append(rel)
        titles = [f"{invs[str(s)].pred_name}" for s in chosen["sample_id"]]
        if baselines:
            fig = overview_figure([invs[str(s)].image for s in chosen["sample_id"]], maps, titles, segments)
            save_figure(fig, tmp / f"survey_panels.{cfg.formats[0]}", formats=cfg.formats, dpi=cfg.dpi)
            overview = fig
        np.savez_compressed(tmp / "attributions.npz", sample_id=np.asarray(chosen["sample_id"], dtype=str),
                            **{slug(m): np.stack(v) for m, v in maps.items()})
        write_csv(tmp / "survey_images.csv", chosen[["sample_id", "path", "label", "class_name", "pred_name", "confidence"]])
        write_text(tmp / "questionnaire.md", questionnaire_markdown(cfg, chosen, panel_files))
        write_csv(tmp / "questionnaire_form.csv", form_template(cfg))
    metrics = {"n_images": int(len(chosen)), "images": list(chosen["sample_id"]), "classes": list(chosen["class_name"]),
               "n_panels": int(sum(len(v) for v in panel_files.values())),
               "seconds_per_image": {m: seconds[m] / max(1, len(chosen)) for m in baselines}}
    write_json(args.metrics, metrics)
    with stage_run("survey", tracking, {"survey": cfg}) as tr:
        tr.log_metrics({"n_images": metrics["n_images"], "n_panels": metrics["n_panels"]})
        tr.log_metrics({slug(m): s for m, s in metrics["seconds_per_image"].items()}, prefix="seconds_per_image")
        if baselines:
            tr.log_figure(overview, "survey/survey_panels.png")
        tr.log_artifact(out / "questionnaire.md", "survey")
        tr.log_artifact(out / "questionnaire_form.csv", "survey")
    if baselines:
        close(overview)
    log.info("survey: %d images x %d methods -> %s", len(chosen), len(cfg.methods), out)
    return metrics
