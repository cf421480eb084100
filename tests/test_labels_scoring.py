"""Label scores, ties, evidence and the transitive merge (docs/method.md §3.7-§3.8), hand-computed."""

import numpy as np
import pandas as pd
import pytest

from inviz.labels.scoring import (
    ScoreConfig,
    UnionFind,
    best_label_sets,
    evidence,
    merge_groups,
    merge_maps,
    merge_scores,
    score_labels,
)


def feature(cid, gid, label, hints, correct):
    return {
        "cluster_id": cid,
        "guess_id": gid,
        "label": label,
        "hints": hints,
        "correct": correct,
        "kind": "feature",
    }


# Image A, layer L: maps 1, 2, 3, 4 (weights 5, 3, 2, 1). Image A, layer M: map 5 (weight 4).
FEATURES = pd.DataFrame(
    [
        feature(1, "g1", "wheel", 0, True),  # 1.0
        feature(1, "g2", "wheel", 2, True),  # 0.8            -> wheel 1.8 on map 1
        feature(1, "g3", "grass", 1, False),  # 0.9, wrong only -> grass 0.9 / 4 = 0.225
        feature(2, "g4", "wheel", 1, True),  # 0.9            -> wheel 0.9
        feature(2, "g5", "spokes", 1, True),  # 0.9            -> spokes 0.9 (tie with wheel)
        feature(3, "g6", "spokes", 0, True),  # 1.0
        feature(3, "g7", "spokes", 0, False),  # 1.0 (a right guesser also gave it: no /4) -> 2.0
        feature(3, "g8", "wheel", 3, False),  # 0.7 wrong only -> 0.175
        feature(4, "g9", "sky", 2, False),  # 0.8 / 4 = 0.2
        feature(5, "g10", "wheel", 5, True),  # 0.5
    ]
)
CLUSTERS = pd.DataFrame(
    {
        "cluster_id": [1, 2, 3, 4, 5],
        "image": ["A", "A", "A", "A", "A"],
        "layer": ["L", "L", "L", "L", "M"],
        "weight": [5.0, 3.0, 2.0, 1.0, 4.0],
    }
)


def test_score_formula_with_hint_penalty_and_wrong_only_divisor():
    s = score_labels(FEATURES).set_index(["cluster_id", "label"])["score"]
    assert s[(1, "wheel")] == pytest.approx(1.8)
    assert s[(1, "grass")] == pytest.approx(0.9 / 4)
    assert s[(2, "wheel")] == pytest.approx(0.9)
    assert s[(2, "spokes")] == pytest.approx(0.9)
    assert s[(3, "spokes")] == pytest.approx(2.0)
    assert s[(3, "wheel")] == pytest.approx(0.7 / 4)
    assert s[(4, "sky")] == pytest.approx(0.2)
    assert s[(5, "wheel")] == pytest.approx(0.5)


def test_score_parameters_change_the_numbers():
    s = score_labels(FEATURES, ScoreConfig(hint_penalty=0.2, wrong_only_divisor=2)).set_index(
        ["cluster_id", "label"]
    )["score"]
    assert s[(1, "wheel")] == pytest.approx(1.0 + 0.6)
    assert s[(1, "grass")] == pytest.approx(0.8 / 2)


def test_count_per_guess_counts_a_guess_once():
    f = pd.concat(
        [FEATURES, pd.DataFrame([feature(1, "g1", "wheel", 0, True)])], ignore_index=True
    )  # g1 typed two 'wheel' texts
    per_text = score_labels(f).set_index(["cluster_id", "label"])["score"]
    per_guess = score_labels(f, ScoreConfig(count_per="guess")).set_index(["cluster_id", "label"])["score"]
    assert per_text[(1, "wheel")] == pytest.approx(2.8)
    assert per_guess[(1, "wheel")] == pytest.approx(1.8)


def test_ranks_and_ties():
    s = score_labels(FEATURES)
    best = best_label_sets(s)
    assert best == {1: {"wheel"}, 2: {"spokes", "wheel"}, 3: {"spokes"}, 4: {"sky"}, 5: {"wheel"}}
    m2 = s[s["cluster_id"] == 2].set_index("label")
    assert list(m2.sort_values("rank").index) == ["spokes", "wheel"]  # tie: alphabetical order
    row = s[(s["cluster_id"] == 1) & (s["label"] == "grass")].iloc[0]
    assert row["wrong_only"] and row["n_wrong"] == 1 and row["n_correct"] == 0 and row["rank"] == 2


def test_transitive_merge_within_image_and_layer():
    best = best_label_sets(score_labels(FEATURES))
    groups = merge_groups(CLUSTERS, best)
    # 1 {wheel} ~ 2 {wheel, spokes} ~ 3 {spokes}: one group, although 1 and 3 share no label;
    # 4 has its own label; 5 has 'wheel' but is on another layer
    assert groups[1] == groups[2] == groups[3]
    assert len({groups[1], groups[4], groups[5]}) == 3
    assert groups == {1: 1, 2: 1, 3: 1, 4: 2, 5: 3}
    assert merge_groups(CLUSTERS, best, merge=False) == {1: 1, 2: 2, 3: 3, 4: 4, 5: 5}


def test_merged_weights_and_weighted_scores():
    scores = score_labels(FEATURES)
    groups = merge_groups(CLUSTERS, best_label_sets(scores))
    inv, merged = merge_scores(CLUSTERS, scores, groups)
    g = inv.set_index("merged_id").loc[1]
    assert g["members"] == "1;2;3" and g["n_members"] == 3
    assert g["weight"] == pytest.approx(10.0)
    # wheel: (5*1.8 + 3*0.9 + 2*0.175) / 10 = 1.205; spokes: (3*0.9 + 2*2.0) / 10 = 0.67;
    # grass: 5*0.225 / 10 = 0.1125
    assert [g["label_1"], g["label_2"], g["label_3"]] == ["wheel", "spokes", "grass"]
    assert [g["score_1"], g["score_2"], g["score_3"]] == pytest.approx([1.205, 0.67, 0.1125])
    assert g["best_labels"] == "wheel"
    single = inv.set_index("merged_id").loc[2]
    assert single["members"] == "4" and single["label_1"] == "sky" and single["score_1"] == pytest.approx(0.2)
    assert pd.isna(single["label_2"])
    assert set(merged.columns) >= {"merged_id", "label", "score", "rank", "is_best"}


def test_top_n_param():
    scores = score_labels(FEATURES)
    groups = merge_groups(CLUSTERS, best_label_sets(scores))
    inv, _ = merge_scores(CLUSTERS, scores, groups, ScoreConfig(top_n=1))
    assert "label_1" in inv.columns and "label_2" not in inv.columns


def test_merged_maps_are_weight_averages():
    maps = {1: np.full((2, 2), 1.0), 2: np.full((2, 2), 2.0), 3: np.array([[0.0, 10.0], [0.0, 0.0]])}
    weights = {1: 5.0, 2: 3.0, 3: 2.0}
    out = merge_maps(maps, weights, {1: 7, 2: 7, 3: 7})
    expected = (5 * maps[1] + 3 * maps[2] + 2 * maps[3]) / 10
    np.testing.assert_allclose(out[7], expected)
    # the merged map times its weight equals the sum of the members' weighted maps (Grad-CAM identity)
    np.testing.assert_allclose(10 * out[7], sum(weights[i] * maps[i] for i in maps))


def test_evidence_counts():
    rows = [
        {"cluster_id": 1, "guess_id": "g1", "kind": "feature", "correct": True, "hints": 0.0},
        {
            "cluster_id": 1,
            "guess_id": "g1",
            "kind": "feature",
            "correct": True,
            "hints": 0.0,
        },  # second text of g1
        {"cluster_id": 1, "guess_id": "g2", "kind": "feature", "correct": True, "hints": 2.0},
        {"cluster_id": 1, "guess_id": "g3", "kind": "feature", "correct": False, "hints": 1.0},
        {"cluster_id": 1, "guess_id": "g11", "kind": "guess", "correct": True, "hints": 4.0},
        {"cluster_id": 1, "guess_id": "r1", "kind": "resign", "correct": False, "hints": np.nan},
        {"cluster_id": 1, "guess_id": "r2", "kind": "resign", "correct": False, "hints": np.nan},
        {"cluster_id": 2, "guess_id": "r3", "kind": "resign", "correct": False, "hints": np.nan},
    ]
    ev = evidence(pd.DataFrame(rows)).set_index("cluster_id")
    e1 = ev.loc[1]
    assert (e1["plays"], e1["guesses"], e1["wins"], e1["losses"], e1["resigns"], e1["n_texts"]) == (
        6,
        4,
        3,
        1,
        2,
        4,
    )
    assert e1["mean_hints"] == pytest.approx((0 + 2 + 1 + 4) / 4)
    assert e1["mean_hints_with_resigns"] == pytest.approx((7 + 2 * 5) / 6)  # resigns count as 5 hints
    e2 = ev.loc[2]
    assert (
        e2["guesses"] == 0
        and e2["resigns"] == 1
        and np.isnan(e2["mean_hints"])
        and e2["mean_hints_with_resigns"] == 5
    )


def test_union_find_is_transitive():
    uf = UnionFind(range(6))
    uf.union(0, 1)
    uf.union(2, 3)
    uf.union(1, 3)
    assert len({uf.find(i) for i in (0, 1, 2, 3)}) == 1
    assert uf.find(4) != uf.find(0) and uf.find(5) != uf.find(4)


def test_empty_input():
    empty = FEATURES.iloc[:0]
    s = score_labels(empty)
    assert s.empty and "rank" in s.columns
    groups = merge_groups(CLUSTERS, {})
    assert len(set(groups.values())) == 5
    inv, merged = merge_scores(CLUSTERS, s, groups)
    assert len(inv) == 5 and inv["label_1"].isna().all() and merged.empty
