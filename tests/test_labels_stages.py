"""The masks / labels_simulate / labels_import / labels_analyze stages end to end on a tiny world.

Sentence-BERT is replaced by a bag-of-words fake here (the real model: test_labels_sbert.py).
"""

from __future__ import annotations

import hashlib
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from labels_world import LAYERS, build_world, write_params

from inviz.cli import main

pytestmark = pytest.mark.slow  # each stage run takes seconds (images, PNG encoding, figures)


class FakeEncoder:
    """Deterministic bag-of-words vectors: texts sharing words are similar."""

    calls = 0

    def encode(self, sentences, **kwargs):
        FakeEncoder.calls += 1
        out = []
        for s in sentences:
            v = np.zeros(32)
            for w in s.split():
                seed = int(hashlib.sha1(w.encode()).hexdigest()[:8], 16)
                v += np.random.default_rng(seed).normal(size=32)
            out.append(v / (np.linalg.norm(v) or 1.0))
        return np.asarray(out, dtype=np.float32)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture
def fake_sbert(monkeypatch):
    import inviz.labels.embed as embed

    monkeypatch.setattr(embed, "load_model", lambda cfg, root=None: FakeEncoder())
    FakeEncoder.calls = 0
    return FakeEncoder


def run_masks(w, params, out):
    code = main(
        [
            "masks",
            "--params",
            str(params),
            "--extract",
            str(w["extract"]),
            "--selected",
            str(w["selected"]),
            "--images",
            str(w["images"]),
            "--model",
            str(w["model"]),
            "--out",
            str(out / "masks"),
            "--manifest",
            str(out / "masks.csv"),
            "--figure",
            str(out / "levels.png"),
            "--metrics",
            str(out / "masks.json"),
        ]
    )
    assert code == 0


def run_simulate(w, params, out, masks=None):
    return main(
        [
            "labels_simulate",
            "--params",
            str(params),
            "--extract",
            str(w["extract"]),
            "--manifest",
            str(out / "masks.csv"),
            "--masks",
            str(masks or out / "masks"),
            "--selected",
            str(w["selected"]),
            "--images",
            str(w["images"]),
            "--parts",
            str(w["parts"]),
            "--classes",
            str(w["classes"]),
            "--out",
            str(out / "game"),
            "--metrics",
            str(out / "simulate.json"),
        ]
    )


def run_import(w, params, out):
    import yaml

    p = yaml.safe_load(params.read_text())["labels_import"]
    return main(
        [
            "labels_import",
            "--params",
            str(params),
            "--game-dir",
            p["source_dir"],
            "--class-map",
            p["class_map"],
            "--manifest",
            str(out / "masks.csv"),
            "--classes",
            str(w["classes"]),
            "--out",
            str(out / "guesses.csv"),
            "--classes-out",
            str(out / "classes.csv"),
            "--translations-out",
            str(out / "manual.csv"),
            "--problems",
            str(out / "problems.csv"),
            "--report",
            str(out / "import.json"),
        ]
    )


def run_analyze(w, params, out, tag=""):
    return main(
        [
            "labels_analyze",
            "--params",
            str(params),
            "--guesses",
            str(out / "guesses.csv"),
            "--classes",
            str(out / "classes.csv"),
            "--translations",
            str(out / "manual.csv"),
            "--manifest",
            str(out / "masks.csv"),
            "--extract",
            str(w["extract"]),
            "--parts",
            str(w["parts"]),
            "--translation-cache",
            str(out / "tcache.csv"),
            "--embedding-cache",
            str(out / "emb.parquet"),
            "--texts",
            str(out / f"texts{tag}.csv"),
            "--cluster-labels",
            str(out / f"cluster_labels{tag}.csv"),
            "--inv",
            str(out / f"inv{tag}.csv"),
            "--merged-scores",
            str(out / f"merged_scores{tag}.csv"),
            "--merged-maps",
            str(out / f"merged_maps{tag}"),
            "--closed-loop",
            str(out / f"closed_loop{tag}.csv"),
            "--metrics",
            str(out / f"analyze{tag}.json"),
        ]
    )


@pytest.fixture(scope="module")
def masked(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    params = write_params(out / "params.yaml", out / "game", out / "game" / "game_classes.csv")
    run_masks(world, params, out)
    return out, params


def test_masks_stage_writes_zips_manifest_and_figure(world, masked):
    from inviz.game.manifest import load_masked_image, read_manifest

    out, _ = masked
    manifest = read_manifest(out / "masks.csv")
    clusters = pd.read_parquet(world["extract"] / "clusters.parquet")
    kept = clusters[~clusters["pruned"]]
    assert manifest["cluster_id"].nunique() == len(kept) and len(manifest) == 6 * len(kept)
    ids = manifest.drop_duplicates("cluster_id")
    assert ids["cluster_id"].tolist() == list(range(1, len(kept) + 1))
    # order: selected images, then layers, then cluster index
    sel = pd.read_csv(world["selected"])["sample_id"].tolist()
    keys = [
        (sel.index(i), list(LAYERS).index(layer), c)
        for i, layer, c in zip(ids["image"], ids["layer"], ids["cluster"], strict=False)
    ]
    assert keys == sorted(keys)
    assert set(manifest["shard"]) == {f"{name}.zip" for name in LAYERS}
    assert set(manifest["factor"]) == {16.0, 32.0} and set(manifest["sigma"]) == {16.0, 24.0}
    assert (manifest["revealed_share"] >= manifest["percent"] / 100 - 1e-9).all()
    with zipfile.ZipFile(out / "masks" / "block5_conv3.zip") as z:
        assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    img = load_masked_image(out / "masks", manifest["file"].iloc[0])
    assert img.shape == (256, 256, 3) and img.dtype == np.uint8
    assert (out / "levels.png").stat().st_size > 0 and (out / "levels.pdf").is_file()
    metrics = json.loads((out / "masks.json").read_text())
    assert metrics["n_cluster_maps"] == len(kept) and metrics["n_files"] == len(manifest)


def test_masks_are_reproducible(world, masked, tmp_path):
    out, params = masked
    run_masks(world, params, tmp_path)
    assert (tmp_path / "masks.csv").read_bytes() == (out / "masks.csv").read_bytes()
    for name in LAYERS:
        assert (tmp_path / "masks" / f"{name}.zip").read_bytes() == (
            out / "masks" / f"{name}.zip"
        ).read_bytes()


def test_simulate_import_analyze_end_to_end(world, masked, fake_sbert, tmp_path, tracking_uri):
    out, params = masked
    for f in ("masks.csv",):
        (tmp_path / f).write_bytes((out / f).read_bytes())
    params = write_params(
        tmp_path / "params.yaml",
        tmp_path / "game",
        tmp_path / "game" / "game_classes.csv",
        mlflow={"enabled": True, "experiment": "labels-test"},
    )
    assert run_simulate(world, params, tmp_path) == 0
    game = tmp_path / "game"
    assert {p.name for p in game.iterdir()} >= {
        "features.csv",
        "resigns.csv",
        "guesses_without_text.csv",
        "players.csv",
        "translations.csv",
        "game_classes.csv",
    }
    sim = json.loads((tmp_path / "simulate.json").read_text())
    assert sim["n_texts"] > 30 and sim["n_failed_screening"] >= 0

    assert run_import(world, params, tmp_path) == 0
    report = json.loads((tmp_path / "import.json").read_text())
    assert report["format"] == "authors" and report["kept"]["feature"] > 0
    assert (
        report["rows_dropped"] == sum(sim["defects"].values()) == len(pd.read_csv(tmp_path / "problems.csv"))
    )

    assert run_analyze(world, params, tmp_path) == 0
    m = json.loads((tmp_path / "analyze.json").read_text())
    assert m["n_cluster_maps_labelled"] > 0 and m["closed_loop"]["n_maps"] == m["n_cluster_maps_labelled"]
    assert 0 <= m["closed_loop"]["accuracy"] <= 1
    cl = pd.read_csv(tmp_path / "cluster_labels.csv")
    manifest = pd.read_csv(tmp_path / "masks.csv").drop_duplicates("cluster_id")
    assert set(cl["cluster_id"]) == set(manifest["cluster_id"])  # every map, labelled or not
    for col in (
        "plays",
        "guesses",
        "wins",
        "losses",
        "resigns",
        "mean_hints",
        "score",
        "rank",
        "is_best",
        "merged_id",
    ):
        assert col in cl.columns
    inv = pd.read_csv(tmp_path / "inv.csv")
    # merging keeps the total weight of each image and layer
    w_maps = manifest.groupby(["image", "layer"])["weight"].sum()
    w_inv = inv.groupby(["image", "layer"])["weight"].sum()
    pd.testing.assert_series_equal(w_maps.sort_index(), w_inv.sort_index(), check_names=False)
    texts = pd.read_csv(tmp_path / "texts.csv")
    assert {"text", "text_translated", "text_clean", "label", "translation_status"} <= set(texts.columns)
    assert (texts["translation_status"] == "translated").any()  # the manual dictionary was used
    with np.load(tmp_path / "merged_maps" / "block5_conv3.npz") as z:
        assert z["maps"].shape[1:] == (8, 8) and len(z["merged_id"]) == len(z["weight"])
    assert fake_sbert.calls > 0

    # a second run is identical and embeds nothing new
    fake_sbert.calls = 0
    assert run_analyze(world, params, tmp_path, tag="2") == 0
    assert fake_sbert.calls == 0
    for name in ("texts", "cluster_labels", "inv", "merged_scores"):
        assert (tmp_path / f"{name}.csv").read_bytes() == (tmp_path / f"{name}2.csv").read_bytes(), name
    assert json.loads((tmp_path / "analyze2.json").read_text())["embedding_cache"]["added"] == 0


def test_simulation_is_seeded(world, masked, tmp_path):
    out, _ = masked
    (tmp_path / "masks.csv").write_bytes((out / "masks.csv").read_bytes())
    params = write_params(tmp_path / "params.yaml", tmp_path / "game", tmp_path / "game" / "game_classes.csv")
    assert run_simulate(world, params, tmp_path) == 0
    first = (tmp_path / "game" / "features.csv").read_bytes()
    assert run_simulate(world, params, tmp_path) == 0
    assert (tmp_path / "game" / "features.csv").read_bytes() == first


def test_simulate_disabled_writes_a_note(world, masked, tmp_path):
    out, _ = masked
    params = write_params(
        tmp_path / "params.yaml", tmp_path / "game", tmp_path / "x.csv", labels_simulate={"enabled": False}
    )
    assert run_simulate(world, params, tmp_path) == 0
    assert [p.name for p in (tmp_path / "game").iterdir()] == ["README.txt"]
    assert json.loads((tmp_path / "simulate.json").read_text()) == {"enabled": False}


def test_import_strict_mode_fails_and_lists_problems(world, masked, tmp_path, capsys):
    out, _ = masked
    (tmp_path / "masks.csv").write_bytes((out / "masks.csv").read_bytes())
    params = write_params(
        tmp_path / "params.yaml",
        tmp_path / "game",
        tmp_path / "game" / "game_classes.csv",
        labels_simulate={"defect_rows": 0.05},
        labels_import={"strict": True},
    )
    assert run_simulate(world, params, tmp_path) == 0
    assert run_import(world, params, tmp_path) == 2
    assert "strict mode" in capsys.readouterr().err
    assert len(pd.read_csv(tmp_path / "problems.csv")) > 0 and not (tmp_path / "guesses.csv").exists()


def test_import_missing_game_folder_is_a_clear_error(world, masked, tmp_path, capsys):
    out, _ = masked
    params = write_params(
        tmp_path / "params.yaml", tmp_path / "nothing", tmp_path / "nothing" / "game_classes.csv"
    )
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing" / "game_classes.csv").write_text(
        "game_id,game_name,class_folder,class_name\n"
        + "".join(
            f"{c['label'] + 1},{c['class_name']},{c['class_folder']},{c['class_name']}\n"
            for c in json.loads(world["classes"].read_text())
        ),
        encoding="utf-8",
    )
    (tmp_path / "masks.csv").write_bytes((out / "masks.csv").read_bytes())
    assert run_import(world, params, tmp_path) == 2
    out, err = capsys.readouterr()
    assert f"no game export in {tmp_path / 'nothing'}/ yet" in err and "guesses.csv" in err
    assert (out + err).count("no game export") == 1  # said once


def test_masks_with_worker_processes_are_identical(world, masked, tmp_path):
    out, _ = masked
    params = write_params(
        tmp_path / "params.yaml",
        tmp_path / "game",
        tmp_path / "game" / "game_classes.csv",
        masks={"run": {"workers": 2}},
    )
    run_masks(world, params, tmp_path)
    for z in sorted((out / "masks").glob("*.zip")):
        assert (tmp_path / "masks" / z.name).read_bytes() == z.read_bytes(), z.name
    assert (tmp_path / "masks.csv").read_bytes() == (out / "masks.csv").read_bytes()
