"""Scoped capture of activations and gradients for named layers (inviz.fmaps.gradients)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from inviz.fmaps.gradients import LayerCapture, LayerError, NonFiniteError, capture, resolve_layers
from inviz.models.vgg import ModelConfig, build_vgg16


def tiny_net() -> nn.Module:
    """Conv(1->2, 1x1) + ReLU(inplace) + Flatten + Linear(2*2*2 -> 3) with hand-set weights."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.ReLU(inplace=True), nn.Flatten(), nn.Linear(8, 3))
    with torch.no_grad():
        net[0].weight[:] = torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)
        net[0].bias[:] = torch.tensor([0.0, 0.5])
        net[3].weight[:] = torch.arange(24, dtype=torch.float32).view(3, 8) / 10 - 1
        net[3].bias.zero_()
    return net.eval()


def small_vgg() -> nn.Module:
    torch.manual_seed(0)
    return build_vgg16(4, ModelConfig(weights="none", width=0.0625, input_size=64)).eval()


def test_exact_values_on_hand_built_network():
    net = tiny_net()
    x = torch.tensor([[[[1.0, -2.0], [0.25, 3.0]]]])
    out = capture(net, x, ["0"], targets=[1])
    # Conv2d "0" is followed by a ReLU in the Sequential: A is the post-ReLU output of module "1"
    assert out.layers[0].capture == "1"
    expected_a = torch.relu(torch.stack([x[0, 0], -x[0, 0] + 0.5]))[None]
    torch.testing.assert_close(out.activations["0"], expected_a)
    # d logit_1 / dA = row 1 of the linear weights, reshaped to (C, H, W)
    torch.testing.assert_close(out.gradients["0"], net[3].weight[1].view(1, 2, 2, 2))
    torch.testing.assert_close(out.logits, net(x))
    assert out.targets.tolist() == [1]


def test_default_target_is_the_predicted_class():
    net = tiny_net()
    x = torch.randn(5, 1, 2, 2)
    out = capture(net, x, ["0"])
    assert out.targets.tolist() == net(x).argmax(1).tolist()
    for i, t in enumerate(out.targets.tolist()):
        torch.testing.assert_close(out.gradients["0"][i], net[3].weight[t].view(2, 2, 2))


def test_batch_gives_per_image_gradients():
    model = small_vgg()
    x = torch.randn(3, 3, 64, 64)
    layers = ["block4_conv3", "block5_conv3"]
    batch = capture(model, x, layers)
    for i in range(3):
        single = capture(model, x[i : i + 1], layers)
        for name in layers:
            torch.testing.assert_close(
                batch.activations[name][i], single.activations[name][0], rtol=1e-4, atol=1e-5
            )
            torch.testing.assert_close(
                batch.gradients[name][i], single.gradients[name][0], rtol=1e-4, atol=1e-6
            )


def test_keras_aliases_resolve_to_post_relu_of_the_convolution():
    model = small_vgg()
    resolved = {
        r.name: r
        for r in resolve_layers(model, ["block3_conv1", "block5_conv3", "features.28", "classifier.2"])
    }
    assert (resolved["block3_conv1"].module, resolved["block3_conv1"].capture) == (
        "features.10",
        "features.11",
    )
    assert (resolved["block5_conv3"].module, resolved["block5_conv3"].capture) == (
        "features.28",
        "features.29",
    )
    assert resolved["features.28"].capture == "features.29"
    assert resolved["classifier.2"].capture == "classifier.2"  # not a conv: its own output


def test_captured_activations_are_post_relu_and_match_manual_forward():
    model = small_vgg()
    x = torch.randn(2, 3, 64, 64)
    out = capture(model, x, ["block5_conv3"])
    with torch.no_grad():
        manual = model.features[:30](x)  # up to and including the ReLU after features.28
    torch.testing.assert_close(out.activations["block5_conv3"], manual)
    assert (out.activations["block5_conv3"] >= 0).all()


def test_inplace_relu_does_not_change_gradients():
    model = small_vgg()
    clean = copy.deepcopy(model)
    for m in clean.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False
    x = torch.randn(2, 3, 64, 64)
    a = capture(model, x, ["block3_conv2", "block5_conv1"])
    b = capture(clean, x, ["block3_conv2", "block5_conv1"])
    for name in ("block3_conv2", "block5_conv1"):
        torch.testing.assert_close(a.gradients[name], b.gradients[name])
        torch.testing.assert_close(a.activations[name], b.activations[name])


def test_resnet_block_with_inplace_residual_add():
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18(num_classes=5).eval()
    x = torch.randn(1, 3, 64, 64)
    out = capture(model, x, ["layer4.1.conv2", "layer4.1.bn2", "layer3.0"])
    # autograd check of bn2's gradient: d logit / d bn2-output via a functional re-computation
    assert out.activations["layer4.1.bn2"].shape == (1, 512, 2, 2)
    assert out.gradients["layer4.1.bn2"].abs().sum() > 0
    blk = model.layer4[1]
    with torch.no_grad():
        inp = model.layer4[0](
            model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x)))))))
        )
    bn2 = out.activations["layer4.1.bn2"].clone().requires_grad_(True)
    logits = model.fc(torch.flatten(model.avgpool(torch.relu(bn2 + inp)), 1))
    (g,) = torch.autograd.grad(logits[0, out.targets[0]], bn2)
    torch.testing.assert_close(out.gradients["layer4.1.bn2"], g)
    del blk


def test_hooks_are_removed_and_model_untouched():
    model = small_vgg()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inplace = [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)]
    x = torch.randn(2, 3, 64, 64)
    with LayerCapture(model, ["block4_conv1", "block5_conv3"]) as cap:
        cap.run(x)
        assert sum(len(m._forward_hooks) for m in model.modules()) == 2
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0
    assert all(p.grad is None for p in model.parameters())
    assert not model.training
    assert inplace == [m.inplace for m in model.modules() if isinstance(m, nn.ReLU)]
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    # an exception inside the block also removes the hooks
    with pytest.raises(RuntimeError):
        with LayerCapture(model, ["block5_conv3"]) as cap:
            raise RuntimeError("boom")
    assert sum(len(m._forward_hooks) for m in model.modules()) == 0


def test_frozen_parameters_still_give_gradients():
    model = small_vgg()
    for p in model.parameters():
        p.requires_grad_(False)
    out = capture(model, torch.randn(1, 3, 64, 64), ["block5_conv3"])
    assert out.gradients["block5_conv3"].abs().sum() > 0
    assert all(not p.requires_grad for p in model.parameters())


def test_non_finite_activations_raise_naming_the_layer():
    model = small_vgg()
    with torch.no_grad():
        model.features[17].bias[0] = float("nan")  # block4_conv1
    with pytest.raises(NonFiniteError, match="block4_conv1"):
        capture(model, torch.randn(1, 3, 64, 64), ["block3_conv1", "block4_conv1"])
    x = torch.randn(2, 3, 64, 64)
    x[1, 0, 0, 0] = float("inf")
    with pytest.raises(NonFiniteError, match=r"block3_conv1.*\[1\]"):
        capture(small_vgg(), x, ["block3_conv1"])


def test_unknown_and_duplicate_layers():
    model = small_vgg()
    with pytest.raises(LayerError, match="block9_conv1.*valid names include"):
        resolve_layers(model, ["block9_conv1"])
    with pytest.raises(LayerError, match="twice"):
        resolve_layers(model, ["block5_conv3", "block5_conv3"])


def test_shared_module_called_twice_is_rejected():
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.act = nn.ReLU()
            self.fc = nn.Linear(3, 2)

        def forward(self, x):
            x = self.act(self.conv(x))
            x = self.act(self.conv(x))
            return self.fc(x.mean((2, 3)))

    with pytest.raises(LayerError, match="more than once"):
        capture(Shared().eval(), torch.randn(1, 3, 8, 8), ["act"])


def test_targets_are_validated():
    net = tiny_net()
    with pytest.raises(ValueError, match="class indices"):
        capture(net, torch.randn(2, 1, 2, 2), ["0"], targets=[0, 7])
    with pytest.raises(ValueError, match="expected 2"):
        capture(net, torch.randn(2, 1, 2, 2), ["0"], targets=[0])
