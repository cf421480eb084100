"""The paper comparison report (``reports/paper_comparison.md``): our results next to the paper's.

:func:`paper_comparison` assembles, from the pipeline's outputs and the params file:

- the configuration the numbers come from (dataset, model and weights, demo or paper profile);
- Table 1 per layer, ours vs the paper's, with differences (:mod:`inviz.fmaps.table1`);
- Table 2 (means ± sd) vs the paper's and which of the paper's claims hold (:mod:`inviz.survey.table2`);
- other published facts (cluster-map count, TCAV on the global explanations, SUS/NASA-TLX);
- every known deviation between the paper text and the authors' code (docs/method.md), with the
  parameter that selects it and the value this run used (:data:`DEVIATIONS`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from inviz.core.config import ParamsError, get_key


@dataclass(frozen=True)
class Deviation:
    """A place where the paper text, the authors' code and/or this implementation differ.

    topic : what. paper : what the paper text says. code : what the authors' code does.
    key : the ``params.yaml`` key that selects the variant (``None``: not selectable).
    default : the value that reproduces the published tables (usually the code's).
    note : anything else a reader needs.
    """

    topic: str
    paper: str
    code: str
    key: str | None
    default: Any
    note: str = ""


#: docs/method.md's list of differences between the paper text and the authors' code (and our choices)
DEVIATIONS: tuple[Deviation, ...] = (
    Deviation(
        "Differentiated logit",
        "the predicted class's pre-softmax score",
        "notebook hard-codes class index 2 for every image (a bug)",
        "extract.target",
        "predicted",
        "inviz never hard-codes a class: predicted class by default, or the true label.",
    ),
    Deviation(
        "Channel weights",
        "Grad-CAM: spatial mean of the gradient; maps with w <= 0 removed",
        "guided: mean of grad * 1[A>0] * 1[grad>0]",
        "extract.weights",
        "guided",
    ),
    Deviation(
        "Weight normalisation",
        "unit normalisation (weights sum to 1)",
        "percent of the L1 sum (sum to 100)",
        "extract.normalisation",
        "percent",
        "Thresholds are in % of the layer's weight either way.",
    ),
    Deviation(
        "Feature-map threshold",
        "Table 1: <0.35 % (block3), <0.175 % (block4/5)",
        "rule by channel count: 0.175 (>=512), 0.35 (>=256), 0.7 (>=128), 1.4 (>=64), else 76.8/C",
        "extract.threshold.rule",
        "channels",
        "The rule reproduces the paper's values on VGG-16 and scales to narrower nets.",
    ),
    Deviation(
        "Cluster-map scaling",
        "weighted mean of the members' maps",
        "upsampled bilinearly to the input, min-max scaled, resized back",
        "extract.map_scaling",
        "code",
        "The raw weighted maps are always stored; the identity sum_C w_C A_C = sum_k w_k A_k holds on them.",
    ),
    Deviation(
        "Cluster pruning",
        "clusters with low weight are dropped",
        "th = max(max w_C / 3, mean w_C / 2)",
        "extract.prune",
        True,
    ),
    Deviation(
        "t-SNE with few maps",
        "perplexity 30",
        "perplexity 30 (scikit-learn refuses perplexity >= the number of points)",
        "extract.tsne.perplexity",
        30,
        "Lowered to (n - 1) / 3 when a layer keeps few maps.",
    ),
    Deviation(
        "Image preprocessing",
        "—",
        "Keras 'caffe' preprocessing (BGR, mean subtraction)",
        "model.mean",
        [0.485, 0.456, 0.406],
        "torchvision weights need torchvision's ImageNet mean/std.",
    ),
    Deviation(
        "Test split",
        "50 test images, 5 per class",
        "not published (Imagenette has train/val only)",
        "data.split.test_fraction",
        0.5,
        "A seeded, stratified half of val is the test pool; the rest drives early stopping.",
    ),
    Deviation(
        "Survey tests (Table 2)",
        "t-tests on the raw ratings (paired: everybody rated all methods)",
        "not published; only mean ± sd are",
        "table2.correction",
        "holm",
        "From summaries only Welch's t is possible; the paper names no multiple-comparison correction, "
        "inviz applies Holm.",
    ),
    Deviation(
        "TCAV gradient",
        "TCAV uses the gradient of the loss (paper §5.2)",
        "—",
        None,
        None,
        "captum's TCAV (used here) differentiates the class logit, as INV does; not selectable.",
    ),
)


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _param(params: Mapping[str, Any], key: str | None) -> Any:
    if key is None:
        return None
    try:
        return get_key(dict(params), key)
    except ParamsError:  # a key this params file does not have (e.g. an older file)
        return None


def deviations_table(params: Mapping[str, Any]) -> pd.DataFrame:
    """:data:`DEVIATIONS` with the value this run used (``ours``) and whether it is the default."""
    rows = []
    for d in DEVIATIONS:
        ours = _param(params, d.key)
        rows.append(
            {
                "topic": d.topic,
                "paper": d.paper,
                "authors_code": d.code,
                "param": d.key or "—",
                "default": d.default,
                "ours": ours,
                "is_default": ours == d.default,
                "note": d.note,
            }
        )
    return pd.DataFrame(rows)


#: the paper's experimental setting (docs/method.md §0-§5): params key -> the paper's value. A run whose
#: params differ in any of these is described by the differences, not called "the paper configuration".
PAPER_SETTINGS: dict[str, Any] = {
    "data.source": "imagenette",
    "model.arch": "vgg16",
    "model.width": 1.0,
    "model.weights": "imagenet",
    "model.input_size": 256,
    "model.head_hidden": 256,
    "model.dropout": 0.3,
    "train.batch_size": 32,
    "train.phases": [
        {"trainable": ["head"], "lr": 1.0e-3, "max_epochs": 200, "patience": 10},
        {
            "trainable": ["block5_conv1", "block5_conv2", "block5_conv3", "head"],
            "lr": 1.0e-5,
            "max_epochs": 200,
            "patience": 10,
        },
    ],
    "train.augment.enabled": True,
    "train.precision": "32-true",
    "select.per_class": 5,
    "extract.layers": [f"block{b}_conv{c}" for b in (3, 4, 5) for c in (1, 2, 3)],
    "survey.n_images": 4,
    "global.top_k": 5,
    "global.tcav.n_runs": 50,
    "global.tcav.min_examples": 20,
}


def _phases_view(phases: Any) -> Any:
    """Keep the phase fields the paper fixes (names and run settings left out), for comparison."""
    if not isinstance(phases, list):
        return phases
    keys = ("trainable", "lr", "max_epochs", "patience")
    return [{k: p.get(k) for k in keys} if isinstance(p, Mapping) else p for p in phases]


def _same(ours: Any, paper: Any) -> bool:
    if isinstance(paper, float) and isinstance(ours, int | float) and not isinstance(ours, bool):
        return math.isclose(float(ours), paper, rel_tol=1e-9)
    if isinstance(paper, list) and isinstance(ours, list) and len(ours) == len(paper):
        return all(_same(o, q) for o, q in zip(ours, paper, strict=True))
    if isinstance(paper, dict) and isinstance(ours, Mapping):
        return all(_same(ours.get(k), v) for k, v in paper.items())
    return ours == paper


def paper_differences(params: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """List the settings of ``params`` that differ from the paper's (:data:`PAPER_SETTINGS`).

    Returns
    -------
    list of (key, paper value, this run's value)
        In :data:`PAPER_SETTINGS` order; a key missing from ``params`` counts as ``None``.
    """
    out = []
    for key, paper in PAPER_SETTINGS.items():
        ours = _param(params, key)
        view = _phases_view(ours) if key == "train.phases" else ours
        if not _same(view, paper):
            out.append((key, paper, view))
    return out


def profile(params: Mapping[str, Any]) -> dict[str, Any]:
    """Describe what produced the numbers: dataset, model, weights, and how they differ from the paper's."""
    data = params.get("data", {}) or {}
    model = params.get("model", {}) or {}
    source = data.get("source", "imagenette")
    differences = paper_differences(params)
    return {
        "dataset": "Imagenette (320 px)"
        if source == "imagenette"
        else f"{source} (generated offline; see data.{source})",
        "model": f"{model.get('arch', 'vgg16')} width {model.get('width', 1.0)}, "
        f"input {model.get('input_size', 256)} px",
        "weights": model.get("weights", "imagenet"),
        "paper_setting": not differences,
        "differences": differences,
    }


def _short(value: Any, limit: int = 200) -> str:
    """``value`` as one line of YAML flow style (as it reads in params.yaml), in backticks, shortened."""
    import yaml

    flow = yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)
    text = "`" + flow.strip().removesuffix("...").strip() + "`"
    return text if len(text) <= limit else text[: limit - 2] + "…`"


def _table1_section(table1: pd.DataFrame | None) -> list[str]:
    from inviz.fmaps.table1 import compare_with_paper

    if table1 is None or table1.empty:
        return ["_No Table 1 (run the `extract` stage)._", ""]
    cmp = compare_with_paper(table1.set_index("layer"))
    lines = [
        "| layer | threshold ours / paper | clusters ours | paper | Δ | fmaps % ours | paper | Δ "
        "| weight % ours | paper | Δ |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for layer, r in cmp.iterrows():
        cells = [f"{r['threshold_ours']} / {r['threshold_paper'] or '—'}"]
        for col in ("leftover_clusters", "leftover_fmaps", "leftover_weight"):
            cells += [_fmt(r[f"{col}_ours"], 1), _fmt(r[f"{col}_paper"], 1), _fmt(r[f"{col}_diff"], 1)]
        lines.append(f"| {layer} | " + " | ".join(cells) + " |")
    mean_abs = {
        c: cmp[f"{c}_diff"].abs().mean() for c in ("leftover_clusters", "leftover_fmaps", "leftover_weight")
    }
    lines += [
        "",
        "Mean absolute difference over layers: "
        + ", ".join(f"{k.replace('leftover_', '')} {_fmt(v, 2)}" for k, v in mean_abs.items()),
        "",
    ]
    return lines


def _table2_section(table2: pd.DataFrame | None, claims: list[tuple[str, str]], source: str) -> list[str]:
    from inviz.survey.table2 import paper_table2

    if table2 is None or table2.empty:
        return ["_No Table 2 (run the `table2` stage)._", ""]
    paper = paper_table2().set_index(["method", "aspect"])
    ours = table2.set_index(["method", "aspect"])
    aspects = list(dict.fromkeys(table2["aspect"]))
    lines = [
        f"Input: {source}.",
        "",
        "| method | " + " | ".join(f"{a} ours (paper, Δ)" for a in aspects) + " |",
        "|---|" + "---|" * len(aspects),
    ]
    for method in dict.fromkeys(table2["method"]):
        cells = []
        for a in aspects:
            o = ours.loc[(method, a)]
            p = paper.loc[(method, a)] if (method, a) in paper.index else None
            if p is not None:
                cells.append(
                    f"{o['mean']:.2f} ± {o['sd']:.2f} ({p['mean']:.2f}, {o['mean'] - p['mean']:+.2f})"
                )
            else:
                cells.append(f"{o['mean']:.2f} ± {o['sd']:.2f} (—)")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if claims:
        lines += [
            "",
            "| claim of the paper | verdict here |",
            "|---|---|",
            *[f"| {c} | {v} |" for c, v in claims],
        ]
    return [*lines, ""]


def paper_comparison(
    params: Mapping[str, Any],
    table1: pd.DataFrame | None,
    table2: pd.DataFrame | None,
    claims: list[tuple[str, str]],
    metrics: Mapping[str, Mapping[str, Any]],
    table2_source: str = "the paper's published summaries (Welch's t from mean, sd, n)",
) -> str:
    """Write the report as Markdown.

    Parameters
    ----------
    params : the whole params file. table1 : ``reports/table1.csv``. table2 : ``table2.csv``.
    claims : (claim text, verdict) pairs from ``table2_claims.md``.
    metrics : stage -> its metrics JSON (``train``, ``extract``, ``labels_analyze``, ``global``, …;
        missing ones are skipped).
    table2_source : what Table 2 was computed from (its section's "Input:" line).

    Returns
    -------
    str
    """
    lines = [
        "# inviz vs the paper",
        "",
        "*Interpretable Network Visualizations* (Bianchi, De Santis, Tocchetti, Brambilla): "
        "our numbers next to the published ones. Regenerated by the `compare` stage of the pipeline.",
        "",
        *_configuration_section(params, metrics),
        "",
        "## Table 1 — feature-map analysis (docs/method.md §1.10)",
        "",
        *_table1_section(table1),
        *_facts_section(metrics),
        "",
        "## Table 2 — the comparative survey (docs/method.md §5)",
        "",
        *_table2_section(table2, claims, table2_source),
        "## Paper text vs authors' code: the choices made",
        "",
        "| topic | paper text | authors' code | param | default | this run |",
        "|---|---|---|---|---|---|",
    ]
    for r in deviations_table(params).itertuples():
        mark = "" if r.is_default else " ⚠ changed"
        default, ours = (f"`{v}`" if v is not None else "—" for v in (r.default, r.ours))
        lines.append(f"| {r.topic} | {r.paper} | {r.authors_code} | `{r.param}` | {default} | {ours}{mark} |")
    notes = [f"- **{d.topic}**: {d.note}" for d in DEVIATIONS if d.note]
    lines += ["", *notes, ""]
    return "\n".join(lines)


def _configuration_section(params: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Write the report's configuration: dataset, model, profile, validation accuracy, image count."""
    prof = profile(params)
    lines = [
        "## Configuration",
        "",
        f"- dataset: **{prof['dataset']}**",
        f"- model: **{prof['model']}**, weights `{prof['weights']}`",
    ]
    diffs = prof["differences"]
    if not diffs:
        lines.append("- profile: **the paper configuration** (every setting of the paper's experiment)")
    else:
        demo = (params.get("data", {}) or {}).get("source", "imagenette") != "imagenette"
        lines += [
            f"- profile: **differs from the paper in {len(diffs)} setting(s)**"
            + (" — the offline demo" if demo else "")
            + ": its numbers show what these settings give, they are not expected to match the paper's.",
            "",
            "| setting | paper | this run |",
            "|---|---|---|",
            *[f"| `{key}` | {_short(paper)} | {_short(ours)} |" for key, paper, ours in diffs],
            "",
        ]
    train = metrics.get("train", {})
    if train:
        lines.append(f"- validation accuracy: {_fmt(train.get('val_accuracy'), 3)}")
    sel = metrics.get("select", {})
    if sel:
        lines.append(f"- explained images: {sel.get('n_selected')} (paper: 50)")
    return lines


def _facts_section(metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Write the table of the paper's other published facts next to this run's."""
    from inviz.fmaps.table1 import PAPER_N_CLUSTER_MAPS

    ext = metrics.get("extract", {})
    lines = [
        "## Other published facts",
        "",
        "| fact | paper | here |",
        "|---|---|---|",
        f"| cluster maps labelled (50 images x 9 layers) | {PAPER_N_CLUSTER_MAPS} | "
        f"{ext.get('n_cluster_maps_kept', '—')} kept cluster maps over {ext.get('n_images', '—')} images |",
    ]
    la = metrics.get("labels_analyze", {})
    if la:
        lines.append(
            f"| cluster maps with a label | all shown maps | {la.get('n_cluster_maps_labelled', '—')} of "
            f"{la.get('n_cluster_maps', '—')} |"
        )
        loop = la.get("closed_loop") or {}
        if loop.get("accuracy") is not None:
            lines.append(
                f"| top label names a part the map covers (closed loop, synthetic only) | — | "
                f"{_fmt(loop['accuracy'], 3)} (chance {_fmt(loop.get('baseline'), 3)}) |"
            )
    gl = metrics.get("global", {})
    if gl:
        t = gl.get("tcav", {})
        lines.append(
            "| TCAV: top labels of the global explanations significant (p < 0.05) "
            "| all 5 tested for 'tench' (last layer) |"
            f" {t.get('n_significant', '—')} of {t.get('n_tested', '—')} tested "
            f"({t.get('n_too_few_examples', 0)} with too few examples) |"
        )
    lines.append(
        "| SUS / NASA-TLX of the game | 80.9 / 38.1 | not measurable here (needs the game's players) |"
    )
    return lines


def read_claims(markdown: str) -> list[tuple[str, str]]:
    """(claim, verdict) pairs from the verdict table of ``table2_claims.md``."""
    out = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            out.append((cells[1], cells[2].replace("**", "")))
    return out
