"""``inviz evaluate``: quality of INV's explanations beside Grad-CAM, LIME, SHAP, a random map (§8).

Inputs: the extraction folder (``inviz extract``: the INV records), the selected images, the model,
the dataset index (SHAP's background images, as the survey draws them) and the part masks (``inviz
data``; empty for real datasets: localisation is then skipped and said so). Parameters: the
``evaluate`` section (:class:`inviz.quality.config.EvaluateConfig`), plus ``extract`` (INV's settings,
re-run by the sanity check), ``survey`` (the baselines) and ``masks`` (reveal levels).

Outputs in ``--out`` (``reports/evaluation/``): ``evaluation.md`` (every table, with verdicts),
``headline.csv/.md`` (method x metric at the deepest layer), ``inv_by_layer.csv``,
``paired_tests.csv``, the raw tables (``concept_deletion.csv``, ``concept_summary.csv``,
``completeness.csv``, ``pixel_auc.csv``, ``pixel_curves.csv``, ``road.csv``, ``sanity.csv``,
``sanity_gradcam.csv``, ``localization.csv``, ``reveal_iou.csv``) and ``figures/*.png``;
``--metrics``: ``metrics/evaluate.json`` (its ``headline`` block feeds the ablation report).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = "explanation quality: concept deletion, completeness, deletion/insertion, ROAD, MPRT, localisation"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--images": "dataset folder written by 'inviz data'",
    "--selected": "selected images CSV written by 'inviz select'",
    "--model": "model checkpoint written by 'inviz train'",
    "--extract": "extraction folder written by 'inviz extract'",
    "--index": "dataset index CSV ('inviz data'): SHAP's background images",
    "--parts": "part masks ('inviz data'; empty for real datasets)",
    "--out": "output: report folder (tables, Markdown, figures)",
    "--metrics": "output: metrics JSON",
}

#: the raw tables of the result written as CSV: attribute -> file name
TABLES = {
    "concept_rows": "concept_deletion.csv",
    "concept": "concept_summary.csv",
    "completeness": "completeness.csv",
    "pixel_auc": "pixel_auc.csv",
    "pixel_curves": "pixel_curves.csv",
    "road": "road.csv",
    "sanity": "sanity.csv",
    "sanity_gradcam": "sanity_gradcam.csv",
    "localization": "localization.csv",
    "iou": "reveal_iou.csv",
}


def _records(args: argparse.Namespace) -> tuple[Any, list[Any], int]:
    """Return the selected rows with INV records (selected order), their records and the count left out."""
    from inviz.core.errors import InvizError
    from inviz.fmaps.store import load_results
    from inviz.stages.extract import read_selected

    selected = read_selected(args.selected)
    try:
        by_id = {r.sample_id: r for r in load_results(args.extract).explanations()}
    except FileNotFoundError as err:
        raise InvizError(str(err)) from err
    keep = selected["sample_id"].isin(by_id)
    if not keep.any():
        raise InvizError(
            f"{args.extract}: no INV record for any image of {args.selected} (run 'inviz extract')"
        )
    rows = selected[keep].reset_index(drop=True)
    return rows, [by_id[s] for s in rows["sample_id"]], int((~keep).sum())


def _background(args: argparse.Namespace, exclude: Any, survey: Any, transform: Any) -> Any:
    """Draw SHAP's background images: ``shap_background`` of the survey's split, explained images excluded."""
    import numpy as np
    import torch

    from inviz.data.loading import IndexedImageDataset, read_index

    index = read_index(args.index)
    rows = index[(index["split"] == survey.shap_background_split) & ~index["sample_id"].isin(exclude)]
    if len(rows) > survey.shap_background:
        pick = np.sort(
            np.random.default_rng(survey.seed).choice(len(rows), survey.shap_background, replace=False)
        )
        rows = rows.iloc[pick]
    data = IndexedImageDataset(rows, args.images, transform)
    return torch.stack([data[i]["image"] for i in range(len(data))])


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from inviz.core.tracking import stage_run
    from inviz.data.loading import IndexedImageDataset, eval_transform
    from inviz.data.parts import PartMasks
    from inviz.fmaps.explain import ExtractConfig, set_threads
    from inviz.game.reveal import RevealConfig
    from inviz.models.checkpoint import load_checkpoint
    from inviz.quality.config import EvaluateConfig
    from inviz.quality.run import EvaluationInputs, evaluate
    from inviz.survey.panels import SurveyConfig

    cfg, extract_cfg, survey_cfg, reveal_cfg, tracking = load_params(
        args.params,
        ("evaluate", EvaluateConfig),
        ("extract", ExtractConfig),
        ("survey", SurveyConfig),
        ("masks", RevealConfig),
    )
    set_threads(cfg.run.threads)  # torch and numba (INV's t-SNE): one OpenMP runtime, set both
    loaded = load_checkpoint(args.model)
    if cfg.run.channels_last:
        loaded.model.to(memory_format=torch.channels_last)
    mc = loaded.config
    rows, records, n_missing = _records(args)
    transform = eval_transform(mc.input_size, mc.mean, mc.std)
    data = IndexedImageDataset(rows, args.images, transform)
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    methods = {*cfg.pixel.methods, *cfg.road.methods, *cfg.localization.methods}
    background = (
        _background(args, rows["sample_id"], survey_cfg, transform)
        if "SHAP (Gradient Explainer)" in methods
        else None
    )
    parts = PartMasks.load(args.parts)
    inputs = EvaluationInputs(
        loaded.model, images, records, rows["label"].astype(int).tolist(), mc.mean, mc.std,
        extract_cfg, survey_cfg, reveal_cfg, parts, background,
    )  # fmt: skip
    with stage_run("evaluate", tracking, {"evaluate": cfg}, tags={"model_sha256": loaded.sha256}) as tr:
        result = evaluate(inputs, cfg)
        metrics = _write(args, result, n_missing, tr)
    log.info(
        "evaluate: %d images, %.1f s; headline %s",
        len(records),
        metrics["seconds_total"],
        metrics["headline"],
    )
    return metrics


def _write(args: argparse.Namespace, result: Any, n_missing: int, tr: Any) -> dict[str, Any]:
    """Tables, Markdown, figures (atomically, one folder) and the metrics; logged to MLflow."""
    from pathlib import Path

    from inviz.core.io import atomic_path, save_figure, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.quality.figures import evaluation_figures
    from inviz.quality.report import (
        evaluation_markdown,
        evaluation_metrics,
        headline_table,
        inv_by_layer,
        markdown_table,
        paired_tests,
        verdicts,
    )

    head = headline_table(result)
    metrics = evaluation_metrics(result) | {"n_images_without_records": n_missing}
    with atomic_path(args.out, directory=True) as tmp:
        for attr, name in TABLES.items():
            table = getattr(result, attr)
            if table is not None:
                write_csv(tmp / name, table)
        write_csv(tmp / "headline.csv", head.rename_axis("method").reset_index())
        write_csv(tmp / "inv_by_layer.csv", inv_by_layer(result).reset_index())
        write_csv(tmp / "paired_tests.csv", paired_tests(result))
        lines = [markdown_table(head, "method", arrows=True), "", *[f"- {v}" for v in verdicts(head)]]
        write_text(tmp / "headline.md", "\n".join(lines) + "\n")
        write_text(tmp / "evaluation.md", evaluation_markdown(result))
        for name, fig in evaluation_figures(result).items():
            save_figure(fig, tmp / "figures" / f"{name}.png")
            tr.log_figure(fig, f"evaluate/{name}.png", saved=tmp / "figures" / f"{name}.png")
            close(fig)
    write_json(args.metrics, metrics)
    flat = {k: v for k, v in metrics["headline"].items() if v is not None}
    tr.log_metrics(flat, prefix="headline")
    tr.log_metrics(metrics["seconds"], prefix="seconds")
    tr.log_artifact(Path(args.out) / "evaluation.md", "evaluate")
    tr.log_artifact(Path(args.out) / "headline.csv", "evaluate")
    tr.log_artifact(args.metrics, "evaluate")
    return metrics
