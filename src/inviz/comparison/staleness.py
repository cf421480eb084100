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

This is the part of ``dvc status`` that a ``dvc.lock`` (plus the DVC cache's folder listings, for
a file inside another stage's output folder) can answer: source files and external data are not
re-hashed, parameters of other params files and frozen stages are not checked. It works on any
commit or experiment without checking it out. Locks are parsed as YAML 1.2, as DVC writes them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
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
        value = float(value)
    elif isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    return "nan" if isinstance(value, float) and math.isnan(value) else value  # NaN equals itself here


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


def _upstream(path: str, made: Mapping[str, tuple[str, str | None]]) -> tuple[str, str | None, str] | None:
    """Return (producer, its md5, path inside its output) of a dependency (``""``: the output itself)."""
    if path in made:
        return (*made[path], "")
    for out, (stage, md5) in made.items():
        if path.startswith(out + "/"):
            return stage, md5, path[len(out) + 1 :]
    return None


def _inputs(stage: Mapping[str, Any], made: Mapping[str, tuple[str, str | None]]) -> set[str]:
    """Return the stages whose outputs ``stage`` reads (an output, a file in one, a folder holding some)."""
    ups = set()
    for dep in stage.get("deps") or []:
        path = _norm(dep["path"])
        up = _upstream(path, made)
        if up:
            ups.add(up[0])
        ups |= {producer for out, (producer, _) in made.items() if out.startswith(path + "/")}
    return ups


#: a ``.dir`` hash -> {path inside the folder: md5}, or None where the listing is not available
Listing = Callable[[str], "Mapping[str, str] | None"]


def _own_reason(
    stage: Mapping[str, Any],
    made: Mapping[str, tuple[str, str | None]],
    params: Mapping[str, Any] | None,
    params_file: str,
    listing: Listing | None,
) -> str | None:
    """Why one stage is stale by its own record (a changed input or parameter), or None."""
    for dep in stage.get("deps") or []:
        up = _upstream(_norm(dep["path"]), made)
        if up is None:
            continue
        producer, md5, inner = up
        if not inner:
            now = md5
        else:  # a file inside a folder output: its hash from the folder's listing, when the cache has it
            files = listing(md5) if listing is not None and md5 else None
            if files is None:
                continue
            now = files.get(inner)
        if now != dep.get("md5"):
            return f"its input {dep['path']} changed when {producer} ran again"
    if params is not None:
        for key, value in ((stage.get("params") or {}).get(params_file) or {}).items():
            now = lookup(params, key, _MISSING)
            if now is _MISSING or _canon(now) != _canon(value):
                return f"it ran with another {params_file} value of {key}"
    return None


def stale_stages(
    lock: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    params_file: str = "params.yaml",
    listing: Listing | None = None,
) -> dict[str, str]:
    """Return the stale stages of a run and why, in the lock's order.

    Parameters
    ----------
    lock : the run's parsed ``dvc.lock``.
    params : the run's parsed params file (``None``: parameters are not compared).
    params_file : the params file's name as the lock records it (other params files and frozen
        stages are not checked).
    listing : a folder output's file hashes from its ``.dir`` hash (:func:`cache_listing`), to check
        a dependency on a file inside another stage's output folder; without it (or when the cache
        lacks the listing) such a dependency is only followed for staleness upstream.

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
        why = _own_reason(stage or {}, made, params, params_file, listing)
        if why:
            reasons[name] = why
    upstream = {name: _inputs(stage or {}, made) - {name} for name, stage in stages.items()}
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
    listing: Listing | None = None,
) -> str:
    """Set to None the values of ``row`` that a stale stage wrote; say which stages and why.

    Parameters
    ----------
    row : column -> value, changed in place. A column ``<prefix>.<name>`` counts as ``name``.
    sources : metrics file (as the lock names it) -> the columns read from it.
    lock, params, listing : as in :func:`stale_stages`.

    Returns
    -------
    str, ``"<stage>: <reason>"`` per stale stage that wrote one of ``sources``, ``"; "``-joined
    (empty when none).
    """
    stale, made, notes = stale_stages(lock, params, listing=listing), producers(lock), []
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
        lock = _yaml12(text) if text else None
        if isinstance(lock, dict):
            locks[rev] = lock
    return locks


def _yaml12(text: str) -> Any:
    """Parse YAML as DVC writes it (YAML 1.2: ``yes`` and ``on`` stay strings, unlike PyYAML's 1.1)."""
    from ruamel.yaml import YAML

    return YAML(typ="safe", pure=True).load(text)


def cache_listing(folder: str | Path) -> Listing:
    """Return a :data:`Listing` reading the DVC cache of the project in ``folder`` (DVC 3 layout).

    Returns None for a hash whose listing is not in the cache (pulled elsewhere, garbage-collected).
    """
    root = Path(folder) / ".dvc" / "cache" / "files" / "md5"
    seen: dict[str, Mapping[str, str] | None] = {}

    def listing(md5: str) -> Mapping[str, str] | None:
        if md5 not in seen:
            path = root / md5[:2] / md5[2:]
            try:
                entries = json.loads(path.read_text())
                seen[md5] = {str(e["relpath"]).replace("\\", "/"): e["md5"] for e in entries}
            except (OSError, ValueError, KeyError, TypeError):
                seen[md5] = None
        return seen[md5]

    return listing
