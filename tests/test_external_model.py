"""model.arch: checkpoint — your own finished model: builder + state dict, torch.export / TorchScript files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from own_models import small_cnn

from inviz.fmaps.explain import ExtractConfig, explain
from inviz.fmaps.layers import LayerError
from inviz.models.architectures import build_model
from inviz.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from inviz.models.config import ExternalConfig, ModelConfig
from inviz.models.external import ModelSourceError, count_outputs, import_builder, load_external
from inviz.models.weights import WeightsError

CLASSES = [
    {"label": i, "class_folder": f, "class_name": f.title()} for i, f in enumerate(["ant", "bee", "cow"])
]


def own(tmp_path=None, **ext) -> ModelConfig:
    ext.setdefault("builder", "own_models:small_cnn")
    return ModelConfig(arch="checkpoint", weights="none", input_size=32, checkpoint=ExternalConfig(**ext))


@pytest.fixture
def weights_file(tmp_path):
    """A state dict of SmallCNN(5) with a 'model.' prefix (as Lightning saves it)."""
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {f"model.{k}": v for k, v in small_cnn(5, seed=7).state_dict().items()}}, path)
    return path


def mapped(weights_file) -> ModelConfig:
    """SmallCNN(5) from its (prefixed) state dict, outputs 4, 0, 2 for ant, bee, cow."""
    return own(
        builder_args={"n_outputs": 5},
        state_dict=str(weights_file),
        strip_prefix="model.",
        class_index={"ant": 4, "bee": 0, "cow": 2},
    )


def test_builder_and_state_dict_with_class_index(weights_file):
    cfg = mapped(weights_file)
    model, saved = build_model(CLASSES, cfg)
    ref = small_cnn(5, seed=7).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), ref(x)[:, [4, 0, 2]])
    assert saved.checkpoint.class_index == {"ant": 4, "bee": 0, "cow": 2}
    assert [n for n, _ in model.named_modules()] == [n for n, _ in ref.named_modules()]  # names unchanged


def test_class_index_from_a_csv(tmp_path, weights_file):
    csv = tmp_path / "index.csv"
    csv.write_text("class_folder,output_index\ncow,1\nant,3\nbee,2\n")
    cfg = own(
        builder_args={"n_outputs": 5},
        state_dict=str(weights_file),
        strip_prefix="model.",
        class_index=str(csv),
    )
    model, saved = build_model(CLASSES, cfg)
    assert saved.checkpoint.class_index == {"cow": 1, "ant": 3, "bee": 2}  # read once, saved with the model
    with torch.no_grad():
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(model.eval()(x), small_cnn(5, seed=7).eval()(x)[:, [3, 2, 1]])


@pytest.mark.parametrize(
    "ext, fragment",
    [
        (
            {},
            "the model's classifier has 5 outputs but the dataset has 3 classes (ant, bee, cow); set "
            "model.checkpoint.class_index",
        ),
        ({"class_index": {"ant": 0, "bee": 1}}, "no output for class folder(s) cow"),
        ({"class_index": {"ant": 0, "bee": 1, "cow": 2, "dog": 3}}, "unknown class folder(s) dog"),
        ({"class_index": {"ant": 0, "bee": 1, "cow": 5}}, "output index out of range [0, 5): cow: 5"),
        ({"class_index": {"ant": 0, "bee": 1, "cow": 1}}, "two classes share an output"),
    ],
)
def test_classifier_size_must_match_the_classes(ext, fragment):
    with pytest.raises(ModelSourceError) as err:
        build_model(CLASSES, own(builder_args={"n_outputs": 5}, **ext))
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "spec, error, fragment",
    [
        ("no_such_package.models:build", ModelSourceError, "cannot import module 'no_such_package.models'"),
        (
            "own_models:smal_cnn",
            ModelSourceError,
            "own_models has no attribute 'smal_cnn'; did you mean small_cnn",
        ),
        ("own_models:SmallCNN.nope", ModelSourceError, "own_models.SmallCNN has no attribute 'nope'"),
        ("own_models:not_a_model", ModelSourceError, "returned str, expected an nn.Module"),
    ],
)
def test_builder_errors_are_clear(spec, error, fragment):
    with pytest.raises(error) as err:
        load_external(ExternalConfig(builder=spec))
    assert fragment in str(err.value)


def test_builder_raising_and_bad_state_dict(tmp_path):
    with pytest.raises(
        ModelSourceError, match=r"own_models:small_cnn\(\*\*\{'n_output': 3\}\) raised TypeError"
    ):
        load_external(ExternalConfig(builder="own_models:small_cnn", builder_args={"n_output": 3}))
    path = tmp_path / "w.pth"
    torch.save(small_cnn(4).state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit the model of own_models:small_cnn"):
        load_external(ExternalConfig(builder="own_models:small_cnn", state_dict=str(path)))
    with pytest.raises(WeightsError, match="model.checkpoint.state_dict: .* is not a file"):
        load_external(ExternalConfig(builder="own_models:small_cnn", state_dict=str(tmp_path / "none.pth")))
    assert callable(import_builder("own_models:SmallCNN"))


def test_round_trip_through_the_inviz_checkpoint(tmp_path, weights_file):
    cfg = mapped(weights_file)
    model, saved = build_model(CLASSES, cfg)
    path = save_checkpoint(tmp_path / "m.safetensors", model, CLASSES, config=saved)
    weights_file.unlink()  # the inviz checkpoint holds the weights
    loaded = load_checkpoint(path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), model.eval()(x))
    assert loaded.config.arch == "checkpoint" and loaded.class_names == ["Ant", "Bee", "Cow"]


def test_changed_builder_is_reported_when_loading(tmp_path):
    model, saved = build_model(CLASSES, own(builder_args={"n_outputs": 3}))
    path = save_checkpoint(tmp_path / "m.safetensors", model, CLASSES, config=saved)
    import own_models

    original = own_models.small_cnn
    try:
        own_models.small_cnn = lambda n_outputs=3: torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1))
        with pytest.raises(CheckpointError, match="weights do not fit the model rebuilt from its config"):
            load_checkpoint(path)
    finally:
        own_models.small_cnn = original


def exported(tmp_path, n_outputs=3):
    model = small_cnn(n_outputs).eval()
    ep = torch.export.export(
        model, (torch.randn(2, 3, 32, 32),), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},)
    )
    path = tmp_path / "model.pt2"
    torch.export.save(ep, str(path))
    return model, path


@pytest.mark.slow
def test_torch_export_file_is_explained_like_a_module(tmp_path):
    """A .pt2 program runs as its unflattened module: same names, hooks work, INV matches the original."""
    ref, path = exported(tmp_path)
    model, saved = build_model(CLASSES, own(builder=None, file=str(path)))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x))
    cfg = ExtractConfig(layers=("body.2", "late"), k_min=2, k_max=3)
    a = explain(model, x, cfg=cfg)
    b = explain(ref, x, cfg=cfg)
    for ea, eb in zip(a, b, strict=True):
        assert ea.pred == eb.pred
        for name in cfg.layers:
            np.testing.assert_allclose(ea.layers[name].weights, eb.layers[name].weights, rtol=1e-4, atol=1e-6)
    ckpt = save_checkpoint(tmp_path / "m.safetensors", model, CLASSES, config=saved)
    with torch.no_grad():
        torch.testing.assert_close(load_checkpoint(ckpt).model(x), ref(x))


def test_static_batch_export_is_a_clear_error(tmp_path):
    model = small_cnn(3).eval()
    path = tmp_path / "static.pt2"
    torch.export.save(torch.export.export(model, (torch.randn(1, 3, 32, 32),)), str(path))
    with pytest.raises(ModelSourceError, match="exported with a dynamic batch dimension"):
        count_outputs(load_external(ExternalConfig(file=str(path))), 32)


def test_torchscript_evaluates_but_cannot_be_hooked(tmp_path):
    ref = small_cnn(5).eval()
    path = tmp_path / "model.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.save(torch.jit.script(ref), str(path))
    model, _ = build_model(
        CLASSES, own(builder=None, file=str(path), class_index={"ant": 1, "bee": 3, "cow": 0})
    )
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x)[:, [1, 3, 0]])
    with pytest.raises(LayerError, match="the model is TorchScript.*torch.export program"):
        explain(model, x, ["net.late"])


def test_a_foreign_file_is_named(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("not a model")
    with pytest.raises(ModelSourceError, match="neither a torch.export program .* nor a TorchScript file"):
        load_external(ExternalConfig(file=str(path)))
