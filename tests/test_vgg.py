import pytest
import torch
from torch import nn
from torchvision.models import vgg16

from inviz.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from inviz.models.vgg import (
    ModelConfig,
    WeightsError,
    block_of,
    build_vgg16,
    imagenet_weights_path,
    keras_layer_names,
    scaled_cfg,
)

CLASSES = [{"label": i, "class_folder": f"c{i}", "class_name": f"class {i}"} for i in range(3)]


def test_keras_names_match_torchvision_indices():
    names = keras_layer_names(vgg16().features)
    paper = [
        "block3_conv1",
        "block3_conv2",
        "block3_conv3",
        "block4_conv1",
        "block4_conv2",
        "block4_conv3",
        "block5_conv1",
        "block5_conv2",
        "block5_conv3",
    ]
    assert [names[n] for n in paper] == [f"features.{i}" for i in (10, 12, 14, 17, 19, 21, 24, 26, 28)]
    assert names["block1_conv1"] == "features.0" and names["block5_pool"] == "features.30"
    assert block_of("features.28", vgg16().features) == "block5"
    assert block_of("classifier.1", vgg16().features) is None


def test_paper_head_shapes_and_width():
    model = build_vgg16(10, ModelConfig(weights="none", input_size=64, width=0.25))
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    head = model.classifier
    assert [type(m) for m in head] == [nn.Flatten, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert head[2].in_features == 128 * 2 * 2 and head[2].out_features == 256 and head[1].p == 0.3
    assert model(torch.zeros(2, 3, 64, 64)).shape == (2, 10)
    assert scaled_cfg(1.0) == [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        "M",
    ]


def test_state_dict_file_weights(tmp_path):
    cfg = ModelConfig(weights="none", input_size=32, width=0.125)
    src = build_vgg16(2, cfg)
    path = tmp_path / "backbone.pt"
    torch.save(src.state_dict(), path)
    model = build_vgg16(2, ModelConfig(weights=str(path), input_size=32, width=0.125))
    for a, b in zip(src.features.parameters(), model.features.parameters(), strict=True):
        assert torch.equal(a, b)
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsError, match="does not fit"):
        build_vgg16(2, ModelConfig(weights=str(path), input_size=32, width=0.125))


def test_unknown_weights_value_names_the_key():
    with pytest.raises(WeightsError, match="model.weights: expected 'imagenet', 'none' or the path"):
        build_vgg16(2, ModelConfig(weights="imagenett", input_size=32))


def test_imagenet_offline_says_where_to_put_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsError) as err:
        build_vgg16(2, ModelConfig(weights="imagenet", input_size=32))
    msg = str(err.value)
    assert "vgg16-397923af.pth" in msg and str(tmp_path / "torch" / "hub" / "checkpoints") in msg


def test_imagenet_weights_from_cached_file(tmp_path, monkeypatch):
    """A file in torch's cache (what users place offline) is used without any download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    ref = vgg16()  # random init, full torchvision layout incl. the 1000-class classifier
    path = imagenet_weights_path()
    path.parent.mkdir(parents=True)
    torch.save(ref.state_dict(), path)
    model = build_vgg16(10, ModelConfig(weights="imagenet", input_size=64))
    assert torch.equal(model.features[28].weight, ref.features[28].weight)
    with pytest.raises(WeightsError, match="needs model.width=1.0"):
        build_vgg16(10, ModelConfig(weights="imagenet", input_size=64, width=0.5))


def test_checkpoint_round_trip(tmp_path):
    model = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.125)).eval()
    save_checkpoint(tmp_path / "m.safetensors", model, CLASSES)
    loaded = load_checkpoint(tmp_path / "m.safetensors")
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(loaded.model(x), model(x))
    assert loaded.class_names == ["class 0", "class 1", "class 2"] and len(loaded.sha256) == 64
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    torch.save({"x": 1}, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="not an inviz model checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
    (tmp_path / "garbage.safetensors").write_bytes(b"not a model at all")
    with pytest.raises(CheckpointError, match="garbage.safetensors: not a readable checkpoint"):
        load_checkpoint(tmp_path / "garbage.safetensors")


def test_equal_weights_give_an_equal_file_hash(tmp_path):
    """Retraining to identical weights must not look like a new model to DVC or the CAV cache."""
    torch.manual_seed(3)
    a = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.125))
    b = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.125))
    b.load_state_dict({k: v.clone() for k, v in a.state_dict().items()})
    save_checkpoint(tmp_path / "a.safetensors", a, CLASSES, extra={"seed": 1})
    save_checkpoint(tmp_path / "b.safetensors", b, CLASSES, extra={"seed": 1})
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    with torch.no_grad():
        b.features[0].weight[0, 0, 0, 0] += 1e-3
    save_checkpoint(tmp_path / "c.safetensors", b, CLASSES, extra={"seed": 1})
    assert (
        load_checkpoint(tmp_path / "c.safetensors").sha256
        != load_checkpoint(tmp_path / "a.safetensors").sha256
    )


def test_legacy_torch_checkpoint_still_loads(tmp_path):
    model = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.125)).eval()
    from inviz.core.config import to_dict

    torch.save(
        {
            "format": "inviz-model/1",
            "model_config": to_dict(model.config),
            "classes": CLASSES,
            "state_dict": model.state_dict(),
            "extra": {},
        },
        tmp_path / "old.pt",
    )
    loaded = load_checkpoint(tmp_path / "old.pt")
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(loaded.model(x), model(x))


def test_random_full_width_backbone_is_warned_about(caplog):
    """weights: none on the paper's network (width 1.0) trains a random backbone: say so; not on the demo's."""
    with caplog.at_level("WARNING", logger="inviz.models.vgg"):
        build_vgg16(2, ModelConfig(weights="none", input_size=32, width=0.125))
    assert not caplog.records
    with caplog.at_level("WARNING", logger="inviz.models.vgg"):
        build_vgg16(2, ModelConfig(weights="none", input_size=32))
    assert (
        len(caplog.records) == 1
        and "RANDOM weights" in caplog.text
        and "model.weights: imagenet" in caplog.text
    )
