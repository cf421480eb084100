"""Simulated Deep Reveal players: seeded, messy like real data, export importable."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from inviz.data.synthetic import DEFAULT_CLASSES, DEFAULT_PALETTE, VOCABULARY
from inviz.game.coverage import maps_part_coverage, part_coverage
from inviz.game.export import ClassMap, ImportConfig, game_classes_frame, import_game
from inviz.game.reveal import RevealConfig, reveal_masks
from inviz.game.simulate.config import SimulateConfig
from inviz.game.simulate.players import GameMap, part_colour, play
from inviz.game.simulate.tables import summary, to_export
from inviz.game.simulate.texts import typo
from inviz.game.simulate.vocabulary import COLOUR_PHRASES, IT_EN, PART_PHRASES

NAMES = [n.replace("_", " ") for n in DEFAULT_CLASSES]
PARTS = [tuple(p) for p in DEFAULT_CLASSES.values()]
FOLDERS = [f"c{i:02d}_{n}" for i, n in enumerate(DEFAULT_CLASSES)]


def game_maps(n_per_class=6, seed=0):
    """Maps whose class parts become visible from level 1 on (coverage 0 at level 0)."""
    rng = np.random.default_rng(seed)
    maps = []
    cid = 0
    for label, parts in enumerate(PARTS):
        for i in range(n_per_class):
            cid += 1
            cov = np.zeros((6, len(parts)))
            shown = rng.integers(1, len(parts) + 1)  # this map covers some of the class's parts
            cov[1:, :shown] = np.linspace(0.4, 1.0, 5)[:, None]
            maps.append(
                GameMap(
                    cid,
                    f"val/{FOLDERS[label]}/{i}",
                    f"{i}.png",
                    ["block4_conv1", "block5_conv3"][i % 2],
                    i % 3,
                    label,
                    tuple(parts),
                    cov,
                    {p: "red" for p in parts},
                )
            )
    return maps


def simulate(cfg=None, maps=None):
    cfg = cfg or SimulateConfig(enabled=True, n_players=30, plays_per_map=5)
    games, players = play(maps or game_maps(), PARTS, NAMES, cfg, PART_PHRASES, COLOUR_PHRASES, VOCABULARY)
    classes = game_classes_frame(NAMES, FOLDERS)
    classes["label"] = [FOLDERS.index(f) for f in classes["class_folder"]]
    return games, players, to_export(games, players, classes, cfg), classes


def test_seeded_and_deterministic():
    a, pa, ea, _ = simulate()
    b, pb, eb, _ = simulate()
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(ea.features, eb.features)
    assert pa == pb
    c, *_ = simulate(SimulateConfig(enabled=True, n_players=30, plays_per_map=5, seed=7))
    assert not a.equals(c)


def test_texts_are_messy_like_real_ones():
    games, players, export, _ = simulate()
    feats = games[games["kind"] == "feature"]
    texts = feats["text"].tolist()
    it = feats[feats["language"] == "it"]
    assert len(it) > 0 and set(it["text"].str.strip().str.lower().str.rstrip("!.")) & set(IT_EN)
    assert any(" " in t.strip() for t in texts)  # multi-word phrases
    assert any(n in t.lower() for t in texts for n in NAMES)  # class name inside the text
    assert any(t != t.lower() for t in texts)  # capitals
    all_phrases = {p.lower() for d in PART_PHRASES.values() for ps in d.values() for p in ps}
    assert any(
        t.strip().lower().rstrip("!.") not in all_phrases for t in texts
    )  # typos, colours, class names
    answered = games[games["kind"] != "resign"].drop_duplicates("guess_id")
    assert (answered["guessed_label"] != answered["label"]).any()  # wrong guesses
    assert (games["kind"] == "resign").any() and (games["kind"] == "guess").any()
    assert answered["hints"].between(0, 5).all() and answered["hints"].nunique() > 2
    s = summary(games, players, export)
    assert s["n_untrustworthy"] > 0 and s["n_failed_screening"] > 0 and 0.5 < s["guess_accuracy"] < 1


def test_players_describe_what_they_can_see():
    games, *_ = simulate()
    honest = games[(games["kind"] == "feature")]
    en = honest[(honest["language"] == "en")]
    # most English texts describe a part of the image's class
    hits = [
        any(any(w in t.lower() for w in (p, *PART_PHRASES[p]["en"])) for p in PARTS[lab])
        for t, lab in zip(en["text"], en["label"], strict=False)
    ]
    assert np.mean(hits) > 0.6
    # nothing is visible at level 0, so nobody guesses correctly there except by luck of the untrustworthy
    first = games[(games["kind"] != "resign") & (games["hints"] == 0)].drop_duplicates("guess_id")
    assert len(first) < 0.25 * games["guess_id"].nunique()


def test_export_is_the_authors_layout_and_imports_with_the_injected_defects(tmp_path):
    cfg = SimulateConfig(enabled=True, n_players=30, plays_per_map=5, defect_rows=0.05)
    games, players, export, classes = simulate(cfg)
    assert list(export.features.columns[:9]) == [
        "characteristic",
        "guess_id",
        "percentile",
        "guessed_label_id",
        "layer",
        "cluster",
        "cluster_id",
        "image",
        "label_en",
    ]
    assert list(export.resigns.columns[:2]) == ["cluster_id", "number_of_resigns"]
    assert list(export.no_text.columns[:4]) == ["cluster_id", "label", "guessed_label_id", "percentile"]
    assert export.game_classes["game_name"].tolist() == sorted(export.game_classes["game_name"])
    assert sum(export.defects.values()) == round(0.05 * (games["kind"] == "feature").sum())
    # import it
    clusters = pd.DataFrame(
        [
            {
                "cluster_id": m.cluster_id,
                "image": m.image,
                "layer": m.layer,
                "cluster": m.cluster,
                "label": m.label,
                "true_class": NAMES[m.label],
                "weight": 1.0,
            }
            for m in game_maps()
        ]
    )
    t = tmp_path
    export.features.to_csv(t / "features.csv", index=False)
    export.no_text.to_csv(t / "guesses_without_text.csv", index=False)
    export.resigns.to_csv(t / "resigns.csv", index=False)
    export.players.to_csv(t / "players.csv", index=False)
    export.translations.to_csv(t / "translations.csv", index=False)
    res = import_game(t, ClassMap(classes), clusters, ImportConfig())
    assert res.report["dropped_by_reason"] == {k: v for k, v in export.defects.items() if v}
    failed = {p.player_id for p in players if not p.passed_screening}
    assert res.report["screening"]["excluded_players"] == len(failed & set(games["player_id"]))
    assert not set(res.guesses["player_id"]) & failed
    assert len(res.translations) == len(export.translations) > 0


def test_typos_and_colours():
    rng = np.random.default_rng(0)
    out = {typo("checkerboard pattern", rng) for _ in range(30)}
    assert len(out) > 5 and "checkerboard pattern" not in out
    assert all(abs(len(t) - len("checkerboard pattern")) <= 1 for t in out)
    assert typo("a b", rng) == "a b"
    img = np.zeros((4, 4, 3), np.uint8)
    img[:2] = (220, 40, 40)
    mask = np.zeros((4, 4), bool)
    mask[:2] = True
    assert part_colour(img, mask, {"red": (220, 40, 40), "black": (20, 20, 20)}) == "red"
    assert part_colour(img, np.zeros((4, 4), bool), {"red": (1, 2, 3)}) is None


def test_part_coverage_grows_with_the_level():
    cfg = RevealConfig(game_size=64)
    yy, xx = np.mgrid[:8, :8]
    cmap = -np.hypot(yy, xx + 0.1 * yy)  # the map peaks in the top-left corner (no ties)
    part_a = np.zeros((32, 32), bool)
    part_a[:8, :8] = True  # under the highlight
    part_b = np.zeros((32, 32), bool)
    part_b[24:, 24:] = True  # far away
    names, cov = part_coverage(cmap, {"b": part_b, "a": part_a}, cfg)
    assert names == ["a", "b"] and cov.shape == (6, 2)
    assert np.all(np.diff(cov[:, 0]) >= -1e-9) and cov[-1, 0] > 0.8 and cov[-1, 1] < 0.05
    # coverage is the mean of the game's own soft mask over the part (upscaled to the game size)
    soft = reveal_masks(cmap, cfg)[1]
    np.testing.assert_allclose(cov[:, 0], soft[:, :16, :16].mean(axis=(1, 2)), rtol=1e-6)


def test_maps_part_coverage_measures_each_map_over_its_images_parts():
    from inviz.data.parts import PartMasks

    masks = np.zeros((2, 32, 32), np.uint16)
    masks[0, :8, :8] = 1  # image a: part "p" top-left
    masks[1, 24:, 24:] = 2  # image b: part "q" bottom-right
    parts = PartMasks(np.array(["a", "b"]), masks, ("p", "q"))
    rng = np.random.default_rng(1)
    maps = {1: rng.random((8, 8)), 2: rng.random((8, 8)), 3: rng.random((8, 8))}
    cfg = RevealConfig(game_size=64)
    cov = maps_part_coverage(maps, {2: "b", 1: "a"}, parts, cfg)
    assert sorted(cov) == [1, 2]  # only the maps asked for
    for cid, image in ((1, "a"), (2, "b")):
        names, c = part_coverage(maps[cid], {p: parts.mask(image, p) for p in parts.parts_of(image)}, cfg)
        assert cov[cid][0] == names == parts.parts_of(image)
        np.testing.assert_array_equal(cov[cid][1], c)


def test_vocabulary_covers_the_synthetic_parts_and_palette():
    assert set(PART_PHRASES) == set(VOCABULARY)
    for _part, langs in PART_PHRASES.items():
        assert set(langs) >= {"en", "it"}
        assert all(langs[lang] for lang in ("en", "it"))
    assert set(COLOUR_PHRASES) == set(DEFAULT_PALETTE)
    # every Italian phrase a player types has a manual translation or falls back to the part's English word
    italian = {w for langs in PART_PHRASES.values() for w in langs["it"]}
    assert len(italian & set(IT_EN)) > 0.9 * len(italian)


def test_config_checks():
    with pytest.raises(ValueError, match="probability"):
        SimulateConfig(typo_rate=2)
    with pytest.raises(ValueError, match="skill"):
        SimulateConfig(skill=(0.9, 0.1))
    assert dataclasses.replace(SimulateConfig(), enabled=True).enabled


def test_closed_loop_scores_named_and_covered_parts():
    from inviz.labels.closed_loop import ClosedLoopConfig, evaluate, named_parts, part_lexicon

    lex = part_lexicon(PART_PHRASES, exclude=[w for d in COLOUR_PHRASES.values() for w in d["en"]])
    assert part_lexicon(PART_PHRASES)["red"] == {"cross"}  # without the colour exclusion
    assert named_parts("wheels", lex) == {"wheel"} and named_parts("moon", lex) == {"crescent"}
    assert named_parts("lines", lex) == {"stripes", "zigzag"}
    assert named_parts("shape", lex) == set() and named_parts("red", lex) == set()  # generic / colour
    cov_wheel = (["triangle", "wheel"], np.array([[0.0, 0.0], [0.1, 0.9]]))
    best = pd.DataFrame(
        {
            "cluster_id": [1, 2, 2, 3],
            "layer": ["a", "a", "a", "b"],
            "label": ["tyre", "frame", "spokes", "moon"],  # map 2: a tie, half right
            "rank": [1, 1, 2, 1],
        }
    )
    m, table = evaluate(
        best, {1: cov_wheel, 2: cov_wheel, 3: cov_wheel}, lex, ClosedLoopConfig(min_coverage=0.5)
    )
    assert table["hit_share"].tolist() == [1.0, 0.5, 0.0]
    assert table["hit_rank1"].tolist() == [True, False, False]
    assert m["accuracy"] == pytest.approx(0.5) and m["accuracy_rank1"] == pytest.approx(1 / 3)
    assert m["by_layer"] == {"a": 0.75, "b": 0.0} and 0 <= m["baseline"] <= 1


def test_closed_loop_in_one_call_skips_real_data_and_measures_the_demo():
    from inviz.data.parts import PartMasks, empty_parts
    from inviz.labels.closed_loop import TABLE_COLUMNS, ClosedLoopConfig, closed_loop

    cfg = RevealConfig(game_size=64)
    labels = pd.DataFrame(
        {
            "cluster_id": [1, 2, 3],
            "layer": ["a", "a", "b"],
            "label": ["tyre", "moon", None],
            "rank": [1, 1, None],
            "is_best": [True, True, None],
        }
    )
    clusters = pd.DataFrame({"cluster_id": [1, 2, 3], "image": ["x", "x", "x"]})
    yy, xx = np.mgrid[:8, :8]
    peak = -np.hypot(yy, xx + 0.1 * yy)  # lights the top-left corner
    maps = {1: peak, 2: peak, 3: peak}
    m, table = closed_loop(labels, clusters, maps, empty_parts(), cfg)
    assert m == {"accuracy": None, "accuracy_rank1": None, "baseline": None, "n_maps": 0}
    assert table.empty and list(table.columns) == TABLE_COLUMNS
    masks = np.zeros((1, 32, 32), np.uint16)
    masks[0, :8, :8] = 1 << VOCABULARY.index("wheel")
    parts = PartMasks(np.array(["x"]), masks, VOCABULARY)
    m, table = closed_loop(labels, clusters, maps, parts, cfg, ClosedLoopConfig(min_coverage=0.5))
    assert table["cluster_id"].tolist() == [1, 2] and table["covered_parts"].tolist() == ["wheel", "wheel"]
    assert table["hit_share"].tolist() == [1.0, 0.0] and m["accuracy"] == 0.5 and m["n_maps"] == 2
