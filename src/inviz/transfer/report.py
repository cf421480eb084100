"""The leave-one-image-out evaluation as a report: a Markdown table and a figure (docs/method.md §9)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

#: how methods are named in the report
METHOD_NAMES = {
    "channel_vote": "channel vote",
    "nearest_maps": "nearest maps",
    "class_prior": "class prior",
    "random": "random",
    "human": "game labels (human)",
}


def _pct(x: float) -> str:
    return "—" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def loio_markdown(
    table: pd.DataFrame,
    closed_loop: Mapping[str, float] | None,
    top: int,
    variant: str,
    extra: Sequence[str] = (),
    calibration: pd.DataFrame | None = None,
) -> str:
    """Render the evaluation: agreement per layer and method, coverage, and the closed loop.

    Parameters
    ----------
    table : DataFrame
        :func:`inviz.transfer.evaluate.summarise`.
    closed_loop : mapping of str to float or None
        :func:`inviz.transfer.evaluate.closed_loop_accuracy` (None: no part masks, real data).
    top : int
        The ``k`` of top-k.
    variant : str
        The configured variant (``transfer.variant``), named in the text.
    extra : sequence of str
        Lines appended (e.g. the extra images' counts).
    calibration : DataFrame, optional
        :func:`inviz.transfer.evaluate.calibration` (agreement by confidence bin).

    Returns
    -------
    str
    """
    methods = list(dict.fromkeys(table["method"]))
    layers = list(dict.fromkeys(table["layer"]))
    t = table.set_index(["method", "layer"])
    head = ["layer", "maps"] + [f"{METHOD_NAMES.get(m, m)} top-1 / top-{top}" for m in methods]
    head += ["coverage", "answered"]
    lines = [
        "# Labels for new images: leave-one-image-out evaluation (docs/method.md §9)",
        "",
        f"Agreement (%) of the transferred label with the game's best labels of each held-out cluster "
        f"map: top-1 = the transferred rank-1 label, top-{top} = any of the first {top}. Baselines: "
        "class prior (the layer's most frequent best labels of the predicted class in the other "
        "images) and random (expected value). Coverage: mean share of a map's channels the label "
        "model has seen; answered: share of maps that got a label. "
        f"Configured variant: **{METHOD_NAMES.get(variant, variant)}**.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    first = methods[0] if methods else None
    for layer in layers:
        cells = [f"**{layer}**" if layer == "all" else layer, str(int(t.loc[(first, layer), "n_maps"]))]
        for m in methods:
            r = t.loc[(m, layer)] if (m, layer) in t.index else None
            cells.append("—" if r is None else f"{_pct(r['top1'])} / {_pct(r['topk'])}")
        r0 = t.loc[(first, layer)]
        cells += [_pct(r0["coverage"]), _pct(r0["answered"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if calibration is not None and len(calibration):
        lines += [
            "## Agreement by confidence (all layers)",
            "",
            f"| label model | confidence | maps | top-1 | top-{top} |",
            "|---|---|---|---|---|",
            *[
                f"| {METHOD_NAMES.get(r.method, r.method)} | {r.bin} | {r.n_maps} | "
                f"{_pct(r.top1)} | {_pct(r.topk)} |"
                for r in calibration.itertuples()
            ],
            "",
        ]
    if closed_loop:
        lines += [
            "## Closed loop (demo: does the top label name a part the map covers?)",
            "",
            "| labels | closed-loop accuracy |",
            "|---|---|",
            *[f"| {METHOD_NAMES.get(m, m)} | {v:.3f} |" for m, v in closed_loop.items()],
            "",
        ]
    return "\n".join([*lines, *extra, ""] if extra else lines)


def loio_figure(table: pd.DataFrame, top: int) -> Any:
    """Draw top-1 and top-k agreement per layer, one bar per method (baselines included).

    Parameters
    ----------
    table : DataFrame
        :func:`inviz.transfer.evaluate.summarise`.
    top : int
        The ``k`` of top-k.

    Returns
    -------
    matplotlib Figure with two axes (``gid`` ``top1`` and ``topk``).
    """
    import seaborn as sns

    from inviz.core.plotting import new_figure

    data = table.assign(method=table["method"].map(lambda m: METHOD_NAMES.get(m, m)))
    n_layers = data["layer"].nunique()
    fig, axes = new_figure(max(6.8, 0.75 * n_layers + 1.5), 4.6, nrows=2, sharex=True)
    for ax, col, name in zip(axes, ("top1", "topk"), ("top-1", f"top-{top}"), strict=True):
        sns.barplot(data=data.assign(v=100 * data[col]), x="layer", y="v", hue="method", ax=ax)
        ax.set_ylabel(f"{name} agreement (%)")
        ax.set_xlabel("")
        ax.set_ylim(0, 100)
        ax.set_gid(col)
        ax.legend(fontsize=6, ncols=4, loc="upper left", frameon=False)
    axes[-1].tick_params(axis="x", rotation=30)
    fig.suptitle("Transferred labels vs the game's, leave one image out", fontsize=9)
    fig.tight_layout()
    return fig
