"""MLflow glue: one MLflow run per pipeline-stage execution.

The files a stage writes (declared in ``dvc.yaml``) are the primary copy; MLflow mirrors them so
runs can be browsed and compared in the MLflow UI. The tracking store is, in this order:

1. ``mlflow.tracking_uri`` in ``params.yaml`` when set,
2. the ``MLFLOW_TRACKING_URI`` environment variable (any tracking server),
3. ``sqlite:///<project root>/mlflow.db`` — an absolute path to the *original* checkout, also
   when DVC runs a queued experiment in a temporary copy under ``.dvc/tmp/exps/``.

Runs are tagged with the git commit, the DVC experiment name (``DVC_EXP_NAME``) and the stage.
The stage runs of one pipeline execution (one ``dvc repro`` / ``dvc exp run``) share a pipeline-run
id (tag ``inviz.pipeline_run``) and are nested under one parent run named after it, so the MLflow
UI shows each execution of the pipeline as a whole (see :func:`pipeline_run_id`). A stage's run
starts when the stage starts (``inviz`` marks it), so its duration is the stage's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inviz.core.config import flatten

log = logging.getLogger(__name__)

_EXPS_MARKER = f"{os.sep}.dvc{os.sep}tmp{os.sep}exps{os.sep}"
#: environment variable that sets the pipeline-run id explicitly (``make demo`` / ``make reproduce`` do)
PIPELINE_RUN_ENV = "INVIZ_PIPELINE_RUN"
PIPELINE_TAG = "inviz.pipeline_run"
_stage_started: float | None = None


def mark_stage_start(when: float | None = None) -> None:
    """Record when the current stage started (``inviz`` calls it before running a stage)."""
    global _stage_started
    _stage_started = time.time() if when is None else when


def _dvc_ancestor() -> tuple[int, float] | None:
    """PID and start time of the ``dvc`` process (repro / exp run) this stage runs under, if any."""
    try:
        import psutil

        for proc in psutil.Process().parents():
            cmd = " ".join(proc.cmdline())
            if "dvc" in cmd and any(w in cmd.split() for w in ("repro", "exp", "queue")):
                return proc.pid, proc.create_time()
    except Exception as err:  # psutil missing, or a process vanished / not readable
        log.debug("no dvc ancestor process found (%s)", err)
    return None


def pipeline_run_id() -> str | None:
    """Return the id shared by the stage runs of one pipeline execution, or ``None`` outside a pipeline.

    ``$INVIZ_PIPELINE_RUN`` when set; otherwise derived from the ``dvc`` process that runs the
    stages (host, pid, start time) and the DVC experiment name, so two queued experiments served
    by one worker get different ids.
    """
    explicit = os.environ.get(PIPELINE_RUN_ENV)
    if explicit:
        return explicit
    dvc = _dvc_ancestor()
    if dvc is None:
        return None
    pid, started = dvc
    key = f"{socket.gethostname()}:{pid}:{started:.3f}:{os.environ.get('DVC_EXP_NAME', '')}"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started))
    return f"{stamp}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class TrackingConfig:
    """``mlflow`` section of ``params.yaml``.

    experiment : MLflow experiment name (one per pipeline profile, e.g. ``inviz-demo``).
    tracking_uri : explicit tracking URI; ``None`` → ``$MLFLOW_TRACKING_URI`` → local sqlite.
    enabled : turn MLflow logging off (files are written regardless).
    """

    experiment: str = "inviz"
    tracking_uri: str | None = None
    enabled: bool = True


def project_root(start: str | Path | None = None) -> Path:
    """Return the original project checkout that contains ``start`` (default: cwd).

    Inside a DVC temporary experiment copy (``<root>/.dvc/tmp/exps/...``) this is ``<root>``;
    otherwise the nearest ancestor holding a ``.dvc`` directory, else ``start`` itself.
    """
    start = Path(start or os.getcwd()).resolve()
    text = str(start) + os.sep
    if _EXPS_MARKER in text:
        return Path(text.split(_EXPS_MARKER, 1)[0])
    for cand in (start, *start.parents):
        if (cand / ".dvc").is_dir():
            return cand
    return start


def resolve_tracking_uri(cfg: TrackingConfig, start: str | Path | None = None) -> str:
    """Return the MLflow tracking URI.

    ``mlflow.tracking_uri`` when set, else ``$MLFLOW_TRACKING_URI``, else the SQLite store
    ``mlflow.db`` at the project root (:func:`project_root` of ``start``).
    """
    if cfg.tracking_uri:
        return cfg.tracking_uri
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{project_root(start) / 'mlflow.db'}"


def git_commit(cwd: str | Path | None = None) -> str | None:
    """Return the checked-out git commit of ``cwd`` (None outside a git checkout or without git)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


class Tracker:
    """Logs into one active MLflow run; every method is a no-op when tracking is disabled."""

    def __init__(self, run: Any | None, tracking_uri: str | None):
        self.run = run
        self.tracking_uri = tracking_uri

    @property
    def enabled(self) -> bool:
        """Whether a run is active (tracking enabled)."""
        return self.run is not None

    @property
    def run_id(self) -> str | None:
        """The active run's id (None when disabled)."""
        return self.run.info.run_id if self.run is not None else None

    def log_params(self, params: Mapping[str, Any], prefix: str = "") -> None:
        """Log nested ``params`` flattened to dotted keys (values cut to 6000 characters)."""
        if not self.enabled:
            return
        import mlflow

        flat = flatten(dict(params), prefix=f"{prefix}." if prefix else "")
        items = [(k, "" if v is None else str(v)[:6000]) for k, v in flat.items()]
        for i in range(0, len(items), 100):
            mlflow.log_params(dict(items[i : i + 100]))

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None, prefix: str = "") -> None:
        """Log the numeric values of nested ``metrics`` (dotted keys; booleans and text left out)."""
        if not self.enabled:
            return
        import mlflow

        flat = {
            (f"{prefix}." if prefix else "") + k.replace("/", "."): float(v)
            for k, v in flatten(dict(metrics)).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if flat:
            mlflow.log_metrics(flat, step=step)

    def log_figure(self, fig: Any, artifact_file: str, saved: str | Path | None = None) -> None:
        """Log a matplotlib figure as the image artifact ``artifact_file``.

        ``saved``: the file the figure was already written to (``save_figure``), logged as it is,
        under ``artifact_file``'s name: rendering a figure again costs as much as saving it (up to
        seconds for the large ones). Without it, or when that file is missing, the figure is rendered.
        """
        if not self.enabled:
            return
        import mlflow

        if saved is None or not Path(saved).is_file():
            mlflow.log_figure(fig, artifact_file)
            return
        target = Path(artifact_file)
        parent = None if str(target.parent) == "." else target.parent.as_posix()
        if Path(saved).name == target.name:
            mlflow.log_artifact(str(saved), artifact_path=parent)
            return
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / target.name
            shutil.copyfile(saved, copy)
            mlflow.log_artifact(str(copy), artifact_path=parent)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file or a folder's files (a missing path is skipped)."""
        if not self.enabled:
            return
        import mlflow

        path = Path(path)
        if path.is_dir():
            mlflow.log_artifacts(str(path), artifact_path=artifact_path)
        elif path.exists():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_table(self, frame: Any, artifact_file: str) -> None:
        """Log a DataFrame as a CSV artifact."""
        if not self.enabled:
            return
        import mlflow

        with tempfile.TemporaryDirectory() as tmp:
            name = Path(artifact_file).name
            target = Path(tmp) / name
            frame.to_csv(target, index=False)
            parent = str(Path(artifact_file).parent)
            mlflow.log_artifact(str(target), artifact_path=None if parent == "." else parent)


def _quiet_mlflow_logs() -> None:
    for name in ("alembic", "mlflow.store.db.utils", "mlflow.tracking.fluent", "mlflow.store"):
        logging.getLogger(name).setLevel(logging.WARNING)


def relocate_artifacts(db: Path) -> int:
    """Point a moved or copied local store's artifact locations at its own ``mlartifacts/``.

    MLflow records absolute artifact locations (per experiment and per run). A project folder that
    was moved or copied would keep writing into, and reading from, the old folder; this rewrites
    every ``file://<old dir>/mlartifacts/...`` location of the store ``<dir>/mlflow.db`` to
    ``file://<dir>/mlartifacts/...`` (the artifacts moved along with the folder).

    Parameters
    ----------
    db : Path
        The sqlite file of the store (``sqlite:///<db>``); nothing happens if it does not exist yet.

    Returns
    -------
    int
        The number of experiment and run rows rewritten.
    """
    import sqlite3

    db = db.resolve()
    if not db.is_file():
        return 0
    new_base = (db.parent / "mlartifacts").as_uri()
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as con, con:
        try:
            rows = con.execute("SELECT artifact_location FROM experiments").fetchall()
        except sqlite3.OperationalError:  # not an MLflow store (yet)
            return 0
        old_bases = {
            loc.split("/mlartifacts/")[0] + "/mlartifacts"
            for (loc,) in rows
            if loc and loc.startswith("file://") and "/mlartifacts/" in loc
        } - {new_base}
        changed = 0
        for old in old_bases:
            for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
                changed += con.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE substr({column}, 1, ?) = ?",
                    (new_base, len(old) + 1, len(old) + 1, old + "/"),
                ).rowcount
    if changed:
        log.info("MLflow store %s was moved: artifact locations now under %s", db, new_base)
    return changed


def _ensure_experiment(mlflow: Any, name: str, uri: str) -> None:
    """Select experiment ``name``, creating it first if needed.

    With a local ``sqlite:///<dir>/mlflow.db`` store, a new experiment keeps its artifacts in
    ``<dir>/mlartifacts/<name>`` (an absolute location): MLflow's default, ``./mlruns`` of the
    working directory, would scatter them over the pipeline folders and lose those of DVC's
    temporary experiment copies.
    """
    if uri.startswith("sqlite:///"):
        relocate_artifacts(Path(uri[len("sqlite:///") :]))
    if mlflow.get_experiment_by_name(name) is None and uri.startswith("sqlite:///"):
        location = Path(uri[len("sqlite:///") :]).resolve().parent / "mlartifacts" / name
        try:
            mlflow.create_experiment(name, artifact_location=location.as_uri())
        except Exception as err:  # created meanwhile by a concurrent stage: use it
            if mlflow.get_experiment_by_name(name) is None:
                raise
            log.debug("experiment %s created concurrently (%s)", name, err)
    mlflow.set_experiment(name)


def _parent_run(client: Any, experiment_id: str, pipeline_id: str) -> str:
    """Return the id of the parent run of pipeline execution ``pipeline_id`` (created on first use)."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_TAG}` = '{pipeline_id}' and tags.`inviz.kind` = 'pipeline'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    name = f"pipeline {os.environ.get('DVC_EXP_NAME') or pipeline_id}"
    run = client.create_run(
        experiment_id,
        run_name=name,
        tags={
            PIPELINE_TAG: pipeline_id,
            "inviz.kind": "pipeline",
            "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        },
    )
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


@contextlib.contextmanager
def stage_run(
    stage: str,
    cfg: TrackingConfig,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[Tracker]:
    """Open an MLflow run for one stage execution and yield a :class:`Tracker`.

    The run is tagged with ``stage``, ``git_commit`` (also MLflow's ``mlflow.source.git.commit``),
    ``dvc_exp_name`` and, inside a pipeline, ``inviz.pipeline_run`` (nested under that execution's
    parent run); ``params`` are logged flattened (``train.phases.0.lr``). The run's start time is
    the stage's (:func:`mark_stage_start`), not the moment of logging.

    Parameters
    ----------
    stage : str
        Stage name (the run's name).
    cfg : TrackingConfig
        The ``mlflow`` section.
    params : mapping, optional
        Parameters to log.
    tags : mapping, optional
        Extra tags.

    Yields
    ------
    Tracker
    """
    if not cfg.enabled:
        yield Tracker(None, None)
        return
    import mlflow

    _quiet_mlflow_logs()
    uri = resolve_tracking_uri(cfg)
    mlflow.set_tracking_uri(uri)
    _ensure_experiment(mlflow, cfg.experiment, uri)
    commit = git_commit()
    all_tags = {
        "stage": stage,
        "dvc_exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "cwd": os.getcwd(),
    }
    if commit:
        all_tags["git_commit"] = commit
        all_tags["mlflow.source.git.commit"] = commit
    all_tags.update(tags or {})
    client = mlflow.MlflowClient()
    experiment_id = mlflow.get_experiment_by_name(cfg.experiment).experiment_id
    pipeline_id = pipeline_run_id()
    if pipeline_id:
        all_tags[PIPELINE_TAG] = pipeline_id
        all_tags["mlflow.parentRunId"] = _parent_run(client, experiment_id, pipeline_id)
    start = int(1000 * (_stage_started if _stage_started is not None else time.time()))
    created = client.create_run(experiment_id, start_time=start, tags=all_tags, run_name=stage)
    with mlflow.start_run(run_id=created.info.run_id) as run:
        tracker = Tracker(run, uri)
        if params:
            tracker.log_params(params)
        log.info("MLflow run %s (%s) in %s", run.info.run_id, stage, uri)
        yield tracker
