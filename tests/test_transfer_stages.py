"""The ``transfer`` stage, ``inviz explain`` and ``global`` with transferred labels, on a tiny world.

The world's 5 played images are explained by the real ``extract`` stage (a tiny random VGG), masked,
played by simulated players and labelled (Sentence-BERT replaced by the bag-of-words fake); then the
label model is built and evaluated leave-one-image-out, 10 unplayed test images get transferred
labels, ``inviz explain`` labels images from outside the dataset (new synthetic images and a real
photo of ``skimage.data``), and ``global`` uses the transferred labels as extra TCAV examples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from labels_world import build_world, tiny_global, write_params
from test_labels_stages import FakeEncoder, run_analyze, run_import, run_masks, run_simulate

from inviz.cli import main
from inviz.transfer.model import LabelModel
from inviz.views.narratives import numbers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["block4_conv1", "block5_conv3"]


def transfer_params(demo: dict) -> dict:
    t = demo["transfer"]
    return {
        **t,
        "more_images": {**t["more_images"], "correct_only": False, "max_per_class": 2},
        "run": {"batch_size": 8},
    }


def cli(stage: str, params: Path, **paths: Path) -> int:
    """Run ``inviz <stage> --params <params> --<path> <value> …`` (underscores in names become dashes)."""
    return main(
        [
            stage,
            "--params",
            str(params),
            *[a for k, v in paths.items() for a in (f"--{k.replace('_', '-')}", str(v))],
        ]
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """World -> real extract -> masks -> simulated game -> labels -> transfer."""
    import inviz.labels.embed as embed

    mp = pytest.MonkeyPatch()
    mp.setattr(embed, "load_model", lambda cfg, root=None: FakeEncoder())
    w = build_world(tmp_path_factory.mktemp("world"), n_train_per_class=3, n_val_per_class=3)
    out = tmp_path_factory.mktemp("run")
    demo = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())
    glob = tiny_global(demo["global"], transfer={"enabled": True, "min_confidence": 0.0})
    extract = {
        **demo["extract"],
        "layers": LAYERS,
        "run": {"device": "cpu", "batch_size": 4, "num_workers": 0},
    }
    params = write_params(
        out / "params.yaml",
        out / "game",
        out / "game" / "game_classes.csv",
        extract=extract,
        transfer=transfer_params(demo),
        figures={**demo["figures"], "dpi": 50, "formats": ["png", "pdf"], "run": {"workers": 1}},
        **{"global": glob},
    )
    real = out / "extract"
    assert (
        cli(
            "extract",
            params,
            images=w["images"],
            selected=w["selected"],
            model=w["model"],
            out=real,
            table1_csv=out / "t1.csv",
            table1_md=out / "t1.md",
            table1_tex=out / "t1.tex",
            comparison=out / "cmp.md",
            metrics=out / "extract.json",
        )
        == 0
    )
    w = {**w, "extract": real}
    run_masks(w, params, out)
    assert run_simulate(w, params, out) == 0
    assert run_import(w, params, out) == 0
    assert run_analyze(w, params, out) == 0
    mp.undo()
    code = cli(
        "transfer",
        params,
        selected=w["selected"],
        images=w["images"],
        index=w["index"],
        parts=w["parts"],
        model=w["model"],
        extract=real,
        manifest=out / "masks.csv",
        cluster_labels=out / "cluster_labels.csv",
        inv=out / "inv.csv",
        merged_scores=out / "merged_scores.csv",
        out=out / "transfer",
        reports=out / "reports",
        metrics=out / "transfer.json",
    )
    assert code == 0
    return w, out, params


def test_transfer_stage_writes_the_label_model_and_the_evaluation(run):
    w, out, _ = run
    model = LabelModel.load(out / "transfer" / "label_model.json")
    assert model.layers == tuple(LAYERS)
    assert model.extract_config["layers"] == LAYERS and model.cfg.variant == "channel_vote"
    merged = pd.read_csv(out / "merged_scores.csv")
    assert sum(len(v) for v in model.maps.values()) == merged["merged_id"].nunique()

    table = pd.read_csv(out / "reports" / "loio.csv")
    assert list(dict.fromkeys(table["method"])) == ["channel_vote", "nearest_maps", "class_prior", "random"]
    assert set(table["layer"]) == {*LAYERS, "all"}
    assert table[["top1", "topk"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (table["topk"] >= table["top1"] - 1e-12).all()
    rows = pd.read_csv(out / "reports" / "loio_maps.csv")
    labelled = pd.read_csv(out / "cluster_labels.csv").query("rank == 1")
    assert rows.groupby("method").size().eq(len(labelled)).all()  # every labelled game map, every method
    # a held-out image's own maps never train its fold: the class prior of a map uses the other images only
    metrics = json.loads((out / "transfer.json").read_text())
    assert metrics["closed_loop"] is not None and set(metrics["closed_loop"]) == {
        "human",
        "channel_vote",
        "nearest_maps",
        "class_prior",
    }
    # the human closed loop on the same maps is the labels_analyze figure
    analyze = json.loads((out / "analyze.json").read_text())
    assert metrics["closed_loop"]["human"] == pytest.approx(analyze["closed_loop"]["accuracy"])
    md = (out / "reports" / "loio.md").read_text()
    assert (
        "| **all** |" in md and "class prior top-1 / top-3" in md and (out / "reports" / "loio.png").is_file()
    )


def test_transfer_stage_labels_the_extra_images(run):
    w, out, _ = run
    images = pd.read_csv(out / "transfer" / "images.csv")
    selected = set(pd.read_csv(w["selected"])["sample_id"])
    assert len(images) == 10 and not set(images["sample_id"]) & selected  # 2 per class, never a played image
    maps = pd.read_csv(out / "transfer" / "labels" / "maps.csv")
    assert set(maps["sample_id"]) == set(images["sample_id"]) and set(maps["layer"]) <= set(LAYERS)
    assert maps["confidence"].between(0, 1).all() and maps["coverage"].between(0, 1).all()
    inv = pd.read_csv(out / "transfer" / "labels" / "inv.csv")
    # merged maps partition the cluster maps (§3.8): weights add up per image and layer
    assert inv["weight"].sum() == pytest.approx(maps["weight"].sum())
    assert sorted(maps["merged_id"].unique()) == sorted(inv["merged_id"])


def test_explain_new_images_outside_the_dataset(run, tmp_path):
    from PIL import Image
    from skimage import data as skdata

    from inviz.data import synthetic

    w, out, params = run
    cfg = synthetic.SyntheticConfig(
        image_size=128,
        n_train_per_class=1,
        n_val_per_class=1,
        seed=999,
        classes={"kite": ["diamond", "zigzag"], "castle": ["grid", "zigzag"]},
    )
    synthetic.generate_dataset(cfg, tmp_path / "new")
    new = sorted((tmp_path / "new").glob("train/*/*.png"))
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    dest = tmp_path / "explained"
    code = main(
        [
            "explain",
            *map(str, new),
            str(photo),
            "--model",
            str(w["model"]),
            "--labels",
            str(out / "transfer" / "label_model.json"),
            "--out",
            str(dest),
            "--params",
            str(params),
            "--top",
            "2",
        ]
    )
    assert code == 0
    summary = json.loads((dest / "explain.json").read_text())
    assert summary["n_images"] == 3 and summary["seconds_per_image"] > 0
    for entry in summary["images"]:
        rec = json.loads((dest / entry["record"]).read_text())
        text = (dest / entry["narrative"]).read_text().strip()
        assert (dest / entry["figure"]).is_file() and (dest / entry["figure"]).with_suffix(".pdf").is_file()
        assert rec["narrative"] == text and rec["model_sha256"] == summary["model_sha256"]
        assert set(rec["layers"]) == set(LAYERS)
        assert all(len(c["labels"]) <= 2 for cs in rec["layers"].values() for c in cs)
        probs = [p for _, p in rec["prediction"]["top_classes"]]
        assert probs == sorted(probs, reverse=True) and rec["prediction"]["confidence"] == pytest.approx(
            probs[0]
        )
        assert f"{100 * rec['prediction']['confidence']:.1f} % confidence" in text
        # the narrative's numbers are the record's (parsed back)
        allowed = set()
        stack = [rec["summary"]]
        while stack:
            x = stack.pop()
            if isinstance(x, dict):
                stack += list(x.values())
            elif isinstance(x, list):
                stack += x
            elif isinstance(x, (int, float)) and not isinstance(x, bool):
                allowed |= {round(x, 1), round(x, 2), float(f"{x:.2g}")}
        assert all(any(abs(n - a) < 1e-9 for a in allowed) for n in numbers(text)), text
    assert summary["images"][-1]["image"] == str(photo)


def test_explain_errors_are_clear(run, tmp_path, capsys):
    import torch

    from inviz.models.checkpoint import load_checkpoint, save_checkpoint

    w, out, _ = run

    def explain(image, model=w["model"], *extra):
        labels = out / "transfer" / "label_model.json"
        code = main(
            [
                "explain",
                str(image),
                "--model",
                str(model),
                "--labels",
                str(labels),
                "--out",
                str(tmp_path / "o"),
                *extra,
            ]
        )
        return code, capsys.readouterr().err

    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    code, err = explain(bad)
    assert code == 2 and "broken.png: not a readable image" in err
    code, err = explain(tmp_path / "nope.png")
    assert code == 2 and "nope.png: image file not found" in err

    good = next(Path(w["images"]).glob("val/*/*.png"))
    loaded = load_checkpoint(w["model"])
    with torch.no_grad():
        next(loaded.model.parameters()).add_(0.5)
    other = save_checkpoint(tmp_path / "other.safetensors", loaded.model, loaded.classes)
    code, err = explain(good, other)
    assert code == 2 and "does not match the label model" in err
    code, err = explain(good, w["model"], "--layers", "block3_conv1")
    assert code == 2 and "no layer(s) block3_conv1" in err
    assert not (tmp_path / "o").exists()


def test_global_adds_transferred_examples(run, tmp_path):
    from test_inv_stages import run_global

    w, out, params = run
    # run_global passes --transfer <cache parent>/transfer: the run's transfer folder
    assert run_global(w, out, params, out / "cavs", tmp_path / "global") == 0
    metrics = json.loads((tmp_path / "global.json").read_text())
    tcav = metrics["tcav"]
    assert metrics["transfer"] == {"enabled": True, "extra_images": 10}
    assert tcav["n_too_few_examples_without_transfer"] >= tcav["n_too_few_examples"]
    table = pd.read_csv(tmp_path / "global" / "tcav.csv")
    assert (table["n_candidates"] >= table["n_candidates_game"]).all()
    assert (table["n_transferred"] <= table["n_examples"]).all()
    assert (
        table["n_transferred"]
        == np.minimum(table["n_candidates"], 6) - np.minimum(table["n_candidates_game"], 6)
    ).all()
    assert tcav["n_too_few_examples_without_transfer"] == int((table["n_candidates_game"] < 4).sum())
    md = (tmp_path / "global" / "global.md").read_text()
    assert "examples (transferred)" in md and "At block5_conv3, the images of" in md
