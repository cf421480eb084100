"""Ablation sweeps over DVC experiments: definitions, the ``dvc exp`` commands, and the comparison report.

The method has thresholds and cluster counts users want to vary (docs/method.md §1). A *sweep* is a
list of *variants*, each a set of ``params.yaml`` overrides run as one DVC experiment
(``dvc exp run --queue -S key=value … <target>``, then ``dvc queue start``). :data:`SWEEPS` holds
the ready ones; ``experiments/ablations.py`` queues and runs them and calls :func:`collect` and
:func:`write_report` on ``dvc exp show --json``.

:func:`collect` turns the experiments into one row each: name, sweep and variant (from the
experiment name ``abl-<sweep>-<variant>``), the swept parameter values, and the outcomes —
Table 1 aggregates (mean over layers of leftover clusters / feature maps / weight, and per
layer), cluster-map counts, label outcomes (maps labelled, merged maps, closed-loop accuracy
on the synthetic demo) and explanation quality (the ``evaluate`` stage's headline:
concept-deletion rho, beat-random rate, completeness, INV's deletion AUC and pointing game;
:data:`QUALITY`). It keeps the current baseline and the experiments run on it (or on a commit with
the same results), and blanks the outcomes of stages an experiment did not run (their metrics files
are an older run's; :mod:`inviz.comparison.staleness` reads that from each run's ``dvc.lock``).
:func:`write_report` writes ``ablations.csv``, ``ablations.md`` and one
seaborn figure per sweep (each outcome against the variant, the baseline marked).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from inviz.comparison.staleness import Listing, blank_stale

#: the paper's channel-count threshold rule (``extract.threshold.by_channels``), scaled by the threshold sweep
_RULE = [[512, 0.175], [256, 0.35], [128, 0.7], [64, 1.4]]
_BELOW = 76.8


def _scaled(f: float) -> dict[str, Any]:
    return {
        "extract.threshold.by_channels": [[c, round(t * f, 6)] for c, t in _RULE],
        "extract.threshold.below": round(_BELOW * f, 6),
    }


@dataclass(frozen=True)
class Variant:
    """One experiment of a sweep: ``name`` (short, used in the experiment name) and its overrides."""

    name: str
    overrides: Mapping[str, Any]
    label: str = ""


#: sweep name -> (what it varies, variants). The baseline is the committed params file.
SWEEPS: dict[str, tuple[str, tuple[Variant, ...]]] = {
    "threshold": (
        "feature-map threshold: the channel-count rule scaled, or no threshold",
        (
            Variant("x0.5", _scaled(0.5), "rule x0.5"),
            Variant("x2", _scaled(2.0), "rule x2"),
            Variant("x4", _scaled(4.0), "rule x4"),
            Variant("none", {"extract.threshold.rule": "none"}, "no threshold"),
        ),
    ),
    "prune": ("cluster pruning on/off", (Variant("off", {"extract.prune": False}, "no pruning"),)),
    "k_range": (
        "cluster counts tried by the silhouette",
        (
            Variant("2-6", {"extract.k_min": 2, "extract.k_max": 6}, "k 2-6"),
            Variant("4-10", {"extract.k_min": 4, "extract.k_max": 10}, "k 4-10"),
        ),
    ),
    "weights": (
        "channel weights: guided (code) vs Grad-CAM (paper text)",
        (Variant("gradcam", {"extract.weights": "gradcam"}, "Grad-CAM weights"),),
    ),
    "embedding": (
        "t-SNE vs Ward directly on the PCA scores",
        (Variant("pca", {"extract.embedding": "pca"}, "no t-SNE"),),
    ),
    "pca": (
        "PCA dimensions before t-SNE",
        (
            Variant("10", {"extract.pca_components": 10}, "PCA 10"),
            Variant("100", {"extract.pca_components": 100}, "PCA 100"),
        ),
    ),
}

#: the outcome columns of :func:`collect`, with their axis labels
OUTCOMES: dict[str, str] = {
    "leftover_clusters": "leftover clusters (mean over layers)",
    "leftover_fmaps": "leftover fmaps % (mean over layers)",
    "leftover_weight": "leftover weight % (mean over layers)",
    "n_cluster_maps_kept": "kept cluster maps",
    "n_cluster_maps_labelled": "labelled cluster maps",
    "n_merged_maps": "merged cluster maps",
    "closed_loop_accuracy": "closed loop: top label names a covered part",
    # explanation quality (the ``evaluate`` stage's headline block, docs/method.md §8)
    "concept_rho": "concept deletion rho (w_C vs logit drop)",
    "beat_random_rate": "heaviest cluster beats random groups",
    "completeness": "completeness loss (0 = none)",
    "deletion_auc": "deletion AUC of INV",
    "pointing_game": "pointing game of INV",
}

#: the quality outcomes and their better direction (which variant explains best)
QUALITY: dict[str, str] = {
    "concept_rho": "higher",
    "beat_random_rate": "higher",
    "completeness": "lower",
    "deletion_auc": "lower",
    "pointing_game": "higher",
}

_EXP_NAME = re.compile(r"^abl-(?P<sweep>[a-z0-9_]+)-(?P<variant>.+)$")


def experiment_name(sweep: str, variant: Variant) -> str:
    """``abl-<sweep>-<variant>`` with characters DVC accepts in experiment names."""
    return "abl-" + re.sub(r"[^A-Za-z0-9_-]+", "_", f"{sweep}-{variant.name}")


def set_arguments(variant: Variant) -> list[str]:
    """``-S key=value`` arguments of ``dvc exp run`` (values as YAML flow scalars / lists)."""
    args = []
    for key, value in variant.overrides.items():
        args += ["-S", f"{key}={json.dumps(value) if not isinstance(value, str) else value}"]
    return args


def queue_commands(
    sweeps: Iterable[str], target: str | Sequence[str] | None = ("labels_analyze", "evaluate")
) -> list[list[str]]:
    """Build the ``dvc exp run --queue`` command of every variant of ``sweeps``.

    ``target``: the stage(s) each experiment runs up to (default: the label outcomes and the
    explanation quality), or None for the whole pipeline.
    """
    targets = [target] if isinstance(target, str) else list(target or [])
    cmds = []
    for sweep in sweeps:
        if sweep not in SWEEPS:
            raise KeyError(f"unknown sweep {sweep!r}; expected one of {', '.join(SWEEPS)}")
        for v in SWEEPS[sweep][1]:
            cmds.append(
                [
                    "dvc",
                    "exp",
                    "run",
                    "--queue",
                    "-n",
                    experiment_name(sweep, v),
                    *set_arguments(v),
                    *targets,
                ]
            )
    return cmds


# ----------------------------------------------------------------------------------------------
# dvc exp show --json -> one row per experiment


def exp_records(node: Any, parent: str | None = None, state: str | None = None) -> Iterable[dict[str, Any]]:
    """Every ``{rev, name, kind, parent, state, error, data}`` record of ``dvc exp show --json``, in order.

    ``kind`` is ``workspace``, ``commit`` (a baseline) or ``experiment``; ``parent`` is the commit an
    experiment was run on (a baseline's own rev); ``state`` the experiment's executor state
    (``success``, ``failed``, ``queued``, ``running``; None when DVC gives none) and ``error`` its
    error record, if any.
    """
    if isinstance(node, list):
        for item in node:
            yield from exp_records(item, parent, state)
    elif isinstance(node, dict):
        if "executor" in node:  # an experiment group: {executor, name, revs}
            state = (node.get("executor") or {}).get("state")
        data = node.get("data")
        rev = node.get("rev") or (data or {}).get("rev")
        if parent is None:  # a top-level entry: the workspace or a commit
            kind, base = ("workspace", "workspace") if rev == "workspace" else ("commit", rev or "?")
        else:
            kind, base = "experiment", parent
        if isinstance(data, dict) and ("params" in data or "metrics" in data):
            yield {
                "rev": rev,
                "name": node.get("name") or data.get("name"),
                "kind": kind,
                "parent": base,
                "state": state if kind == "experiment" else None,
                "error": node.get("error"),
                "data": data,
            }
        for key in ("experiments", "revs"):
            if node.get(key):
                yield from exp_records(node[key], base, state)


def _file_data(section: Mapping[str, Any] | None, path: str) -> dict[str, Any]:
    """Return the ``data`` of file ``path`` (relative to the repository root, as ``dvc exp show`` has it)."""
    for name, payload in (section or {}).items():
        if str(name).replace("\\", "/") == path and isinstance(payload, dict):
            return payload.get("data") or {}
    return {}


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    from inviz.core.config import lookup

    return lookup(d, dotted)


#: the metrics file (relative to the pipeline's folder) each outcome column comes from
SOURCES: dict[str, tuple[str, ...]] = {
    "metrics/extract.json": ("leftover_clusters", "leftover_fmaps", "leftover_weight", "n_cluster_maps_kept"),
    "metrics/labels_analyze.json": ("n_cluster_maps_labelled", "n_merged_maps", "closed_loop_accuracy"),
    "metrics/evaluate.json": tuple(QUALITY),
}


def _outcomes(data: Mapping[str, Any], folder: str) -> dict[str, Any]:
    """Return the outcome columns of one record (``None`` where its metrics file lacks them)."""
    ext = _file_data(data.get("metrics"), f"{folder}metrics/extract.json")
    lab = _file_data(data.get("metrics"), f"{folder}metrics/labels_analyze.json")
    quality = _file_data(data.get("metrics"), f"{folder}metrics/evaluate.json").get("headline") or {}
    row: dict[str, Any] = {}
    t1 = ext.get("table1") or {}
    for col in ("leftover_clusters", "leftover_fmaps", "leftover_weight"):
        vals = [v[col] for v in t1.values() if isinstance(v, Mapping) and v.get(col) is not None]
        row[col] = sum(vals) / len(vals) if vals else None
        for layer, v in t1.items():
            row[f"{layer}.{col}"] = v.get(col) if isinstance(v, Mapping) else None
    row["n_cluster_maps_kept"] = ext.get("n_cluster_maps_kept")
    row["n_cluster_maps_labelled"] = lab.get("n_cluster_maps_labelled")
    row["n_merged_maps"] = lab.get("n_merged_maps")
    row["closed_loop_accuracy"] = (lab.get("closed_loop") or {}).get("accuracy")
    for col in QUALITY:
        row[col] = quality.get(col)
    return row


def collect(
    exp_show: Any,
    keys: Sequence[str] | None = None,
    folder: str = "",
    locks: Mapping[str, Mapping[str, Any]] | None = None,
    current_only: bool = True,
    listing: Listing | None = None,
) -> pd.DataFrame:
    """One row per experiment (and the workspace / baseline commit) of ``dvc exp show --json``.

    Parameters
    ----------
    exp_show : the parsed output of ``dvc exp show --json`` (any ``--num`` / ``--all-commits``).
    keys : swept keys to report (default: every key of :data:`SWEEPS`).
    folder : the pipeline's folder relative to the repository root (``demo/`` when ``dvc exp show``
        lists the files by their repository paths).
    locks : rev (``workspace`` for the working tree) -> that run's parsed ``dvc.lock``. With it, the
        outcomes written by stages that did not run for the run's own inputs (an experiment run up
        to ``evaluate`` keeps the baseline's label metrics) are blanked and named in ``stale``.
    current_only : keep only the current baseline (the workspace, else the newest commit; the first
        of them without stale outcomes) and the experiments run on it or on a commit with the same
        results; what is left out is described in ``frame.attrs["left_out"]`` (list of str), as
        are failed, queued and running experiments (always left out: their metrics are not theirs).
    listing : folder listings from the DVC cache for the staleness check
        (:func:`inviz.comparison.staleness.cache_listing`).

    Returns
    -------
    DataFrame with ``name, rev, kind, baseline, sweep, variant, stale``, one column per swept key,
    the outcomes of :data:`OUTCOMES` and ``<layer>.<table1 column>`` per layer (``sweep`` is
    ``baseline`` for the workspace and commits, ``other`` for experiments not named by a sweep).
    """
    keys = list(keys or dict.fromkeys(k for _, vs in SWEEPS.values() for v in vs for k in v.overrides))
    rows, left_out, head = [], [], None
    for rec in exp_records(exp_show):
        data = rec["data"] or {}
        params = _file_data(data.get("params"), f"{folder}params.yaml")
        name = str(rec["name"] or rec["rev"] or "")
        head = head or (rec["rev"] if rec["kind"] == "commit" else None)
        if rec["kind"] == "experiment" and (rec["error"] or rec["state"] in ("failed", "queued", "running")):
            err = rec["error"]
            why = (err.get("msg") if isinstance(err, Mapping) else err) or rec["state"]
            left_out.append(
                f"`{name}`: {rec['state'] or 'failed'} ({why}); its metrics files are not its own"
            )
            continue
        m = _EXP_NAME.match(name) if rec["kind"] == "experiment" else None
        sweep = m["sweep"] if m else ("other" if rec["kind"] == "experiment" else "baseline")
        row: dict[str, Any] = {
            "name": name,
            "rev": rec["rev"],
            "kind": rec["kind"],
            "baseline": rec["parent"],
            "sweep": sweep,
            "variant": m["variant"] if m else name if sweep == "other" else "baseline",
        }
        for k in keys:
            v = _get(params, k)
            row[k] = json.dumps(v) if isinstance(v, (list, dict)) else v
        row.update(_outcomes(data, folder))
        if all(row[c] is None for c in OUTCOMES):
            continue  # nothing measured (a failed experiment, a commit before the first run)
        lock = (locks or {}).get(str(rec["rev"]))
        row["stale"] = blank_stale(row, SOURCES, lock, params or None, listing) if lock else ""
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame.attrs["left_out"] = left_out
        return frame
    if current_only:
        frame, other = _current(frame, head)
        left_out += other
    # the same baseline shows up as workspace and as its commit: keep one
    frame = frame.drop_duplicates(
        subset=[c for c in frame.columns if c not in ("name", "rev", "kind", "baseline")], keep="first"
    ).reset_index(drop=True)
    frame.attrs["left_out"] = left_out
    return frame


def _current(frame: pd.DataFrame, head: str | None) -> tuple[pd.DataFrame, list[str]]:
    """Keep the current baseline's rows; return them and one sentence per left-out baseline.

    Kept: the reference (the workspace, else the first commit; the first without stale outcomes),
    the commits with the same results and the experiments run on any of them, or on ``head`` (the
    checked-out commit) when it has no results of its own to compare.
    """
    bases = frame[frame["kind"] != "experiment"]
    if bases.empty:
        return frame, []
    fresh = bases[bases["stale"] == ""]  # a workspace left by `dvc exp run <stage>` is not a baseline
    ref = (fresh if len(fresh) else bases).iloc[0]
    results = [c for c in frame.columns if c in OUTCOMES or "." in c and c.split(".")[-1] in OUTCOMES]

    def same(row: pd.Series) -> bool:
        return all((pd.isna(row[c]) and pd.isna(ref[c])) or row[c] == ref[c] for c in results)

    ok = {r.rev for _, r in bases.iterrows() if r.kind == "commit" and same(r)}
    if head not in set(bases["rev"]):
        ok.add(head)
    keep = (frame["rev"] == ref["rev"]) | ((frame["kind"] == "experiment") & frame["baseline"].isin(ok))
    left_out = []
    for base, part in frame[~keep & (frame["kind"] == "experiment")].groupby("baseline", sort=False):
        left_out.append(
            f"{len(part)} experiment(s) run on commit {str(base)[:7]} ({', '.join(part['name'])}): "
            f"that baseline's results differ from the current one ({str(ref['name'])[:12]})"
        )
    return frame[keep].reset_index(drop=True), left_out


def _ordered(frame: pd.DataFrame, sweep: str) -> pd.DataFrame:
    """Return the rows of ``sweep`` in the order its variants are defined (unknown variants last)."""
    order = {
        experiment_name(sweep, v).split(f"abl-{sweep}-", 1)[1]: i
        for i, v in enumerate(SWEEPS.get(sweep, ("", ()))[1])
    }
    part = frame[frame["sweep"] == sweep]
    return part.iloc[sorted(range(len(part)), key=lambda i: order.get(part["variant"].iloc[i], len(order)))]


def sweep_figure(frame: pd.DataFrame, sweep: str) -> Any:
    """Each outcome against the variants of ``sweep`` (baseline first, in grey)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    from inviz.core.plotting import apply_style, palette

    apply_style()
    base = frame[frame["sweep"] == "baseline"].head(1)
    part = pd.concat([base, _ordered(frame, sweep)], ignore_index=True)
    labels = {v.name: (v.label or v.name) for v in SWEEPS.get(sweep, ("", ()))[1]}
    part = part.assign(
        variant=[
            ("baseline" if s == "baseline" else labels.get(v, v))
            for s, v in zip(part["sweep"], part["variant"], strict=True)
        ]
    )
    outcomes = [c for c in OUTCOMES if c in part and part[c].notna().any()]
    fig, axes = plt.subplots(1, len(outcomes), figsize=(1.9 * len(outcomes) + 0.4, 2.4), squeeze=False)
    colours = ["0.6"] + palette(max(1, len(part) - 1))[: len(part) - 1]
    for ax, col in zip(axes[0], outcomes, strict=True):
        sns.barplot(
            x=part["variant"],
            y=part[col].astype(float),
            hue=part["variant"],
            palette=colours[: len(part)],
            ax=ax,
            legend=False,
        )
        ax.set_title(OUTCOMES[col], fontsize=7)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.tick_params(axis="x", rotation=45, labelsize=6)
    fig.suptitle(f"ablation: {SWEEPS.get(sweep, (sweep,))[0]}", fontsize=8)
    fig.tight_layout()
    return fig


def report_markdown(frame: pd.DataFrame) -> str:
    """Render the comparison tables (one per sweep, the baseline first) as Markdown."""
    lines = [
        "# Ablations",
        "",
        "Each row is one DVC experiment (`dvc exp show`); outcomes are the Table 1 means over "
        "layers, cluster-map counts and label outcomes. "
        "Differences are to the baseline (the current results: the workspace, else the newest commit).",
        "",
    ]
    base = frame[frame["sweep"] == "baseline"].head(1)
    outcomes = [c for c in OUTCOMES if c in frame and frame[c].notna().any()]

    def num(v: float, signed: bool = False) -> str:
        v = float(v)
        text = f"{v:+.3g}" if signed else f"{v:.3g}"
        return (f"{v:+.0f}" if signed else f"{v:.0f}") if v == int(v) and abs(v) >= 100 else text

    for sweep in [s for s in SWEEPS if s in set(frame["sweep"])]:
        lines += [
            f"## {sweep}: {SWEEPS[sweep][0]}",
            "",
            "| variant | experiment | " + " | ".join(OUTCOMES[c] for c in outcomes) + " |",
            "|---|---|" + "---|" * len(outcomes),
        ]
        for r in pd.concat([base, _ordered(frame, sweep)]).itertuples():
            cells = []
            for c in outcomes:
                v = getattr(r, c)
                b = base[c].iloc[0] if len(base) else None
                if v is None or pd.isna(v):
                    cells.append("—")
                elif r.sweep != "baseline" and b is not None and pd.notna(b):
                    cells.append(f"{num(v)} ({num(float(v) - float(b), signed=True)})")
                else:
                    cells.append(num(v))
            lines.append(f"| {r.variant} | `{r.name}` | " + " | ".join(cells) + " |")
        lines.append("")
    best = best_variants(frame)
    if best:
        lines += ["## Which variant explains best", "", *[f"- {b}" for b in best], ""]
    notes = report_notes(frame)
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def report_notes(frame: pd.DataFrame) -> list[str]:
    """One sentence per kind of blanked (stale) result and per left-out run (:func:`collect`)."""
    groups: dict[str, list[str]] = {}
    for r in frame.itertuples():
        stale = getattr(r, "stale", "")
        if isinstance(stale, str) and stale:
            groups.setdefault(stale, []).append(f"`{r.name}`")
    notes = []
    for stale, names in groups.items():
        stages = [s.split(": ", 1)[0] for s in stale.split("; ")]
        one = len(stages) == 1
        whose = "this run's" if len(names) == 1 else "these runs'"
        notes.append(
            f"{', '.join(names)}: the outcomes of {', '.join(stages)} are left blank (—): "
            f"{'that stage' if one else 'these stages'} did not run on {whose} inputs ({stale}), so "
            f"{'its metrics file is' if one else 'their metrics files are'} an older run's. Run with "
            f"{'it' if one else 'them'} among the targets to fill them."
        )
    return notes + [f"Left out: {t}" for t in frame.attrs.get("left_out", [])]


def best_variants(frame: pd.DataFrame) -> list[str]:
    """One sentence per quality outcome: the best experiment (baseline included) and the baseline's value.

    Parameters
    ----------
    frame : the output of :func:`collect`.

    Returns
    -------
    list of str (empty without quality outcomes).
    """
    out = []
    for col, better in QUALITY.items():
        if col not in frame or frame[col].isna().all():
            continue
        values = frame[col].astype(float)
        i = values.idxmax() if better == "higher" else values.idxmin()
        base = frame.loc[frame["sweep"] == "baseline", col].astype(float)
        name = (
            "baseline"
            if frame.loc[i, "sweep"] == "baseline"
            else f"{frame.loc[i, 'sweep']} {frame.loc[i, 'variant']}"
        )
        text = f"{OUTCOMES[col]} ({better} is better): best {name} ({values[i]:.3g})"
        out.append(text + (f"; baseline {base.iloc[0]:.3g}" if len(base) and pd.notna(base.iloc[0]) else ""))
    return out


def write_report(frame: pd.DataFrame, out: str | Path) -> list[Path]:
    """``ablations.csv``, ``ablations.md`` and ``<sweep>.png/.pdf`` per sweep with results, into ``out``."""
    from inviz.core.io import atomic_path, save_figure, write_csv, write_text
    from inviz.core.plotting import close

    written = []
    with atomic_path(out, directory=True) as tmp:
        write_csv(tmp / "ablations.csv", frame)
        write_text(tmp / "ablations.md", report_markdown(frame))
        for sweep in [s for s in SWEEPS if s in set(frame.get("sweep", []))]:
            fig = sweep_figure(frame, sweep)
            save_figure(fig, tmp / f"{sweep}.png", formats=("png", "pdf"))
            close(fig)
            written.append(Path(out) / f"{sweep}.png")
    return [Path(out) / "ablations.csv", Path(out) / "ablations.md", *written]
