"""End to end: the demo pipeline through DVC, at a reduced size, in a fresh git+DVC repository.

Checks that every stage runs offline, metrics reach `dvc metrics show`, runs reach MLflow,
a second `dvc repro` re-runs nothing and `dvc exp run -S train.seed=…` works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

#: demo/params.yaml values replaced to keep the run short (dotted keys)
OVERRIDES = {
    "data.synthetic.n_train_per_class": 24,
    "data.synthetic.n_val_per_class": 12,
    "train.phases": [{"name": "all", "trainable": ["all"], "lr": 5.0e-4, "max_epochs": 2, "patience": 2}],
    "select.per_class": 1,
    "select.on_shortfall": "warn",
    # the 2-epoch model selects few images: one survey image, few LIME/SHAP samples
    "survey.n_images": 1,
    "survey.lime_samples": 40,
    "survey.shap_samples": 8,
    "survey.shap_background": 8,
    "global.tcav.n_runs": 5,
    "figures.dpi": 60,
    # explanation quality on a few images, short curves (the measures are tested in tests/test_quality_*)
    "evaluate.concept.n_images": 3,
    "evaluate.pixel.n_images": 2,
    "evaluate.pixel.steps": 10,
    "evaluate.road.n_images": 2,
    "evaluate.sanity.n_images": 1,
    "evaluate.localization.n_images": 2,
}


def set_key(params: dict, dotted: str, value) -> None:
    node = params
    *parents, last = dotted.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value


def run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    # the Sentence-BERT model assembled by `make install` (a code dependency of labels_analyze)
    (repo / "models").mkdir()
    (repo / "models" / "sbert").symlink_to(ROOT / "models" / "sbert", target_is_directory=True)
    params = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())
    params["root"] = "."
    for key, value in OVERRIDES.items():
        set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("mlflow.db\n")
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "config", "core.analytics", "false"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "init"], repo, env)
    first = run(["dvc", "repro"], repo, env)
    return repo, env, first


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_pipeline_runs_offline(demo_repo):
    import pandas as pd

    repo, env, first = demo_repo
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for stage in stages:
        assert f"Running stage '{stage}'" in first.stdout, stage
    for path in [
        "data/index.csv",
        "data/parts.npz",
        "models/model.safetensors",
        "data/selected.csv",
        "reports/train/confusion.png",
        "reports/train/history.csv",
        "reports/table1.csv",
        "data/masks.csv",
        "data/labels/inv.csv",
        "reports/table2/table2_tests.csv",
        "reports/inv/index.csv",
        "reports/global/global.csv",
        "reports/explorer/index.html",
        "reports/survey/questionnaire.md",
        "reports/paper_comparison.md",
    ]:
        assert (repo / path).is_file(), path
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env).stdout)
    flat = json.dumps(metrics)
    for key in (
        "n_images",
        "val_accuracy",
        "n_selected",
        "n_clusters",
        "n_files",
        "n_cluster_maps_labelled",
        "n_figures",
        "n_labels",
        "n_cards",
        "n_panels",
    ):
        assert f'"{key}"' in flat, key
    # a 2-epoch model classifies few test images right: selection takes only correct ones, at most
    # one per class, and reports the shortfall of the rest
    sel = pd.read_csv(repo / "data/selected.csv")
    report = json.loads((repo / "metrics/select.json").read_text())
    assert len(sel) == report["n_selected"] >= 1
    assert (sel["pred"] == sel["label"]).all() and sel["label"].is_unique
    assert report["n_selected"] + report["shortfall"] == 10
    # every selected image was explained on every layer
    ext = json.loads((repo / "metrics/extract.json").read_text())
    assert ext["n_images"] == len(sel) and sum(ext["status_counts"].values()) == 9 * len(sel)


@pytest.mark.e2e
@pytest.mark.slow
def test_second_repro_reruns_nothing(demo_repo):
    repo, env, _ = demo_repo
    status = run(["dvc", "status"], repo, env).stdout
    assert "up to date" in status, status
    again = run(["dvc", "repro"], repo, env).stdout
    assert "Running stage" not in again, again


@pytest.mark.e2e
@pytest.mark.slow
def test_runs_are_in_mlflow(demo_repo):
    import mlflow

    repo, env, _ = demo_repo
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(
        yaml.safe_load((repo / "params.yaml").read_text())["mlflow"]["experiment"]
    )
    runs = client.search_runs([exp.experiment_id])
    stages = {r.data.tags.get("stage") for r in runs}
    assert {"data", "train", "select"} <= stages
    train = next(r for r in runs if r.data.tags["stage"] == "train")
    assert "val_accuracy" in train.data.metrics and train.data.tags.get("git_commit")
    assert train.data.params["train.seed"] == str(
        yaml.safe_load((repo / "params.yaml").read_text())["train"]["seed"]
    )
    # the stage runs of the first `dvc repro` form one pipeline execution, nested under one parent run
    stage_runs = [r for r in runs if r.data.tags.get("inviz.kind") != "pipeline"]
    first = [r for r in stage_runs if r.data.tags.get("dvc_exp_name", "") == ""]
    pipeline_ids = {r.data.tags.get("inviz.pipeline_run") for r in first}
    assert len(pipeline_ids) == 1 and None not in pipeline_ids, pipeline_ids
    parent_ids = {r.data.tags.get("mlflow.parentRunId") for r in first}
    assert len(parent_ids) == 1
    parent = client.get_run(parent_ids.pop())
    assert (
        parent.data.tags["inviz.kind"] == "pipeline"
        and parent.data.tags["inviz.pipeline_run"] in pipeline_ids
    )
    # a stage run lasts as long as its stage (it starts with the stage, not at the logging step)
    tr = next(r for r in first if r.data.tags["stage"] == "train")
    assert tr.info.end_time - tr.info.start_time > 1000


@pytest.mark.e2e
@pytest.mark.slow
def test_dvc_experiment_with_other_seed(demo_repo):
    repo, env, _ = demo_repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "lock"], repo, env)
    out = run(["dvc", "exp", "run", "-S", "train.seed=7", "train"], repo, env).stdout
    assert "Running stage 'train'" in out and "Running stage 'data'" not in out
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    seeds = [data["params"]["params.yaml"]["data"]["train"]["seed"] for data in _exp_data(shown)]
    base = yaml.safe_load((repo / "params.yaml").read_text())["train"]["seed"]
    assert 7 in seeds and base in seeds and base != 7, seeds


def _exp_data(node):
    """Every ``data`` record (workspace, baseline, experiments) of ``dvc exp show --json``."""
    if isinstance(node, dict):
        if "params" in node and isinstance(node["params"], dict):
            yield node
        for value in node.values():
            yield from _exp_data(value)
    elif isinstance(node, list):
        for value in node:
            yield from _exp_data(value)
