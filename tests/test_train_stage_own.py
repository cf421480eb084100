"""``inviz train`` with other architectures: errors through the CLI, evaluation only (train.enabled: false)."""

from __future__ import annotations

import json

import pandas as pd
import torch
from own_models import small_cnn

from inviz.cli import main
from inviz.core.config import from_dict
from inviz.data.dataset import DataConfig, prepare_dataset
from inviz.models.checkpoint import load_checkpoint


def train_args(tmp_path, folder) -> list[str]:
    cfg = from_dict(DataConfig, {"source": "folder", "folder": {"path": str(folder)}})
    ds = prepare_dataset(cfg, tmp_path / "images")
    ds.index.to_csv(tmp_path / "index.csv", index=False)
    (tmp_path / "classes.json").write_text(json.dumps(ds.classes))
    return [
        "train",
        "--params",
        str(tmp_path / "params.yaml"),
        "--images",
        str(tmp_path / "images"),
        "--index",
        str(tmp_path / "index.csv"),
        "--classes",
        str(tmp_path / "classes.json"),
        "--model",
        str(tmp_path / "model.safetensors"),
        "--metrics",
        str(tmp_path / "train.json"),
        "--reports",
        str(tmp_path / "reports"),
    ]


def test_unknown_architecture_via_the_cli(tmp_path, image_folder, capsys, tracking_uri):
    (tmp_path / "params.yaml").write_text("model:\n  arch: torchvision:resnt18\ntrain: {}\nmlflow: {}\n")
    assert main(train_args(tmp_path, image_folder)) == 2
    err = capsys.readouterr().err
    assert "model: arch: 'resnt18' is not a torchvision classification model" in err
    assert "torchvision:resnet18" in err


def test_a_finished_model_is_only_evaluated(tmp_path, image_folder, tracking_uri):
    torch.save(small_cnn(3, seed=5).state_dict(), tmp_path / "w.pth")
    (tmp_path / "params.yaml").write_text(
        "model:\n  arch: checkpoint\n  weights: none\n  input_size: 32\n  checkpoint:\n"
        "    builder: own_models:small_cnn\n    builder_args: {n_outputs: 3}\n"
        f"    state_dict: {tmp_path / 'w.pth'}\n"
        "train:\n  enabled: false\n  batch_size: 4\n  run: {accelerator: cpu}\nmlflow: {}\n"
    )
    assert main(train_args(tmp_path, image_folder)) == 0
    metrics = json.loads((tmp_path / "train.json").read_text())
    assert metrics["trained"] is False and metrics["epochs"] == {} and metrics["arch"] == "checkpoint"
    # the saved model is the given one, unchanged; the reports are written
    loaded = load_checkpoint(tmp_path / "model.safetensors")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), small_cnn(3, seed=5).eval()(x))
    cm = pd.read_csv(tmp_path / "reports" / "confusion.csv")
    assert cm.drop(columns="true").to_numpy().sum() == 6  # the val split (2 per class)
    assert (tmp_path / "reports" / "history.png").is_file()
    assert list(pd.read_csv(tmp_path / "reports" / "history.csv").columns)[:2] == ["epoch", "phase"]
