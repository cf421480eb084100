"""The Lightning extraction path (shards, resume) and the ``inviz extract`` stage."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image

from inviz.cli import main
from inviz.data.loading import IndexedImageDataset, eval_transform
from inviz.fmaps.explain import ExtractConfig
from inviz.fmaps.lightning import run_extraction
from inviz.fmaps.store import complete_shards, load_results
from inviz.models.checkpoint import save_checkpoint
from inviz.models.vgg import ModelConfig, build_vgg16

LAYERS = ["block4_conv3", "block5_conv3"]
CLASSES = [{"label": i, "class_folder": f"c{i}", "class_name": f"class {i}"} for i in range(3)]


def make_inputs(root: Path, n: int = 5) -> tuple[Path, Path, Path, torch.nn.Module]:
    rng = np.random.default_rng(0)
    images = root / "images"
    rows = []
    for i in range(n):
        rel = Path("test") / f"c{i % 3}" / f"img{i}.png"
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(images / rel)
        rows.append(
            {
                "sample_id": f"test/c{i % 3}/img{i}",
                "path": str(rel),
                "label": i % 3,
                "class_name": f"class {i % 3}",
                "pred": i % 3,
                "pred_name": f"class {i % 3}",
                "confidence": 0.9,
            }
        )
    selected = root / "selected.csv"
    pd.DataFrame(rows).to_csv(selected, index=False)
    torch.manual_seed(0)
    model = build_vgg16(3, ModelConfig(weights="none", width=0.125, input_size=64)).eval()
    ckpt = save_checkpoint(root / "model.pt", model, CLASSES)
    return images, selected, ckpt, model


def dataset(images: Path, selected: Path) -> tuple[IndexedImageDataset, list[str]]:
    frame = pd.read_csv(selected, dtype={"sample_id": str})
    tf = eval_transform(64, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return IndexedImageDataset(frame, images, tf), frame["sample_id"].tolist()


def test_run_extraction_writes_shards_and_resumes(tmp_path):
    images, selected, _, model = make_inputs(tmp_path)
    ds, ids = dataset(images, selected)
    cfg = ExtractConfig(layers=LAYERS, run={"batch_size": 2, "shard_size": 2, "device": "cpu"})
    out = tmp_path / "extract"
    first = run_extraction(model, ds, ids, out, cfg, model_sha256="m", progress=False)
    assert (first.n_new, first.n_skipped, first.n_total) == (5, 0, 5)
    assert len(complete_shards(out)) == 3  # 2 + 2 + 1 images
    assert first.layers["sample_id"].drop_duplicates().tolist() == ids
    assert {"forward_backward", "tsne", "clustering"} <= set(first.timings)

    # interrupted run: the last shard lost its layers file (written last) -> that image is redone
    last = sorted((out / "shards").glob("*.layers.parquet"))[-1]
    lost = set(pd.read_parquet(last)["sample_id"])
    last.unlink()
    second = run_extraction(model, ds, ids, out, cfg, model_sha256="m", progress=False)
    assert (second.n_new, second.n_skipped) == (len(lost), 5 - len(lost))
    pd.testing.assert_frame_equal(
        first.layers.drop(columns=["embedding_x", "embedding_y"]),
        second.layers.drop(columns=["embedding_x", "embedding_y"]),
    )
    third = run_extraction(model, ds, ids, out, cfg, model_sha256="m", progress=False)
    assert third.n_new == 0 and third.n_skipped == 5
    res = load_results(out)
    assert res.manifest["model_sha256"] == "m"
    assert len(res.explanations()) == 5
    # the true class as target
    by_label = run_extraction(
        model, ds, ids, tmp_path / "by_label", cfg.replace(target="label"), "m", progress=False
    )
    assert by_label.layers.groupby("sample_id")["target"].first().loc[ids].tolist() == [
        i % 3 for i in range(5)
    ]


def write_params(path: Path, **extract) -> Path:
    params = {
        "mlflow": {"experiment": "test-extract", "tracking_uri": None, "enabled": True},
        "extract": {
            "layers": LAYERS,
            "tsne": {"backend": "numba"},
            "run": {"batch_size": 2, "shard_size": 3, "device": "cpu", "num_workers": 0},
            **extract,
        },
    }
    path.write_text(yaml.safe_dump(params))
    return path


def stage_args(tmp_path: Path, images: Path, selected: Path, ckpt: Path, params: Path) -> list[str]:
    r = tmp_path / "reports"
    return [
        "extract",
        "--params",
        str(params),
        "--images",
        str(images),
        "--selected",
        str(selected),
        "--model",
        str(ckpt),
        "--out",
        str(tmp_path / "data" / "extract"),
        "--table1-csv",
        str(r / "table1.csv"),
        "--table1-md",
        str(r / "table1.md"),
        "--table1-tex",
        str(r / "table1.tex"),
        "--comparison",
        str(r / "table1_vs_paper.md"),
        "--metrics",
        str(tmp_path / "metrics" / "extract.json"),
    ]


@pytest.mark.slow
def test_stage_outputs_reports_metrics_and_mlflow(tmp_path, tracking_uri):
    images, selected, ckpt, _ = make_inputs(tmp_path)
    params = write_params(tmp_path / "params.yaml")
    assert main(stage_args(tmp_path, images, selected, ckpt, params)) == 0
    out = tmp_path / "data" / "extract"
    clusters = pd.read_parquet(out / "clusters.parquet")
    stats = pd.read_parquet(out / "layer_stats.parquet")
    assert len(stats) == 5 * len(LAYERS)
    assert clusters["cluster_id"].str.count(r"\|").eq(2).all()
    res = load_results(out)
    m = res.cluster_map(clusters["cluster_id"].iloc[0])
    assert m.shape == (clusters["height"].iloc[0], clusters["width"].iloc[0])
    table = pd.read_csv(tmp_path / "reports" / "table1.csv")
    assert table["layer"].tolist() == LAYERS
    md = (tmp_path / "reports" / "table1.md").read_text()
    assert "| block5_conv3 |" in md and "leftover weight" in md
    tex = (tmp_path / "reports" / "table1.tex").read_text()
    assert r"\begin{tabular}" in tex and r"block5\_conv3" in tex
    cmp = (tmp_path / "reports" / "table1_vs_paper.md").read_text()
    assert "78.4" in cmp  # the paper's block5_conv3 leftover weight
    metrics = json.loads((tmp_path / "metrics" / "extract.json").read_text())
    assert metrics["n_images"] == 5 and metrics["tsne_backend"] == "numba"
    assert metrics["n_cluster_maps_kept"] == int((~clusters["pruned"]).sum())
    assert set(metrics["table1"]) == set(LAYERS)
    db = tracking_uri.removeprefix("sqlite:///")
    with sqlite3.connect(db) as con:
        keys = {r[0] for r in con.execute("select key from metrics")}
    assert "n_cluster_maps_kept" in keys and "table1.block5_conv3.leftover_weight" in keys

    # rerun: everything resumed, same tables
    assert main(stage_args(tmp_path, images, selected, ckpt, params)) == 0
    metrics2 = json.loads((tmp_path / "metrics" / "extract.json").read_text())
    assert metrics2["n_resumed"] == 5
    pd.testing.assert_frame_equal(pd.read_parquet(out / "clusters.parquet"), clusters)


def test_stage_errors_are_clear(tmp_path, tracking_uri, capsys):
    images, selected, ckpt, _ = make_inputs(tmp_path, n=2)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sample_id": ["a"], "label": [0]}).to_csv(bad, index=False)
    params = write_params(tmp_path / "params.yaml")
    assert main(stage_args(tmp_path, images, bad, ckpt, params)) == 2
    assert "missing column(s) path" in capsys.readouterr().err
    params = write_params(tmp_path / "params.yaml", layers=["block9_conv9"])
    assert main(stage_args(tmp_path, images, selected, ckpt, params)) == 2
    assert "block9_conv9" in capsys.readouterr().err
    assert not (tmp_path / "data" / "extract").exists()  # checked before any output is written
    params = write_params(tmp_path / "params.yaml", weights="lrp")
    assert main(stage_args(tmp_path, images, selected, ckpt, params)) == 2
    assert "extract: weights" in capsys.readouterr().err


def test_dvc_tracks_the_method_keys_and_no_run_setting():
    """The ``extract`` stage re-runs when a method key changes, not when threads/devices/batch size do."""
    import dataclasses

    from inviz.fmaps.explain import RunConfig

    root = Path(__file__).resolve().parents[1]
    method = [f.name for f in dataclasses.fields(ExtractConfig) if f.name != "run"]
    for dvc_file, params_file in (("dvc.yaml", "params.yaml"), ("demo/dvc.yaml", "demo/params.yaml")):
        stage = yaml.safe_load((root / dvc_file).read_text())["stages"]["extract"]
        assert stage["params"] == [f"extract.{name}" for name in method], dvc_file
        section = yaml.safe_load((root / params_file).read_text())["extract"]
        assert set(section) == {*method, "run"}, params_file  # the new layout, every key explicit
        assert set(section["run"]) == {f.name for f in dataclasses.fields(RunConfig)}, params_file
