"""The game's rules as pure functions, and SUS / raw NASA-TLX scoring (exact values)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from inviz.core.config import ParamsError, from_dict
from inviz.game.web.config import DifficultyConfig, GameConfig, ScreeningConfig
from inviz.game.web.policy import (
    choose_map,
    is_screening_round,
    offered_classes,
    passed_screening,
    round_points,
    round_rng,
    screening_maps,
    start_level,
)
from inviz.game.web.questionnaire import SUS_ITEMS, TLX_ITEMS, check_tlx, sus_score, tlx_raw

IMAGES = ["a", "a", "b", "b", "c", "c"]


def test_choose_map_takes_the_least_played_and_breaks_ties_at_random():
    plays = np.array([3, 1, 2, 1, 5, 1])
    picks = {choose_map(plays, IMAGES, set(), None, np.random.default_rng(s)) for s in range(60)}
    assert picks == {1, 3, 5}  # every least-played map, nothing else


def test_choose_map_skips_seen_maps_and_the_previous_image():
    plays = np.zeros(6, int)
    for s in range(40):
        got = choose_map(plays, IMAGES, {2, 4}, "a", np.random.default_rng(s))
        assert got in (3, 5)
    assert choose_map(plays, IMAGES, {0, 2, 3, 4, 5}, "a", np.random.default_rng(0)) is None


def test_choose_map_stops_at_the_target_only_when_asked():
    plays = np.array([2, 2, 2, 2, 2, 1])
    assert choose_map(plays, IMAGES, set(), None, np.random.default_rng(0), target=2) == 5
    assert choose_map(np.full(6, 2), IMAGES, set(), None, np.random.default_rng(0), target=2) is None
    assert choose_map(np.full(6, 2), IMAGES, set(), None, np.random.default_rng(0)) is not None


def test_sequential_players_keep_plays_balanced_and_respect_their_rules():
    """20 players x 6 rounds on 12 maps: plays stay within two of each other; no repeats per player."""
    images = [f"img{i // 2}" for i in range(12)]
    plays = np.zeros(12, int)
    history = {p: [] for p in range(20)}
    for rnd in range(6):
        for p in range(20):
            last = images[history[p][-1]] if history[p] else None
            m = choose_map(plays, images, set(history[p]), last, round_rng(7, p, rnd + 1))
            assert m is not None and m not in history[p] and images[m] != last
            history[p].append(m)
            plays[m] += 1
            assert plays.max() - plays.min() <= 2
    assert plays.sum() == 120 and plays.min() >= 9  # 10 on average; the no-repeat rules cost at most one


def test_offered_classes_hold_the_true_class_and_a_random_subset():
    ids = list(range(1, 11))
    seen = set()
    for s in range(200):
        got = offered_classes(4, ids, 4, np.random.default_rng(s))
        assert 4 in got and len(set(got)) == 4 and got == sorted(got)
        seen |= set(got)
    assert seen == set(ids)
    assert offered_classes(2, [1, 2, 3], 10, np.random.default_rng(0)) == [1, 2, 3]


def test_round_rng_is_reproducible_and_differs_per_round():
    a = round_rng(1, 2, 3).random(3)
    assert np.array_equal(a, round_rng(1, 2, 3).random(3))
    assert not np.array_equal(a, round_rng(1, 2, 4).random(3))


def test_start_level_by_weight():
    uniform = DifficultyConfig()
    assert start_level(1.0, uniform) == 0
    by_weight = DifficultyConfig(mode="by_weight", below=(10.0, 5.0), start_levels=(1, 2))
    assert [start_level(w, by_weight) for w in (40.0, 10.0, 9.9, 5.0, 4.9, 0.0)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="decreasing"):
        DifficultyConfig(mode="by_weight", below=(5.0, 10.0), start_levels=(1, 2))


def test_points_fall_with_hints_and_are_zero_when_wrong():
    cfg = GameConfig(points_max=100, points_per_hint=15, points_min=10)
    assert [round_points(True, h, cfg) for h in range(6)] == [100, 85, 70, 55, 40, 25]
    assert round_points(True, 7, cfg) == 10
    assert round_points(False, 0, cfg) == 0


def test_screening_rules():
    cfg = ScreeningConfig(positions=(2, 5), max_failures=1)
    assert [is_screening_round(i, cfg) for i in range(1, 7)] == [False, True, False, False, True, False]
    assert not is_screening_round(2, ScreeningConfig(enabled=False, positions=(2,)))
    assert passed_screening(1, cfg) and not passed_screening(2, cfg)
    maps = pd.DataFrame(
        {
            "cluster_id": [1, 2, 3, 4, 5, 6],
            "image": ["a", "a", "a", "b", "b", "b"],
            "layer": ["l1", "l2", "l2", "l1", "l2", "l2"],
            "weight": [50.0, 10.0, 30.0, 60.0, 25.0, 25.0],
        }
    )
    assert screening_maps(maps, cfg, ["l1", "l2"]) == [3, 5]  # heaviest of the deepest layer; tie -> lower id
    assert screening_maps(maps, ScreeningConfig(layer="l1"), ["l1", "l2"]) == [1, 4]
    assert screening_maps(maps, ScreeningConfig(cluster_ids=(6, 2)), ["l1", "l2"]) == [2, 6]
    with pytest.raises(ValueError, match="unknown cluster id"):
        screening_maps(maps, ScreeningConfig(cluster_ids=(9,)), ["l1", "l2"])
    with pytest.raises(ValueError, match="no cluster maps on layer"):
        screening_maps(maps, ScreeningConfig(layer="l9"), ["l1", "l2"])


def test_game_params_are_validated_with_the_key_named():
    cfg = from_dict(
        GameConfig, {"screening": {"positions": [2, 4]}, "difficulty": {"mode": "by_weight"}}, "game"
    )
    assert cfg.screening.positions == (2, 4) and cfg.difficulty.mode == "by_weight"
    with pytest.raises(ParamsError, match="game.n_choices"):
        from_dict(GameConfig, {"n_choices": "four"}, "game")
    with pytest.raises(ParamsError, match="n_choices: expected >= 2"):
        from_dict(GameConfig, {"n_choices": 1}, "game")
    with pytest.raises(ParamsError, match="unknown key"):
        from_dict(GameConfig, {"plays_per_mpa": 3}, "game")
    with pytest.raises(ParamsError, match="screening.positions"):
        from_dict(GameConfig, {"screening": {"positions": [0]}}, "game")


@pytest.mark.parametrize(
    ("answers", "score"),
    [
        ([3] * 10, 50.0),
        ([5, 1] * 5, 100.0),
        ([1, 5] * 5, 0.0),
        ([4, 2] * 5, 75.0),
        ([5, 1, 4, 2, 5, 1, 4, 2, 5, 1], 90.0),
        ([4, 1, 4, 1, 4, 2, 5, 1, 4, 2], 85.0),  # odd: 3+3+3+4+3 = 16, even: 4+4+3+4+3 = 18 -> 34 x 2.5
    ],
)
def test_sus_score_known_values(answers, score):
    assert sus_score(answers) == score


def test_sus_and_tlx_reject_bad_answers():
    assert len(SUS_ITEMS) == 10 and len(TLX_ITEMS) == 6
    with pytest.raises(ValueError, match="SUS item 3"):
        sus_score([3, 3, 6, 3, 3, 3, 3, 3, 3, 3])
    with pytest.raises(ValueError, match="expected 10 answers"):
        sus_score([3] * 9)
    with pytest.raises(ValueError, match="TLX temporal"):
        check_tlx([0, 0, 33, 0, 0, 0])
    with pytest.raises(ValueError, match="TLX mental"):
        check_tlx([105, 0, 0, 0, 0, 0])


def test_raw_tlx_is_the_unweighted_mean():
    assert tlx_raw([50, 10, 30, 70, 60, 20]) == 40.0
    assert tlx_raw([0] * 6) == 0.0 and tlx_raw([100] * 6) == 100.0
    assert tlx_raw([35, 5, 45, 25, 40, 80]) == pytest.approx(38.333333333)
