"""Plain-language narratives of an INV and of a global explanation, from templates (Jinja2).

In the manner of template-based narrative generation from feature contributions: a short text says
what the prediction is, which labels carry each layer's weight, how the evidence moves from
shallow to deep layers, and what to be careful about. The words live in templates
(``inviz/resources/narratives/*.txt.j2``: data, not code); the numbers live in a **summary
record** built here (:func:`inv_summary`, :func:`global_summary`), so every number a narrative
prints is a value of its record (tests parse the numbers back). Figures show the text in their
caption, the explorer on its cards and views, ``inviz explain`` in its output.

Per layer (§3.8 cards, merged by default): the cluster maps, their feature maps and weight, and the
labels by the summed weight of the maps they top (a map with tied best labels counts for each).
Shallow, middle and deep thirds of the layers name their leading label. Caveats: maps without a
label, a top label scored below ``low_score``, maps played by fewer than ``few_players`` people,
transferred labels below ``low_confidence``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import pandas as pd

from inviz.core.checks import check_at_least, check_unit
from inviz.views.records import Card, ImageINV

#: a number as a narrative prints it: not part of a word or identifier (``block5_conv3`` is no number)
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w])")


@dataclass(frozen=True)
class NarrativeConfig:
    """``narratives`` section: what the texts say and how numbers are rounded.

    Parameters
    ----------
    enabled : bool
        Show narratives in figure captions (the explorer and ``inviz explain`` always have them).
    labels_per_layer : int
        Labels named per layer (by the weight of the maps they top).
    labels_per_class : int
        Labels named per class and layer in a global narrative.
    low_score : float
        A game label scored below this is a caveat (a score of 1 = one player's text without hints).
    few_players : int
        A map played by fewer people is a caveat.
    low_confidence : float
        A transferred label with a lower confidence is a caveat.
    decimals : int
        Decimals of percentages.
    score_decimals : int
        Decimals of scores, confidences and TCAV scores.
    """

    enabled: bool = True
    labels_per_layer: int = 2
    labels_per_class: int = 3
    low_score: float = 1.0
    few_players: int = 3
    low_confidence: float = 0.3
    decimals: int = 1
    score_decimals: int = 2

    def __post_init__(self) -> None:
        """Check the ranges (``ValueError`` naming the key)."""
        check_at_least(
            self,
            {
                "labels_per_layer": 1,
                "labels_per_class": 1,
                "few_players": 0,
                "decimals": 0,
                "score_decimals": 0,
            },
        )
        check_unit(self, ["low_confidence"])


# ----------------------------------------------------------------------------------------------
# summaries (the records the texts are made of)


def _label_weights(cards: Sequence[Card]) -> list[dict[str, Any]]:
    """Labels by the summed weight of the cards they top (ties: each), desc; count of maps."""
    acc: dict[str, list[float]] = {}
    for c in cards:
        for lab in c.best:
            acc.setdefault(lab, []).append(c.weight)
    ranked = sorted(acc, key=lambda lab: (-sum(acc[lab]), lab))
    return [{"label": lab, "weight": float(sum(acc[lab])), "n_maps": len(acc[lab])} for lab in ranked]


def _groups(layers: Sequence[str]) -> list[tuple[str, list[str]]]:
    """Split the layers into shallow / middle / deep thirds (fewer groups for fewer layers)."""
    n = len(layers)
    if n < 2:
        return []
    if n < 3:
        return [("shallow", [layers[0]]), ("deep", [layers[-1]])]
    a, b = round(n / 3), round(2 * n / 3)
    return [("shallow", list(layers[:a])), ("middle", list(layers[a:b])), ("deep", list(layers[b:]))]


def _progression(per_layer: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Leading label of each third of the layers, and the labels present at every layer."""
    by_layer = {d["layer"]: d for d in per_layer}
    groups = []
    for name, layers in _groups([d["layer"] for d in per_layer]):
        acc: dict[str, float] = {}
        for ly in layers:
            for lab in by_layer[ly]["all_labels"]:
                acc[lab["label"]] = acc.get(lab["label"], 0.0) + lab["weight"]
        lead = sorted(acc, key=lambda lab: (-acc[lab], lab))[:1]
        groups.append(
            {"name": name, "first": layers[0], "last": layers[-1], "label": lead[0] if lead else None}
        )
    everywhere = (
        set.intersection(*(set(x["label"] for x in d["all_labels"]) for d in per_layer))
        if per_layer
        else set()
    )
    return {"groups": groups, "everywhere": sorted(everywhere), "n_layers": len(per_layer)}


def inv_summary(inv: ImageINV, merged: bool, cfg: NarrativeConfig) -> dict[str, Any]:
    """Summarise an INV: every number its narrative prints (JSON-able).

    Parameters
    ----------
    inv : ImageINV
        Played (game cards) or new (transferred cards) image.
    merged : bool
        Summarise the merged cluster maps (the INV) or the single ones.
    cfg : NarrativeConfig

    Returns
    -------
    dict
        ``image, pred_name, confidence`` (%), ``true_class`` (None when unknown), ``correct``,
        ``source`` (``game`` / ``transfer``), ``layers`` (per layer: ``layer, n_maps, n_fmaps,
        weight`` (% of the layer), ``labels`` (the top ``labels_per_layer``: ``label, weight,
        n_maps``), ``all_labels``), ``progression``, ``caveats`` (counts) and ``thresholds``.
    """
    cards_by_layer = inv.cards(merged)
    layers = []
    for ly in inv.layers:
        cards = cards_by_layer.get(ly, [])
        labels = _label_weights(cards)
        layers.append(
            {
                "layer": ly,
                "n_maps": len(cards),
                "n_fmaps": int(sum(c.n_fmaps for c in cards)),
                "weight": float(sum(c.weight for c in cards)),
                "labels": labels[: cfg.labels_per_layer],
                "all_labels": labels,
            }
        )
    every = [c for cs in cards_by_layer.values() for c in cs]
    transfer = any(c.source == "transfer" for c in every)
    known = inv.true_label >= 0 and bool(inv.true_class)
    confidences = [c.confidence for c in every if c.source == "transfer"]
    return {
        "image": inv.sample_id,
        "pred_name": inv.pred_name,
        "confidence": 100.0 * inv.confidence,
        "true_class": inv.true_class if known else None,
        "correct": bool(inv.pred == inv.true_label) if known else None,
        "source": "transfer" if transfer else "game",
        "n_maps": len(every),
        "mean_label_confidence": float(sum(confidences) / len(confidences)) if confidences else None,
        "mean_coverage": 100.0 * float(sum(c.coverage for c in every) / len(every))
        if transfer and every
        else None,
        "layers": layers,
        "progression": _progression(layers),
        "caveats": {
            "unlabelled": sum(1 for c in every if not c.labels),
            "low_score": 0
            if transfer
            else sum(1 for c in every if c.labels and c.labels[0][1] < cfg.low_score),
            "few_players": 0 if transfer else sum(1 for c in every if c.plays < cfg.few_players),
            "low_confidence": sum(
                1 for c in every if c.source == "transfer" and c.labels and c.confidence < cfg.low_confidence
            ),
        },
        "thresholds": {
            "low_score": cfg.low_score,
            "few_players": cfg.few_players,
            "low_confidence": cfg.low_confidence,
        },
    }


def card_summary(card: Card, cfg: NarrativeConfig, top: int = 3) -> dict[str, Any]:
    """Summarise one card: every number its narrative prints (JSON-able).

    Parameters
    ----------
    card : Card
    cfg : NarrativeConfig
    top : int
        Labels named.

    Returns
    -------
    dict
        ``kind, layer, weight, n_fmaps, source, labels`` (``label, score``), ``plays, wins``,
        ``confidence``, ``coverage`` (%), ``few_players``, ``low_confidence``.
    """
    return {
        "kind": card.kind,
        "layer": card.layer,
        "weight": float(card.weight),
        "n_fmaps": int(card.n_fmaps),
        "source": card.source,
        "labels": [{"label": lab, "score": float(sc)} for lab, sc in card.top(top)],
        "plays": int(card.plays),
        "wins": int(card.wins),
        "confidence": float(card.confidence),
        "coverage": 100.0 * float(card.coverage),
        "few_players": cfg.few_players,
        "low_confidence": cfg.low_confidence,
    }


def global_summary(rows: pd.DataFrame, min_examples: int | None = None) -> dict[str, Any]:
    """Summarise the global explanation of one class at one layer (JSON-able).

    Parameters
    ----------
    rows : DataFrame
        Its rows of ``global.csv`` (``class_name, layer, rank, label, importance, n_maps,
        n_images`` and, where tested, the TCAV columns; ``n_transferred`` when transferred
        examples were used).
    min_examples : int, optional
        TCAV's ``min_examples`` (named in the "too few examples" caveat).

    Returns
    -------
    dict
        ``class_name, layer, labels`` (per label: ``label, importance, n_maps, n_images`` and
        ``tcav``: ``status, score, p_adjusted, significant, n_examples, n_transferred``),
        ``min_examples``.
    """
    rows = rows.sort_values("rank")
    labels = []
    for r in rows.itertuples():
        status = getattr(r, "tcav_status", None)
        tcav = None
        if isinstance(status, str):
            n_tr = getattr(r, "n_transferred", None)
            tcav = {
                "status": status,
                "score": float(r.tcav_score) if pd.notna(getattr(r, "tcav_score", None)) else None,
                "p_adjusted": float(r.p_adjusted) if pd.notna(getattr(r, "p_adjusted", None)) else None,
                "significant": bool(r.significant) if status == "ok" and pd.notna(r.significant) else None,
                "n_examples": int(r.n_examples) if pd.notna(getattr(r, "n_examples", None)) else None,
                "n_transferred": int(n_tr) if n_tr is not None and pd.notna(n_tr) else 0,
            }
        labels.append(
            {
                "label": str(r.label),
                "importance": float(r.importance),
                "n_maps": int(r.n_maps),
                "n_images": int(r.n_images),
                "tcav": tcav,
            }
        )
    first = rows.iloc[0] if len(rows) else {}
    return {
        "class_name": str(first.get("class_name", "")) if len(rows) else "",
        "layer": str(first.get("layer", "")) if len(rows) else "",
        "labels": labels,
        "min_examples": min_examples,
    }


# ----------------------------------------------------------------------------------------------
# rendering


@cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("inviz", "resources/narratives"),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        undefined=jinja2.StrictUndefined,
    )
    return env


def _tidy(text: str) -> str:
    """Collapse the template's spaces and line breaks: one paragraph per blank-line-separated block."""
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text)]
    return "\n\n".join(p for p in paragraphs if p)


def render(template: str, summary: Mapping[str, Any], cfg: NarrativeConfig) -> str:
    """Render a narrative template with a summary record.

    Parameters
    ----------
    template : str
        File name under ``inviz/resources/narratives/`` (``inv.txt.j2``, ``global.txt.j2``).
    summary : mapping
        From :func:`inv_summary` / :func:`global_summary`.
    cfg : NarrativeConfig
        Rounding (``decimals``, ``score_decimals``).

    Returns
    -------
    str
        Plain text, paragraphs separated by a blank line.
    """
    env = _environment()

    def pct(x: float) -> str:
        return f"{x:.{cfg.decimals}f} %"

    def num(x: float) -> str:
        return f"{x:.{cfg.score_decimals}f}"

    def pval(x: float) -> str:  # significant digits, never scientific notation (numbers stay parseable)
        import numpy as np

        return np.format_float_positional(x, precision=cfg.score_decimals, fractional=False, trim="-")

    def plural(n: int, word: str, many: str | None = None) -> str:
        return f"{n} {word if n == 1 else (many or word + 's')}"

    tpl = env.get_template(template)
    return _tidy(tpl.render(s=summary, pct=pct, num=num, pval=pval, plural=plural))


def inv_narrative(inv: ImageINV, merged: bool, cfg: NarrativeConfig) -> str:
    """Write the narrative of one INV (:func:`inv_summary` rendered with ``inv.txt.j2``)."""
    return render("inv.txt.j2", inv_summary(inv, merged, cfg), cfg)


def card_narrative(card: Card, cfg: NarrativeConfig, top: int = 3) -> str:
    """Write the narrative of one card (:func:`card_summary` rendered with ``card.txt.j2``)."""
    return render("card.txt.j2", card_summary(card, cfg, top), cfg)


def global_narrative(rows: pd.DataFrame, cfg: NarrativeConfig, min_examples: int | None = None) -> str:
    """Write the narrative of one class at one layer (:func:`global_summary` with ``global.txt.j2``)."""
    return render("global.txt.j2", global_summary(rows, min_examples), cfg)


def numbers(text: str) -> list[float]:
    """Parse every number a narrative prints (identifiers such as ``block5_conv3`` excluded)."""
    return [float(m) for m in NUMBER.findall(text)]
