"""Cluster weights, weighted maps, the identity of docs/method.md §1.8 and pruning (inviz.fmaps.cluster_maps)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from inviz.fmaps.cluster_maps import (
    MAP_SCALINGS,
    cluster_maps,
    cluster_weights,
    code_display,
    prune_mask,
    weighted_sum,
)


def test_exact_values():
    maps = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]], [[2.0, 2.0]]])  # (3, 1, 2)
    w = torch.tensor([1.0, 3.0, 6.0])
    labels = torch.tensor([0, 0, 1])
    w_c, a_c = cluster_maps(maps, w, labels, 2)
    torch.testing.assert_close(w_c, torch.tensor([4.0, 6.0]))
    torch.testing.assert_close(a_c, torch.tensor([[[0.25, 0.75]], [[2.0, 2.0]]]))
    torch.testing.assert_close(cluster_weights(w, labels, 2), w_c)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(1, 6), st.booleans())
def test_identity_sum_of_cluster_maps_equals_weighted_sum(seed, n, k, signed):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, 5, 4, generator=g, dtype=torch.float64) * 3
    w = torch.rand(n, generator=g, dtype=torch.float64) + 0.01
    if signed:
        w = w - 0.4
    labels = torch.randint(0, k, (n,), generator=g)
    w_c, a_c = cluster_maps(maps, w, labels, k)
    lhs = (w_c[:, None, None] * a_c).sum(0)
    torch.testing.assert_close(lhs, weighted_sum(maps, w), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(w_c.sum(), w.sum())


def test_zero_weight_cluster_gets_the_plain_mean():
    maps = torch.tensor([[[1.0]], [[3.0]], [[5.0]]])
    w_c, a_c = cluster_maps(maps, torch.tensor([1.0, -1.0, 2.0]), torch.tensor([0, 0, 1]), 2)
    assert w_c.tolist() == [0.0, 2.0]
    assert a_c[:, 0, 0].tolist() == [2.0, 5.0]


def test_pruning_rule():
    # th = max(50/3, mean 25 / 2) = 16.67
    assert prune_mask(torch.tensor([50.0, 30.0, 10.0, 10.0])).tolist() == [True, True, False, False]
    # th = max(10/3, mean(10, 9, 1) / 2 = 3.33) -> the tie at the threshold is kept (drop only w_C < th)
    assert prune_mask(torch.tensor([9.0, 10.0 / 3, 1.0]), 3.0, 2.0).tolist() == [True, True, False]
    assert prune_mask(torch.tensor([5.0, 5.0, 5.0])).all()
    assert prune_mask(torch.zeros(0)).shape == (0,)
    assert prune_mask(torch.tensor([10.0, 6.0, 4.0]), max_divisor=2.0, mean_divisor=2.0).tolist() == [
        True,
        True,
        False,
    ]


def test_code_display_scaling():
    torch.manual_seed(0)
    maps = torch.rand(3, 8, 8) * 5
    maps[2] = 7.0  # constant
    out = code_display(maps, (32, 32))
    assert out.shape == maps.shape
    assert out.min() >= 0 and out.max() <= 1
    assert (out[2] == 0).all()
    # order of pixels is largely preserved (monotone up to interpolation)
    assert torch.corrcoef(torch.stack([out[0].flatten(), maps[0].flatten()]))[0, 1] > 0.8
    assert set(MAP_SCALINGS) == {"raw", "code"}
    torch.testing.assert_close(MAP_SCALINGS["raw"](maps, (32, 32)), maps)


@pytest.mark.parametrize("name", sorted(MAP_SCALINGS))
def test_scalings_keep_shape_and_handle_empty(name):
    assert MAP_SCALINGS[name](torch.zeros(0, 4, 4), (16, 16)).shape == (0, 4, 4)
    assert MAP_SCALINGS[name](torch.rand(2, 4, 6), (16, 24)).shape == (2, 4, 6)


def test_code_display_equals_the_authors_order_of_steps():
    """Min-max of the small maps after area resizing = area resizing of the min-maxed large maps (rounding)."""
    import torch.nn.functional as F

    torch.manual_seed(3)
    maps = torch.rand(5, 14, 14) * torch.rand(5, 1, 1) * 10 - 2
    maps[1] = 0.25  # constant: zeros
    up = F.interpolate(maps[:, None], size=(224, 224), mode="bilinear", align_corners=False)
    lo, hi = up.amin(dim=(2, 3), keepdim=True), up.amax(dim=(2, 3), keepdim=True)
    ref = F.interpolate((up - lo) / (hi - lo).clamp(min=1e-30), size=(14, 14), mode="area")[:, 0]
    ref[1] = 0
    out = code_display(maps, (224, 224))
    torch.testing.assert_close(out, ref, rtol=0, atol=2e-5)  # float32 eps x |map| / range, maps up to ~8
    assert out.min() >= 0 and out.max() <= 1 and (out[1] == 0).all()
