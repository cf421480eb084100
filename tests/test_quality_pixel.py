"""Deletion / insertion curves (RISE): known answers, the random map at chance, agreement with Quantus."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from quality_nets import RegionProbability

from inviz.quality.config import PixelConfig
from inviz.quality.pixel import (
    auc,
    baseline_image,
    perturbation_curve,
    pixel_faithfulness,
    pixel_ranks,
)

H = W = 12
REGION = np.zeros((H, W))
REGION[2:6, 3:9] = 1  # 24 of 144 pixels


def image() -> torch.Tensor:
    x = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0)) * 0.5
    x[0][torch.as_tensor(REGION, dtype=torch.bool)] = 1.0
    return x


def test_ranks_and_ties():
    s = np.array([[0.1, 0.9], [0.9, 0.5]])
    np.testing.assert_array_equal(pixel_ranks(s, "index"), [[3, 0], [1, 2]])
    ranks = {tuple(pixel_ranks(s, "random", np.random.default_rng(i)).ravel()) for i in range(20)}
    assert ranks == {(3, 0, 1, 2), (3, 1, 0, 2)}  # only the tie at 0.9 moves


def test_auc_is_the_trapezoid_over_zero_to_one():
    assert auc(np.linspace(1, 0, 11)) == pytest.approx(0.5)
    assert auc(np.array([1.0, 1.0, 0.0])) == pytest.approx(0.75)


def test_curves_of_a_map_that_ranks_the_region_first_are_known():
    model = RegionProbability(REGION).eval()
    x, steps = image(), 16
    ranks = pixel_ranks(REGION, "random", np.random.default_rng(0))
    zero = torch.zeros_like(x)
    cuts = np.round(np.arange(steps + 1) * H * W / steps)
    deletion = perturbation_curve(model, x, 1, ranks, "deletion", zero, steps, batch_size=5)
    np.testing.assert_allclose(deletion, np.clip(1 - cuts / 24, 0, 1), atol=1e-6)
    insertion = perturbation_curve(model, x, 1, ranks, "insertion", zero, steps, batch_size=64)
    np.testing.assert_allclose(insertion, np.clip(cuts / 24, 0, 1), atol=1e-6)
    # the reversed map removes the region last
    late = perturbation_curve(model, x, 1, pixel_ranks(-REGION, "index"), "deletion", zero, steps)
    assert auc(late) > 0.8 > 0.1 > auc(deletion)


def test_the_random_map_lands_at_chance_and_baselines():
    model = RegionProbability(REGION).eval()
    x = image()
    n = 40
    images = x[None].repeat(n, 1, 1, 1)
    maps = {
        ("Random", None): np.random.default_rng(5).random((n, H, W)),
        ("INV", "l"): np.tile(REGION, (n, 1, 1)),
    }
    cfg = PixelConfig(steps=24, deletion_baseline="mean", insertion_baseline="mean", seed=1)
    aucs, curves = pixel_faithfulness(
        model, images, [1] * n, [f"s{i}" for i in range(n)], maps, cfg, (0, 0, 0), (1, 1, 1)
    )
    rand = aucs[aucs["method"] == "Random"]
    # chance: each removed pixel is in R with probability 24/144, so E[curve(t)] = 1 - t -> AUC 0.5
    assert rand["deletion_auc"].mean() == pytest.approx(0.5, abs=0.03)
    assert rand["insertion_auc"].mean() == pytest.approx(0.5, abs=0.03)
    inv = aucs[aucs["method"] == "INV"]
    assert inv["deletion_auc"].max() < 0.12 and inv["insertion_auc"].min() > 0.88
    assert set(curves["mode"]) == {"deletion", "insertion"} and len(curves) == 2 * 2 * 25


def test_baseline_images():
    x = torch.randn(3, 8, 8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    assert torch.equal(baseline_image(x, "mean", mean, std), torch.zeros_like(x))
    black = baseline_image(x, "black", mean, std)
    torch.testing.assert_close(black[:, 0, 0] * torch.tensor(std) + torch.tensor(mean), torch.zeros(3))
    blur = baseline_image(x, "blur", mean, std, 5, 2.0)
    assert blur.shape == x.shape and blur.std() < x.std()
    with pytest.raises(ValueError, match="baseline"):
        baseline_image(x, "grey", mean, std)


def test_deletion_curve_equals_quantus_pixel_flipping():
    """Quantus 0.6 PixelFlipping = our deletion curve without its start point (one-channel input, no ties)."""
    import quantus

    class OneChannel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))

    model = OneChannel().eval()
    rng = np.random.default_rng(0)
    x = rng.random((3, 1, H, W)).astype(np.float32)
    a = rng.random((3, 1, H, W)).astype(np.float32)
    y = np.array([0, 1, 2])
    steps = 12
    metric = quantus.PixelFlipping(
        features_in_step=H * W // steps,
        perturb_baseline=0.0,
        disable_warnings=True,
        display_progressbar=False,
    )
    theirs = np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu"))
    for i in range(3):
        ours = perturbation_curve(
            model, torch.as_tensor(x[i]), int(y[i]), pixel_ranks(a[i, 0], "index"), "deletion",
            torch.zeros(1, H, W), steps,
        )  # fmt: skip
        np.testing.assert_allclose(ours[1:], theirs[i], atol=1e-6)
