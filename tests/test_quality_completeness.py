"""Map completeness: exactly 0 without threshold and pruning, and what each step gives up otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quality_nets import one_thread

from inviz.fmaps.explain import ExtractConfig, explain
from inviz.models.vgg import ModelConfig, build_vgg16
from inviz.quality.completeness import captured_batches, completeness, normalised_weights, shown_map

_one_thread = pytest.fixture(autouse=True, scope="module")(one_thread)

LAYERS = ("block4_conv3", "block5_conv3")


@pytest.fixture(scope="module")
def vgg_and_images():
    torch.manual_seed(0)
    model = build_vgg16(4, ModelConfig(weights="none", width=0.125, input_size=64)).eval()
    return model, torch.randn(3, 3, 64, 64)


@pytest.mark.parametrize(
    "changes",
    [
        {"weights": "guided", "threshold": {"rule": "none"}, "prune": False},
        {"weights": "gradcam", "threshold": {"rule": "none", "keep_nonpositive": True}, "prune": False},
        {"weights": "guided", "normalisation": "unit", "threshold": {"rule": "none"}, "prune": False},
    ],
)
def test_completeness_is_zero_without_threshold_and_pruning(vgg_and_images, changes):
    model, x = vgg_and_images
    cfg = ExtractConfig(layers=LAYERS, tsne={"backend": "numba"}).replace(**changes)
    recs = explain(model, x, cfg=cfg)
    table = completeness(model, x, recs, LAYERS, cfg, batch_size=2)
    assert len(table) == 3 * len(LAYERS)
    assert table["full_norm"].gt(0).all()
    np.testing.assert_allclose(table["completeness"], 0.0, atol=2e-6)
    np.testing.assert_allclose(table["completeness_threshold"], 0.0, atol=2e-6)


def test_threshold_and_pruning_give_up_something_and_split(vgg_and_images):
    model, x = vgg_and_images
    cfg = ExtractConfig(layers=LAYERS, tsne={"backend": "numba"})
    recs = explain(model, x, cfg=cfg)
    table = completeness(model, x, recs, LAYERS, cfg, batch_size=3)
    assert table["completeness"].between(0, 1.5).all() and table["completeness"].gt(1e-4).any()
    # triangle inequality: ||S - G|| <= ||S - S_all|| + ||S_all - G||
    assert (
        table["completeness"] <= table["completeness_pruning"] + table["completeness_threshold"] + 1e-9
    ).all()
    no_prune = cfg.replace(prune=False)
    t2 = completeness(model, x, explain(model, x, cfg=no_prune), LAYERS, no_prune)
    np.testing.assert_allclose(t2["completeness_pruning"], 0.0, atol=1e-12)
    np.testing.assert_allclose(t2["completeness"], t2["completeness_threshold"])


def test_shown_map_is_the_weighted_sum_of_kept_channels(vgg_and_images):
    model, x = vgg_and_images
    cfg = ExtractConfig(layers=LAYERS, tsne={"backend": "numba"})
    recs = explain(model, x[:1], cfg=cfg)
    _, cap = next(captured_batches(model, x[:1], LAYERS, [recs[0].target], 1))
    for layer in LAYERS:
        rec = recs[0].layers[layer]
        w = normalised_weights(cap, layer, cfg)[0].numpy()
        members = np.concatenate([c.channels for c in rec.kept_clusters])
        direct = np.einsum("c,chw->hw", w[members], cap.activations[layer][0, members].double().numpy())
        np.testing.assert_allclose(shown_map(rec), direct, rtol=1e-4, atol=1e-6)
