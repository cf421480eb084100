"""End to end: the *paper profile* (params.yaml) through DVC, at a reduced size, as a new user meets it.

A fake ``imagenette2-320`` folder (the ten WNID folders, synthetic 320-px JPEGs, one corrupt and one
empty file) given through ``data.imagenette.local_path``, a torchvision ``vgg16()`` state_dict file as
``model.weights``, one epoch per phase, one image per class at 64 px (see ``tests/paper_world.py``).
The first ``dvc repro`` must stop at ``labels_import`` with inviz's "no export yet" message (said
once, not DVC's missing-file error); after a small canonical export is dropped into ``game_export/``
the rest runs; a third ``dvc repro`` re-runs nothing but the fingerprint of outside inputs; a
replaced weights file re-runs ``train``; ``model.weights: none`` warns.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from paper_world import failure, paper_params, pipeline_env, write_fake_imagenette

ROOT = Path(__file__).resolve().parents[1]

#: what a user must never see in a stage's output (Lightning chatter, doubled or raw DVC errors)
NOISE = ("💡 Tip", "litlogger", "litmodels", "LeafSpec", "INFO: GPU available", "[Errno 2]")


def sh(cmd: list[str], cwd: Path, env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=2400)
    if ok:
        assert proc.returncode == 0, failure(cmd, proc)
    return proc


def write_export(repo: Path) -> None:
    """A small canonical export (README "Label game data") for the cluster maps of data/masks.csv."""
    maps = pd.read_csv(repo / "data" / "masks.csv").drop_duplicates("cluster_id")
    rows = []
    for i, m in enumerate(maps.itertuples()):
        for player, text in (("p1", "metal nozzle"), ("p2", "the nozzle handle"), ("p3", "pompa di benzina")):
            rows.append(
                [f"g{i}{player}", player, m.cluster_id, m.true_class, "feature", m.true_class, 1, text, "en"]
            )
        rows.append([f"g{i}r", "p4", m.cluster_id, m.true_class, "resign", "", "", "", ""])
    rows.append(
        ["gx", "p1", 999999, "tench", "feature", "tench", 0, "fins", "en"]
    )  # unknown cluster: dropped
    cols = ["guess_id", "player_id", "cluster_id", "true_class", "kind", "guessed_class", "hints", "text"]
    pd.DataFrame(rows, columns=[*cols, "language"]).to_csv(repo / "game_export" / "guesses.csv", index=False)


def build_paper_repo(base: Path) -> tuple[Path, dict]:
    """Write the reduced paper project under ``base`` (git + DVC initialised, committed)."""
    import torch
    import torchvision

    repo = base / "project"
    repo.mkdir()
    env = pipeline_env(repo)
    data = write_fake_imagenette(base / "downloads")
    # a torchvision vgg16() state_dict, as a user would save it (backbone keys only: 59 MB, not 528)
    weights = base / "downloads" / "vgg16_backbone.pth"
    state = torchvision.models.vgg16().state_dict()
    torch.save({k: v for k, v in state.items() if k.startswith("features.")}, weights)
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copytree(ROOT / "game_export", repo / "game_export")
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    (repo / "models").mkdir()
    (repo / "models" / "sbert").symlink_to(ROOT / "models" / "sbert", target_is_directory=True)
    params = paper_params(ROOT / "params.yaml", data, str(weights))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # what a clone has: the ignore files of the cached outputs (DVC writes none when a repro stops early)
    for rel in (".gitignore", "data/.gitignore", "data/labels/.gitignore", "data/inputs/.gitignore"):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / rel, repo / rel)
    (repo / "models" / ".gitignore").write_text((ROOT / "models" / ".gitignore").read_text())
    for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.analytics", "false"]):
        sh(cmd, repo, env)
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "init"], repo, env)
    return repo, env


@pytest.mark.e2e
@pytest.mark.slow
def test_paper_profile_end_to_end(tmp_path):
    """One test (the steps depend on each other; one pipeline run, also under pytest-xdist)."""
    repo, env = build_paper_repo(tmp_path)
    first = sh(["dvc", "repro"], repo, env, ok=False)
    check_first_repro_stops_clearly_at_labels_import(first)
    check_data_train_select_records(repo, first)
    check_with_an_export_the_rest_runs_then_nothing_reruns(repo, env)
    check_outside_inputs_are_dependencies(repo, env)


def check_first_repro_stops_clearly_at_labels_import(first: subprocess.CompletedProcess) -> None:
    out = first.stdout + first.stderr
    assert first.returncode != 0, out[-3000:]
    for stage in (
        "inputs",
        "data",
        "train",
        "select",
        "extract",
        "masks",
        "labels_simulate",
        "labels_import",
    ):
        assert f"Running stage '{stage}'" in first.stdout, stage
    assert "Running stage 'labels_analyze'" not in first.stdout
    # inviz's message, once, naming the folder and what to put there; no raw DVC file error
    assert out.count("no game export in game_export/ yet") == 1, out[-3000:]
    assert "guesses.csv" in out and "features.csv" in out and "README 'Label game data'" in out
    assert "'game_export' is empty" not in out
    for noise in NOISE:
        assert noise not in out, noise
    # the select shortfall is one warning, not one per class
    assert out.count("fewer than select.per_class=1") <= 1


def check_data_train_select_records(repo: Path, first: subprocess.CompletedProcess) -> None:
    skipped = pd.read_csv(repo / "data" / "skipped.csv").set_index("path")["reason"]
    assert skipped["train/n01440764/empty_00000.JPEG"] == "empty file (0 bytes)"
    assert "corrupt_00000.JPEG" in "".join(skipped.index) and len(skipped) == 2
    assert json.loads((repo / "metrics" / "data.json").read_text())["n_skipped"] == 2
    # Table 1 thresholds as the paper's (full-width VGG-16: 512 channels in block4/5)
    assert "<0.175%" in (repo / "reports" / "table1.md").read_text()
    # training curves: every epoch has its training loss; one epoch numbering everywhere
    history = pd.read_csv(repo / "reports" / "train" / "history.csv")
    assert {"train_loss", "val_loss", "val_acc"} <= set(history) and history["train_loss"].notna().all()
    assert history["epoch"].tolist() == [1, 2]
    train = json.loads((repo / "metrics" / "train.json").read_text())
    assert train["best_epoch"] == {"head": 1, "block5": 2}
    assert "phase head: restored the best weights, epoch 1" in first.stdout
    assert "phase block5: restored the best weights, epoch 2" in first.stdout
    assert "loaded backbone weights from" in first.stdout and "RANDOM weights" not in first.stdout
    # explained images come from the test pool and say so
    selected = pd.read_csv(repo / "data" / "selected.csv")
    assert len(selected) >= 1 and selected["sample_id"].str.startswith("test/").all()
    assert selected["path"].str.startswith("val/").all()


def check_with_an_export_the_rest_runs_then_nothing_reruns(repo: Path, env: dict) -> None:
    write_export(repo)
    second = sh(["dvc", "repro"], repo, env)
    out = second.stdout + second.stderr
    for stage in ("labels_import", "labels_analyze", "figures", "global", "explorer", "survey", "compare"):
        assert f"Running stage '{stage}'" in second.stdout, stage
    assert "Running stage 'train'" not in second.stdout
    for noise in NOISE:
        assert noise not in out, noise
    report = json.loads((repo / "metrics" / "labels_import.json").read_text())
    assert report["dropped_by_reason"].get("unknown_cluster") == 1
    problems = pd.read_csv(repo / "data" / "labels" / "import_problems.csv")
    assert list(problems.columns[:3]) == ["file", "row", "column"] and "999999" in problems.to_csv()
    assert "closed loop: not measured (no part masks)" in out
    n_classes = pd.read_csv(repo / "data" / "selected.csv")["label"].nunique()
    if n_classes < 4:  # one epoch selects few classes: the survey adapts and names the params
        assert f"only {n_classes} classes among the selected images" in out and "survey.n_images" in out
    assert "TCAV:" in out and "candidate labels tested" in out
    text = (repo / "reports" / "paper_comparison.md").read_text()
    assert "- dataset: **Imagenette (320 px)**" in text and "offline demo" not in text
    assert "NOT the paper" not in text and "| `select.per_class` | `5` | `1` |" in text
    assert "| `model.input_size` | `256` | `64` |" in text and "| `model.weights` |" in text
    third = sh(["dvc", "repro"], repo, env)
    assert ran(third) == ["inputs"], third.stdout  # only the (always run) fingerprint of outside inputs
    status = sh(["dvc", "status"], repo, env).stdout
    assert status.split() == ["inputs:", "always", "changed"], status


def check_outside_inputs_are_dependencies(repo: Path, env: dict) -> None:
    """A replaced model.weights file re-runs train (not data); weights: none warns about a random backbone."""
    import torch

    params = yaml.safe_load((repo / "params.yaml").read_text())
    weights = Path(params["model"]["weights"])
    state = torch.load(weights, weights_only=True)
    torch.save({k: v + 0.01 for k, v in state.items()}, weights)  # the same path, other weights
    again = sh(["dvc", "repro", "train"], repo, env)
    assert ran(again) == ["inputs", "train"], again.stdout
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-qm", "results"], repo, env)
    out = sh(["dvc", "exp", "run", "-S", "model.weights=none", "train"], repo, env)
    assert "train" in ran(out) and "data" not in ran(out)
    assert (out.stdout + out.stderr).count("starts from RANDOM weights") == 1


def ran(proc: subprocess.CompletedProcess) -> list[str]:
    """The stages a ``dvc repro`` / ``dvc exp run`` ran, in order."""
    import re

    return re.findall(r"Running stage '(\w+)'", proc.stdout)
