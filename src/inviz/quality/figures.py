"""Figures of an evaluation (docs/method.md §8), in the project's style (:mod:`inviz.core.plotting`).

:func:`evaluation_figures` returns ``{file stem: Figure}``: ``headline`` (one panel per headline
metric, a bar per method, INV highlighted), ``curves`` (mean deletion and insertion curves),
``road`` (ROAD MoRF / LeRF curves), ``concept`` (INV's concept deletion by layer and the weight vs
drop scatter), ``sanity`` (MPRT: INV's ARI / rho / SSIM and Grad-CAM's SSIM per step),
``localization`` (pointing game and relevance mass per method; reveal IoU by layer and level) and
``examples`` (the maps of a few images side by side). A figure whose measure did not run is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from inviz.quality.report import DIRECTION, _method_layer, headline_table, inv_by_layer
from inviz.quality.run import EvaluationResult


def _colours(methods: list[str]) -> list[Any]:
    from inviz.core.plotting import palette

    pal = palette(max(3, len(methods)))
    others = iter(pal[1:])
    return [pal[0] if m.startswith("INV") else ("0.6" if m == "Random" else next(others)) for m in methods]


def headline_figure(result: EvaluationResult) -> Any | None:
    """One bar panel per headline metric (methods as bars, better direction in the title)."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    head = headline_table(result)
    cols = [c for c in head.columns if head[c].notna().any()]
    if not cols:
        return None
    apply_style()
    fig, axes = plt.subplots(1, len(cols), figsize=(1.7 * len(cols) + 0.5, 2.6), squeeze=False)
    for ax, col in zip(axes[0], cols, strict=True):
        vals = head[col].dropna()
        ax.bar(range(len(vals)), vals.to_numpy(), color=_colours(list(vals.index)))
        ax.set_xticks(
            range(len(vals)), [m.replace(" (Gradient Explainer)", "") for m in vals.index], rotation=60
        )
        ax.set_title(f"{col} {'↓' if DIRECTION[col] == 'lower' else '↑'}", fontsize=7)
        ax.tick_params(axis="x", labelsize=6)
    fig.suptitle(f"explanation quality at {result.headline_layer}", fontsize=8)
    fig.tight_layout()
    return fig


def curves_figure(result: EvaluationResult) -> Any | None:
    """Mean deletion and insertion curves of the headline maps."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    curves = _method_layer(result.pixel_curves, result)
    if curves is None:
        return None
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.6), sharey=True)
    methods = list(dict.fromkeys(curves["method"]))
    for ax, mode in zip(axes, ("deletion", "insertion"), strict=True):
        for m, colour in zip(methods, _colours(methods), strict=True):
            c = curves[(curves["method"] == m) & (curves["mode"] == mode)]
            ax.plot(c["fraction"], c["prob_mean"], label=m.replace(" (Gradient Explainer)", ""), color=colour)
        ax.set_xlabel(f"share of pixels {'removed' if mode == 'deletion' else 'inserted'}")
        ax.set_title(f"{mode} ({'lower' if mode == 'deletion' else 'higher'} AUC is better)", fontsize=8)
    axes[0].set_ylabel("target probability (mean)")
    axes[1].legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def road_figure(result: EvaluationResult) -> Any | None:
    """ROAD curves: target probability against % removed, MoRF and LeRF."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    rd = _method_layer(result.road, result)
    if rd is None:
        return None
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 2.6), sharey=True)
    methods = list(dict.fromkeys(rd["method"]))
    mean = rd.groupby(["method", "order", "percentage"])["prob"].mean()
    for ax, order in zip(axes, ("MoRF", "LeRF"), strict=True):
        for m, colour in zip(methods, _colours(methods), strict=True):
            s = mean.loc[(m, order)]
            ax.plot(
                s.index,
                s.to_numpy(),
                marker="o",
                ms=2.5,
                color=colour,
                label=m.replace(" (Gradient Explainer)", ""),
            )
        ax.set_xlabel("% pixels removed (imputed)")
        ax.set_title(f"ROAD {order} ({'lower' if order == 'MoRF' else 'higher'} is better)", fontsize=8)
    axes[0].set_ylabel("target probability (mean)")
    axes[1].legend(fontsize=6, frameon=False)
    fig.tight_layout()
    return fig


def concept_figure(result: EvaluationResult) -> Any | None:
    """Concept deletion: rho and beat-random rate by layer, and weight vs relative drop."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style, palette

    if result.concept is None or result.concept.empty:
        return None
    apply_style()
    table = inv_by_layer(result)
    fig, axes = plt.subplots(1, 3, figsize=(8.0, 2.6))
    x = np.arange(len(table))
    axes[0].bar(x, table["rho_logit"].to_numpy(), color=palette(1)[0], label="mean per image")
    axes[0].plot(x, table["pooled_rho"].to_numpy(), "k.", label="pooled")
    axes[0].axhline(0, color="0.5", lw=0.6)
    axes[0].set_title("Spearman rho (w_C vs logit drop)", fontsize=8)
    axes[0].legend(fontsize=6, frameon=False)
    axes[1].bar(x, table["beat_rate"].to_numpy(), color=palette(2)[1])
    axes[1].axhline(0.5, color="0.5", lw=0.6, ls="--")
    axes[1].set_ylim(0, 1)
    axes[1].set_title("heaviest cluster beats random groups", fontsize=8)
    for ax in axes[:2]:
        ax.set_xticks(x, list(table.index), rotation=60, fontsize=6)
    rows = result.concept_rows
    cl = rows[rows["kind"] == "cluster"]
    orig = rows[rows["kind"] == "original"].set_index(["sample_id", "layer"])["logit"]
    base = orig.reindex(pd.MultiIndex.from_frame(cl[["sample_id", "layer"]])).to_numpy()
    colours = dict(zip(result.layers, palette(len(result.layers)), strict=True))
    axes[2].scatter(
        cl["weight"], cl["drop_logit"] / np.abs(base), s=3, c=[colours[v] for v in cl["layer"]], alpha=0.6
    )
    axes[2].set_xlabel("cluster weight w_C")
    axes[2].set_ylabel("logit drop / logit")
    axes[2].set_title("every cluster (colour = layer)", fontsize=8)
    fig.tight_layout()
    return fig


def sanity_figure(result: EvaluationResult) -> Any | None:
    """MPRT: INV's similarity to the original after each randomisation step, Grad-CAM's SSIM as reference."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style, palette

    if result.sanity is None or result.sanity.empty:
        return None
    apply_style()
    s = result.sanity[result.sanity["layer"] == result.headline_layer]
    steps = s.groupby("step")[["ari", "rho_weights", "ssim"]].mean()
    names = s.groupby("step")["randomised"].first()
    fig, ax = plt.subplots(figsize=(4.6, 2.8))
    series = {"ari": "INV ARI of clusters", "rho_weights": "INV rho of weights", "ssim": "INV SSIM of map"}
    for (col, label), colour in zip(series.items(), palette(len(series)), strict=True):
        ax.plot(steps.index, steps[col], marker="o", ms=2.5, color=colour, label=label)
    if result.sanity_gradcam is not None and not result.sanity_gradcam.empty:
        gc = result.sanity_gradcam.groupby("step")["ssim"].mean()
        gc = gc[gc.index >= 1]
        ax.plot(
            gc.index,
            gc.to_numpy(),
            marker="s",
            ms=2.5,
            color="0.4",
            ls="--",
            label="Grad-CAM SSIM (Quantus MPRT)",
        )
    ax.set_xticks(steps.index, list(names), rotation=70, fontsize=5)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.set_ylabel("similarity to the original")
    ax.set_title(f"MPRT at {result.headline_layer} (lower = passes)", fontsize=8)
    ax.legend(fontsize=5.5, frameon=False)
    fig.tight_layout()
    return fig


def localization_figure(result: EvaluationResult) -> Any | None:
    """Pointing game and relevance mass per method; reveal IoU by layer and level."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style, palette

    loc = _method_layer(result.localization, result)
    if loc is None:
        return None
    apply_style()
    fig, axes = plt.subplots(1, 3, figsize=(8.0, 2.6))
    means = loc.groupby("method", sort=False)[["pointing_game", "relevance_mass"]].mean()
    chance = float(loc["truth_share"].mean())
    for ax, col in zip(axes[:2], means.columns, strict=True):
        ax.bar(range(len(means)), means[col], color=_colours(list(means.index)))
        ax.axhline(chance, color="0.4", ls="--", lw=0.7)
        ax.set_xticks(
            range(len(means)),
            [m.replace(" (Gradient Explainer)", "") for m in means.index],
            rotation=60,
            fontsize=6,
        )
        ax.set_title(f"{col.replace('_', ' ')} (dashed: chance)", fontsize=8)
    if result.iou is not None and not result.iou.empty:
        iou = result.iou.groupby(["level", "layer"], sort=False)["iou"].mean().unstack("layer")
        for (level, row), colour in zip(iou.iterrows(), palette(len(iou)), strict=True):
            axes[2].plot(
                range(len(row)), row.to_numpy(), marker="o", ms=2, color=colour, label=f"{level:g} %"
            )
        axes[2].set_xticks(range(len(iou.columns)), list(iou.columns), rotation=60, fontsize=6)
        axes[2].set_title("reveal IoU with best part", fontsize=8)
        axes[2].legend(fontsize=5.5, frameon=False, title="level", title_fontsize=6)
    fig.tight_layout()
    return fig


def examples_figure(result: EvaluationResult) -> Any | None:
    """Show the maps of a few images side by side (rows = images, columns = image and methods)."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import MAP_CMAP, apply_style

    if not result.example_maps:
        return None
    apply_style()
    keys = list(result.example_maps)
    n = len(result.example_images)
    fig, axes = plt.subplots(n, len(keys) + 1, figsize=(1.15 * (len(keys) + 1), 1.2 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(result.example_images[i])
        for j, key in enumerate(keys, start=1):
            axes[i, j].imshow(result.example_maps[key][i], cmap=MAP_CMAP)
            if i == 0:
                axes[i, j].set_title(key[0].replace(" (Gradient Explainer)", ""), fontsize=6)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout(pad=0.3)
    return fig


def evaluation_figures(result: EvaluationResult) -> dict[str, Any]:
    """Every figure whose measure ran: ``{file stem: matplotlib Figure}``."""
    makers = {
        "headline": headline_figure,
        "curves": curves_figure,
        "road": road_figure,
        "concept": concept_figure,
        "sanity": sanity_figure,
        "localization": localization_figure,
        "examples": examples_figure,
    }
    figures = {name: make(result) for name, make in makers.items()}
    return {k: v for k, v in figures.items() if v is not None}
