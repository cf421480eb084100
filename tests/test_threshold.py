"""The per-layer map threshold (inviz.fmaps.threshold)."""

from __future__ import annotations

from typing import get_args, get_type_hints

import pytest
import torch

from inviz.core.config import ParamsError, from_dict
from inviz.fmaps.threshold import (
    THRESHOLD_RULES,
    ThresholdConfig,
    channel_count_threshold,
    keep_mask,
    layer_threshold,
)


@pytest.mark.parametrize(
    ("channels", "expected"),
    [(1024, 0.175), (512, 0.175), (511, 0.35), (256, 0.35), (128, 0.7), (64, 1.4), (32, 2.4), (16, 4.8)],
)
def test_channel_count_rule_matches_the_authors_code(channels, expected):
    assert channel_count_threshold(channels, ThresholdConfig()) == pytest.approx(expected)


def test_threshold_rules_registry():
    cfg = ThresholdConfig(rule="values", values={"block5_conv3": 0.5})
    assert layer_threshold("block5_conv3", 512, cfg) == 0.5
    with pytest.raises(ValueError, match="no value for layer 'block4_conv1'"):
        layer_threshold("block4_conv1", 512, cfg)
    assert layer_threshold("x", 512, ThresholdConfig(rule="none")) is None


@pytest.mark.parametrize("rule", sorted(THRESHOLD_RULES))
def test_every_threshold_rule_is_a_config_choice_and_gives_a_share_or_none(rule):
    assert rule in get_args(get_type_hints(ThresholdConfig)["rule"])
    cfg = ThresholdConfig(rule=rule, values={"block5_conv3": 0.5})
    for channels in (16, 64, 512):
        thr = layer_threshold("block5_conv3", channels, cfg)
        assert thr is None or 0 < thr < 100


def test_keep_mask_is_strict_and_drops_non_positive():
    w = torch.tensor([50.0, 30.0, 20.0, 0.0, -5.0])  # shares 50, 30, 20 %
    assert keep_mask(w, 20.0).tolist() == [True, True, False, False, False]  # strictly greater
    assert keep_mask(w, None).tolist() == [True, True, True, False, False]
    assert keep_mask(w, None, keep_nonpositive=True).all()
    assert not keep_mask(torch.zeros(4), 0.1).any()  # no positive weights: nothing kept


def test_threshold_config_from_params_and_validation():
    cfg = from_dict(
        ThresholdConfig, {"rule": "channels", "by_channels": [[256, 1.0], [32, 2.0]], "below": 50.0}
    )
    assert cfg.by_channels == ((256, 1.0), (32, 2.0))
    assert channel_count_threshold(16, cfg) == pytest.approx(50.0 / 16)
    with pytest.raises(ParamsError, match="decreasing"):
        from_dict(ThresholdConfig, {"by_channels": [[32, 2.0], [256, 1.0]]})
    with pytest.raises(ParamsError, match="keep_nonpositive"):
        from_dict(ThresholdConfig, {"rule": "channels", "keep_nonpositive": True})
    with pytest.raises(ParamsError, match="rule"):
        from_dict(ThresholdConfig, {"rule": "median"})
