"""TCAV validation (docs/method.md §4) on a hand-built CNN where one concept matters and one does not.

The network ``RedNet`` (3x16x16 inputs, VGG-like ``features`` Sequential with in-place ReLUs):

- ``features.0`` (Keras alias ``block1_conv1``): 1x1 convolution, identity weights, bias -0.5,
  so channel c is ``relu(x_c - 0.5)``: a red, a green and a blue detector;
- ``features.2``: 2x2 max-pooling; ``features.3`` (``block2_conv1``): identity 1x1 convolution;
- logits: ``[sum relu(green - 0.25), sum relu(red - 0.25)]``: class 1 ("red") is driven by the
  red channel only, blue is ignored.

Images are noise in [0.5, 0.7) (detector activations uniform in [0, 0.2), below the logits'
threshold) plus a 6x6 square of value 1 in one channel; the class inputs and the "red square"
concept have a red square, the random pool has no square. "red square" raises the red channel
the class-1 logit uses: significant, score ~1. "blue square" raises only the blue channel, which
no logit uses, and its red channel is flat at the noise's mean, so the red part of its CAVs comes
from the random sets only, as in the random-vs-random null: not significant.

(With a noisy red channel in the blue images, their fixed noise would add the same random
component to every one of the concept's CAVs, a bias the t-test over runs cannot see; with
skewed (sparse post-ReLU) noise, the sign count of a noise CAV is not centred on 0.5. Both are
properties of TCAV, not of this implementation, and not what these tests are about.)
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from inviz.concepts.tcav import (
    CAV_CLASSIFIERS,
    TABLE_COLUMNS,
    TCAVConfig,
    TCAVError,
    cache_dir_for,
    reveal_region,
    run_tcav,
    working_copy,
)

HASH_A = "a" * 64
HASH_B = "b" * 64
RED, GREEN, BLUE = 0, 1, 2
TARGET = 1  # the "red" class


class RedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 3, 1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(3, 3, 1),
            nn.ReLU(inplace=True),
        )
        with torch.no_grad():
            for conv, bias in ((self.features[0], -0.5), (self.features[3], 0.0)):
                conv.weight.copy_(torch.eye(3).reshape(3, 3, 1, 1))
                conv.bias.fill_(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(x)
        red = torch.relu(a[:, RED] - 0.25).sum(dim=(1, 2))
        green = torch.relu(a[:, GREEN] - 0.25).sum(dim=(1, 2))
        return torch.stack([green, red], dim=1)


def squares(n: int, channel: int | None, seed: int, size: int = 16, side: int = 6) -> torch.Tensor:
    """Noise images in [0.5, 0.7); with a 6x6 square of 1.0 in ``channel`` at a random place."""
    g = torch.Generator().manual_seed(seed)
    x = 0.5 + 0.2 * torch.rand(n, 3, size, size, generator=g)
    if channel is not None:
        for i in range(n):
            r, c = torch.randint(0, size - side + 1, (2,), generator=g).tolist()
            x[i, channel, r : r + side, c : c + side] = 1.0
    return x


def blue_squares(n: int, seed: int) -> torch.Tensor:
    """Blue squares on noise, with a flat red channel at the noise's mean (0.6)."""
    x = squares(n, BLUE, seed)
    x[:, RED] = 0.6
    return x


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: thread start-up costs more than the work (100x on a busy 2-core machine)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def data():
    return {
        "concepts": {"red square": squares(30, RED, 1), "blue square": blue_squares(30, 2)},
        "pool": squares(80, None, 3),
        "inputs": squares(20, RED, 4),
    }


def cfg(**kw) -> TCAVConfig:
    base = dict(layers=("block1_conv1",), n_runs=12, min_examples=20, max_examples=25, batch_size=64, seed=7)
    return TCAVConfig(**{**base, **kw})


def run(data, tmp_path, c=None, model=None, model_hash=HASH_A, concepts=None, workers=1, **kw):
    return run_tcav(
        model if model is not None else RedNet(),
        TARGET,
        concepts if concepts is not None else data["concepts"],
        data["pool"],
        data["inputs"],
        c or cfg(**kw),
        tmp_path / "cavs",
        model_hash,
        workers=workers,
    )


def row(table: pd.DataFrame, concept: str, layer: str | None = None) -> pd.Series:
    sel = table["concept"] == concept
    if layer is not None:
        sel &= table["layer"] == layer
    assert sel.sum() == 1
    return table[sel].iloc[0]


# ------------------------------------------------------------------------------------------------


def test_model_logit_depends_on_red_only(data):
    model = RedNet().eval()
    x = data["inputs"][:4].clone()
    blue = x.clone()
    blue[:, BLUE] = 1.0
    with torch.no_grad():
        assert torch.equal(model(x), model(blue))
        assert (model(x)[:, TARGET] > 0).all()
        assert (model(data["pool"])[:, TARGET] == 0).all()


@pytest.mark.slow
def test_relevant_concept_significant_irrelevant_not(data, tmp_path):
    res = run(data, tmp_path, n_runs=15)
    table = res.table
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == 2 and set(table["status"]) == {"ok"} and set(table["layer"]) == {"block1_conv1"}
    red, blue = row(table, "red square"), row(table, "blue square")
    assert red["tcav_score"] > 0.95 and red["direction"] == "positive" and red["cav_accuracy"] > 0.9
    assert red["significant"] and red["p_adjusted"] < 1e-6
    assert not blue["significant"] and blue["p_adjusted"] > 0.05
    assert 0.3 < blue["tcav_score"] < 0.7 and 0.3 < red["random_score_mean"] < 0.7
    # Bonferroni over the two concepts of this class and layer
    assert red["n_tests"] == blue["n_tests"] == 2
    assert red["p_adjusted"] == pytest.approx(min(1.0, 2 * red["p_value"]))
    assert blue["p_adjusted"] == pytest.approx(min(1.0, 2 * blue["p_value"]))
    assert red["n_examples"] == 25 and red["n_available"] == 30 and red["n_random"] == 25
    # the table is the t-test of the per-run scores
    runs = res.runs
    assert len(runs) == 3 * 15 and res.n_trained == 3 * 15 and res.n_cached == 0
    from scipy.stats import ttest_ind

    null = runs[runs["kind"] == "random"]["score"]
    blue_runs = runs[runs["concept"] == "blue square"]["score"]
    assert blue["p_value"] == pytest.approx(ttest_ind(blue_runs, null).pvalue)
    assert blue["tcav_score"] == pytest.approx(blue_runs.mean()) and blue[
        "random_score_mean"
    ] == pytest.approx(null.mean())
    print(
        "\n"
        + table[
            ["concept", "tcav_score", "tcav_std", "random_score_mean", "p_value", "p_adjusted"]
        ].to_string()
    )


def test_too_few_examples_reported_not_scored(data, tmp_path):
    concepts = {"red square": data["concepts"]["red square"], "rare": squares(5, GREEN, 9)}
    res = run(data, tmp_path, concepts=concepts, n_runs=3)
    rare = row(res.table, "rare")
    assert rare["status"] == "too_few_examples" and rare["n_examples"] == 5 and rare["n_available"] == 5
    for col in ("tcav_score", "p_value", "p_adjusted", "t_statistic", "random_score_mean"):
        assert math.isnan(rare[col])
    assert not rare["significant"] and rare["n_tests"] == 0
    assert row(res.table, "red square")["n_tests"] == 1  # only tested concepts are corrected for
    assert (res.runs["concept"] != "rare").all()
    assert res.n_trained == 2 * 3  # red + random, no CAV for "rare"

    # nothing testable: no CAV at all, nothing written
    only = run(data, tmp_path / "x", concepts={"rare": squares(5, GREEN, 9)}, n_runs=3)
    assert list(only.table["status"]) == ["too_few_examples"] and only.n_trained == 0
    assert not (tmp_path / "x" / "cavs").exists()


def test_random_pool_too_small(data, tmp_path):
    small = data["pool"][:30]  # two sets of 25 do not fit: sets of 15 < min_examples
    res = run_tcav(RedNet(), TARGET, data["concepts"], small, data["inputs"], cfg(n_runs=3), tmp_path, HASH_A)
    assert set(res.table["status"]) == {"too_few_random"}
    assert (res.table["n_random"] == 15).all() and res.table["tcav_score"].isna().all()
    # a pool for two sets of 20 (>= min_examples): the sets shrink, and it is reported
    res = run_tcav(
        RedNet(), TARGET, data["concepts"], data["pool"][:41], data["inputs"], cfg(n_runs=3), tmp_path, HASH_A
    )
    assert set(res.table["status"]) == {"ok"} and (res.table["n_random"] == 20).all()


def test_deterministic_for_a_seed(data, tmp_path):
    a = run(data, tmp_path / "a", n_runs=4)
    b = run(data, tmp_path / "b", n_runs=4)
    pd.testing.assert_frame_equal(a.table, b.table)
    pd.testing.assert_frame_equal(a.runs, b.runs)
    c = run(data, tmp_path / "c", n_runs=4, seed=8)
    assert not np.array_equal(a.runs["cav_file"], c.runs["cav_file"])  # other random sets


def test_cavs_fitted_in_threads_equal_the_serial_ones(data, tmp_path):
    import torch as _torch

    serial = run(data, tmp_path / "a", n_runs=4)
    threaded = run(data, tmp_path / "b", n_runs=4, workers=3)
    pd.testing.assert_frame_equal(serial.table, threaded.table)
    pd.testing.assert_frame_equal(serial.runs, threaded.runs)
    assert threaded.n_trained == serial.n_trained == 12 and threaded.n_cached == 0
    for f in serial.runs["cav_file"].unique():  # the stored CAVs themselves, bit for bit
        a = _torch.load(serial.cache_path / f, weights_only=False)
        b = _torch.load(threaded.cache_path / f, weights_only=False)
        assert _torch.equal(a["stats"]["weights"], b["stats"]["weights"])
    again = run(data, tmp_path / "b", n_runs=4, workers=2)  # the cache serves the threaded path too
    assert again.n_trained == 0 and again.n_cached == 12
    pd.testing.assert_frame_equal(serial.runs, again.runs)


def test_cache_keyed_by_model_hash_and_reused(data, tmp_path):
    c = cfg(n_runs=4)
    first = run(data, tmp_path, c)
    total = 3 * 4  # (2 concepts + random) x runs
    assert first.n_trained == total and first.n_cached == 0
    assert first.cache_path == cache_dir_for(tmp_path / "cavs", HASH_A, c)
    assert first.cache_path.parent == tmp_path / "cavs" / HASH_A[:16]
    assert (first.cache_path.parent / "model.json").read_text().count(HASH_A) == 1
    files = sorted(first.cache_path.glob("*.pkl"))
    assert len(files) == total and {f.name for f in files} == set(first.runs["cav_file"])
    assert not list((tmp_path / "cavs").rglob("*.pt"))  # activations are scratch, never cached
    mtimes = {f: f.stat().st_mtime_ns for f in files}

    again = run(data, tmp_path, c)
    assert again.n_trained == 0 and again.n_cached == total
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    pd.testing.assert_frame_equal(first.table, again.table)
    pd.testing.assert_frame_equal(first.runs, again.runs)

    other = run(data, tmp_path, c, model_hash=HASH_B)  # a re-trained model: nothing reused
    assert other.n_trained == total and other.n_cached == 0
    assert other.cache_path.parent == tmp_path / "cavs" / HASH_B[:16] != first.cache_path.parent

    # changed examples of one concept: only its CAVs are retrained
    changed = dict(data["concepts"], **{"blue square": blue_squares(30, 22)})
    part = run(data, tmp_path, c, concepts=changed)
    assert part.n_trained == 4 and part.n_cached == total - 4

    # a corrupt cache file is retrained, not trusted
    files[0].write_bytes(b"not a pickle")
    fixed = run(data, tmp_path, c)
    assert fixed.n_trained == 1
    pd.testing.assert_frame_equal(first.table, fixed.table)
    assert run(data, tmp_path, c).n_trained == 0  # and replaced in the cache


def test_callers_model_unchanged(data, tmp_path):
    model = RedNet().train()  # training mode and in-place ReLUs, as a caller may leave them
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(data, tmp_path, model=model, n_runs=2, layers=("features.0", "block2_conv1"))
    assert model.training and all(m.training for m in model.modules())
    assert model.features[1].inplace and model.features[4].inplace
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_working_copy_shares_weights_not_modules():
    model = RedNet().train()
    work = working_copy(model)
    assert not work.training and model.training
    assert work.features[0].weight is model.features[0].weight
    assert work.features[1] is not model.features[1]
    assert not work.features[1].inplace and model.features[1].inplace


def test_keras_alias_equals_module_name(data, tmp_path):
    a = run(data, tmp_path, n_runs=4, layers=("block2_conv1",))
    b = run(data, tmp_path, n_runs=4, layers=("features.3",))
    assert set(a.table["layer"]) == {"block2_conv1"} and set(b.table["layer"]) == {"features.3"}
    assert b.n_trained == 0  # same captured module (the ReLU after the conv): same CAVs
    cols = ["tcav_score", "p_value", "random_score_mean"]
    pd.testing.assert_frame_equal(a.table[cols], b.table[cols])
    assert row(a.table, "red square")["tcav_score"] > 0.95


def test_scores_agree_with_captum_tcav_interpret(data, tmp_path):
    """The score computed here (one matmul) equals captum's ``TCAV.interpret`` on the cached CAVs."""
    from captum.concept import TCAV, Concept

    sign = run(data, tmp_path, n_runs=3)
    magn = run(data, tmp_path, n_runs=3, score="magnitude")
    assert magn.n_trained == 0  # the score type does not change the CAVs
    model = working_copy(RedNet())
    for res, score_type in ((sign, "sign_count"), (magn, "magnitude")):
        for rec in res.runs.itertuples():
            id_a, id_b, layer = rec.cav_file.removesuffix(".pkl").split("-", 2)
            assert layer == "features.1"
            pos, neg = Concept(int(id_a), "concept", None), Concept(int(id_b), "random", None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tcav = TCAV(
                    model, [layer], model_id=res.cache_path.name, save_path=str(res.cache_path.parent)
                )
                out = tcav.interpret(data["inputs"], [[pos, neg]], target=TARGET)
            ref = float(out[f"{id_a}-{id_b}"][layer][score_type][0])
            assert rec.score == pytest.approx(ref, abs=1e-5)


@pytest.mark.parametrize("name", sorted(CAV_CLASSIFIERS))
def test_every_classifier_finds_the_relevant_concept(data, tmp_path, name):
    t = run(data, tmp_path, n_runs=4, classifier=name).table
    assert row(t, "red square")["tcav_score"] > 0.9 and row(t, "red square")["cav_accuracy"] > 0.8


def test_magnitude_score(data, tmp_path):
    t = run(data, tmp_path, n_runs=4, score="magnitude").table
    red = row(t, "red square")
    assert red["score_type"] == "magnitude" and red["tcav_score"] > 0 and red["direction"] == "positive"
    assert red["tcav_score"] > 10 * abs(red["random_score_mean"])


def test_vgg_keras_layers_and_inplace_head(tmp_path):
    """The paper's network: Keras names resolve to the ReLU after the conv; in-place ReLUs/dropout ok."""
    from inviz.models.vgg import ModelConfig, build_vgg16

    torch.manual_seed(0)
    model = build_vgg16(3, ModelConfig(width=0.0625, weights="none", input_size=32)).eval()
    g = torch.Generator().manual_seed(0)

    def x(n):
        return torch.randn(n, 3, 32, 32, generator=g)

    c = TCAVConfig(layers=("block5_conv3", "block4_conv1"), n_runs=2, min_examples=6, max_examples=8)
    res = run_tcav(model, 2, {"a": x(8), "b": x(3)}, x(20), x(5), c, tmp_path, HASH_A)
    assert list(res.table["status"]) == ["ok", "ok", "too_few_examples", "too_few_examples"]
    assert set(res.runs["cav_file"].str.rsplit("-", n=1).str[1]) == {"features.29.pkl", "features.18.pkl"}
    assert model.classifier[3].inplace  # the caller's head is untouched


def test_no_concepts(data, tmp_path):
    res = run(data, tmp_path, concepts={})
    assert res.table.empty and list(res.table.columns) == TABLE_COLUMNS and res.runs.empty


def test_non_converged_cavs_are_reported(data, tmp_path, caplog):
    with caplog.at_level("WARNING", logger="inviz.concepts.tcav"):
        run(data, tmp_path / "a", n_runs=2)
    assert "stopped at max_iter" not in caplog.text  # the defaults converge
    with caplog.at_level("WARNING", logger="inviz.concepts.tcav"):
        run(data, tmp_path / "b", n_runs=2, max_iter=2)
    assert "6 of 6 CAV classifiers stopped at max_iter=2" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"), warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's own ConvergenceWarning stays silenced in threads
        run(data, tmp_path / "c", n_runs=2, max_iter=2, workers=2)
    assert "6 of 6 CAV classifiers stopped at max_iter=2" in caplog.text


def test_input_errors(data, tmp_path):
    def call(**kw):
        args = dict(
            model=RedNet(),
            target_class=TARGET,
            concepts=data["concepts"],
            random_pool=data["pool"],
            class_inputs=data["inputs"],
            cfg=cfg(n_runs=2),
            cache_dir=tmp_path,
            model_hash=HASH_A,
        )
        return run_tcav(**{**args, **kw})

    with pytest.raises(TCAVError, match="target_class"):
        call(target_class=2)
    with pytest.raises(TCAVError, match="random_pool"):
        call(random_pool=data["pool"][:, :, :8])
    with pytest.raises(TCAVError, match="class_inputs"):
        call(class_inputs=data["inputs"][:0])
    with pytest.raises(TCAVError, match="model_hash"):
        call(model_hash="../x")
    with pytest.raises(TCAVError, match="concepts"):
        call(concepts={"x": data["inputs"][0]})
    from inviz.fmaps.gradients import LayerError

    with pytest.raises(LayerError):
        call(cfg=cfg(layers=("block9_conv9",)))


@pytest.mark.parametrize(
    "kw",
    [
        dict(n_runs=1),
        dict(min_examples=30, max_examples=20),
        dict(alpha=1.0),
        dict(classifier="svm"),
        dict(layers=()),
        dict(test_split=1.0),
        dict(n_random_examples=2),
    ],
)
def test_config_validation(kw):
    with pytest.raises(ValueError):
        cfg(**kw)


def test_config_from_params():
    from inviz.core.config import from_dict

    c = from_dict(TCAVConfig, {"layers": ["block5_conv3"], "n_runs": 50, "correction": "bonferroni"}, "tcav")
    assert c.layers == ("block5_conv3",) and c.random_set_size == c.max_examples == 30
    assert TCAVConfig().n_runs == 50 and TCAVConfig().min_examples == 20 and TCAVConfig().alpha == 0.05


# ---- reveal_region -------------------------------------------------------------------------------

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _norm(x):
    return (x - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)


def test_reveal_region_fills():
    g = torch.Generator().manual_seed(0)
    pixels = torch.rand(3, 8, 8, generator=g)
    mask = torch.rand(8, 8, generator=g)
    img = _norm(pixels)
    # mean fill: hidden pixels become the dataset mean (0 after normalisation)
    torch.testing.assert_close(reveal_region(img, mask, "mean"), mask * img)
    assert torch.equal(reveal_region(img, torch.zeros(8, 8)), torch.zeros(3, 8, 8))
    # zero fill: the game's masked image mask * pixels, normalised
    torch.testing.assert_close(reveal_region(img, mask, "zero", MEAN, STD), _norm(mask * pixels))
    torch.testing.assert_close(reveal_region(img, torch.ones(8, 8), "zero", MEAN, STD), img)
    # batched
    batch = reveal_region(img.expand(2, 3, 8, 8), mask.expand(2, 8, 8), "zero", MEAN, STD)
    torch.testing.assert_close(batch[1], _norm(mask * pixels))


@pytest.mark.parametrize(
    "image, mask, kw",
    [
        (torch.zeros(3, 8, 8), torch.zeros(4, 4), {}),
        (torch.zeros(1, 8, 8), torch.zeros(8, 8), {}),
        (torch.zeros(3, 8, 8), torch.full((8, 8), 1.5), {}),
        (torch.zeros(3, 8, 8), torch.zeros(8, 8), {"fill": "zero"}),
        (torch.zeros(3, 8, 8), torch.zeros(8, 8), {"fill": "blur"}),
    ],
)
def test_reveal_region_errors(image, mask, kw):
    with pytest.raises(TCAVError):
        reveal_region(image, mask, **kw)


def test_no_stray_files(tmp_path, data, monkeypatch):
    """Scratch activations live in a temporary directory that is removed."""
    import tempfile

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # not the shared /tmp: xdist workers
    run(data, tmp_path, n_runs=2)
    assert not list(scratch.iterdir())
