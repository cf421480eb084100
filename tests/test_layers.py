"""Which layers INV explains: last_conv:N, the spatial-map check, candidates in errors (inviz.fmaps.layers)."""

from __future__ import annotations

import pytest
import torch
import torchvision
from own_models import small_cnn

from inviz.fmaps.explain import ExtractConfig, explain
from inviz.fmaps.layers import LayerError, check_spatial, expand_layers, resolve_layers


def test_last_conv_follows_the_forward_pass_and_skips_1x1_maps():
    model = small_cnn().eval()
    # registration order: late, body.0, body.2, gate; forward order: body.0, body.2, late, gate (1x1)
    assert expand_layers(model, ["last_conv:1"], 32) == ("late",)
    assert expand_layers(model, ["last_conv:3"], 32) == ("body.0", "body.2", "late")
    assert expand_layers(model, ["body.2", "last_conv:2"], 32) == ("body.2", "late")  # no duplicates
    assert expand_layers(model, ["late"], 32) == ("late",)
    with pytest.raises(LayerError, match=r"'last_conv:4': expected 1 <= N <= 3"):
        expand_layers(model, ["last_conv:4"], 32)


def test_last_conv_on_resnet18():
    model = torchvision.models.resnet18(num_classes=3).eval()
    assert expand_layers(model, ["last_conv:2"], 64) == ("layer4.1.conv1", "layer4.1.conv2")
    # the stem convolution is first: the model has 20 convolutions with a spatial output at 64 px
    assert expand_layers(model, ["last_conv:20"], 64)[0] == "conv1"


def test_spatial_shapes_and_the_errors_for_other_layers():
    model = torchvision.models.resnet18(num_classes=3).eval()
    assert check_spatial(model, ["layer3", "layer4.1"], 224) == {
        "layer3": (256, 14, 14),
        "layer4.1": (512, 7, 7),
    }
    with pytest.raises(LayerError) as err:
        check_spatial(model, ["layer4", "fc"], 224)
    msg = str(err.value)
    assert "layer 'fc' (fc, Linear): its output has shape (2, 3), not (N, C, H, W)" in msg
    assert "layer4.1.conv2" in msg and "last_conv:N" in msg
    with pytest.raises(
        LayerError, match=r"'avgpool' \(avgpool, AdaptiveAvgPool2d\): .*\(2, 512, 1, 1\): a 1x1 map"
    ):
        check_spatial(model, ["avgpool"], 224)


def test_unknown_layer_lists_close_matches_and_candidates():
    model = torchvision.models.resnet18(num_classes=3)
    with pytest.raises(LayerError) as err:
        resolve_layers(model, ["layer5"])
    msg = str(err.value)
    assert "close matches: layer4" in msg and "blocks: layer4, layer4.0, layer4.0.downsample, layer4.1" in msg
    with pytest.raises(LayerError, match="expand it for the model's input first"):
        resolve_layers(model, ["last_conv:2"])


def test_explain_expands_last_conv_and_rejects_a_1x1_layer():
    model = small_cnn().eval()
    x = torch.randn(2, 3, 32, 32)
    cfg = ExtractConfig(layers=("last_conv:2",), k_min=2, k_max=3)
    expls = explain(model, x, cfg=cfg)
    assert list(expls[0].layers) == ["body.2", "late"]
    with torch.no_grad():
        expected = float(model(x).softmax(1).max(1).values[0])
    assert expls[0].confidence == pytest.approx(expected, abs=1e-6)
    with pytest.raises(LayerError, match=r"'gate' \(gate\): its output has shape \(2, 16, 1, 1\)"):
        explain(model, x, ["gate"], cfg)
