"""``inviz survey``: the survey kit (docs/method.md §5).

The five explanation panels of the survey images, an overview figure, the questionnaire and its
fill-in form; see :mod:`inviz.survey.kit`.

Outputs in ``--out``: ``panels/<method>/<image>.png/.pdf`` (Grad-CAM, LIME, SHAP, INV (Simplified),
INV), ``survey_panels.png/.pdf`` (images x baseline methods), ``attributions.npz`` (the baseline
maps), ``survey_images.csv``, ``questionnaire.md``, ``questionnaire_form.csv`` (header only).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params
from inviz.stages._inv_args import INV_PATHS

HELP = (
    "survey kit: Grad-CAM / LIME / SHAP / INV (Simplified) / INV panels of the survey images + questionnaire"
)
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    **INV_PATHS,
    "--model": "model checkpoint ('inviz train')",
    "--index": "dataset index CSV ('inviz data'): SHAP background images",
    "--out": "output folder of the kit",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from inviz.core.io import atomic_path, save_figure, save_npz, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import stage_run
    from inviz.game.reveal import RevealConfig
    from inviz.survey.kit import slug, survey_kit
    from inviz.survey.panels import SurveyConfig
    from inviz.views.figures import FigureConfig
    from inviz.views.records import INVPaths

    cfg, fig_cfg, reveal_cfg, tracking = load_params(
        args.params, ("survey", SurveyConfig), ("figures", FigureConfig), ("masks", RevealConfig)
    )
    kit = survey_kit(cfg, INVPaths.from_args(args), args.model, args.index, fig_cfg, reveal_cfg)
    out = Path(args.out)
    with atomic_path(out, directory=True) as tmp:
        for panel in kit.panels():
            save_figure(panel.figure, tmp / panel.path, formats=cfg.formats, dpi=cfg.dpi, tight=panel.tight)
            close(panel.figure)
        overview = kit.overview_figure()
        if overview is not None:
            save_figure(overview, tmp / f"survey_panels.{cfg.formats[0]}", formats=cfg.formats, dpi=cfg.dpi)
        save_npz(tmp / "attributions.npz", **kit.attribution_arrays())
        write_csv(tmp / "survey_images.csv", kit.image_table)
        write_text(tmp / "questionnaire.md", kit.questionnaire())
        write_csv(tmp / "questionnaire_form.csv", kit.form())
    metrics = kit.metrics()
    write_json(args.metrics, metrics)
    with stage_run("survey", tracking, {"survey": cfg}) as tr:
        tr.log_metrics({"n_images": metrics["n_images"], "n_panels": metrics["n_panels"]})
        seconds = {slug(m): s for m, s in metrics["seconds_per_image"].items()}
        tr.log_metrics(seconds, prefix="seconds_per_image")
        if overview is not None:
            tr.log_figure(overview, "survey/survey_panels.png", saved=out / "survey_panels.png")
            close(overview)
        tr.log_artifact(out / "questionnaire.md", "survey")
        tr.log_artifact(out / "questionnaire_form.csv", "survey")
    log.info("survey: %d images x %d methods -> %s", metrics["n_images"], len(cfg.methods), out)
    return metrics
