"""The global explanations as a report: Markdown tables and Figure 4 per class (docs/method.md §4).

Both render a :class:`inviz.concepts.explain.GlobalResult` for its ``figure_layers``; the
``global`` stage writes them (``global.md``, ``figures/<class>__<layer>.png``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from inviz.concepts.explain import GlobalResult
from inviz.game.reveal import RevealConfig
from inviz.views.figures import FigureConfig, global_figure
from inviz.views.overlays import overlay
from inviz.views.records import safe_name


def global_markdown(result: GlobalResult) -> str:
    """Render the global explanations of ``result.figure_layers`` as Markdown, one table per class and layer.

    Parameters
    ----------
    result : GlobalResult

    Returns
    -------
    str
        Ranked labels with importance, map count and the TCAV score, corrected p-value and
        significance (or why a label was not scored).
    """
    table = result.table
    lines = [
        "# Global explanations (METHOD.md §4)",
        "",
        "Importance = mean weight (% of the layer) of the merged cluster maps a label tops; TCAV: score "
        "(sign count), corrected p-value, significance.",
        "",
    ]
    shown = table[table["layer"].isin(result.figure_layers)]
    for (cname, layer), grp in shown.groupby(["class_name", "layer"], sort=False):
        lines += [
            f"## {cname} — {layer}",
            "",
            "| rank | label | importance % | maps | TCAV | p (adj.) | significant |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in grp.itertuples():
            status = getattr(r, "tcav_status", None)
            if status == "ok":
                tc = f"{r.tcav_score:.2f}"
                p = f"{r.p_adjusted:.3g}"
                sig = "yes" if bool(r.significant) else "no"
            else:
                tc, p, sig = (str(status).replace("_", " ") if isinstance(status, str) else "—"), "—", "—"
            lines.append(f"| {r.rank} | {r.label} | {r.importance:.1f} | {r.n_maps} | {tc} | {p} | {sig} |")
        lines.append("")
    return "\n".join(lines)


def global_figures(
    result: GlobalResult, n_examples: int, fig_cfg: FigureConfig, reveal_cfg: RevealConfig
) -> Iterator[tuple[str, Any]]:
    """Figure 4 of every class at each of ``result.figure_layers``, one at a time.

    Parameters
    ----------
    result : GlobalResult
    n_examples : int
        Example maps per label (``global.n_examples``).
    fig_cfg : FigureConfig
        Overlay of the example maps and font size.
    reveal_cfg : RevealConfig
        The reveal masks of ``reveal`` overlays.

    Yields
    ------
    name : str
        ``<class label:02d>_<class name>__<layer>``, the file name without extension.
    figure : matplotlib Figure
        :func:`inviz.views.figures.global_figure`; the caller saves and closes it.
    """
    table = result.table
    for (cl, cname, layer), grp in table[table["layer"].isin(result.figure_layers)].groupby(
        ["class_label", "class_name", "layer"], sort=False
    ):
        keys = [k for ex in grp["examples"].dropna() for k in str(ex).split(";") if k]
        tiles = {}
        for k in keys:
            if k in result.cards:
                inv, card = result.cards[k]
                tiles[k] = overlay(inv.image, card.map, fig_cfg.overlay, reveal_cfg)
        fig = global_figure(grp, tiles, cname, layer, n_examples, fig_cfg.font_size + 1)
        yield f"{int(cl):02d}_{safe_name(cname)}__{layer}", fig
