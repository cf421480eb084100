"""Narratives: every number a text prints is parsed back and found in its record (hand-built INVs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inviz.core.config import ParamsError, from_dict
from inviz.views.narratives import (
    NarrativeConfig,
    card_narrative,
    card_summary,
    global_narrative,
    global_summary,
    inv_narrative,
    inv_summary,
    numbers,
    render,
)
from inviz.views.records import Card, ImageINV

LAYERS = ("block3_conv1", "block4_conv1", "block5_conv3")


def card(i, layer, w, nf, labels, plays=5, source="game", conf=float("nan"), cov=float("nan")):
    best = tuple(lab for lab, s in labels if s >= labels[0][1] - 1e-9) if labels else ()
    return Card(
        "merged",
        i,
        (i,),
        "img",
        layer,
        LAYERS.index(layer),
        w,
        nf,
        tuple(labels),
        best,
        plays,
        3,
        2,
        0,
        1.5,
        np.zeros((4, 4)),
        source,
        conf,
        cov,
    )


def game_inv(confidence=0.9876):
    merged = {
        "block3_conv1": [
            card(1, "block3_conv1", 40.0, 12, [("dots", 2.5), ("star", 1.0)]),
            card(2, "block3_conv1", 20.3, 5, [("stripes", 0.8)], plays=2),
        ],
        "block4_conv1": [
            card(3, "block4_conv1", 55.5, 9, [("star", 3.0)]),
            card(4, "block4_conv1", 10.0, 3, []),
        ],
        "block5_conv3": [card(5, "block5_conv3", 70.0, 4, [("star", 4.1), ("ring", 2.2)])],
    }
    return ImageINV(
        "val/c04_sheriff/sheriff_3",
        "p.png",
        4,
        "sheriff",
        4,
        "sheriff",
        confidence,
        np.zeros((8, 8, 3), np.uint8),
        LAYERS,
        merged,
        merged,
    )


def transferred_inv():
    t = dict(source="transfer", plays=0)
    merged = {
        "block3_conv1": [
            card(1, "block3_conv1", 33.3, 7, [("wheel", 0.8), ("grid", 0.2)], conf=0.72, cov=0.9, **t)
        ],
        "block4_conv1": [card(2, "block4_conv1", 44.4, 6, [("wheel", 0.55)], conf=0.21, cov=0.5, **t)],
        "block5_conv3": [card(3, "block5_conv3", 61.0, 2, [], conf=0.0, cov=0.0, **t)],
    }
    return ImageINV(
        "astronaut",
        "astronaut.png",
        -1,
        "",
        1,
        "tractor",
        0.6,
        np.zeros((8, 8, 3), np.uint8),
        LAYERS,
        merged,
        merged,
    )


def leaves(obj):
    """Every number in a (nested) record."""
    if isinstance(obj, dict):
        return [v for x in obj.values() for v in leaves(x)]
    if isinstance(obj, (list, tuple)):
        return [v for x in obj for v in leaves(x)]
    if isinstance(obj, bool) or obj is None:
        return []
    return [float(obj)] if isinstance(obj, (int, float)) else []


def printed_forms(values, cfg):
    """How the templates may print each record number (percent, score, integer, p-value)."""
    out = set()
    for v in values:
        out |= {round(v, cfg.decimals), round(v, cfg.score_decimals), float(f"{v:.{cfg.score_decimals}g}")}
        if float(v).is_integer():
            out.add(float(v))
    return out


def assert_numbers_from(text, record, cfg):
    allowed = printed_forms(leaves(record), cfg)
    found = numbers(text)
    assert found, text
    stray = [x for x in found if not any(abs(x - a) < 1e-9 for a in allowed)]
    assert not stray, f"numbers not in the record: {stray}\n{text}"


def test_numbers_ignore_identifiers():
    assert numbers('In block5_conv3, 3 maps of val/c04_x/img_12 hold 12.5 % ("wheel2"), p = 0.00031.') == [
        3.0,
        12.5,
        0.00031,
    ]


def test_inv_narrative_numbers_come_from_its_record():
    cfg = NarrativeConfig()
    inv = game_inv()
    summary = inv_summary(inv, True, cfg)
    text = render("inv.txt.j2", summary, cfg)
    assert text == inv_narrative(inv, True, cfg)
    assert_numbers_from(text, summary, cfg)
    # the key facts, parsed back one by one
    assert "predicts sheriff with 98.8 % confidence" in text and "prediction is correct" in text
    assert "In block3_conv1, 2 cluster maps of 17 feature maps carry 60.3 % of the layer's weight" in text
    assert '"dots" (40.0 %, 1 map) and "stripes" (20.3 %, 1 map)' in text
    assert "In block5_conv3, 1 cluster map of 4 feature maps carries 70.0 %" in text
    assert 'moves from "dots" (block3_conv1) through "star" (block4_conv1) to "star"' not in text
    assert 'moves from "dots" (block3_conv1) to "star" (block5_conv3)' in text
    # caveats: one unlabelled map, one label below 1.0 (stripes 0.8), one map with 2 < 3 players
    assert "1 cluster map has no label" in text
    assert "1 map has a top label scored below 1.00" in text
    assert "1 map was played by fewer than 3 players" in text
    assert summary["caveats"] == {"unlabelled": 1, "low_score": 1, "few_players": 1, "low_confidence": 0}


def test_a_different_record_gives_different_numbers():
    cfg = NarrativeConfig()
    a = inv_narrative(game_inv(0.9876), True, cfg)
    b = inv_narrative(game_inv(0.5123), True, cfg)
    assert 98.8 in numbers(a) and 98.8 not in numbers(b) and 51.2 in numbers(b)
    with pytest.raises(AssertionError, match="not in the record"):
        assert_numbers_from(b, inv_summary(game_inv(0.9876), True, cfg), cfg)


def test_transferred_inv_narrative_names_confidence_and_caveats():
    cfg = from_dict(NarrativeConfig, {"decimals": 2, "low_confidence": 0.3})
    inv = transferred_inv()
    summary = inv_summary(inv, True, cfg)
    text = inv_narrative(inv, True, cfg)
    assert_numbers_from(text, summary, cfg)
    assert summary["source"] == "transfer" and summary["true_class"] is None
    assert "predicts tractor with 60.00 % confidence." in text and "labelled" not in text.split(".")[0]
    assert "mean label confidence 0.31" in text  # (0.72 + 0.21 + 0) / 3
    assert "seen 46.67 % of their channels" in text  # (0.9 + 0.5 + 0) / 3
    assert "1 transferred label has a confidence below 0.30; treat it as a guess" in text
    assert "1 cluster map has no label" in text
    assert 'the evidence stays with "wheel"' not in text  # the deep layer has no label


def test_card_narratives():
    cfg = NarrativeConfig()
    inv = game_inv()
    c = inv.merged["block5_conv3"][0]
    text = card_narrative(c, cfg)
    assert_numbers_from(text, card_summary(c, cfg), cfg)
    assert "holds 70.0 % of block5_conv3's weight in 4 feature maps" in text
    assert 'Players called it "star" (score 4.10; "ring" 2.20) over 5 plays, 3 of them won.' in text
    t = transferred_inv().merged["block4_conv1"][0]
    text = card_narrative(t, cfg)
    assert_numbers_from(text, card_summary(t, cfg), cfg)
    assert 'The label model calls it "wheel" (share 0.55) with confidence 0.21, having seen 50.0 %' in text
    assert "treat the label as a guess" in text
    none = transferred_inv().merged["block5_conv3"][0]
    assert "It has no label (the label model had not seen its channels)." in card_narrative(none, cfg)


GLOBAL_COLUMNS = [
    "rank",
    "label",
    "importance",
    "n_maps",
    "n_images",
    "tcav_status",
    "tcav_score",
    "p_adjusted",
    "significant",
    "n_examples",
    "n_transferred",
]


def global_rows():
    rows = [
        (1, "star", 55.2, 7, 5, "ok", 0.93, 0.000123, True, 12, 4),
        (2, "ring", 30.0, 3, 3, "ok", 0.55, 0.4, False, 10, 0),
        (3, "dots", 12.0, 1, 1, "too_few_examples", np.nan, np.nan, np.nan, 3, 1),
    ]
    return pd.DataFrame(rows, columns=GLOBAL_COLUMNS).assign(class_name="sheriff", layer="block5_conv3")


def test_global_narrative_numbers_come_from_its_record():
    cfg = NarrativeConfig()
    rows = global_rows()
    summary = global_summary(rows, 10)
    text = global_narrative(rows, cfg, 10)
    assert_numbers_from(text, summary, cfg)
    assert (
        'explained mostly by "star": the maps it tops weigh 55.2 % of the layer on average (7 maps from 5 images)'
        in text
    )
    assert (
        '"star" is a significant concept for the class (score 0.93, corrected p = 0.00012, 12 examples, 4 of them transferred)'
        in text
    )
    assert '"ring" is not a significant concept' in text
    assert '"dots" has too few examples to be tested (3 of the 10 needed, 1 transferred)' in text
    assert 'Caveat: "dots" tops a single map only.' in text
    # untested (no TCAV columns): no TCAV sentence at all
    plain = global_narrative(
        rows.drop(
            columns=[
                c
                for c in rows.columns
                if c.startswith("tcav") or c in ("p_adjusted", "significant", "n_examples", "n_transferred")
            ]
        ),
        cfg,
    )
    assert "TCAV" not in plain and "55.2 %" in plain


def test_config_checks():
    with pytest.raises(ParamsError, match="low_confidence"):
        from_dict(NarrativeConfig, {"low_confidence": 2.0}, "narratives")
    with pytest.raises(ParamsError, match="labels_per_layer"):
        from_dict(NarrativeConfig, {"labels_per_layer": 0}, "narratives")


def test_inv_figure_caption_and_transferred_titles_fit():
    """The narrative is the figure's caption; on a narrow figure of transferred cards the card titles
    fit their card and the wrapped header ends above the layer names."""
    from inviz.game.reveal import RevealConfig
    from inviz.views.figures import FigureConfig, inv_figure

    inv = transferred_inv()
    text = inv_narrative(inv, True, NarrativeConfig())
    fig = inv_figure(inv, FigureConfig(), RevealConfig(), text)
    renderer = fig.canvas.get_renderer()
    (caption,) = [t for t in fig.texts if t.get_gid() == "caption"]
    assert caption.get_text().split() == text.split()
    cards = [a for a in fig.axes if (a.get_gid() or "").startswith("card:")]
    assert cards
    for ax in cards:
        title = ax.texts[0]
        assert "conf" in title.get_text()
        assert title.get_window_extent(renderer).width <= ax.get_position().width * fig.bbox.width + 0.5
    (header,) = [t for t in fig.texts if t.get_text().startswith("predicted:")]
    assert "true class: unknown" in " ".join(header.get_text().split())
    names = [t for t in fig.texts if t.get_text() in inv.layers]
    assert header.get_window_extent(renderer).y0 > max(t.get_window_extent(renderer).y1 for t in names)
