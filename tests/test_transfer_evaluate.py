"""Leave-one-image-out evaluation with known answers (docs/method.md §9)."""

from __future__ import annotations

import pytest
from test_transfer_model import C, lmap

from inviz.transfer.config import TransferConfig
from inviz.transfer.evaluate import class_prior, leave_one_image_out, random_agreement, summarise
from inviz.transfer.maps import LayerData


def world():
    """Three images: wheel maps on channels {0, 1}, star maps on {2, 3}; image c also has a 'sky' map
    on channel 4, which no other image has."""
    train, targets = [], []
    for img, pred in (("a", 0), ("b", 0), ("c", 1)):
        train += [
            lmap(f"m{img}1", img, [0, 1], [5.0, 5.0], {"wheel": 2.0}, pred=pred),
            lmap(f"m{img}2", img, [2, 3], [4.0, 1.0], {"star": 1.0, "dots": 0.5}, pred=pred),
        ]
        targets += [
            lmap(f"c{img}1", img, [0], [3.0], {"wheel": 1.0}, pred=pred),
            lmap(f"c{img}2", img, [3], [3.0], {"star": 1.0}, pred=pred),
        ]
    train.append(lmap("mc3", "c", [4], [2.0], {"sky": 1.0}, pred=1))
    targets.append(lmap("cc3", "c", [4], [2.0], {"sky": 1.0}, pred=1))
    for m in [*train, *targets]:
        object.__setattr__(m, "layer", "conv")
    return {"conv": LayerData.from_maps("conv", C, train)}, targets


def test_leave_one_image_out_known_answers():
    train, targets = world()
    rows = leave_one_image_out(train, targets, TransferConfig())
    assert len(rows) == 7 * 4  # 7 held-out maps x (2 variants + 2 baselines)
    for variant in ("channel_vote", "nearest_maps"):
        v = rows[rows["method"] == variant].set_index("key")
        # wheel and star maps are recognised from the other images' maps
        assert v.loc[["ca1", "ca2", "cb1", "cb2", "cc1", "cc2"], "hit_top1"].tolist() == [1.0] * 6
        # the sky channel was only seen in image c: held out with c, it is unseen -> no label, coverage 0
        assert v.loc["cc3", "answered"] == False and v.loc["cc3", "coverage"] == 0.0  # noqa: E712
        assert v.loc["cc3", "hit_top1"] == 0.0 and v.loc["cc3", "hit_topk"] == 0.0
    table = summarise(rows, ["conv"]).set_index(["method", "layer"])
    assert table.loc[("channel_vote", "all"), "top1"] == pytest.approx(6 / 7)
    assert table.loc[("channel_vote", "conv"), "answered"] == pytest.approx(6 / 7)
    # class prior of class 0 when a is held out: b's best labels {wheel}, {star} -> tie, alphabetical
    prior = rows[(rows["method"] == "class_prior")].set_index("key")
    assert prior.loc["ca1", "labels"] == "star|wheel" and prior.loc["ca1", "hit_top1"] == 0.0
    assert prior.loc["ca1", "hit_topk"] == 1.0


def test_class_prior_falls_back_to_every_class():
    train, _ = world()
    data = train["conv"]
    assert class_prior(data, 1, 3) == ["sky", "star", "wheel"]
    assert class_prior(data, 7, 2) == ["star", "wheel"]  # no map of class 7: every map counts


def test_random_agreement_is_exact():
    vocab = ["a", "b", "c", "d", "e"]
    assert random_agreement(frozenset({"a"}), vocab, 3) == pytest.approx((1 / 5, 3 / 5))
    # two best labels: top-3 misses both with C(3, 3) / C(5, 3) = 1 / 10
    assert random_agreement(frozenset({"a", "b"}), vocab, 3) == pytest.approx((2 / 5, 9 / 10))
    assert random_agreement(frozenset({"z"}), vocab, 3) == (0.0, 0.0)
    assert random_agreement(frozenset({"a"}), [], 3) == (0.0, 0.0)


def test_calibration_bins_the_confidence():
    import pandas as pd

    from inviz.transfer.evaluate import calibration

    rows = pd.DataFrame(
        {
            "method": ["cv"] * 4 + ["random"],
            "confidence": [0.1, 0.6, 0.9, 1.0, float("nan")],
            "hit_top1": [0.0, 1.0, 1.0, 0.0, 0.5],
            "hit_topk": [1.0, 1.0, 1.0, 1.0, 0.5],
        }
    )
    cal = calibration(rows, [0.5, 0.75])
    assert cal["method"].unique().tolist() == ["cv"]  # baselines have no confidence
    assert cal["bin"].tolist() == ["[0, 0.5)", "[0.5, 0.75)", "[0.75, 1]"]
    assert cal["n_maps"].tolist() == [1, 1, 2] and cal["top1"].tolist() == [0.0, 1.0, 0.5]
