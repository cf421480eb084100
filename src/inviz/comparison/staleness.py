"""Which stages of a DVC run did not run on their current inputs (*stale*), read from its ``dvc.lock``.

A DVC experiment run up to a target (``dvc exp run … evaluate``) re-runs only the stages the target
needs; the other stages keep the baseline's lock entries and metrics files, and ``dvc exp show``
reports those metrics as if they were the experiment's. The ablation report
(:mod:`inviz.comparison.ablations`) blanks them, using :func:`stale_stages`.

A stage is stale when

- a dependency it recorded is the output of another stage and the two recorded hashes differ (the
  producer ran again after it, on other inputs), or
- a parameter it recorded differs from the run's params file, or
- a stage it depends on (directly, or through a file inside that stage's output folder) is stale.

This is the part of ``dvc status`` that a ``dvc.lock`` alone can answer (source files and external
data are not re-hashed here), so it works on any commit or experiment without checking it out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from inviz.core.config import lookup

_MISSING = object()


def _norm(path: str) -> str:
    return str(path).replace("\\", "/").rstrip("/").removeprefix("./")


def _canon(value: Any) -> Any:
    """Return a parameter value in one form whichever parser read it.

    ``1e-07`` is a string for PyYAML and a float for DVC; JSON turns mapping keys into strings.
    """
    if isinstance(value, Mapping):
        return {str(k): _canon(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canon(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def producers(lock: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """Every output path of ``lock`` -> (the stage writing it, its recorded md5).

    Parameters
    ----------
    lock : a parsed ``dvc.lock`` (``{"schema": "2.0", "stages": {name: {deps, outs, params}}}``).
    """
    out: dict[str, tuple[str, str | None]] = {}
    for name, stage in (lock.get("stages") or {}).items():
        for o in (stage or {}).get("outs") or []:
            out[_norm(o["path"])] = (name, o.get("md5"))
    return out


def _upstream(path: str, made: Mapping[str, tuple[str, str | None]]) -> tuple[str, str | None, bool] | None:
    """Return (producer, its md5, exact path?) of a dependency: the output itself or a folder holding it."""
    if path in made:
        return (*made[path], True)
    for out, (stage, _) in made.items():
        if path.startswith(out + "/"):
            return stage, None, False
    return None


def _own_reason(
    stage: Mapping[str, Any],
    made: Mapping[str, tuple[str, str | None]],
    params: Mapping[str, Any] | None,
    params_file: str,
) -> str | None:
    """Why one stage is stale by its own record (a changed input or parameter), or None."""
    for dep in stage.get("deps") or []:
        up = _upstream(_norm(dep["path"]), made)
        if up and up[2] and up[1] != dep.get("md5"):
            return f"its input {dep['path']} changed when {up[0]} ran again"
    if params is not None:
        for key, value in ((stage.get("params") or {}).get(params_file) or {}).items():
            now = lookup(params, key, _MISSING)
            if now is _MISSING or _canon(now) != _canon(value):
                return f"it ran with another {params_file} value of {key}"
    return None


def stale_stages(
    lock: Mapping[str, Any], params: Mapping[str, Any] | None = None, params_file: str = "params.yaml"
) -> dict[str, str]:
    """Return the stale stages of a run and why, in the lock's order.

    Parameters
    ----------
    lock : the run's parsed ``dvc.lock``.
    params : the run's parsed params file (``None``: parameters are not compared).
    params_file : the params file's name as the lock records it.

    Returns
    -------
    dict stage name -> reason (one sentence fragment: ``"its input data/extract changed when extract
    ran again"``, ``"it ran with another params.yaml value of extract.k_min"``, ``"it depends on the
    stale stage labels_simulate"``). Stages that are up to date are absent.
    """
    stages = lock.get("stages") or {}
    made = producers(lock)
    reasons: dict[str, str] = {}
    for name, stage in stages.items():
        why = _own_reason(stage or {}, made, params, params_file)
        if why:
            reasons[name] = why
    upstream = {
        name: {
            up[0]
            for dep in (stage or {}).get("deps") or []
            if (up := _upstream(_norm(dep["path"]), made)) and up[0] != name
        }
        for name, stage in stages.items()
    }
    changed = True
    while changed:  # propagate down the pipeline until nothing changes
        changed = False
        for name in stages:
            if name not in reasons:
                bad = sorted(upstream[name] & set(reasons))
                if bad:
                    reasons[name] = f"it depends on the stale stage {bad[0]}"
                    changed = True
    return {name: reasons[name] for name in stages if name in reasons}


def blank_stale(
    row: dict[str, Any],
    sources: Mapping[str, Sequence[str]],
    lock: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
) -> str:
    """Set to None the values of ``row`` that a stale stage wrote; say which stages and why.

    Parameters
    ----------
    row : column -> value, changed in place. A column ``<prefix>.<name>`` counts as ``name``.
    sources : metrics file (as the lock names it) -> the columns read from it.
    lock, params : the run's parsed ``dvc.lock`` and params file (:func:`stale_stages`).

    Returns
    -------
    str, ``"<stage>: <reason>"`` per stale stage that wrote one of ``sources``, ``"; "``-joined
    (empty when none).
    """
    stale, made, notes = stale_stages(lock, params), producers(lock), []
    for path, cols in sources.items():
        stage = made.get(_norm(path), (None, None))[0]
        if stage in stale:
            for col in row:
                if col.rsplit(".", 1)[-1] in cols:
                    row[col] = None
            notes.append(f"{stage}: {stale[stage]}")
    return "; ".join(notes)


def read_locks(revs: Iterable[str], folder: str | Path) -> dict[str, dict[str, Any]]:
    """Read the ``dvc.lock`` of each run (``git show <rev>:./dvc.lock``; ``workspace``: the file).

    Parameters
    ----------
    revs : git revisions (commits and experiment commits of ``dvc exp show``) and/or ``"workspace"``.
    folder : the DVC project's folder (where its ``dvc.lock`` lives).

    Returns
    -------
    dict rev -> parsed lock; revisions without a lock (a commit before the first run) are absent.
    """
    import subprocess

    import yaml

    folder = Path(folder)
    locks = {}
    for rev in dict.fromkeys(str(r) for r in revs):
        if rev == "workspace":
            text = (folder / "dvc.lock").read_text() if (folder / "dvc.lock").is_file() else ""
        else:
            out = subprocess.run(
                ["git", "show", f"{rev}:./dvc.lock"], cwd=folder, text=True, capture_output=True, check=False
            )
            text = out.stdout if out.returncode == 0 else ""
        lock = yaml.safe_load(text) if text else None
        if isinstance(lock, dict):
            locks[rev] = lock
    return locks
