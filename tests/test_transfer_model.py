"""Label models with known answers: hand-made labelled maps of a 6-channel layer (docs/method.md §9)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inviz.core.config import ParamsError, from_dict
from inviz.transfer.config import TransferConfig
from inviz.transfer.maps import LabelledMap, LayerData
from inviz.transfer.model import VARIANTS, LabelModel, LabelModelError, coverage

C = 6  # channel 5 is never in a labelled map


def lmap(key, image, channels, weights, labels, pred=0):
    labels = tuple(sorted(labels.items(), key=lambda kv: (-kv[1], kv[0])))
    top = labels[0][1]
    best = tuple(lab for lab, s in labels if s >= top - 1e-9)
    return LabelledMap(
        key, image, "conv", pred, np.asarray(channels), np.asarray(weights, float), labels, best
    )


MAPS = [
    lmap("m1", "img_a", [0, 1], [6.0, 2.0], {"wheel": 2.0}),
    lmap("m2", "img_a", [2, 3], [5.0, 5.0], {"star": 1.5, "dots": 0.5}),
    lmap("m3", "img_b", [4], [4.0], {"sky": 1.0}, pred=1),
]
DATA = LayerData.from_maps("conv", C, MAPS)


def vec(weights: dict[int, float]) -> np.ndarray:
    v = np.zeros(C)
    for c, w in weights.items():
        v[c] = w
    return v


@pytest.fixture(params=sorted(VARIANTS))
def fitted(request):
    return VARIANTS[request.param](TransferConfig()).fit(DATA)


def test_layer_data_stacks_the_maps():
    assert DATA.labels == ("dots", "sky", "star", "wheel")
    assert DATA.vectors.tolist()[0] == [6, 2, 0, 0, 0, 0]
    assert DATA.scores[1].tolist() == [0.5, 0, 1.5, 0]
    assert DATA.seen.tolist() == [True] * 5 + [False]
    held = DATA.without_image("img_a")
    assert held.vectors.shape == (1, C) and held.labels == DATA.labels and held.best == [frozenset({"sky"})]


def test_a_map_of_the_same_channels_gets_their_label(fitted):
    pred = fitted.predict(np.stack([vec({0: 1.0, 1: 1.0}), vec({2: 3.0, 3: 1.0}), vec({4: 2.0})]))
    assert [pred.ranked(i, 1)[1] for i in range(3)] == [("wheel",), ("star",), ("sky",)]
    assert pred.coverage.tolist() == [1, 1, 1] and pred.coverage_weight.tolist() == [1, 1, 1]
    # the wheel channels were only ever "wheel": full share
    assert pred.probs[0, DATA.labels.index("wheel")] == pytest.approx(1.0)
    # the star map's distribution: star 0.75, dots 0.25 (normalised scores of m2)
    labels, best = pred.ranked(1, 3)
    assert labels == (("star", pytest.approx(0.75)), ("dots", pytest.approx(0.25))) and best == ("star",)


def test_a_map_of_unseen_channels_gets_coverage_0_and_no_label(fitted):
    pred = fitted.predict(vec({5: 3.0})[None])
    assert pred.coverage.tolist() == [0.0] and pred.coverage_weight.tolist() == [0.0]
    assert pred.confidence.tolist() == [0.0] and pred.probs.sum() == 0
    assert pred.ranked(0, 3) == ((), ())


def test_half_seen_map_halves_the_coverage_and_the_vote_confidence(fitted):
    pred = fitted.predict(vec({0: 1.0, 5: 3.0})[None])
    assert pred.coverage[0] == pytest.approx(0.5) and pred.coverage_weight[0] == pytest.approx(0.25)
    assert pred.ranked(0, 1)[1] == ("wheel",)
    if fitted.name == "channel_vote":
        # the unseen channel holds 3/4 of the weight and votes for nothing
        assert pred.confidence[0] == pytest.approx(0.25)
    else:
        # one neighbour (m1), cosine((1, 0, .., 3), (6, 2, 0, ..)) = 6 / (sqrt(10) sqrt(40))
        assert pred.confidence[0] == pytest.approx(6 / np.sqrt(10 * 40))


def test_channel_vote_mixes_by_channel_weight():
    est = VARIANTS["channel_vote"](TransferConfig()).fit(DATA)
    pred = est.predict(vec({0: 3.0, 2: 1.0})[None])
    p = dict(zip(DATA.labels, pred.probs[0], strict=True))
    assert p == pytest.approx({"wheel": 0.75, "star": 0.75 * 0.25, "dots": 0.25 * 0.25, "sky": 0.0})
    assert pred.confidence[0] == pytest.approx(0.75)


def test_channel_vote_raw_scores_weigh_maps_by_their_scores():
    shared = [
        lmap("m1", "a", [0], [1.0], {"wheel": 3.0}),
        lmap("m2", "b", [0], [1.0], {"ring": 1.0}),
    ]
    data = LayerData.from_maps("conv", 2, shared)
    for norm, wheel in ((True, 0.5), (False, 0.75)):
        cfg = from_dict(TransferConfig, {"channel_vote": {"score_norm": norm}})
        pred = VARIANTS["channel_vote"](cfg).fit(data).predict(np.array([[1.0, 0.0]]))
        assert pred.probs[0, data.labels.index("wheel")] == pytest.approx(wheel)


def test_nearest_maps_k_and_similarity():
    cfg = from_dict(TransferConfig, {"nearest_maps": {"k": 1, "similarity": "jaccard"}})
    est = VARIANTS["nearest_maps"](cfg).fit(DATA)
    # {0, 2, 3}: jaccard |{0}| / |{0, 1, 2, 3}| = 1/4 with m1, |{2, 3}| / |{0, 2, 3}| = 2/3 with m2
    pred = est.predict(vec({0: 1.0, 2: 1.0, 3: 1.0})[None])
    assert pred.ranked(0, 3)[0] == (("star", pytest.approx(0.75)), ("dots", pytest.approx(0.25)))
    assert pred.confidence[0] == pytest.approx(0.75 * 2 / 3)
    cfg2 = from_dict(TransferConfig, {"nearest_maps": {"k": 2, "similarity": "jaccard"}})
    pred2 = VARIANTS["nearest_maps"](cfg2).fit(DATA).predict(vec({0: 1.0, 2: 1.0, 3: 1.0})[None])
    p = dict(zip(DATA.labels, pred2.probs[0], strict=True))
    # m2 (2/3) and m1 (1/4) vote: wheel 0.25 / (2/3 + 1/4)
    assert p["wheel"] == pytest.approx(0.25 / (2 / 3 + 0.25))


def test_coverage_counts_channels_and_weight():
    by_count, by_weight = coverage(
        np.array([[1.0, 0.0, 3.0], [0.0, 0.0, 0.0]]), np.array([True, True, False])
    )
    assert by_count.tolist() == [0.5, 0.0] and by_weight.tolist() == [0.25, 0.0]


def test_config_rejects_unknown_names():
    with pytest.raises(ParamsError, match="variant"):
        from_dict(TransferConfig, {"variant": "magic"}, "transfer")
    with pytest.raises(ParamsError, match="similarity"):
        from_dict(TransferConfig, {"nearest_maps": {"similarity": "euclid"}}, "transfer")


def model() -> LabelModel:
    return LabelModel(
        TransferConfig(), "ab" * 32, {"layers": ["conv"]}, ["c0", "c1"], {"conv": C}, {"conv": MAPS}
    )


def test_label_model_round_trip_and_checks(tmp_path):
    path = model().save(tmp_path / "lm.json")
    back = LabelModel.load(path)
    assert back.layers == ("conv",) and back.model_sha256 == "ab" * 32 and back.classes == ["c0", "c1"]
    assert [m.key for m in back.maps["conv"]] == ["m1", "m2", "m3"]
    assert back.maps["conv"][1].best == ("star",)
    for variant in VARIANTS:
        a = model().predict("conv", vec({0: 1.0, 2: 1.0})[None], variant)
        b = back.predict("conv", vec({0: 1.0, 2: 1.0})[None], variant)
        assert np.array_equal(a.probs, b.probs) and np.array_equal(a.confidence, b.confidence)
    back.check_model("ab" * 32)
    with pytest.raises(LabelModelError, match="does not match"):
        back.check_model("cd" * 32, "m.safetensors")
    with pytest.raises(LabelModelError, match="no layer.*block9"):
        back.check_layers(["conv", "block9"])


def test_label_model_load_errors_name_the_file(tmp_path):
    with pytest.raises(LabelModelError, match="not found"):
        LabelModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "other"}))
    with pytest.raises(LabelModelError, match="bad.json: not an inviz label model"):
        LabelModel.load(bad)
    bad.write_text("{not json")
    with pytest.raises(LabelModelError, match="not a readable label model"):
        LabelModel.load(bad)


def explanation(clusters: list[tuple[list[int], list[float]]], pruned_last: bool = False):
    """An image with one 6-channel layer whose clusters have the given channels and channel weights."""
    from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation

    chans = [c for ch, _ in clusters for c in ch]
    weights = [w for _, ws in clusters for w in ws]
    cs = tuple(
        ClusterResult(
            i,
            float(sum(ws)),
            np.asarray(ch),
            np.full((2, 2), i, np.float32),
            np.full((2, 2), i, np.float32),
            pruned_last and i == len(clusters) - 1,
        )
        for i, (ch, ws) in enumerate(clusters)
    )
    layer = LayerExplanation(
        "conv",
        "features.0",
        C,
        2,
        2,
        0.1,
        100.0,
        1.0,
        len(chans),
        np.asarray(chans),
        np.asarray(weights, float),
        np.zeros((len(chans), 2)),
        "none",
        0.0,
        0.0,
        0,
        (),
        (),
        len(cs),
        0.0,
        np.repeat(np.arange(len(cs)), [len(ch) for ch, _ in clusters]),
        cs,
        "ok",
    )
    return ImageExplanation("new_img", 0, 0, 3.0, {"conv": layer})


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_transfer_labels_merges_like_the_inv_and_builds_cards(variant):
    from inviz.transfer.apply import image_cards, transfer_labels

    lm = model()
    ex = explanation(
        [([0, 1], [30.0, 10.0]), ([4], [20.0]), ([0], [15.0]), ([5], [5.0]), ([2], [1.0])], pruned_last=True
    )
    t = transfer_labels([ex], lm, variant=variant)
    maps = t.maps.set_index("cluster")
    assert list(maps.index) == [0, 1, 2, 3]  # the pruned cluster is not labelled
    assert maps.loc[0, "best_labels"] == "wheel" and maps.loc[2, "best_labels"] == "wheel"
    assert maps.loc[1, "best_labels"] == "sky" and maps.loc[3, "best_labels"] == ""
    assert maps.loc[3, "coverage"] == 0 and maps.loc[3, "confidence"] == 0
    # clusters 0 and 2 share their best label "wheel": one merged map of weight 40 + 15 (§3.8)
    assert maps.loc[0, "merged_id"] == maps.loc[2, "merged_id"] != maps.loc[1, "merged_id"]
    inv = t.inv.set_index("merged_id")
    wheel = inv.loc[maps.loc[0, "merged_id"]]
    assert wheel["weight"] == pytest.approx(55.0) and wheel["n_fmaps"] == 3 and wheel["label_1"] == "wheel"
    conf = (40 * maps.loc[0, "confidence"] + 15 * maps.loc[2, "confidence"]) / 55
    assert wheel["confidence"] == pytest.approx(conf)
    merged, single = image_cards(
        t, "new_img", ["conv"], lambda eid: np.full((2, 2), float(eid.split("|")[-1]))
    )
    assert [c.key for c in single["conv"]] == ["tc1", "tc2", "tc3", "tc4"]
    top = merged["conv"][0]
    assert top.source == "transfer" and top.members == (1, 3) and top.best == ("wheel",)
    # the merged map is the weight-average of its members' maps (0 and 2 here)
    assert top.map[0, 0] == pytest.approx((40 * 0 + 15 * 2) / 55)
    unseen = next(c for c in single["conv"] if c.weight == 5.0)
    assert unseen.labels == () and unseen.coverage == 0
    dropped, _ = image_cards(t, "new_img", ["conv"], lambda eid: np.zeros((2, 2)), min_confidence=1.01)
    assert all(c.labels == () for c in dropped["conv"])


def test_empty_inputs_give_empty_tables():
    from inviz.transfer.apply import MAP_COLUMNS, transfer_labels
    from inviz.transfer.evaluate import leave_one_image_out, summarise

    t = transfer_labels([], model())
    assert list(t.maps.columns) == MAP_COLUMNS and t.maps.empty and t.inv.empty
    # one labelled image only: its fold has no training maps -> no labels, nothing crashes
    data = LayerData.from_maps("conv", C, MAPS[:2])
    rows = leave_one_image_out({"conv": data}, MAPS[:2], TransferConfig())
    assert not rows[rows["method"] == "channel_vote"]["answered"].any()
    assert summarise(rows, ["conv"]).set_index("method").loc["random", "top1"].eq(0).all()
