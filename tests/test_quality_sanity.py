"""MPRT: identical models agree perfectly, a fully randomised one does not; Quantus' MPRT agrees."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd
import pytest
import torch
from quality_nets import one_thread
from torch import nn

from inviz.fmaps.explain import ExtractConfig, explain
from inviz.quality.config import SanityConfig
from inviz.quality.sanity import (
    _compare,
    all_weights,
    assignment_ari,
    gradcam_explain_func,
    gradcam_mprt,
    map_similarity,
    mprt,
)
from inviz.survey.panels import SurveyConfig

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)

LAYERS = ("features.1", "features.4")  # the ReLUs after the two convolutions


def small_cnn(seed: int = 0, c1: int = 24, c2: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    features = nn.Sequential(
        OrderedDict(
            [
                ("0", nn.Conv2d(3, c1, 3, padding=1)),
                ("1", nn.ReLU()),
                ("2", nn.MaxPool2d(2)),
                ("3", nn.Conv2d(c1, c2, 3, padding=1)),
                ("4", nn.ReLU()),
            ]
        )
    )
    return nn.Sequential(
        OrderedDict(features=features, pool=nn.AdaptiveAvgPool2d(1), flat=nn.Flatten(), fc=nn.Linear(c2, 4))
    ).eval()


CFG = ExtractConfig(layers=LAYERS, tsne={"backend": "numba"}, k_min=2, k_max=5, threshold={"rule": "none"})


@pytest.fixture(scope="module")
def images():
    return torch.randn(6, 3, 24, 24, generator=torch.Generator().manual_seed(0))


def test_similarities_of_identical_explanations_are_one(images):
    model = small_cnn()
    recs = explain(model, images, cfg=CFG)
    w = all_weights(model, images, LAYERS, [r.target for r in recs], CFG, 3)
    rows = _compare(1, "none", recs, recs, w, w, LAYERS, (24, 24))
    assert all(r["ari"] == pytest.approx(1.0) for r in rows if not np.isnan(r["ari"]))
    assert all(r["rho_weights"] == pytest.approx(1.0) for r in rows)
    assert all(r["ssim"] == pytest.approx(1.0) for r in rows)
    rec = recs[0].layers[LAYERS[0]]
    shuffled = rec.labels.max() - rec.labels  # renumbered clusters: same partition
    from dataclasses import replace

    assert assignment_ari(rec, replace(rec, labels=shuffled)) == pytest.approx(1.0)
    assert np.isnan(assignment_ari(rec, replace(rec, channels=rec.channels[:1], labels=rec.labels[:1])))
    a = np.random.default_rng(0).random((8, 8))
    assert map_similarity(a, a) == pytest.approx(1.0)
    assert map_similarity(a, 3 * a) == pytest.approx(1.0)  # scale-free (max-normalised)
    assert np.isnan(map_similarity(np.zeros((8, 8)), np.zeros((8, 8))))


@pytest.mark.slow
def test_full_randomisation_destroys_the_explanation(images):
    model = small_cnn(c1=64, c2=96)
    before = [p.detach().clone() for p in model.parameters()]
    ids = [f"s{i}" for i in range(3)]
    tables = [mprt(model, images[:3], [0] * 3, ids, LAYERS, CFG, SanityConfig(seed=s), 3) for s in (1, 2, 3)]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))  # untouched
    table = tables[0]
    assert table.groupby("step")["randomised"].first().tolist() == ["fc", "features.3", "features.0"]
    assert {"n_common", "kept_jaccard", "ari", "rho_weights", "ssim"} <= set(table.columns)
    last = pd.concat([t[t["step"] == 3] for t in tables])  # every layer random, three randomisations
    assert last["ari"].notna().all()
    assert abs(last["ari"].mean()) < 0.15  # ARI near 0
    assert abs(last["rho_weights"].mean()) < 0.2  # weight correlation near 0
    # against the original re-run (no randomisation) every similarity is 1 (previous test)


@pytest.mark.slow
def test_our_randomisation_and_similarity_equal_quantus_mprt(images):
    """Grad-CAM through our loop (Quantus' generator + map_similarity) equals Quantus' MPRT scores."""
    from quantus import PyTorchModel

    model = small_cnn()
    survey = SurveyConfig(gradcam_layer="features.3")
    cfg = SanityConfig(seed=4)
    ids = [f"s{i}" for i in range(3)]
    x = images[:3]
    ref = gradcam_mprt(model, x, [0, 1, 2], ids, survey, cfg, batch_size=2)
    explain_func = gradcam_explain_func(survey)
    orig = explain_func(model, x.numpy(), np.array([0, 1, 2]))
    gen = PyTorchModel(model, channel_first=True).get_random_layer_generator(order="top_down", seed=cfg.seed)
    for step, (name, rand_model) in enumerate(gen, start=1):
        maps = explain_func(rand_model, x.numpy(), np.array([0, 1, 2]))
        ours = [map_similarity(orig[i, 0], maps[i, 0]) for i in range(3)]
        theirs = ref[ref["step"] == step].sort_values("sample_id")["ssim"].to_numpy()
        np.testing.assert_allclose(ours, theirs, atol=1e-6, err_msg=name)  # Quantus works in float32
    np.testing.assert_allclose(ref[ref["step"] == 0]["ssim"], 1.0)


def test_an_all_zero_gradcam_map_is_scored_as_uniform(images):
    """No positive evidence (all-zero Grad-CAM) -> a uniform map Quantus accepts; counted, MPRT still runs."""
    model = small_cnn()
    with torch.no_grad():
        model.features[3].weight.zero_()
        model.features[3].bias.fill_(-1.0)  # the ReLU after it outputs zeros: Grad-CAM has nothing
    survey = SurveyConfig(gradcam_layer="features.3")
    explain_func = gradcam_explain_func(survey)
    maps = explain_func(model, images[:2].numpy(), np.array([0, 1]))
    assert maps.shape == (2, 1, 24, 24) and np.all(maps == 0.5) and explain_func.n_uniform == 2
    # every map of the batch uniform: Quantus refuses the batch -> no rows (a warning), not a crash
    table = gradcam_mprt(model, images[:2], [0, 1], ["a", "b"], survey, SanityConfig(seed=4), batch_size=2)
    assert table.empty and list(table.columns) == ["step", "randomised", "sample_id", "ssim"]
