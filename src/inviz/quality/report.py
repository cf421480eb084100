"""Tables, Markdown and metrics of an :class:`inviz.quality.run.EvaluationResult` (docs/method.md §8).

- :func:`headline_table` — method x metric at the headline (deepest) layer: deletion / insertion AUC,
  ROAD MoRF / LeRF, pointing game, relevance mass, MPRT SSIM after full randomisation;
- :func:`inv_by_layer` — INV's own measures per layer: concept-deletion rho, beat-random rate and
  effect size, keep-only shares, completeness, its pixel map's AUCs, MPRT, reveal IoU;
- :func:`paired_tests` — INV against each baseline per pixel metric (Wilcoxon signed-rank over
  images, Holm within each metric);
- :func:`evaluation_metrics` — ``metrics/evaluate.json``, whose ``headline`` block is what the
  ablation report (:mod:`inviz.comparison.ablations`) reads;
- :func:`evaluation_markdown` — ``evaluation.md``.

Every mean comes with the number of values it averages; NaN values (undefined rho, constant maps)
are left out and counted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from inviz.quality.run import EvaluationResult

#: headline columns: (column, source table, value column, filter, better)
DIRECTION = {
    "deletion_auc": "lower",
    "insertion_auc": "higher",
    "road_morf": "lower",
    "road_lerf": "higher",
    "pointing_game": "higher",
    "relevance_mass": "higher",
    "mprt_ssim_last": "lower",
}


def _mean_by(frame: pd.DataFrame | None, by: list[str], cols: list[str]) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame(columns=[*by, *cols])
    f = frame.assign(**{b: frame[b].fillna("") for b in by if frame[b].dtype == object})
    return f.groupby(by, sort=False)[cols].mean().reset_index()


def _method_layer(frame: pd.DataFrame | None, result: EvaluationResult) -> pd.DataFrame | None:
    """Rows of the headline maps only: INV methods at the headline layer, the others layer-free."""
    if frame is None or frame.empty:
        return None
    layer = frame["layer"].fillna("")
    keep = (layer == "") | (layer == result.headline_layer)
    return frame[keep]


def last_step(sanity: pd.DataFrame | None) -> pd.DataFrame | None:
    """Return the rows of the last randomisation step (the most destroyed model)."""
    if sanity is None or sanity.empty:
        return None
    return sanity[sanity["step"] == sanity["step"].max()]


def headline_table(result: EvaluationResult) -> pd.DataFrame:
    """Tabulate method x metric at the headline layer (means over images).

    Parameters
    ----------
    result : the evaluation.

    Returns
    -------
    DataFrame indexed by method, columns of :data:`DIRECTION` (NaN where not measured).
    """
    parts = []
    pix = _method_layer(result.pixel_auc, result)
    if pix is not None:
        parts.append(pix.groupby("method", sort=False)[["deletion_auc", "insertion_auc"]].mean())
    rd = _method_layer(result.road, result)
    if rd is not None:
        piv = rd.groupby(["method", "order"], sort=False)["prob"].mean().unstack("order")
        parts.append(piv.rename(columns={"MoRF": "road_morf", "LeRF": "road_lerf"}))
    loc = _method_layer(result.localization, result)
    if loc is not None:
        parts.append(loc.groupby("method", sort=False)[["pointing_game", "relevance_mass"]].mean())
    ssim = {}
    inv_last = last_step(result.sanity)
    if inv_last is not None:
        ssim["INV"] = inv_last.loc[inv_last["layer"] == result.headline_layer, "ssim"].mean()
    gc_last = last_step(result.sanity_gradcam)
    if gc_last is not None:
        ssim["Grad-CAM"] = gc_last["ssim"].mean()
    if ssim:
        parts.append(pd.Series(ssim, name="mprt_ssim_last").to_frame())
    if not parts:
        return pd.DataFrame(columns=list(DIRECTION))
    table = pd.concat(parts, axis=1)
    return table.reindex(columns=[c for c in DIRECTION if c in table.columns])


def inv_by_layer(result: EvaluationResult) -> pd.DataFrame:
    """INV's measures per evaluated layer (means over images).

    Parameters
    ----------
    result : the evaluation.

    Returns
    -------
    DataFrame indexed by layer (evaluation order).
    """
    cols: list[pd.DataFrame] = []
    if result.concept is not None and not result.concept.empty:
        c = result.concept.groupby("layer", sort=False)
        agg = c[
            ["rho_logit", "rho_prob", "beat_rate", "effect_size", "share_kept", "share_thresholded"]
        ].mean()
        agg["rho_defined"] = c["rho_logit"].count()
        agg["pooled_rho"] = pooled_rho(result.concept_rows)
        cols.append(agg)
    if result.completeness is not None and not result.completeness.empty:
        cols.append(
            result.completeness.groupby("layer", sort=False)[
                ["completeness", "completeness_threshold"]
            ].mean()
        )
    if result.pixel_auc is not None and not result.pixel_auc.empty:
        inv = result.pixel_auc[result.pixel_auc["method"] == "INV"]
        cols.append(inv.groupby("layer", sort=False)[["deletion_auc", "insertion_auc"]].mean())
    if result.localization is not None and not result.localization.empty:
        inv = result.localization[result.localization["method"] == "INV"]
        cols.append(inv.groupby("layer", sort=False)[["pointing_game", "relevance_mass"]].mean())
    last = last_step(result.sanity)
    if last is not None:
        m = last.groupby("layer", sort=False)[["ari", "rho_weights", "ssim"]].mean()
        cols.append(m.add_prefix("mprt_"))
    if result.iou is not None and not result.iou.empty:
        top = result.iou[result.iou["level"] == result.iou["level"].max()]
        g = top.groupby("layer", sort=False)
        cols.append(
            pd.DataFrame({"reveal_iou": g["iou"].mean(), "reveal_class_part": g["class_part"].mean()})
        )
    if not cols:
        return pd.DataFrame(index=pd.Index(result.layers, name="layer"))
    table = pd.concat(cols, axis=1)
    return table.reindex(list(result.layers)).rename_axis("layer")


def pooled_rho(rows: pd.DataFrame | None) -> pd.Series:
    """Spearman rho of weight vs relative logit drop over every cluster of a layer, all images pooled.

    The drop is divided by the image's original logit, so images of different confidence pool.

    Parameters
    ----------
    rows : the interventions (:func:`inviz.quality.concept_deletion.concept_deletion`).

    Returns
    -------
    Series indexed by layer.
    """
    from inviz.quality.concept_deletion import spearman

    if rows is None or rows.empty:
        return pd.Series(dtype=float)
    orig = rows[rows["kind"] == "original"].set_index(["sample_id", "layer"])["logit"]
    cl = rows[rows["kind"] == "cluster"]
    base = orig.reindex(pd.MultiIndex.from_frame(cl[["sample_id", "layer"]])).to_numpy()
    rel = cl["drop_logit"].to_numpy() / np.where(np.abs(base) > 0, np.abs(base), np.nan)
    frame = cl.assign(rel=rel).dropna(subset=["rel"])
    return frame.groupby("layer", sort=False).apply(
        lambda g: spearman(g["weight"], g["rel"]), include_groups=False
    )


def paired_tests(result: EvaluationResult, correction: str = "holm") -> pd.DataFrame:
    """INV against each other method per pixel metric: Wilcoxon signed-rank over images.

    Parameters
    ----------
    result : the evaluation.
    correction : multiple-testing correction within each metric (statsmodels name, or ``none``).

    Returns
    -------
    DataFrame ``metric, method, n, inv_mean, other_mean, median_diff`` (INV - other), ``p``,
    ``p_adjusted``, ``inv_better``.
    """
    from scipy.stats import wilcoxon

    from inviz.core.stats import adjust_pvalues

    rows = []
    for metric, frame in (
        ("deletion_auc", _method_layer(result.pixel_auc, result)),
        ("insertion_auc", _method_layer(result.pixel_auc, result)),
    ):
        if frame is None or "INV" not in set(frame["method"]):
            continue
        wide = frame.pivot_table(index="sample_id", columns="method", values=metric)
        for other in [m for m in wide.columns if m != "INV"]:
            pair = wide[["INV", other]].dropna()
            diff = pair["INV"] - pair[other]
            p = float(wilcoxon(diff).pvalue) if len(diff) >= 2 and np.any(diff != 0) else float("nan")
            better = diff.mean() < 0 if DIRECTION[metric] == "lower" else diff.mean() > 0
            rows.append(
                {
                    "metric": metric,
                    "method": other,
                    "n": len(pair),
                    "inv_mean": pair["INV"].mean(),
                    "other_mean": pair[other].mean(),
                    "median_diff": float(diff.median()) if len(diff) else float("nan"),
                    "p": p,
                    "inv_better": bool(better),
                }
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["p_adjusted"] = np.nan
    for idx in out.groupby("metric").groups.values():
        out.loc[idx, "p_adjusted"] = adjust_pvalues(out.loc[idx, "p"].to_numpy(), correction)
    return out


def _num(v: Any) -> Any:
    return None if v is None or (isinstance(v, float) and not np.isfinite(v)) else v


def _records(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {str(i): {str(k): _num(float(v)) for k, v in row.items()} for i, row in table.iterrows()}


def evaluation_metrics(result: EvaluationResult) -> dict[str, Any]:
    """``metrics/evaluate.json``: the headline block (ablations), tables by method and layer, cost.

    Parameters
    ----------
    result : the evaluation.

    Returns
    -------
    dict (JSON-ready; NaN becomes null).
    """
    head = headline_table(result)
    layers = inv_by_layer(result)

    def col_mean(table: pd.DataFrame, col: str) -> float | None:
        return _num(float(table[col].mean())) if col in table else None

    def inv_value(col: str) -> float | None:
        return _num(float(head.loc["INV", col])) if "INV" in head.index and col in head else None

    n_total = max(result.n_images.values()) if result.n_images else 0
    return {
        "headline_layer": result.headline_layer,
        "headline": {
            "concept_rho": col_mean(layers, "rho_logit"),
            "beat_random_rate": col_mean(layers, "beat_rate"),
            "completeness": col_mean(layers, "completeness"),
            "deletion_auc": inv_value("deletion_auc"),
            "insertion_auc": inv_value("insertion_auc"),
            "pointing_game": inv_value("pointing_game"),
        },
        "methods": _records(head),
        "inv_by_layer": _records(layers),
        "n_images": dict(result.n_images),
        "seconds": {k: round(v, 3) for k, v in result.seconds.items()},
        "seconds_total": round(sum(result.seconds.values()), 3),
        "n_images_max": n_total,
        "notes": list(result.notes),
    }


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)


def markdown_table(table: pd.DataFrame, index_name: str, arrows: bool = False) -> str:
    """Render a DataFrame as a Markdown table (3 decimals; ``↓``/``↑`` after headline columns).

    Parameters
    ----------
    table : rows to show (the index becomes the first column).
    index_name : the first column's title.
    arrows : add the better direction of :data:`DIRECTION` to column titles.

    Returns
    -------
    str
    """
    heads = [
        f"{c} {'↓' if DIRECTION.get(c) == 'lower' else '↑'}"
        if arrows and c in DIRECTION
        else f"{c:g}"
        if isinstance(c, float)
        else str(c)
        for c in table
    ]
    lines = [f"| {index_name} | " + " | ".join(heads) + " |", "|---|" + "---|" * len(heads)]
    for idx, row in table.iterrows():
        lines.append(f"| {idx} | " + " | ".join(_fmt(v) for v in row.tolist()) + " |")
    return "\n".join(lines)


def verdicts(head: pd.DataFrame) -> list[str]:
    """One sentence per headline metric: the best method, and where INV stands (wins and losses alike).

    Parameters
    ----------
    head : :func:`headline_table`.

    Returns
    -------
    list of str
    """
    out = []
    for col in head.columns:
        vals = head[col].dropna()
        if "INV" not in vals.index or len(vals) < 2:
            continue
        lower = DIRECTION[col] == "lower"
        ranked = vals.sort_values(ascending=lower)
        best, inv = ranked.index[0], vals["INV"]
        rank = list(ranked.index).index("INV") + 1
        beaten = [m for m in ranked.index[: rank - 1]]
        text = (
            f"**{col}** ({'lower' if lower else 'higher'} is better): best {best} ({_fmt(ranked.iloc[0])}); "
        )
        if best == "INV":
            text += f"INV ranks 1st of {len(vals)}."
        else:
            text += f"INV ranks {rank} of {len(vals)} ({_fmt(inv)}), behind {', '.join(beaten)}."
        if "Random" in vals.index and "INV" != "Random":
            worse = vals["INV"] > vals["Random"] if lower else vals["INV"] < vals["Random"]
            if worse:
                text += " INV does worse than the random map here."
        out.append(text)
    return out


def evaluation_markdown(result: EvaluationResult, title: str = "Explanation quality") -> str:
    """``evaluation.md``: the headline table, verdicts, INV by layer, tests, ROAD, MPRT, localisation.

    Parameters
    ----------
    result : the evaluation.
    title : the first heading.

    Returns
    -------
    str
    """
    head = headline_table(result)
    lines = [
        f"# {title}",
        "",
        f"Measures of docs/method.md §8 at the headline layer **{result.headline_layer}** "
        f"(INV = the kept cluster maps' weighted sum, upsampled). Images per measure: "
        + ", ".join(f"{k} {v}" for k, v in result.n_images.items())
        + ".",
        "",
        "## Headline: method x metric",
        "",
        markdown_table(head, "method", arrows=True),
        "",
        *[f"- {v}" for v in verdicts(head)],
        "",
    ]
    layers = inv_by_layer(result)
    if not layers.empty:
        lines += [
            "## INV by layer",
            "",
            "rho: Spearman of cluster weight vs logit drop (mean over images with a defined rho; "
            "pooled_rho: all clusters of the layer, drop relative to the logit); beat_rate: share of "
            "random channel groups of the heaviest cluster's size that drop the logit less; share_*: the "
            "logit (above the all-zero floor) kept by that channel set alone; completeness: "
            "||S - G|| / ||G|| (0 = nothing given up); mprt_*: after the last randomisation step.",
            "",
            markdown_table(layers, "layer"),
            "",
        ]
    tests = paired_tests(result)
    if not tests.empty:
        lines += ["## INV vs each method (Wilcoxon signed-rank over images, Holm per metric)", ""]
        lines += [markdown_table(tests.set_index("metric"), "metric"), ""]
    if result.road is not None and not result.road.empty:
        rd = _method_layer(result.road, result)
        piv = rd.groupby(["method", "order", "percentage"])["prob"].mean().unstack("percentage")
        acc = rd.groupby(["method", "order"])["correct"].mean().rename("accuracy")
        piv = piv.join(acc)
        piv.index = [f"{m} / {o}" for m, o in piv.index]
        lines += [
            "## ROAD: target probability by % removed (MoRF ↓, LeRF ↑)",
            "",
            markdown_table(piv, "method / order"),
            "",
        ]
    if result.sanity is not None and not result.sanity.empty:
        s = result.sanity[result.sanity["layer"] == result.headline_layer]
        steps = s.groupby(["step", "randomised"], sort=False)[["ari", "rho_weights", "ssim"]].mean()
        if result.sanity_gradcam is not None:
            gc = result.sanity_gradcam.groupby("step")["ssim"].mean().rename("gradcam_ssim")
            steps = steps.join(gc, on="step")
        steps.index = [f"{i} {n}" for i, n in steps.index]
        lines += [
            f"## MPRT (cascading randomisation, top down) at {result.headline_layer}",
            "",
            "Lower is better: an explanation should change when the model is destroyed.",
            "",
            markdown_table(steps, "step (randomised module)"),
            "",
        ]
    if result.iou is not None and not result.iou.empty:
        iou = result.iou.groupby(["layer", "level"], sort=False)["iou"].mean().unstack("level")
        lines += ["## Reveal IoU with the best-matching part (kept cluster maps, by level %)", ""]
        lines += [markdown_table(iou, "layer"), ""]
    if result.notes:
        lines += ["## Notes", "", *[f"- {n}" for n in result.notes], ""]
    cost = pd.Series(result.seconds, name="seconds").to_frame()
    lines += ["## Cost (seconds)", "", markdown_table(cost, "measure"), ""]
    return "\n".join(lines)
