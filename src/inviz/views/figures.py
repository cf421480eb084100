"""Figures of one image: the INV (paper Figure 3) and the simplified INV, and drawing them for every image.

Both take the records of :mod:`inviz.views.records` and return a matplotlib figure;
:func:`draw_inv_figures` saves them as PNG and PDF. The global explanation (Figure 4) is
:func:`inviz.concepts.report.global_figure`, in the same style (:mod:`inviz.core.plotting`,
:func:`label_colours`): colour-blind-safe colours, a label keeps its colour across the layers of a
figure, sizes chosen to stay readable at page width.

Layout of the INV figure: a header with the input image, its true and predicted class and the
confidence; then one column per layer, shallow to deep, each holding that layer's cluster maps
(merged by default) heaviest first. A card shows the map over the image (:func:`inviz.views.records.overlay`),
its weight in % of the layer and feature-map count, and its top labels with score bars on a scale
shared by the whole figure.

Axes are placed by hand (one per card, the score bars drawn in the same axes below the image),
which keeps a 9-layer figure with ~40 cards at well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from inviz.core.checks import check_at_least
from inviz.game.reveal import RevealConfig
from inviz.views.overlays import OverlayConfig, overlay
from inviz.views.records import Card, ImageINV

#: colour of labels beyond the palette and of unlabelled cards
OTHER_COLOUR = (0.6, 0.6, 0.6)


@dataclass(frozen=True)
class FigureRunConfig:
    """``figures.run``: workers, processes drawing figures in parallel (1: in the stage's process)."""

    workers: int = 1

    def __post_init__(self) -> None:
        check_at_least(self, {"workers": 1})


@dataclass(frozen=True)
class FigureConfig:
    """``figures`` section: the INV figures (paper Figure 3) and the simplified INV.

    overlay : how a map is drawn over its image (:class:`inviz.views.records.OverlayConfig`).
    merged : show merged cluster maps (§3.8, the paper's INV) or the game's cluster maps.
    top_labels : labels shown per card (paper: 3). simplified_labels : labels per card in the
        simplified INV (survey: 1). simplified_layer : its layer (``null``: the deepest explained).
    max_cards : cards per layer column at most (``null``: all), heaviest first.
    card_width : inches per layer column. font_size : points of card text.
    images : INV figures for the first N selected images (``null``: every selected image).
    images_per_class : then at most the first N of each class (``null``: no limit; the selection
        lists its images class by class, so ``images`` alone would leave out the last classes).
    formats : files written per figure (``png``, ``pdf``, ``svg``). dpi : raster resolution.
    run : execution settings (:class:`FigureRunConfig`; old key ``workers`` still accepted).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {"workers": "run.workers"}

    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    merged: bool = True
    top_labels: int = 3
    simplified_labels: int = 1
    simplified_layer: str | None = None
    max_cards: int | None = None
    card_width: float = 0.85
    font_size: float = 5.5
    images: int | None = None
    images_per_class: int | None = None
    formats: tuple[str, ...] = ("png", "pdf")
    dpi: int = 200
    run: FigureRunConfig = field(default_factory=FigureRunConfig)

    def __post_init__(self) -> None:
        if self.top_labels < 1 or self.simplified_labels < 1:
            raise ValueError("top_labels and simplified_labels: expected >= 1")
        for key in ("max_cards", "images", "images_per_class"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key}: expected >= 1 or null, got {getattr(self, key)}")
        if self.card_width <= 0 or self.font_size <= 0 or self.dpi < 10:
            raise ValueError("card_width and font_size must be > 0, dpi >= 10")
        bad = sorted(set(self.formats) - {"png", "pdf", "svg"})
        if bad or not self.formats:
            raise ValueError(f"formats: expected some of png, pdf, svg, got {list(self.formats)}")


def figure_images(invs: Sequence[ImageINV], cfg: FigureConfig) -> list[ImageINV]:
    """Choose the images drawn: the first ``cfg.images``, then ``cfg.images_per_class`` per class."""
    chosen = list(invs if cfg.images is None else invs[: cfg.images])
    if cfg.images_per_class is not None:
        seen: dict[int, int] = {}
        kept = []
        for inv in chosen:
            seen[inv.true_label] = seen.get(inv.true_label, 0) + 1
            if seen[inv.true_label] <= cfg.images_per_class:
                kept.append(inv)
        chosen = kept
    return chosen


def label_colours(labels: Sequence[str]) -> dict[str, Any]:
    """Give each label a colour, in order of first appearance (colour-blind palette, then grey)."""
    from inviz.core.plotting import palette

    order = list(dict.fromkeys(labels))
    pal = palette(10)
    return {lab: (pal[i] if i < len(pal) else OTHER_COLOUR) for i, lab in enumerate(order)}


def _labels_by_importance(cards: Sequence[Card]) -> list[str]:
    """Labels ordered by the summed weight of the cards they top (so the main ones get the first colours)."""
    acc: dict[str, float] = {}
    for c in cards:
        for lab, _ in c.labels[:1]:
            acc[lab] = acc.get(lab, 0.0) + c.weight
    for c in cards:
        for lab, _ in c.labels:
            acc.setdefault(lab, 0.0)
    return sorted(acc, key=lambda k: -acc[k])


def _fit_width(text: Any, width_px: float) -> None:
    """Shrink ``text``'s font until it is at most ``width_px`` wide (card titles never overlap)."""
    used = text.get_window_extent(text.figure.canvas.get_renderer()).width
    if used > width_px > 0:
        text.set_fontsize(text.get_fontsize() * width_px / used)


def _draw_card(
    fig: Any,
    rect: Sequence[float],
    card: Card | None,
    tile: np.ndarray,
    n_labels: int,
    score_max: float,
    colours: dict[str, Any],
    font: float,
    title: str,
) -> Any:
    """One card: image in [0, 1]^2, title above, ``n_labels`` score bars below, all in one axes."""
    from matplotlib.patches import Rectangle

    ax = fig.add_axes(rect)
    line = 0.2
    ax.imshow(tile, extent=(0, 1, 0, 1), interpolation="nearest")
    ax.set_xlim(0, 1)
    ax.set_ylim(-line * n_labels - 0.02, 1.16)
    ax.set_axis_off()
    text = ax.text(0.0, 1.03, title, fontsize=font, va="bottom", ha="left", fontweight="bold")
    _fit_width(text, rect[2] * fig.bbox.width)
    if card is None:
        return ax
    labels = card.top(n_labels)
    if not labels and n_labels:
        ax.text(
            0.0,
            -line * 0.55,
            "no label",
            fontsize=font,
            va="center",
            ha="left",
            color=OTHER_COLOUR,
            style="italic",
        )
    for i, (lab, score) in enumerate(labels):
        y = -line * (i + 1)
        frac = max(0.0, score) / score_max if score_max > 0 else 0.0
        ax.add_patch(
            Rectangle(
                (0, y + 0.02), frac, line - 0.04, color=colours.get(lab, OTHER_COLOUR), alpha=0.35, lw=0
            )
        )
        bold = "bold" if lab in card.best else "normal"
        ax.text(0.02, y + line / 2, lab, fontsize=font, va="center", ha="left", fontweight=bold)
        ax.text(
            0.99, y + line / 2, f"{score:.2f}", fontsize=font * 0.9, va="center", ha="right", color="0.25"
        )
    return ax


def _rect(width: float, height: float, x: float, y_top: float, w: float, h: float) -> list[float]:
    """Place a box given in inches from the top-left corner: its axes rectangle in figure fractions."""
    return [x / width, 1 - (y_top + h) / height, w / width, h / height]


def _header_image(fig: Any, rect: list[float], image: np.ndarray) -> None:
    """Draw the input image (axes ``gid`` ``"header"``)."""
    ax = fig.add_axes(rect)
    ax.imshow(image, interpolation="lanczos")
    ax.set_axis_off()
    ax.set_gid("header")


def _title_caption(inv: ImageINV, cfg: FigureConfig, labelled: bool, text_width: float) -> str:
    """Write the header text (prediction, true class, what the cards show), wrapped to ``text_width``."""
    import textwrap

    nbsp = "\u00a0"  # keeps "true class: ..." on one line when the text wraps
    if inv.true_label < 0 or not inv.true_class:
        truth = "true class: unknown (not in the dataset)"
    else:
        truth = f"true class: {inv.true_class} ({'correct' if inv.pred == inv.true_label else 'wrong'})"
    transferred = any(c.source == "transfer" for cs in inv.cards(cfg.merged).values() for c in cs)
    if transferred:
        scores = "labels transferred by the label model (shares; conf = confidence)"
    elif labelled:
        scores = f"top-{cfg.top_labels} labels with scores (best in bold)"
    else:
        scores = "no labels yet (they come from the label game, Deep Reveal)"
    lines = [
        f"predicted: {inv.pred_name} ({100 * inv.confidence:.1f}{nbsp}%)   {truth.replace(' ', nbsp)}",
        f"{'merged ' if cfg.merged and labelled else ''}cluster maps per layer, heaviest first: "
        f"weight in % of the layer's weight, feature maps, {scores}",
    ]
    chars = max(24, int(text_width / (0.58 * cfg.font_size * 1.15 / 72)))  # ~0.58 em per character
    return "\n".join(textwrap.fill(line, chars) for line in lines)


def _inv_title(fig: Any, inv: ImageINV, cfg: FigureConfig, text: str, x: float, y_top: float) -> None:
    """Write the INV's title and its header text at ``x`` (figure fraction), ``y_top`` inches from the top."""
    height = fig.get_figheight()
    fig.text(
        x,
        1 - (y_top + 0.12) / height,
        f"INV of {inv.sample_id}",
        fontsize=cfg.font_size * 1.5,
        fontweight="bold",
        va="top",
    )
    fig.text(x, 1 - (y_top + 0.42) / height, text, fontsize=cfg.font_size * 1.15, va="top", linespacing=1.5)


def _shown_cards(inv: ImageINV, cfg: FigureConfig) -> dict[str, list[Card]]:
    """Return the cards of each layer column: at most ``cfg.max_cards``, heaviest first."""
    columns = inv.cards(cfg.merged)
    return {ly: columns.get(ly, [])[: cfg.max_cards or None] for ly in inv.layers}


def _card_title(card: Card) -> str:
    """Weight and feature maps of a card (and a transferred card's confidence)."""
    if card.source == "transfer":
        return f"{card.weight:.1f} % · {card.n_fmaps} fm · conf {card.confidence:.2f}"
    return f"{card.weight:.1f} %  ·  {card.n_fmaps} fm"


def _caption(fig: Any, text: str, width: float, height: float, y_top: float, font: float) -> None:
    """Write ``text`` (a narrative) as the figure's caption, wrapped to its width, from ``y_top`` inches."""
    fig.text(
        0.08 / width,
        1 - y_top / height,
        text,
        fontsize=font,
        va="top",
        ha="left",
        wrap=False,
        linespacing=1.35,
        gid="caption",
    )


def caption_lines(text: str, width: float, font: float) -> str:
    """Wrap a caption to a figure ``width`` (inches) at ``font`` points; paragraphs kept."""
    import textwrap

    chars = max(40, int(width * 72 / (0.52 * font)))
    return "\n".join(textwrap.fill(p, chars) for p in text.split("\n\n"))


def inv_figure(
    inv: ImageINV,
    cfg: FigureConfig | None = None,
    reveal_cfg: RevealConfig | None = None,
    caption: str | None = None,
) -> Any:
    """Draw the INV of one image (paper Figure 3).

    Parameters
    ----------
    inv : the image's INV (:func:`inviz.views.records.load_inv` for the pipeline's, with labels;
        :func:`inviz.views.records.image_inv` for an :func:`inviz.fmaps.explain.explain` result).
    cfg : figure settings (default :class:`FigureConfig`); reveal_cfg : the game's reveal settings
        used by ``overlay`` (default :class:`RevealConfig` with ``game_size`` = 2x the image).
    caption : text under the cards (the narrative, :mod:`inviz.views.narratives`); None: none.

    Returns
    -------
    matplotlib Figure with one axes for the header image and one per card; the axes carry
    ``gid`` ``"header"`` / ``"card:<card key>"`` so tests and tools can find them.
    """
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    cfg, reveal_cfg = cfg or FigureConfig(), reveal_cfg or RevealConfig(game_size=2 * inv.image.shape[0])
    apply_style()
    layers = list(inv.layers)
    shown = _shown_cards(inv, cfg)
    n_rows = max([len(v) for v in shown.values()] + [1])
    everything = [c for v in shown.values() for c in v]
    colours = label_colours(_labels_by_importance(everything))
    score_max = max([s for c in everything for _, s in c.top(cfg.top_labels)] + [0.0])
    n_labels = cfg.top_labels if any(c.labels for c in everything) else 0  # unlabelled: no label rows

    cw = cfg.card_width
    pad = 0.08 * cw
    card_h = cw * 1.16 + 0.2 * n_labels * cw + pad
    col_head = 0.22
    width = max(len(layers) * cw + (len(layers) + 1) * pad, 3.4)
    title = _title_caption(inv, cfg, n_labels > 0, width - 1.2 * cw - 3 * pad)
    # the header holds the image, or the title and its text lines when they are taller
    header_h = max(1.2 * cw + 0.15, pad + 0.47 + (title.count("\n") + 1) * cfg.font_size * 1.15 * 1.5 / 72)
    font = cfg.font_size
    wrapped = caption_lines(caption, width - 0.16, font) if caption else ""
    caption_h = (wrapped.count("\n") + 1) * font * 1.35 / 72 + 0.1 if wrapped else 0.0
    height = header_h + col_head + n_rows * card_h + pad + caption_h
    fig = plt.figure(figsize=(width, height))
    if wrapped:
        _caption(fig, wrapped, width, height, header_h + col_head + n_rows * card_h + pad, font)
    rect = partial(_rect, width, height)
    _header_image(fig, rect(pad, pad, 1.2 * cw, 1.2 * cw), inv.image)
    _inv_title(fig, inv, cfg, title, (1.2 * cw + 2 * pad) / width, pad)
    tiles: dict[str, np.ndarray] = {}
    for j, ly in enumerate(layers):
        x = pad + j * (cw + pad)
        fig.text(
            (x + cw / 2) / width,
            1 - (header_h + col_head * 0.5) / height,
            ly,
            fontsize=font * 1.1,
            ha="center",
            va="center",
            fontweight="bold",
        )
        for i, card in enumerate(shown[ly]):
            tiles[card.key] = overlay(inv.image, card.map, cfg.overlay, reveal_cfg)
            y = header_h + col_head + i * card_h
            cax = _draw_card(
                fig,
                rect(x, y, cw, card_h - pad),
                card,
                tiles[card.key],
                n_labels,
                score_max,
                colours,
                font,
                _card_title(card),
            )
            cax.set_gid(f"card:{card.key}")
        if not shown[ly]:
            fig.text(
                (x + cw / 2) / width,
                1 - (header_h + col_head + 0.3) / height,
                "no cluster map",
                fontsize=font,
                ha="center",
                color=OTHER_COLOUR,
                style="italic",
            )
    return fig


def simplified_inv_figure(inv: ImageINV, cfg: FigureConfig, reveal_cfg: RevealConfig) -> Any:
    """Draw the simplified INV of the survey: one layer, a few labels per cluster map.

    The layer is the deepest (or ``cfg.simplified_layer``), with ``cfg.simplified_labels``
    label(s) per cluster map; the image first, then the cards in a row.

    Parameters
    ----------
    inv, cfg, reveal_cfg : as for :func:`inv_figure`.

    Returns
    -------
    matplotlib Figure, axes ``gid`` ``"header"`` (the image) and ``"card:<card key>"``.
    """
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    apply_style()
    layer = cfg.simplified_layer or inv.layers[-1]
    if layer not in inv.layers:
        raise ValueError(
            f"figures.simplified_layer: {layer!r} is not an explained layer ({', '.join(inv.layers)})"
        )
    cards = inv.cards(cfg.merged).get(layer, [])
    cards = cards[: cfg.max_cards] if cfg.max_cards else cards
    colours = label_colours(_labels_by_importance(cards))
    score_max = max([s for c in cards for _, s in c.top(cfg.simplified_labels)] + [0.0])
    cw = cfg.card_width * 1.3
    pad = 0.08 * cw
    n = len(cards)
    card_h = cw * 1.16 + 0.2 * cfg.simplified_labels * cw
    width = (n + 1) * cw + (n + 2) * pad
    height = card_h + 2 * pad + 0.45
    fig = plt.figure(figsize=(max(width, 3.4), height))
    width = max(width, 3.4)
    font = cfg.font_size * 1.1
    rect = partial(_rect, width, height)

    fig.text(
        pad / width,
        1 - pad / height,
        f"{inv.pred_name} ({100 * inv.confidence:.1f} %) — {layer}",
        fontsize=font * 1.2,
        fontweight="bold",
        va="top",
    )
    top = 0.45
    _header_image(fig, rect(pad, top + 0.16 * cw, cw, cw), inv.image)
    for i, card in enumerate(cards):
        x = pad + (i + 1) * (cw + pad)
        tile = overlay(inv.image, card.map, cfg.overlay, reveal_cfg)
        cax = _draw_card(
            fig,
            rect(x, top, cw, card_h),
            card,
            tile,
            cfg.simplified_labels,
            score_max,
            colours,
            font,
            f"{card.weight:.1f} %",
        )
        cax.set_gid(f"card:{card.key}")
    return fig


# ----------------------------------------------------------------------------------------------
# every image's figures

INDEX_COLUMNS = [
    "image",
    "class_name",
    "pred_name",
    "confidence",
    "file",
    "simplified_file",
    "n_cards",
    "n_labelled",
]


def _draw_one(
    inv: ImageINV, cfg: FigureConfig, reveal_cfg: RevealConfig, out: Path, narrative_cfg: Any = None
) -> dict[str, Any]:
    """Draw and save the INV (captioned with its narrative) and simplified INV of one image; its index row."""
    from inviz.core.io import save_figure, write_text
    from inviz.core.plotting import close
    from inviz.views.records import safe_name

    name = safe_name(inv.sample_id)
    text = None
    if narrative_cfg is not None and narrative_cfg.enabled:
        from inviz.views.narratives import inv_narrative

        text = inv_narrative(inv, cfg.merged, narrative_cfg)
        write_text(out / f"{name}.txt", text + "\n")
    for fig_fn, folder, cap in ((inv_figure, out, text), (simplified_inv_figure, out / "simplified", None)):
        fig = fig_fn(inv, cfg, reveal_cfg, cap) if cap else fig_fn(inv, cfg, reveal_cfg)
        save_figure(fig, folder / f"{name}.{cfg.formats[0]}", formats=cfg.formats, dpi=cfg.dpi, tight=False)
        close(fig)
    cards = inv.cards(cfg.merged)
    return {
        "image": inv.sample_id,
        "class_name": inv.true_class,
        "pred_name": inv.pred_name,
        "confidence": inv.confidence,
        "file": f"{name}.{cfg.formats[0]}",
        "simplified_file": f"simplified/{name}.{cfg.formats[0]}",
        "n_cards": sum(len(v) for v in cards.values()),
        "n_labelled": sum(1 for v in cards.values() for c in v if c.labels),
    }


def draw_inv_figures(
    invs: Sequence[ImageINV],
    cfg: FigureConfig,
    reveal_cfg: RevealConfig,
    out: Path,
    narrative_cfg: Any = None,
) -> pd.DataFrame:
    """Save the INV and the simplified INV of every image into ``out`` and ``out/simplified``.

    Parameters
    ----------
    invs : sequence of ImageINV
        The images to draw (``cfg.images`` is applied by the caller).
    cfg : FigureConfig
        Figure settings; ``cfg.run.workers`` > 1 draws in that many processes (same files).
    reveal_cfg : RevealConfig
        The game's reveal settings (overlays).
    out : Path
        Existing output folder.
    narrative_cfg : NarrativeConfig, optional
        With ``enabled``, each INV figure is captioned with its narrative, also saved as ``<image>.txt``.

    Returns
    -------
    DataFrame with columns :data:`INDEX_COLUMNS`, one row per image, in the order of ``invs``.
    """
    from tqdm.auto import tqdm

    (out / "simplified").mkdir(exist_ok=True)
    draw = partial(_draw_one, cfg=cfg, reveal_cfg=reveal_cfg, out=out, narrative_cfg=narrative_cfg)
    if cfg.run.workers > 1 and len(invs) > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(cfg.run.workers) as pool:
            rows = list(tqdm(pool.imap(draw, invs), total=len(invs), desc="INV figures", unit="image"))
    else:
        rows = [draw(inv) for inv in tqdm(invs, desc="INV figures", unit="image")]
    return pd.DataFrame(rows, columns=INDEX_COLUMNS)
