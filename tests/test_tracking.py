import mlflow
import pandas as pd

from inviz.core.tracking import TrackingConfig, project_root, resolve_tracking_uri, stage_run


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
    assert "git_commit" in run.data.tags or True  # only inside a git checkout
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
    assert len(list(store.glob("mlartifacts/where/*/artifacts/*.csv"))) == 2 and not (other / "mlruns").exists()
