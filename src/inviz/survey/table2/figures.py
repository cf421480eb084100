"""Figures of Table 2 (docs/method.md §5): ratings with error bars, adjusted p-value heatmaps."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from inviz.survey.table2.config import Table2Config, table_order


def ratings_figure(table: pd.DataFrame, cfg: Table2Config | None = None, title: str | None = None) -> Any:
    """Mean rating per method and aspect with error bars (t-interval at ``ci_level`` or ± sd).

    Parameters
    ----------
    table : DataFrame of shape (M × A, 5+)
        ``method, aspect, mean, sd, n`` (:attr:`~inviz.survey.table2.analysis.Table2Result.table`).
    cfg : names order, rating scale, ``interval`` and ``ci_level``; default :class:`Table2Config`.
    title : the axes title (default: names the error bars).

    Returns
    -------
    matplotlib.figure.Figure
        One axes: x = aspect, one colour per method.
    """
    from inviz.core.plotting import new_figure, palette

    cfg = cfg or Table2Config()
    methods = table_order(table["method"], cfg.methods)
    aspects = table_order(table["aspect"], cfg.aspects)
    fig, ax = new_figure(width=max(3.4, 1.3 * len(aspects) + 0.6), height=2.8)
    colours = palette(len(methods))
    width = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        sub = table[table["method"] == m].set_index("aspect").reindex(aspects)
        x = np.arange(len(aspects)) - 0.4 + width * (i + 0.5)
        sd = sub["sd"].to_numpy(float)
        n = sub["n"].to_numpy(float)
        if cfg.interval == "sd":
            err = sd
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                err = stats.t.ppf(0.5 + cfg.ci_level / 2, n - 1) * sd / np.sqrt(n)
        ax.errorbar(
            x,
            sub["mean"].to_numpy(float),
            yerr=np.nan_to_num(err),
            fmt="o",
            ms=3.5,
            capsize=2,
            lw=1,
            color=colours[i],
            label=m,
        )
    ax.set_xticks(np.arange(len(aspects)), aspects, rotation=15, ha="right")
    ax.set_ylim(cfg.rating_min - 0.2, cfg.rating_max + 0.2)
    ax.set_ylabel("rating (mean)")
    bars = f"{cfg.ci_level:.0%} CI" if cfg.interval == "ci" else "± sd"
    ax.set_title(title or f"Ratings per method and aspect (error bars: {bars})")
    ax.legend(ncols=min(len(methods), 3), loc="lower left", frameon=False)
    ax.grid(axis="y", lw=0.3, alpha=0.5)
    return fig


#: small p dark, p near 1 light (seaborn "rocket", perceptually uniform)
P_CMAP = "rocket"


def _short(name: str) -> str:
    """Axis label: ``SHAP (Gradient Explainer)`` → ``SHAP (G)``, ``INV (Simplified)`` → ``INV (S)``."""
    head, sep, rest = name.partition(" (")
    return f"{head} ({rest[:1]})" if sep and rest else name


def _pvalue_matrix(rows: pd.DataFrame, methods: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Place adjusted p-values in the lower triangle of (K, K) (row = later method, NaN elsewhere)."""
    k = len(methods)
    mat = np.full((k, k), np.nan)
    sig = np.zeros((k, k), bool)
    for r in rows.itertuples(index=False):
        i, j = methods.index(r.method_a), methods.index(r.method_b)
        lo, hi = max(i, j), min(i, j)
        mat[lo, hi] = r.p_adjusted
        sig[lo, hi] = bool(r.significant)
    return mat, sig


def pvalue_figure(tests: pd.DataFrame, test: str, cfg: Table2Config | None = None) -> Any:
    """Draw adjusted p-values per aspect as method × method heatmaps (lower triangle, ``*`` = significant).

    Parameters
    ----------
    tests : DataFrame of shape (K, 19)
        A tests table (:attr:`~inviz.survey.table2.analysis.Table2Result.tests`).
    test : the test shown (``welch_t``, ``paired_t`` or ``wilcoxon``).
    cfg : names order, alpha and correction name; default :class:`Table2Config`.

    Returns
    -------
    matplotlib.figure.Figure
        One (M, M) heatmap per aspect and a shared log-scale colour bar.
    """
    import matplotlib.colors as mcolors

    from inviz.core.plotting import new_figure

    cfg = cfg or Table2Config()
    sub = tests[tests["test"] == test]
    aspects = table_order(sub["aspect"], cfg.aspects)
    methods = table_order(pd.concat([sub["method_a"], sub["method_b"]]), cfg.methods)
    k = len(methods)
    fig, axes = new_figure(width=1.9 * len(aspects) + 0.8, height=2.4, ncols=len(aspects), squeeze=False)
    norm = mcolors.LogNorm(vmin=1e-6, vmax=1)
    image = None
    for ax, aspect in zip(axes[0], aspects, strict=True):
        mat, sig = _pvalue_matrix(sub[sub["aspect"] == aspect], methods)
        image = ax.imshow(np.clip(mat, 1e-6, 1), cmap=P_CMAP, norm=norm)
        for i in range(k):
            for j in range(k):
                if np.isfinite(mat[i, j]):
                    txt = ("<.001" if mat[i, j] < 0.001 else f"{mat[i, j]:.2f}") + ("*" if sig[i, j] else "")
                    ax.text(
                        j,
                        i,
                        txt,
                        ha="center",
                        va="center",
                        fontsize=5,
                        color="white" if mat[i, j] < 1e-2 else "black",
                    )
        short = [_short(m) for m in methods]
        ax.set_xticks(range(k), short, rotation=90, fontsize=6)
        ax.set_yticks(range(k), short if ax is axes[0][0] else [""] * k, fontsize=6)
        ax.set_title(aspect, fontsize=8)
    if image is not None:
        cbar = fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
        cbar.set_label(f"adjusted p ({cfg.correction})", fontsize=7)
    fig.suptitle(f"{test.replace('_', ' ')}: adjusted p-values (* p_adj < {cfg.alpha:g})", fontsize=8)
    return fig
