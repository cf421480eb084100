from pathlib import Path

import mlflow
import pandas as pd

from inviz.core.tracking import (
    TrackingConfig,
    git_commit,
    pipeline_run_id,
    project_root,
    resolve_tracking_uri,
    stage_run,
)


def test_project_root_inside_dvc_temp_copy(tmp_path):
    (tmp_path / "proj" / ".dvc").mkdir(parents=True)
    temp_copy = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpabc123" / "demo"
    temp_copy.mkdir(parents=True)
    (temp_copy.parent / ".dvc").mkdir()
    assert project_root(temp_copy) == tmp_path / "proj"
    assert project_root(tmp_path / "proj" / "demo") == tmp_path / "proj"


def test_uri_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / ".dvc").mkdir()
    assert resolve_tracking_uri(TrackingConfig(), tmp_path) == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://server:5000")
    assert resolve_tracking_uri(TrackingConfig(), tmp_path) == "http://server:5000"
    assert resolve_tracking_uri(TrackingConfig(tracking_uri="sqlite:///x.db"), tmp_path) == "sqlite:///x.db"


def test_stage_run_logs_params_metrics_tags(tracking_uri, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-test")
    with stage_run("unit", TrackingConfig(experiment="t"), {"a": {"b": 2}}) as tr:
        tr.log_metrics({"acc": 0.5, "nested": {"x": 1}, "skip": "text"})
        tr.log_table(pd.DataFrame({"c": [1]}), "tables/t.csv")
        run_id = tr.run_id
    run = mlflow.get_run(run_id)
    assert run.data.params["a.b"] == "2"
    assert run.data.metrics == {"acc": 0.5, "nested.x": 1.0}
    assert run.data.tags["stage"] == "unit" and run.data.tags["dvc_exp_name"] == "exp-test"
    if git_commit() is not None:  # the test-suite runs inside the project's git checkout
        assert run.data.tags["git_commit"] == git_commit()
    arts = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "tables")]
    assert arts == ["tables/t.csv"]


def test_disabled_tracking_is_noop():
    with stage_run("unit", TrackingConfig(enabled=False)) as tr:
        tr.log_metrics({"a": 1})
        assert not tr.enabled and tr.run_id is None


def test_artifacts_go_next_to_the_sqlite_store_not_the_working_dir(tmp_path, monkeypatch):
    store = tmp_path / "store"
    store.mkdir()
    work = tmp_path / "pipeline"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    with stage_run("unit", TrackingConfig(experiment="where")) as tr:
        tr.log_table(pd.DataFrame({"c": [1]}), "t.csv")
    assert list(store.glob("mlartifacts/where/*/artifacts/t.csv"))
    assert not (work / "mlruns").exists()
    # a second stage run in another folder reuses the experiment
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    with stage_run("unit2", TrackingConfig(experiment="where")) as tr:
        tr.log_table(pd.DataFrame({"c": [2]}), "u.csv")
    assert (
        len(list(store.glob("mlartifacts/where/*/artifacts/*.csv"))) == 2 and not (other / "mlruns").exists()
    )


def test_stage_runs_of_one_pipeline_execution_share_a_parent(tracking_uri, monkeypatch):
    monkeypatch.setenv("INVIZ_PIPELINE_RUN", "run-1")
    ids = []
    for stage in ("data", "train"):
        with stage_run(stage, TrackingConfig(experiment="nested")) as tr:
            ids.append(tr.run_id)
    monkeypatch.setenv("INVIZ_PIPELINE_RUN", "run-2")
    with stage_run("data", TrackingConfig(experiment="nested")) as tr:
        other = tr.run_id
    runs = [mlflow.get_run(i) for i in ids]
    parents = {r.data.tags["mlflow.parentRunId"] for r in runs}
    assert len(parents) == 1 and {r.data.tags["inviz.pipeline_run"] for r in runs} == {"run-1"}
    parent = mlflow.get_run(parents.pop())
    assert parent.data.tags["inviz.kind"] == "pipeline" and parent.info.status == "FINISHED"
    assert mlflow.get_run(other).data.tags["mlflow.parentRunId"] != parent.info.run_id


def test_no_pipeline_id_outside_a_pipeline(monkeypatch):
    monkeypatch.delenv("INVIZ_PIPELINE_RUN", raising=False)
    assert pipeline_run_id() is None  # pytest does not run under dvc


def test_stage_run_starts_when_the_stage_started(tracking_uri):
    import time

    from inviz.core import tracking

    started = time.time() - 120
    tracking.mark_stage_start(started)
    try:
        with stage_run("slow", TrackingConfig(experiment="t")) as tr:
            run_id = tr.run_id
    finally:
        tracking._stage_started = None
    info = mlflow.get_run(run_id).info
    assert abs(info.start_time - 1000 * started) < 1000
    assert info.end_time - info.start_time >= 119_000


def _log_table_run(monkeypatch, store: Path, experiment: str, name: str) -> str:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")
    with stage_run("unit", TrackingConfig(experiment=experiment)) as tr:
        tr.log_table(pd.DataFrame({"c": [1]}), name)
        return tr.run_id


def test_a_moved_project_keeps_its_artifacts_in_its_own_folder(tmp_path, monkeypatch):
    """MLflow records absolute artifact paths: a moved/copied store is re-pointed at its own folder."""
    import shutil

    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    monkeypatch.chdir(tmp_path)
    first = _log_table_run(monkeypatch, old, "moving", "t.csv")
    shutil.move(old, new)
    second = _log_table_run(monkeypatch, new, "moving", "u.csv")
    assert not old.exists(), "nothing is written into the old folder"
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{new / 'mlflow.db'}")
    exp = client.get_experiment_by_name("moving")
    assert exp.artifact_location == (new / "mlartifacts" / "moving").as_uri()
    for run_id, name in ((first, "t.csv"), (second, "u.csv")):
        run = client.get_run(run_id)
        assert run.info.artifact_uri.startswith((new / "mlartifacts").as_uri() + "/")
        assert [f.path for f in client.list_artifacts(run_id)] == [name]


def test_log_figure_logs_the_saved_file_instead_of_rendering_again(tracking_uri, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from inviz.core.io import save_figure

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    saved = save_figure(fig, tmp_path / "drawn.png")[0]
    renders = []
    draw = fig.savefig
    monkeypatch.setattr(fig, "savefig", lambda *a, **k: (renders.append(a), draw(*a, **k)))
    with stage_run("unit", TrackingConfig(experiment="figs")) as tr:
        tr.log_figure(fig, "plots/other_name.png", saved=saved)  # logged under the artifact's name
        tr.log_figure(fig, "drawn.png", saved=saved)
        assert renders == []
        tr.log_figure(fig, "plots/missing.png", saved=tmp_path / "not_written.png")  # falls back: renders
        assert len(renders) == 1
        run_id = tr.run_id
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == [
        "plots/missing.png",
        "plots/other_name.png",
    ]
    got = Path(client.download_artifacts(run_id, "plots/other_name.png", str(tmp_path / "dl")))
    assert got.read_bytes() == saved.read_bytes()
    assert Path(client.download_artifacts(run_id, "drawn.png", str(tmp_path / "dl2"))).read_bytes() == (
        saved.read_bytes()
    )
