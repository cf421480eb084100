"""Global explanations (docs/method.md §4), concept examples and the INV display helpers, on hand-built records."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from inviz.concepts.explain import TCAV_COLUMNS, explain_classes
from inviz.concepts.importance import (
    ConceptConfig,
    GlobalConfig,
    concept_cards,
    concept_examples,
    draw,
    global_explanations,
    random_examples,
    to_input,
)
from inviz.concepts.report import global_figures, global_markdown
from inviz.core.config import ParamsError
from inviz.game.reveal import RevealConfig, percentile_mask, soft_mask, upscale_nearest
from inviz.views.figures import FigureConfig
from inviz.views.overlays import OverlayConfig, overlay, reveal_mask
from inviz.views.records import Card, ImageINV, safe_name

REVEAL = RevealConfig(game_size=64, sigma={8: 4.0})
LAYERS = ("block4_conv1", "block5_conv3")


def card(
    cid: int, image: str, layer: str, weight: float, best: tuple[str, ...], labels=None, side: int = 8
) -> Card:
    labels = labels if labels is not None else tuple((b, 2.0) for b in best)
    m = np.roll(np.arange(side * side, dtype=np.float32), cid * side).reshape(
        side, side
    )  # distinct values: no ties
    return Card(
        kind="merged",
        id=cid,
        members=(cid,),
        image=image,
        layer=layer,
        layer_index=LAYERS.index(layer),
        weight=weight,
        n_fmaps=3,
        labels=labels,
        best=best,
        plays=4,
        wins=3,
        losses=1,
        resigns=0,
        mean_hints=1.5,
        map=m,
    )


def image(sid: str, label: int, name: str, cards: list[Card]) -> ImageINV:
    by = {ly: sorted([c for c in cards if c.layer == ly], key=lambda c: -c.weight) for ly in LAYERS}
    return ImageINV(
        sid, f"{sid}.png", label, name, label, name, 0.9, np.full((32, 32, 3), 200, np.uint8), LAYERS, by, by
    )


@pytest.fixture
def invs():
    # class 0 ("fish"), two images; layer block5_conv3:
    #   a: fish 40, eye 30, person 10 (tie person/eye on card 3)    b: fish 20, eye 50
    a = image(
        "a",
        0,
        "fish",
        [
            card(1, "a", "block5_conv3", 40.0, ("fish",)),
            card(2, "a", "block5_conv3", 30.0, ("eye",)),
            card(3, "a", "block5_conv3", 10.0, ("person", "eye")),
            card(4, "a", "block4_conv1", 60.0, ("fin",)),
        ],
    )
    b = image(
        "b",
        0,
        "fish",
        [
            card(5, "b", "block5_conv3", 20.0, ("fish",)),
            card(6, "b", "block5_conv3", 50.0, ("eye",)),
            card(7, "b", "block5_conv3", 5.0, ()),
        ],
    )
    c = image(
        "c",
        1,
        "dog",
        [card(8, "c", "block5_conv3", 70.0, ("eye",)), card(9, "c", "block4_conv1", 25.0, ("fish",))],
    )
    return [a, b, c]


def test_importance_is_the_mean_weight_of_the_maps_a_label_tops(invs):
    t = global_explanations(invs, GlobalConfig())
    fish5 = t[(t["class_label"] == 0) & (t["layer"] == "block5_conv3")].set_index("label")
    # eye tops cards 2 (30), 6 (50) and, tied, 3 (10): mean 30; fish 1 (40) and 5 (20): 30; person 3 (10)
    assert fish5.loc["eye", "importance"] == pytest.approx(30.0) and fish5.loc["eye", "n_maps"] == 3
    assert fish5.loc["fish", "importance"] == pytest.approx(30.0) and fish5.loc["fish", "n_maps"] == 2
    assert fish5.loc["person", "importance"] == pytest.approx(10.0)
    # ties in importance: more maps first
    assert list(fish5.sort_values("rank").index) == ["eye", "fish", "person"]
    assert fish5.loc["eye", "examples"] == "m6;m2;m3"  # heaviest first
    assert fish5.loc["eye", "n_images"] == 2 and fish5.loc["eye", "weight_sum"] == pytest.approx(90.0)
    # the unlabelled card 7 counts for nothing; class 1 is separate
    dog = t[t["class_label"] == 1]
    assert set(zip(dog["layer"], dog["label"], strict=True)) == {
        ("block5_conv3", "eye"),
        ("block4_conv1", "fish"),
    }


def test_ties_first_top_k_and_min_maps(invs):
    t = global_explanations(invs, GlobalConfig(ties="first"))
    fish5 = t[(t["class_label"] == 0) & (t["layer"] == "block5_conv3")].set_index("label")
    assert (
        "person" in fish5.index
        and fish5.loc["eye", "n_maps"] == 2
        and fish5.loc["eye", "importance"] == pytest.approx(40.0)
    )
    t = global_explanations(invs, GlobalConfig(top_k=1, layers=("block5_conv3",)))
    assert len(t) == 2 and set(t["layer"]) == {"block5_conv3"}
    t = global_explanations(invs, GlobalConfig(min_maps=3))
    assert list(t["label"]) == ["eye"]
    assert global_explanations([], GlobalConfig()).empty


def test_concept_cards_priority_and_scope(invs):
    cfg = GlobalConfig()
    keys = [c.key for _, c in concept_cards(invs, "fish", 0, "block5_conv3", cfg)]
    # own class first (same layer, heaviest first), then other classes (card 9 is dog's, block4)
    assert keys == ["m1", "m5", "m9"]
    keys = [c.key for _, c in concept_cards(invs, "eye", 0, "block5_conv3", cfg)]
    assert keys == ["m6", "m2", "m3", "m8"]
    same = GlobalConfig(concepts=ConceptConfig(scope="class", layers="same"))
    assert [c.key for _, c in concept_cards(invs, "fish", 0, "block5_conv3", same)] == ["m1", "m5"]
    assert concept_cards(invs, "nothing", 0, "block5_conv3", cfg) == []


def test_transferred_cards_come_after_every_game_card(invs):
    import dataclasses

    cfg = GlobalConfig()
    # an extra image of class 0 whose (heavy, same-layer) card carries a transferred "fish"
    heavy = dataclasses.replace(
        card(20, "x", "block5_conv3", 90.0, ("fish",)), source="transfer", confidence=0.9
    )
    extra = image("x", 0, "fish", [heavy])
    keys = [c.key for _, c in concept_cards([*invs, extra], "fish", 0, "block5_conv3", cfg)]
    assert keys == ["m1", "m5", "m9", "tm20"]


def test_concept_and_random_examples_are_masked_network_inputs(invs):
    cfg = GlobalConfig()
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    pairs = concept_cards(invs, "fish", 0, "block5_conv3", cfg)
    x = concept_examples(pairs, cfg, REVEAL, mean, std, 32)
    assert x.shape == (3, 3, 32, 32)
    full = to_input(invs[0].image, mean, std)
    assert torch.allclose(full, torch.full_like(full, (200 / 255 - 0.5) / 0.25), atol=1e-6)
    m = torch.as_tensor(reveal_mask(pairs[0][1].map, 32, 30.0, REVEAL))
    assert torch.allclose(x[0], full * m, atol=1e-6)  # fill "mean": hidden part is 0 after normalisation
    assert concept_examples([], cfg, REVEAL, mean, std, 32).shape == (0, 3, 32, 32)
    imgs = [np.full((32, 32, 3), 100, np.uint8)] * 4
    cards = [c for inv in invs for cs in inv.merged.values() for c in cs]
    r = random_examples(imgs, cards, cfg, REVEAL, mean, std)
    assert r.shape == (4, 3, 32, 32) and float((r.abs() < 1e-3).float().mean()) > 0.3  # masked
    r2 = random_examples(
        imgs, cards, GlobalConfig(concepts=ConceptConfig(random_kind="full")), REVEAL, mean, std
    )
    assert torch.allclose(r2, to_input(imgs[0], mean, std).expand(4, -1, -1, -1))
    assert torch.equal(r, random_examples(imgs, cards, cfg, REVEAL, mean, std))  # seeded


def untested(invs, tmp_path, **kw):
    """``explain_classes`` without TCAV: no model, and the index is never read (the path does not exist)."""
    cfg = GlobalConfig(tcav_enabled=False, **kw)
    return explain_classes(
        invs, cfg, REVEAL, None, tmp_path / "no_index.csv", tmp_path, tmp_path / "cavs", "p.yaml"
    )


def test_explain_classes_without_tcav(invs, tmp_path):
    res = untested(invs, tmp_path)
    pd.testing.assert_frame_equal(
        res.table.drop(columns=TCAV_COLUMNS), global_explanations(invs, GlobalConfig())
    )
    assert res.table[TCAV_COLUMNS].isna().all().all() and res.tcav.empty and res.runs.empty
    assert (tmp_path / "cavs").is_dir()  # a DVC output even when nothing is tested
    assert res.figure_layers == ("block5_conv3",)  # default: the deepest layer
    # the cards Figure 4 shows: the examples of the block5_conv3 rows only (m4, m9 are block4_conv1)
    assert sorted(res.cards) == ["m1", "m2", "m3", "m5", "m6", "m8"]
    assert all(res.cards[k][1].key == k for k in res.cards)
    m = res.metrics
    assert (m["n_classes"], m["n_layers"], m["n_labels"]) == (2, 2, len(res.table))
    assert m["mean_labels_per_class_layer"] == pytest.approx(len(res.table) / 4)
    assert m["tcav"] == {
        "n_candidates": 0,
        "n_tested": 0,
        "n_significant": 0,
        "n_too_few_examples": 0,
        "n_too_few_examples_without_transfer": 0,
        "n_with_transferred_examples": 0,
        "share_significant": None,
        "mean_score": None,
        "cavs_trained": 0,
        "cavs_cached": 0,
    }
    assert untested(invs, tmp_path, figure_layers=("block4_conv1",)).figure_layers == ("block4_conv1",)


def test_explain_classes_bad_layer_names_the_key(invs, tmp_path):
    with pytest.raises(
        ParamsError,
        match=r"p.yaml: global.figure_layers: block9 not among the explained layers "
        r"\(block4_conv1, block5_conv3\)",
    ):
        untested(invs, tmp_path / "x", figure_layers=("block9",))
    assert not (tmp_path / "x").exists()


def with_tcav(res, rows: dict[str, tuple]) -> object:
    """``res`` with TCAV results for class 0 at block5_conv3: label -> (status, score, p_adjusted, significant)."""
    table = res.table.copy()
    for label, (status, score, p, sig) in rows.items():
        i = table.index[
            (table["class_label"] == 0) & (table["layer"] == "block5_conv3") & (table["label"] == label)
        ]
        table.loc[i, ["tcav_status", "tcav_score", "p_adjusted", "significant"]] = [status, score, p, sig]
    return dataclasses.replace(res, table=table)


def test_markdown_one_table_per_class_at_the_figure_layers(invs, tmp_path):
    res = with_tcav(
        untested(invs, tmp_path),
        {"eye": ("ok", 0.914, 0.01234, True), "fish": ("too_few_examples", np.nan, np.nan, False)},
    )
    md = global_markdown(res)
    assert md.startswith("# Global explanations")
    assert [ln for ln in md.splitlines() if ln.startswith("## ")] == [
        "## fish — block5_conv3",
        "## dog — block5_conv3",
    ]
    assert "| 1 | eye | 30.0 | 3 | 0.91 | 0.0123 | yes |" in md
    assert "| 2 | fish | 30.0 | 2 | too few examples | — | — |" in md
    assert "| 3 | person | 10.0 | 1 | — | — | — |" in md  # not tested


def test_figures_per_class_with_example_tiles(invs, tmp_path):
    from inviz.core.plotting import close

    res = with_tcav(untested(invs, tmp_path), {"eye": ("ok", 0.9, 0.01, True)})
    figs = list(global_figures(res, 2, FigureConfig(), REVEAL))
    assert [name for name, _ in figs] == ["00_fish__block5_conv3", "01_dog__block5_conv3"]
    gids = {ax.get_gid() for ax in figs[0][1].axes}
    # fish: eye has 3 example maps, 2 shown; fish 2; person 1
    assert gids == {
        "importance",
        "example:eye:0",
        "example:eye:1",
        "example:fish:0",
        "example:fish:1",
        "example:person:0",
    }
    tile = next(ax for ax in figs[0][1].axes if ax.get_gid() == "example:eye:0").images[0].get_array()
    inv, card = res.cards["m6"]
    np.testing.assert_array_equal(tile, overlay(inv.image, card.map, FigureConfig().overlay, REVEAL))
    for _, fig in figs:
        close(fig)


def test_draw_is_seeded_and_keeps_order():
    f = pd.DataFrame({"x": range(20)})
    a, b = draw(f, 5, 1), draw(f, 5, 1)
    assert list(a["x"]) == list(b["x"]) == sorted(a["x"]) and len(a) == 5
    assert len(draw(f, 50, 1)) == 20


@pytest.mark.parametrize("level", [2.0, 8.0, 30.0])
def test_reveal_mask_is_the_games_mask_at_any_size(level):
    rng = np.random.default_rng(0)
    cmap = rng.random((8, 8))
    # at the game size it is exactly the game's soft mask
    game = soft_mask(
        percentile_mask(upscale_nearest(cmap, 64), level), 4.0, REVEAL.truncate, REVEAL.blur_mode
    )
    np.testing.assert_allclose(reveal_mask(cmap, 64, level, REVEAL), game, atol=1e-6)
    half = reveal_mask(cmap, 32, level, REVEAL)
    assert half.shape == (32, 32) and 0 <= half.min() and half.max() <= 1
    # the blur keeps the mean of the binary mask (reflect border): about `level` % shown
    assert half.mean() == pytest.approx(level / 100, abs=0.02 + level / 400)


def test_overlay_kinds():
    img = np.full((32, 32, 3), 200, np.uint8)
    cmap = np.zeros((8, 8))
    cmap[:2] = 1.0  # the top quarter
    dark = overlay(img, cmap, OverlayConfig(kind="reveal", level=25.0, background=0.0), REVEAL)
    assert dark[:4].mean() > 150 and dark[-4:].max() == 0
    dim = overlay(img, cmap, OverlayConfig(kind="reveal", level=25.0, background=0.5), REVEAL)
    assert dim[-4:].min() == 100
    heat = overlay(img, cmap, OverlayConfig(kind="heatmap", alpha=1.0), REVEAL)
    assert heat.shape == (32, 32, 3) and not np.array_equal(heat[0, 0], heat[-1, 0])
    with pytest.raises(ValueError, match="level"):
        OverlayConfig(level=0)


def test_safe_name():
    assert safe_name("val/c00_bicycle/bicycle_000") == "val__c00_bicycle__bicycle_000"
    assert safe_name("night sky") == "night_sky"
    assert not math.isnan(len(safe_name("")))
