"""The ``evaluate`` stage end to end on a tiny synthetic world: every measure, determinism, outputs, errors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from labels_world import build_world
from quality_nets import one_thread

from inviz.cli import main
from inviz.data.loading import IndexedImageDataset, eval_transform
from inviz.data.parts import PartMasks
from inviz.fmaps.explain import ExtractConfig
from inviz.fmaps.lightning import run_extraction
from inviz.fmaps.store import load_results
from inviz.models.checkpoint import load_checkpoint
from inviz.quality.config import EvaluateConfig
from inviz.quality.report import evaluation_markdown, evaluation_metrics, headline_table, inv_by_layer
from inviz.quality.run import EvaluationInputs, evaluate, image_order, subset
from inviz.survey.panels import SurveyConfig

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)

LAYERS = ["block4_conv1", "block5_conv3"]
EXTRACT = {"layers": LAYERS, "tsne": {"backend": "numba"}, "run": {"batch_size": 5, "device": "cpu"}}
SURVEY = {
    "lime_samples": 20,
    "lime_kernel_size": 2.0,
    "lime_max_dist": 50.0,
    "shap_samples": 4,
    "shap_background": 3,
}
EVALUATE = {
    "concept": {"random_draws": 20},
    "pixel": {"n_images": 3, "steps": 6},
    "road": {"n_images": 2, "percentages": [50]},
    "sanity": {"n_images": 2, "max_steps": 2, "min_common": 2},
    "localization": {"n_images": 3},
    "examples": 2,
    "run": {"batch_size": 16, "threads": 1, "progress": False},
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Synthetic images with part masks, a tiny VGG and a real extraction of it."""
    paths = build_world(tmp_path_factory.mktemp("world"), n_train_per_class=1)
    loaded = load_checkpoint(paths["model"])
    selected = pd.read_csv(paths["selected"], dtype={"sample_id": str})
    mc = loaded.config
    data = IndexedImageDataset(selected, paths["images"], eval_transform(mc.input_size, mc.mean, mc.std))
    ids = selected["sample_id"].tolist()
    paths["extract"] = paths["root"] / "extract_real"
    run_extraction(loaded.model, data, ids, paths["extract"], ExtractConfig(**EXTRACT), "m", progress=False)
    return paths


def inputs(world) -> tuple[EvaluationInputs, EvaluateConfig]:
    loaded = load_checkpoint(world["model"])
    mc = loaded.config
    selected = pd.read_csv(world["selected"], dtype={"sample_id": str})
    data = IndexedImageDataset(selected, world["images"], eval_transform(mc.input_size, mc.mean, mc.std))
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    by_id = {r.sample_id: r for r in load_results(world["extract"]).explanations()}
    records = [by_id[s] for s in selected["sample_id"]]
    inp = EvaluationInputs(
        loaded.model, images, records, selected["label"].tolist(), mc.mean, mc.std, ExtractConfig(**EXTRACT),
        SurveyConfig(**SURVEY), parts=PartMasks.load(world["parts"]), background=images[:3],
    )  # fmt: skip
    return inp, EvaluateConfig(**EVALUATE)


def test_image_subsets_are_nested():
    order = image_order(10, 3)
    assert sorted(order.tolist()) == list(range(10))
    assert set(subset(order, 3)) <= set(subset(order, 6)) <= set(subset(order, None))
    assert subset(order, 6) == sorted(subset(order, 6))


@pytest.mark.slow
def test_every_measure_runs_and_tables_are_deterministic(world):
    inp, cfg = inputs(world)
    first = evaluate(inp, cfg)
    second = evaluate(inp, cfg)
    for name in ("concept_rows", "concept", "completeness", "pixel_auc", "pixel_curves", "road", "sanity",
                 "sanity_gradcam", "localization", "iou"):  # fmt: skip
        a, b = getattr(first, name), getattr(second, name)
        assert a is not None and len(a), name
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    assert first.n_images == {
        "concept": 5, "completeness": 5, "pixel": 3, "road": 2, "sanity": 2, "sanity_gradcam": 2,
        "localization": 3, "iou": 3,
    }  # fmt: skip
    head = headline_table(first)
    assert list(head.index) == [
        "INV",
        "Grad-CAM",
        "LIME",
        "SHAP (Gradient Explainer)",
        "Random",
        "INV (heaviest)",
    ]
    assert {
        "deletion_auc",
        "insertion_auc",
        "road_morf",
        "road_lerf",
        "pointing_game",
        "mprt_ssim_last",
    } <= set(head)
    assert head[["deletion_auc", "insertion_auc"]].stack().dropna().between(0, 1).all()
    assert head.loc["INV (heaviest)", "pointing_game"] >= 0  # a localisation-only method
    layers = inv_by_layer(first)
    assert list(layers.index) == LAYERS and layers["completeness"].between(0, 2).all()
    metrics = evaluation_metrics(first)
    json.dumps(metrics)  # JSON-ready (NaN -> None)
    assert metrics["headline_layer"] == "block5_conv3"
    assert set(metrics["headline"]) == {"concept_rho", "beat_random_rate", "completeness", "deletion_auc",
                                        "insertion_auc", "pointing_game"}  # fmt: skip
    md = evaluation_markdown(first)
    assert "## Headline: method x metric" in md and "| INV |" in md and "MPRT" in md
    assert first.example_maps and len(first.example_images) == 2
    from inviz.quality.figures import evaluation_figures

    figures = evaluation_figures(first)
    assert set(figures) == {"headline", "curves", "road", "concept", "sanity", "localization", "examples"}
    # the headline INV map of an image is its kept clusters' weighted sum: random-map deletion AUC differs
    pix = first.pixel_auc
    assert sorted(pix[(pix["method"] == "INV")]["layer"].unique()) == LAYERS


def test_without_part_masks_localisation_is_skipped_and_said(world):
    inp, cfg = inputs(world)
    from dataclasses import replace

    off = cfg.replace(
        concept={"enabled": False}, completeness=False, pixel={"enabled": False}, road={"enabled": False},
        sanity={"enabled": False},
    )  # fmt: skip
    res = evaluate(replace(inp, parts=None), off)
    assert res.localization is None and "no ground-truth part masks" in res.notes[0]
    assert headline_table(res).empty


def write_params(path: Path, **evaluate_overrides) -> Path:
    params = {
        "mlflow": {"experiment": "test-evaluate", "tracking_uri": None, "enabled": True},
        "extract": EXTRACT,
        "survey": SURVEY,
        "masks": {},
        "evaluate": {**EVALUATE, **evaluate_overrides},
    }
    path.write_text(yaml.safe_dump(params))
    return path


def stage_args(world, params: Path, out: Path) -> list[str]:
    return [
        "evaluate", "--params", str(params), "--images", str(world["images"]), "--selected", str(world["selected"]),
        "--model", str(world["model"]), "--extract", str(world["extract"]), "--index", str(world["index"]),
        "--parts", str(world["parts"]), "--out", str(out / "reports" / "evaluation"),
        "--metrics", str(out / "metrics" / "evaluate.json"),
    ]  # fmt: skip


@pytest.mark.slow
def test_stage_writes_tables_figures_metrics_and_mlflow(world, tmp_path, tracking_uri):
    params = write_params(tmp_path / "params.yaml", sanity={"enabled": False}, road={"enabled": False})
    assert main(stage_args(world, params, tmp_path)) == 0
    out = tmp_path / "reports" / "evaluation"
    for name in ("evaluation.md", "headline.csv", "headline.md", "inv_by_layer.csv", "paired_tests.csv",
                 "concept_deletion.csv", "completeness.csv", "pixel_auc.csv", "localization.csv", "reveal_iou.csv",
                 "figures/headline.png", "figures/concept.png", "figures/curves.png", "figures/examples.png"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not (out / "road.csv").exists()
    head = pd.read_csv(out / "headline.csv")
    assert head["method"].iloc[0] == "INV" and "deletion_auc" in head
    metrics = json.loads((tmp_path / "metrics" / "evaluate.json").read_text())
    assert metrics["n_images_without_records"] == 0 and metrics["headline"]["deletion_auc"] is not None
    assert np.isfinite(metrics["seconds_total"])
    db = tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:
        keys = {r[0] for r in con.execute("select key from metrics")}
    assert "headline.deletion_auc" in keys and "seconds.concept" in keys


def test_stage_errors_name_the_problem(world, tmp_path, tracking_uri, capsys):
    params = write_params(tmp_path / "params.yaml")
    args = stage_args(world, params, tmp_path)
    bad = list(args)
    bad[bad.index("--extract") + 1] = str(tmp_path / "nowhere")
    assert main(bad) == 2
    assert "extraction folder not found" in capsys.readouterr().err
    params = write_params(tmp_path / "p2.yaml", pixel={"methods": ["INV", "CAM++"]})
    assert main(stage_args(world, params, tmp_path)) == 2
    assert "pixel.methods" in capsys.readouterr().err
