"""Localisation: ground truth from part masks, pointing game / relevance mass (Quantus), reveal IoU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quality_nets import image_record, layer_record

from inviz.data.parts import PartMasks
from inviz.game.reveal import RevealConfig
from inviz.quality.localization import constant_map_notes, ground_truth, pointing_and_mass, reveal_iou

S = 16


def parts_fixture() -> PartMasks:
    masks = np.zeros((2, S, S), np.uint16)
    masks[0, 2:6, 2:6] |= 1  # wheel
    masks[0, 8:12, 8:12] |= 2  # star
    masks[0, 0:2, 10:16] |= 4  # dots (not a part of class 0)
    masks[1, 4:12, 4:12] |= 2
    return PartMasks(
        np.array(["a", "b"]), masks, ("wheel", "star", "dots"), ("c0", "c1"), (("wheel", "star"), ("star",))
    )


def test_ground_truth_is_the_union_of_the_class_parts():
    parts = parts_fixture()
    gt = ground_truth(parts, "a", 0, "class", (S, S))
    assert gt.sum() == 32 and gt[3, 3] and gt[9, 9] and not gt[0, 12]
    assert ground_truth(parts, "a", 0, "all", (S, S)).sum() == 44
    big = ground_truth(parts, "b", 1, "class", (2 * S, 2 * S))  # resized to the input (nearest)
    assert big.shape == (32, 32) and big.sum() == 4 * 64


def test_pointing_game_and_relevance_mass_have_known_values():
    parts = parts_fixture()
    truth = np.stack([ground_truth(parts, "a", 0, "class", (S, S))] * 3)
    inside = np.zeros((S, S))
    inside[3, 3] = 1.0
    outside = np.zeros((S, S))
    outside[0, 0] = 1.0
    half = -np.ones((S, S))  # negative relevance is left out of the mass
    half[2:6, 2:6] = 1.0  # 16 pixels inside
    half[12:16, 0:4] = 1.0  # 16 pixels outside
    maps = {("INV", "l"): np.stack([inside, outside, half])}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * S * S, 2))
    table = pointing_and_mass(model, torch.zeros(3, 3, S, S), [0, 0, 0], ["a", "a", "a"], maps, truth)
    assert table["pointing_game"].tolist() == [1.0, 0.0, 1.0]
    assert table["relevance_mass"].tolist() == pytest.approx([1.0, 0.0, 0.5])
    assert table["truth_share"].iloc[0] == pytest.approx(32 / 256)


def test_constant_maps_are_not_scored_and_are_marked():
    """An all-zero map (a layer without kept cluster maps) points nowhere: NaN, not a tie-hit; a batch
    of only such maps (Quantus refuses it) works; a map without positive relevance has no mass."""
    parts = parts_fixture()
    truth = np.stack([ground_truth(parts, "a", 0, "class", (S, S))] * 3)
    inside = np.zeros((S, S))
    inside[3, 3] = 1.0
    negative = -np.ones((S, S))
    negative[3, 3] = -0.5  # its maximum is inside, but no relevance is positive
    maps = {
        ("INV", "l1"): np.stack([np.zeros((S, S)), inside, negative]),
        ("INV", "l2"): np.zeros((3, S, S)),
    }
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * S * S, 2))
    table = pointing_and_mass(model, torch.zeros(3, 3, S, S), [0, 0, 0], ["a", "a", "a"], maps, truth)
    l1, l2 = table[table["layer"] == "l1"], table[table["layer"] == "l2"]
    assert l1["constant_map"].tolist() == [True, False, False]
    np.testing.assert_array_equal(l1["pointing_game"], [np.nan, 1.0, 1.0])
    np.testing.assert_array_equal(l1["relevance_mass"], [np.nan, 1.0, np.nan])
    assert l2["constant_map"].all() and l2["pointing_game"].isna().all() and l2["relevance_mass"].isna().all()
    (note,) = constant_map_notes(table)
    assert "4 constant map(s)" in note and "of 3 images" in note and "INV at l1: 1, INV at l2: 3" in note
    assert constant_map_notes(table[~table["constant_map"]]) == []


def test_the_random_map_points_at_chance():
    n = 400
    truth = np.zeros((n, S, S), bool)
    truth[:, :8, :8] = True  # a quarter of the image
    maps = {("Random", None): np.random.default_rng(0).random((n, S, S))}
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * S * S, 2))
    table = pointing_and_mass(
        model, torch.zeros(n, 3, S, S), [0] * n, [f"s{i}" for i in range(n)], maps, truth
    )
    assert table["pointing_game"].mean() == pytest.approx(0.25, abs=0.07)  # binomial sd 0.022
    assert table["relevance_mass"].mean() == pytest.approx(0.25, abs=0.02)


def test_reveal_iou_of_a_map_shaped_like_a_part():
    parts = parts_fixture()
    lrec = layer_record("l", 4, [([0, 1], 70.0, False), ([2, 3], 30.0, False)], hw=(S, S))
    wheel_map = np.zeros((S, S), np.float32)
    wheel_map[2:6, 2:6] = 1.0
    from dataclasses import replace

    clusters = (replace(lrec.clusters[0], map=wheel_map, raw_map=wheel_map), lrec.clusters[1])
    rec = image_record("a", 0, {"l": replace(lrec, clusters=clusters)})
    reveal = RevealConfig(game_size=32, levels=(2.0, 6.25, 30.0))
    table = reveal_iou([rec], [0], ["l"], parts, reveal, reveal.levels, (S, S))
    first = table[table["cluster"] == 0].set_index("level")
    assert first.loc[6.25, "best_part"] == "wheel" and first.loc[6.25, "iou"] == pytest.approx(1.0)
    assert first.loc[6.25, "class_part"]
    assert first.loc[30.0, "iou"] < 1.0  # 30 % reveals more than the wheel (ties at 0 included)
    assert len(table) == 2 * 3
