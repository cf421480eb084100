"""model.arch: the architecture registry, torchvision models by name, heads, phases, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from inviz.core.config import ParamsError, from_dict
from inviz.models.architectures import ARCHITECTURES, build_model
from inviz.models.checkpoint import load_checkpoint, save_checkpoint
from inviz.models.config import ModelConfig
from inviz.models.heads import final_layer_name, head_name, head_parameters, replace_final_layer
from inviz.models.training import trainable_parameters
from inviz.models.weights import WeightsError, cached_weights_path
from inviz.models.zoo import build_torchvision, weights_enum

CLASSES = [{"label": i, "class_folder": f"c{i}", "class_name": f"class {i}"} for i in range(3)]


def tv(name: str, **kw) -> ModelConfig:
    return ModelConfig(arch=f"torchvision:{name}", weights=kw.pop("weights", "none"), input_size=64, **kw)


@pytest.mark.parametrize(
    "arch, fragment",
    [
        ("torchvision:resnet5", "'resnet5' is not a torchvision classification model (close matches: "),
        ("resnet50", "did you mean torchvision:resnet50"),
        ("vgg", "did you mean vgg16"),
        ("transformer", "expected vgg16 (the paper), checkpoint (your model) or torchvision:<name>"),
    ],
)
def test_unknown_architecture_lists_close_matches(arch, fragment):
    with pytest.raises(ParamsError) as err:
        from_dict(ModelConfig, {"arch": arch}, "model", "params.yaml")
    assert fragment in str(err.value) and str(err.value).startswith("params.yaml: model: arch:")
    if arch == "torchvision:resnet5":
        assert "torchvision:resnet50" in str(err.value)


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"arch": "torchvision:resnet18", "width": 0.5}, "width: only used by arch vgg16"),
        ({"arch": "checkpoint", "weights": "none"}, "set checkpoint.file or checkpoint.builder"),
        ({"arch": "checkpoint", "checkpoint": {"builder": "a:b"}}, "set weights: none"),
        ({"checkpoint": {"builder": "a:b"}}, "only read with arch checkpoint"),
        (
            {"arch": "checkpoint", "weights": "none", "checkpoint": {"builder": "ab"}},
            "'package.module:function'",
        ),
        (
            {"arch": "checkpoint", "weights": "none", "checkpoint": {"builder": "a:b", "file": "m.pt2"}},
            "either file",
        ),
    ],
)
def test_model_config_combinations_are_checked(data, fragment):
    with pytest.raises(ParamsError, match="params.yaml: model") as err:
        from_dict(ModelConfig, data, "model", "params.yaml")
    assert fragment in str(err.value)


def test_input_size_multiple_of_32_only_for_vgg():
    assert from_dict(ModelConfig, {"arch": "torchvision:resnet18", "input_size": 100}).input_size == 100
    with pytest.raises(ParamsError, match="multiple of 32"):
        from_dict(ModelConfig, {"input_size": 100})


def test_registry_covers_every_kind():
    assert set(ARCHITECTURES) == {"vgg16", "torchvision", "checkpoint"}
    assert ModelConfig(arch="torchvision:convnext_tiny").kind == "torchvision"
    assert ModelConfig(arch="torchvision:convnext_tiny").torchvision_name == "convnext_tiny"


@pytest.mark.parametrize(
    "name, final, head",
    [
        ("resnet18", "fc", "fc"),
        ("efficientnet_b0", "classifier.1", "classifier"),
        ("convnext_tiny", "classifier.2", "classifier"),
        ("squeezenet1_1", "classifier.1", "classifier"),
        ("vgg16", "classifier.6", "classifier"),
    ],
)
def test_torchvision_models_get_a_head_for_the_dataset(name, final, head):
    torch.manual_seed(0)
    model = build_torchvision(3, tv(name)).eval()
    assert final_layer_name(model) == final and head_name(model) == head
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    heads = head_parameters(model)
    assert heads and all(n.startswith(head + ".") for n in heads)
    backbone = trainable_parameters(model, ["backbone"])
    assert backbone == {n for n, _ in model.named_parameters()} - heads
    assert trainable_parameters(model, ["head"]) == heads


def test_phases_take_module_prefixes_of_any_architecture():
    model = build_torchvision(3, tv("resnet18"))
    layer4 = trainable_parameters(model, ["layer4"])
    assert layer4 and all(n.startswith("layer4.") for n in layer4)
    assert trainable_parameters(model, ["layer4", "head"]) == layer4 | {"fc.weight", "fc.bias"}
    with pytest.raises(
        ValueError, match=r"'block5' matches no parameter; use 'all', 'head', 'backbone' or a"
    ):
        trainable_parameters(model, ["block5"])
    # torchvision's VGG-16 keeps the paper's Keras names
    vgg = build_torchvision(3, tv("vgg16"))
    assert trainable_parameters(vgg, ["block5_conv3"]) == {"features.28.weight", "features.28.bias"}


def test_imagenet_weights_from_the_cache_and_a_new_classifier(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.manual_seed(1)
    ref = torchvision.models.resnet18()  # random stand-in for the ImageNet file, 1000 classes
    target = cached_weights_path(weights_enum("resnet18", "imagenet"))
    assert target.name == "resnet18-f37072fd.pth"
    target.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), target)
    model = build_torchvision(3, tv("resnet18", weights="imagenet"))
    assert torch.equal(model.layer4[1].conv2.weight, ref.layer4[1].conv2.weight)
    assert model.fc.out_features == 3 and model.fc.in_features == 512
    assert weights_enum("resnet18", "IMAGENET1K_V1") is weights_enum("resnet18", "imagenet")


def test_imagenet_weights_offline_say_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as err:
        build_torchvision(3, tv("resnet18", weights="imagenet"))
    msg = str(err.value)
    assert "https://download.pytorch.org/models/resnet18-f37072fd.pth" in msg
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg


def test_weights_value_names_the_choices():
    with pytest.raises(WeightsError, match="one of IMAGENET1K_V1, IMAGENET1K_V2 .* 'IMAGENET2'"):
        weights_enum("resnet50", "IMAGENET2")


def test_state_dict_file_takes_the_backbone_and_skips_a_foreign_classifier(tmp_path):
    torch.manual_seed(2)
    ref = torchvision.models.resnet18(num_classes=1000)
    path = tmp_path / "r18.pth"
    torch.save(ref.state_dict(), path)
    model = build_torchvision(3, tv("resnet18", weights=str(path)))
    assert torch.equal(model.conv1.weight, ref.conv1.weight) and model.fc.out_features == 3
    torch.save({k: v for k, v in ref.state_dict().items() if not k.startswith("layer4")}, path)
    with pytest.raises(WeightsError, match=r"does not fit torchvision resnet18: missing keys \['layer4"):
        build_torchvision(3, tv("resnet18", weights=str(path)))


def test_replace_final_layer_of_a_conv_classifier():
    model = torchvision.models.squeezenet1_1(num_classes=1000)
    assert replace_final_layer(model, 4) == "classifier.1"
    assert isinstance(model.classifier[1], nn.Conv2d) and model.classifier[1].out_channels == 4
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 4)


@pytest.mark.parametrize("name", ["resnet18", "googlenet"])
def test_checkpoint_round_trip_rebuilds_the_architecture(tmp_path, monkeypatch, name):
    """Saved with ImageNet-style weights, a model is rebuilt with the same construction (GoogLeNet's
    input transform included) and gives the same logits."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cfg = tv(name, weights="imagenet")
    pre = weights_enum(name, "imagenet")
    torch.manual_seed(3)
    stand_in = getattr(torchvision.models, name)(
        **({"aux_logits": True, "init_weights": True} if name == "googlenet" else {})
    )
    cached_weights_path(pre).parent.mkdir(parents=True, exist_ok=True)
    torch.save(stand_in.state_dict(), cached_weights_path(pre))
    torch.manual_seed(4)
    model, saved_cfg = build_model(CLASSES, cfg)
    model.eval()
    if name == "googlenet":
        assert model.transform_input and model.aux1 is None
    path = save_checkpoint(tmp_path / "m.safetensors", model, CLASSES, config=saved_cfg)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))  # rebuilding needs no weights file
    loaded = load_checkpoint(path)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model(x))
    assert loaded.config.arch == f"torchvision:{name}" and loaded.class_names == [
        "class 0",
        "class 1",
        "class 2",
    ]
