"""Channel weights, normalisation and the map threshold (inviz.fmaps.weighting)."""

from __future__ import annotations

import pytest
import torch

from inviz.core.config import ParamsError, from_dict
from inviz.fmaps.weighting import (
    NORMALISATIONS,
    THRESHOLD_RULES,
    WEIGHTINGS,
    ThresholdConfig,
    channel_count_threshold,
    keep_mask,
    layer_threshold,
    layer_total,
    share_percent,
)


def test_guided_and_gradcam_exact_values():
    # one image, two channels, 2x2 maps
    acts = torch.tensor([[[[1.0, 0.0], [2.0, 3.0]], [[0.0, 0.0], [0.0, 1.0]]]])
    grads = torch.tensor([[[[2.0, 4.0], [-1.0, 1.0]], [[1.0, 1.0], [1.0, -2.0]]]])
    guided = WEIGHTINGS["guided"](acts, grads)
    # channel 0: A>0 & G>0 at (0,0)=2 and (1,1)=1 -> (2+1)/4; channel 1: only (1,1) has A>0 but G<0 -> 0
    torch.testing.assert_close(guided, torch.tensor([[0.75, 0.0]]))
    gradcam = WEIGHTINGS["gradcam"](acts, grads)
    torch.testing.assert_close(gradcam, torch.tensor([[1.5, 0.25]]))


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_weighting_has_shape_and_is_linear_in_the_gradient(name):
    torch.manual_seed(0)
    acts = torch.relu(torch.randn(3, 5, 4, 4))
    grads = torch.randn(3, 5, 4, 4)
    w = WEIGHTINGS[name](acts, grads)
    assert w.shape == (3, 5)
    torch.testing.assert_close(WEIGHTINGS[name](acts, 2 * grads), 2 * w)
    if name == "guided":
        assert (w >= 0).all()


def test_normalisations():
    w = torch.tensor([[3.0, 1.0, -2.0, 0.0]])
    total = layer_total(w)
    assert total.tolist() == [4.0]
    torch.testing.assert_close(NORMALISATIONS["percent"](w, total), torch.tensor([[75.0, 25.0, -50.0, 0.0]]))
    torch.testing.assert_close(NORMALISATIONS["unit"](w, total), torch.tensor([[0.75, 0.25, -0.5, 0.0]]))
    torch.testing.assert_close(NORMALISATIONS["none"](w, total), w)
    # no positive weight: no division by zero
    z = torch.zeros(1, 3)
    for fn in NORMALISATIONS.values():
        assert torch.isfinite(fn(z, layer_total(z))).all()
    assert torch.isfinite(share_percent(-torch.ones(1, 3))).all()


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
    assert set(THRESHOLD_RULES) == {"channels", "values", "none"}


def test_keep_mask_is_strict_and_drops_non_positive():
    w = torch.tensor([50.0, 30.0, 20.0, 0.0, -5.0])  # shares 50, 30, 20 %
    assert keep_mask(w, 20.0).tolist() == [True, True, False, False, False]  # strictly greater
    assert keep_mask(w, None).tolist() == [True, True, True, False, False]
    assert keep_mask(w, None, keep_nonpositive=True).all()
    assert not keep_mask(torch.zeros(4), 0.1).any()  # no positive weights: nothing kept


def test_threshold_config_from_params_and_validation():
    cfg = from_dict(ThresholdConfig, {"rule": "channels", "by_channels": [[256, 1.0], [32, 2.0]], "below": 50.0})
    assert cfg.by_channels == ((256, 1.0), (32, 2.0))
    assert channel_count_threshold(16, cfg) == pytest.approx(50.0 / 16)
    with pytest.raises(ParamsError, match="decreasing"):
        from_dict(ThresholdConfig, {"by_channels": [[32, 2.0], [256, 1.0]]})
    with pytest.raises(ParamsError, match="keep_nonpositive"):
        from_dict(ThresholdConfig, {"rule": "channels", "keep_nonpositive": True})
    with pytest.raises(ParamsError, match="rule"):
        from_dict(ThresholdConfig, {"rule": "median"})
