import copy

import lightning as L
import numpy as np
import pytest
import torch

from inviz.data.datamodule import AugmentConfig, ImageDataModule
from inviz.data.index import SplitConfig, carve_test_pool, scan_image_folder
from inviz.models.selection import SelectConfig, SelectionError, select_correct
from inviz.models.training import (
    PhaseConfig,
    RestoreBest,
    TrainConfig,
    TrainRunConfig,
    fit_phases,
    predict_logits,
    trainable_parameters,
)
from inviz.models.vgg import ModelConfig, build_vgg16

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


@pytest.fixture
def tiny(image_folder):
    index, _ = scan_image_folder(image_folder)
    index = carve_test_pool(index, SplitConfig(seed=0))
    L.seed_everything(0)
    model = build_vgg16(
        3, ModelConfig(weights="none", input_size=32, width=0.0625, head_hidden=16, dropout=0.0)
    )
    dm = ImageDataModule(
        index, image_folder, 32, MEAN, STD, augment=AugmentConfig(enabled=False), batch_size=6, seed=0
    )
    return model, dm


def test_trainable_spec_resolution():
    model = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.0625))
    head = trainable_parameters(model, ["head"])
    assert head and all(n.startswith("classifier.") for n in head)
    b5 = trainable_parameters(model, ["block5"])
    assert b5 == {f"features.{i}.{p}" for i in (24, 26, 28) for p in ("weight", "bias")}
    assert trainable_parameters(model, ["block5_conv1", "block5_conv2", "block5_conv3"]) == b5
    assert trainable_parameters(model, ["features.28"]) == {"features.28.weight", "features.28.bias"}
    assert len(trainable_parameters(model, ["all"])) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="'block9' matches no parameter"):
        trainable_parameters(model, ["block9"])


def test_phases_freeze_what_they_should_and_learn(tiny):
    model, dm = tiny
    before = copy.deepcopy(model.state_dict())
    cfg = TrainConfig(
        seed=0,
        batch_size=6,
        run=TrainRunConfig(accelerator="cpu"),
        deterministic=True,
        phases=[
            PhaseConfig("head", ["head"], lr=3e-3, max_epochs=2, patience=5),
            PhaseConfig("all", ["all"], lr=1e-3, max_epochs=12, patience=12),
        ],
    )
    # phase 1 alone changes only the head
    head_only = TrainConfig(**{**cfg.__dict__, "phases": cfg.phases[:1]})
    fit_phases(model, dm, head_only)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("features."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("classifier."))
    results = fit_phases(model, dm, cfg)
    assert [r.name for r in results] == ["head", "all"]
    hist = [row for r in results for row in r.history]
    assert [row["epoch"] for row in hist] == list(range(1, len(hist) + 1))
    # every epoch, the first included, has its own training loss (taken after the epoch's validation)
    assert all({"val_loss", "val_acc", "train_loss", "train_acc"} <= set(row) for row in hist), hist
    assert [r.best_epoch for r in results][0] in (1, 2) and results[1].best_epoch > 2
    preds = predict_logits(model, dm.val_dataloader(), accelerator="cpu")
    acc = (preds["logits"].argmax(1) == preds["label"]).float().mean().item()
    assert acc > 0.5, f"tiny model failed to learn colour classes (val acc {acc:.2f})"
    assert all(p.requires_grad for p in model.parameters()) and not model.training


def test_restore_best_restores_best_epoch_weights():
    class FakeTrainer:
        sanity_checking = False
        current_epoch = 0
        callback_metrics = {}

    module = torch.nn.Linear(2, 1)
    cb = RestoreBest("val_loss", epoch_offset=10, phase="p")
    t = FakeTrainer()
    for epoch, loss in enumerate([1.0, 0.5, 0.7]):
        with torch.no_grad():
            module.weight.fill_(epoch)
        t.current_epoch, t.callback_metrics = epoch, {"val_loss": torch.tensor(loss)}
        cb.on_validation_end(t, module)
    cb.on_fit_end(t, module)
    # epochs count from 1 after the earlier phases' 10 (as history.csv and metrics/train.json)
    assert cb.best_epoch == 12 and torch.all(module.weight == 1)


def test_training_is_deterministic(image_folder):
    def run():
        index, _ = scan_image_folder(image_folder)
        index = carve_test_pool(index, SplitConfig(seed=0))
        L.seed_everything(5)
        model = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.0625, head_hidden=8))
        dm = ImageDataModule(
            index, image_folder, 32, MEAN, STD, augment=AugmentConfig(), batch_size=6, seed=5
        )
        cfg = TrainConfig(
            seed=5,
            run=TrainRunConfig(accelerator="cpu"),
            deterministic=True,
            phases=[PhaseConfig("all", ["all"], 1e-3, max_epochs=2)],
        )
        fit_phases(model, dm, cfg)
        return model.state_dict()

    a, b = run(), run()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_channels_last_training_learns_the_same_and_saves_the_default_layout(image_folder):
    """``train.run.channels_last``: NHWC during training only; the result matches the default layout.

    Same seed, same data: the weights after 2 epochs agree to rounding (not bit for bit: other
    convolution kernels), and every saved tensor is contiguous in the default layout.
    """

    def run(channels_last: bool):
        index, _ = scan_image_folder(image_folder)
        index = carve_test_pool(index, SplitConfig(seed=0))
        L.seed_everything(5)
        model = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.0625, head_hidden=8))
        dm = ImageDataModule(
            index, image_folder, 32, MEAN, STD, augment=AugmentConfig(enabled=False), batch_size=6, seed=5
        )
        cfg = TrainConfig(
            seed=5,
            run=TrainRunConfig(accelerator="cpu", channels_last=channels_last),
            deterministic=True,
            phases=[PhaseConfig("all", ["all"], 1e-3, max_epochs=2)],
        )
        fit_phases(model, dm, cfg)
        return model.state_dict()

    ref, nhwc = run(False), run(True)
    assert all(t.is_contiguous() for t in nhwc.values())
    conv = [k for k, t in ref.items() if t.ndim == 4]
    assert conv and not any(ref[k].is_contiguous(memory_format=torch.channels_last) for k in conv)
    for k in ref:
        torch.testing.assert_close(nhwc[k], ref[k], rtol=1e-3, atol=1e-4)


def test_bf16_mixed_training_runs_in_bfloat16_and_saves_float32(image_folder, monkeypatch):
    """``train.precision: bf16-mixed``: the convolutions see bfloat16 under autocast, the weights stay
    float32 (saved so), the run is deterministic, and the model is another float32 model's neighbour."""
    seen: list[torch.dtype] = []

    def run(precision: str, record: bool = False):
        index, _ = scan_image_folder(image_folder)
        index = carve_test_pool(index, SplitConfig(seed=0))
        L.seed_everything(5)
        model = build_vgg16(3, ModelConfig(weights="none", input_size=32, width=0.0625, head_hidden=8))
        if record:
            model.features[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        dm = ImageDataModule(
            index, image_folder, 32, MEAN, STD, augment=AugmentConfig(enabled=False), batch_size=6, seed=5
        )
        cfg = TrainConfig(
            seed=5,
            run=TrainRunConfig(accelerator="cpu"),
            deterministic=True,
            precision=precision,
            phases=[PhaseConfig("all", ["all"], 1e-3, max_epochs=2)],
        )
        fit_phases(model, dm, cfg)
        return model.state_dict()

    bf16 = run("bf16-mixed", record=True)
    assert seen and set(seen) == {torch.bfloat16}
    assert all(t.dtype == torch.float32 for t in bf16.values() if t.is_floating_point())
    again, fp32 = run("bf16-mixed"), run("32-true")
    assert all(torch.equal(bf16[k], again[k]) for k in bf16)
    assert any(not torch.equal(bf16[k], fp32[k]) for k in bf16)
    for k in bf16:  # two epochs at lr 1e-3 from the same start: close, not equal
        torch.testing.assert_close(bf16[k], fp32[k], rtol=0.1, atol=0.02)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="16-mixed")


def test_onecycle_schedule_warms_up_peaks_and_anneals(tiny):
    """``schedule: onecycle``: per-batch learning rates rise from lr/div to lr at ``warmup_share`` of the
    steps and anneal to lr/div/final_div at the last step; ``constant`` keeps lr throughout."""
    model, dm = tiny

    class Rates(L.Callback):
        def __init__(self):
            self.lr: list[float] = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.lr.append(trainer.optimizers[0].param_groups[0]["lr"])

    def run(**kw):
        rates = Rates()
        cfg = TrainConfig(
            seed=0,
            run=TrainRunConfig(accelerator="cpu"),
            deterministic=True,
            phases=[PhaseConfig("all", ["all"], 2e-3, max_epochs=3, patience=5, **kw)],
        )
        fit_phases(model, dm, cfg, callbacks=[rates])
        return np.array(rates.lr)

    lr = run(schedule="onecycle", warmup_share=0.25, div_factor=10.0, final_div_factor=100.0)
    n = len(lr)
    assert n >= 6
    peak = int(np.argmax(lr))
    assert lr[0] == pytest.approx(2e-4) and lr[peak] == pytest.approx(2e-3, rel=0.05)
    assert abs(peak - round(0.25 * (n - 1))) <= 1
    assert np.all(np.diff(lr[: peak + 1]) > 0) and np.all(np.diff(lr[peak:]) < 0)
    assert lr[-1] == pytest.approx(2e-6)  # lr / div_factor / final_div_factor at the last step
    np.testing.assert_array_equal(run(), np.full(n, 2e-3))
    with pytest.raises(ValueError, match="schedule must be constant or onecycle"):
        PhaseConfig("x", ["all"], 1e-3, schedule="cosine")


def test_select_correct_per_class_seeded(caplog):
    ids = [f"s{i}" for i in range(12)]
    labels = np.array([0] * 6 + [1] * 6)
    logits = torch.zeros(12, 2)
    logits[:, 0] = torch.tensor(
        [3.0] * 5 + [-3.0] + [-3.0] * 4 + [3.0] * 2
    )  # 5 right in class 0, 4 in class 1
    table, short = select_correct(ids, labels, logits, ["zero", "one"], SelectConfig(per_class=3, seed=1))
    assert short == {} and len(table) == 6
    assert (table["pred"] == table["label"]).all() and table["class_name"].tolist() == ["zero"] * 3 + [
        "one"
    ] * 3
    assert list(table.columns[-2:]) == ["logit_0", "logit_1"]
    np.testing.assert_allclose(table["confidence"], torch.sigmoid(torch.tensor(3.0)).item(), rtol=1e-6)
    again, _ = select_correct(ids, labels, logits, ["zero", "one"], SelectConfig(per_class=3, seed=1))
    assert table.equals(again)
    with pytest.raises(SelectionError, match="class 'one': only 4 correctly classified"):
        select_correct(ids, labels, logits, ["zero", "one"], SelectConfig(per_class=5))
    with caplog.at_level("WARNING"):
        table, short = select_correct(
            ids, labels, logits, ["zero", "one"], SelectConfig(per_class=6, on_shortfall="warn")
        )
    assert short == {"zero": 1, "one": 2} and len(table) == 9
    # one warning for the whole shortfall, not one per class
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "2 of 2 classes" in warnings[0].getMessage()
    assert "found: zero 5, one 4" in warnings[0].getMessage()
