"""The global explanations as a report: Markdown tables and Figure 4 per class (docs/method.md §4).

:func:`global_markdown` and :func:`global_figures` (each drawn by :func:`global_figure`) render a
:class:`inviz.concepts.explain.GlobalResult` for its ``figure_layers``; the ``global`` stage writes
them (``global.md``, ``figures/<class>__<layer>.png``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from inviz.concepts.explain import GlobalResult
from inviz.game.reveal import RevealConfig
from inviz.views.figures import FigureConfig, caption_lines, label_colours
from inviz.views.overlays import overlay
from inviz.views.records import safe_name


def global_markdown(result: GlobalResult, narrative_cfg: Any = None) -> str:
    """Render the global explanations of ``result.figure_layers`` as Markdown, one table per class and layer.

    Parameters
    ----------
    result : GlobalResult
    narrative_cfg : NarrativeConfig, optional
        With it, each table is followed by its narrative (:func:`inviz.views.narratives.global_narrative`).

    Returns
    -------
    str
        Ranked labels with importance, map count and the TCAV score, corrected p-value and
        significance (or why a label was not scored); TCAV examples with transferred labels
        (``global.transfer``) are counted in the "examples" column.
    """
    table = result.table
    lines = [
        "# Global explanations (docs/method.md §4)",
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
            "| rank | label | importance % | maps | TCAV | p (adj.) | significant | examples (transferred) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in grp.itertuples():
            status = getattr(r, "tcav_status", None)
            if status == "ok":
                tc = f"{r.tcav_score:.2f}"
                p = f"{r.p_adjusted:.3g}"
                sig = "yes" if bool(r.significant) else "no"
            else:
                tc, p, sig = (str(status).replace("_", " ") if isinstance(status, str) else "—"), "—", "—"
            cells = [r.rank, r.label, f"{r.importance:.1f}", r.n_maps, tc, p, sig, _examples(r)]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        lines.append("")
        if narrative_cfg is not None:
            from inviz.views.narratives import global_narrative

            lines += [global_narrative(grp, narrative_cfg, result.min_examples or None), ""]
    return "\n".join(lines)


def _examples(r: Any) -> str:
    """Format the TCAV examples cell: ``n``, or ``n (t)`` with ``t`` of them transferred; ``—`` untested."""
    n = getattr(r, "n_examples", None)
    if n is None or pd.isna(n):
        return "—"
    t = getattr(r, "n_transferred", None)
    return f"{int(n)} ({int(t)})" if t is not None and pd.notna(t) and t else f"{int(n)}"


def global_figure(
    table: pd.DataFrame,
    tiles: dict[str, np.ndarray],
    class_name: str,
    layer: str,
    n_examples: int,
    font_size: float = 6.5,
    caption: str | None = None,
) -> Any:
    """Draw the global explanation of a class at a layer (paper Figure 4).

    Parameters
    ----------
    table : rows of :func:`inviz.concepts.importance.global_explanations` for this class and
        layer (``rank, label, importance, n_maps, examples``), optionally with TCAV columns
        ``tcav_score, p_adjusted, significant, tcav_status``.
    tiles : card key -> example tile (uint8, (S, S, 3)) for the keys in ``examples``.
    n_examples : example tiles per label.
    caption : text under the figure (its narrative); None: none.

    Returns
    -------
    Figure: a bar chart of label importance (mean weight of the maps each label tops, with the
    map count and the TCAV result next to each bar) and, per label, ``n_examples`` example maps;
    axes ``gid`` ``"importance"`` and ``"example:<label>:<i>"``.
    """
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    apply_style()
    rows = table.sort_values("rank")
    k = max(len(rows), 1)
    row_h = 0.62
    bar_w, tile_w = 2.3, row_h * 0.92
    width = 0.9 + bar_w + 1.35 + n_examples * (tile_w + 0.05) + 0.1
    wrapped = caption_lines(caption, width - 0.16, font_size) if caption else ""
    caption_h = (wrapped.count("\n") + 1) * font_size * 1.35 / 72 + 0.15 if wrapped else 0.0
    height = 0.55 + k * row_h + 0.35 + caption_h
    fig = plt.figure(figsize=(width, height))
    bottom = 0.35 + caption_h
    if wrapped:
        fig.text(
            0.08 / width,
            (caption_h - 0.05) / height,
            wrapped,
            fontsize=font_size,
            va="top",
            linespacing=1.35,
            gid="caption",
        )
    colours = label_colours(list(rows["label"]))
    ax = fig.add_axes([0.9 / width, bottom / height, bar_w / width, k * row_h / height])
    ax.set_gid("importance")
    y = np.arange(len(rows))[::-1]
    ax.barh(y, rows["importance"], color=[colours[lab] for lab in rows["label"]], height=0.6)
    ax.set_yticks(y, list(rows["label"]), fontsize=font_size * 1.1)
    ax.set_ylim(-0.5, k - 0.5)
    ax.set_xlabel("importance: mean weight of the maps it tops (%)", fontsize=font_size)
    ax.tick_params(axis="x", labelsize=font_size)
    xmax = float(rows["importance"].max()) if len(rows) else 1.0
    ax.set_xlim(0, xmax * 1.05 if xmax > 0 else 1)
    has_tcav = "tcav_score" in rows.columns
    for yy, r in zip(y, rows.itertuples(), strict=True):
        fig.text(
            (0.9 + bar_w + 0.08) / width,
            (bottom + (yy + 0.5) * row_h) / height,
            _bar_note(r, has_tcav),
            fontsize=font_size,
            va="center",
        )
    x0 = 0.9 + bar_w + 1.35
    for yy, r in zip(y, rows.itertuples(), strict=True):
        keys = [s for s in str(r.examples).split(";") if s] if pd.notna(r.examples) else []
        for i, key in enumerate(keys[:n_examples]):
            if key not in tiles:
                continue
            rect = [
                (x0 + i * (tile_w + 0.05)) / width,
                (bottom + yy * row_h + 0.03) / height,
                tile_w / width,
                tile_w / height,
            ]
            _example_tile(fig, rect, tiles[key], colours[r.label], f"example:{r.label}:{i}")
    tcav_note = "; * = TCAV significant after correction" if has_tcav else ""
    title = f"Global explanation of '{class_name}' at {layer}"
    fig.text(0.9 / width, 1 - 0.12 / height, title, fontsize=font_size * 1.4, fontweight="bold", va="top")
    subtitle = f"top-{len(rows)} labels of its images' cluster maps{tcav_note}; example maps on the right"
    fig.text(0.9 / width, 1 - 0.36 / height, subtitle, fontsize=font_size, va="top")
    return fig


def _bar_note(r: Any, has_tcav: bool) -> str:
    """Write the note beside a label's bar: its map count and, with TCAV columns, the TCAV result."""
    text = f"{int(r.n_maps)} map{'s' if r.n_maps != 1 else ''}"
    if has_tcav:
        status = getattr(r, "tcav_status", "ok")
        if status == "ok" and pd.notna(r.tcav_score):
            star = "*" if bool(r.significant) else " (n.s.)"
            text += f"\nTCAV {r.tcav_score:.2f}{star}  p={r.p_adjusted:.2g}"
        else:
            text += f"\nTCAV: {str(status).replace('_', ' ')}"
    return text


def _example_tile(fig: Any, rect: list[float], tile: np.ndarray, colour: Any, gid: str) -> None:
    """Draw one example map at ``rect`` (figure fraction), framed in its label's colour."""
    tax = fig.add_axes(rect)
    tax.imshow(tile, interpolation="nearest")
    tax.set_xticks([])
    tax.set_yticks([])
    for s in tax.spines.values():
        s.set_visible(True)
        s.set_color(colour)
        s.set_linewidth(1.2)
    tax.set_gid(gid)


def global_figures(
    result: GlobalResult,
    n_examples: int,
    fig_cfg: FigureConfig,
    reveal_cfg: RevealConfig,
    narrative_cfg: Any = None,
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
    narrative_cfg : NarrativeConfig, optional
        With ``enabled``, each figure is captioned with its narrative.

    Yields
    ------
    name : str
        ``<class label:02d>_<class name>__<layer>``, the file name without extension.
    figure : matplotlib Figure
        :func:`global_figure`; the caller saves and closes it.
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
        caption = None
        if narrative_cfg is not None and narrative_cfg.enabled:
            from inviz.views.narratives import global_narrative

            caption = global_narrative(grp, narrative_cfg, result.min_examples or None)
        fig = global_figure(grp, tiles, cname, layer, n_examples, fig_cfg.font_size + 1, caption)
        yield f"{int(cl):02d}_{safe_name(cname)}__{layer}", fig
