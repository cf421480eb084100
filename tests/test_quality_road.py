"""ROAD: the imputation against Quantus' and hand-computed values, MoRF/LeRF against Quantus' ROAD."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inviz.quality.config import RoadConfig
from inviz.quality.road import linear_imputation, road


def test_imputation_equals_quantus():
    from quantus.functions.perturb_func import noisy_linear_imputation

    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 20, 24))
    for share in (0.1, 0.5, 0.9):
        idx = np.sort(rng.permutation(20 * 24)[: int(20 * 24 * share)])
        removed = np.zeros(20 * 24, bool)
        removed[idx] = True
        ours = linear_imputation(x, removed.reshape(20, 24))
        theirs = noisy_linear_imputation(x, idx, noise=0.0)
        np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_imputation_reproduces_a_linear_ramp_and_keeps_known_pixels():
    yy, xx = np.mgrid[:10, :10].astype(float)
    x = np.stack([2 * yy + 3 * xx + 1, -yy + 0.5 * xx, np.full((10, 10), 7.0)])
    removed = np.zeros((10, 10), bool)
    removed[3:7, 2:8] = True  # interior block: each removed pixel's 8 neighbours exist
    out = linear_imputation(x, removed)
    np.testing.assert_allclose(out, x, atol=1e-9)
    noisy = linear_imputation(x, removed, noise=0.1, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(noisy[:, ~removed], x[:, ~removed])
    assert 0.05 < np.std(noisy[:, removed] - x[:, removed]) < 0.15
    with pytest.raises(ValueError, match="rng"):
        linear_imputation(x, removed, noise=0.1)


class OneChannel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.conv = torch.nn.Conv2d(1, 6, 3, padding=1)
        self.fc = torch.nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).amax(dim=(2, 3)))


def test_morf_accuracy_equals_quantus_road_where_quantus_works():
    """Quantus 0.6 ROAD works for one-channel inputs; with noise 0 its accuracies are our MoRF's."""
    import quantus

    model = OneChannel().eval()
    rng = np.random.default_rng(3)
    n, h = 6, 10
    x = rng.normal(size=(n, 1, h, h)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.as_tensor(x)).argmax(1).numpy()
    a = rng.random((n, 1, h, h)).astype(np.float32)
    pct = [10.0, 40.0, 70.0]
    metric = quantus.ROAD(percentages=pct, noise=0.0, disable_warnings=True, display_progressbar=False)
    theirs = metric(model=model, x_batch=x, y_batch=y, a_batch=a, device="cpu")
    cfg = RoadConfig(percentages=tuple(pct), noise=0.0, methods=("Random",))
    rows = road(
        model, torch.as_tensor(x), y.tolist(), [f"s{i}" for i in range(n)], {("Random", None): a[:, 0]}, cfg
    )
    morf = rows[rows["order"] == "MoRF"].groupby("percentage")["correct"].mean()
    np.testing.assert_allclose(morf.loc[pct].to_numpy(), [theirs[p] for p in pct])
    assert set(rows["order"]) == {"MoRF", "LeRF"} and len(rows) == n * 2 * len(pct)


def test_quantus_road_fails_on_rgb_images_with_one_map_per_pixel():
    """Why ROAD is driven here: Quantus 0.6 ranks 3*H*W values and indexes H*W pixels with them."""
    import quantus

    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2)
    )
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 8)).astype(np.float32)
    a = np.random.default_rng(1).random((2, 1, 8, 8)).astype(np.float32)
    metric = quantus.ROAD(percentages=[50], disable_warnings=True)
    with pytest.raises(IndexError):
        metric(model=model.eval(), x_batch=x, y_batch=np.array([0, 1]), a_batch=a, device="cpu")


def test_road_is_seeded():
    model = OneChannel().eval()
    x = torch.randn(2, 1, 8, 8)
    maps = {("Random", None): np.random.default_rng(0).random((2, 8, 8))}
    cfg = RoadConfig(percentages=(30.0, 60.0), noise=0.05, methods=("Random",), seed=9)
    a = road(model, x, [0, 1], ["a", "b"], maps, cfg)
    b = road(model, x, [0, 1], ["a", "b"], maps, cfg)
    assert a.equals(b)


def test_threaded_imputations_equal_the_serial_noisy_ones():
    """Solves in threads, noise drawn afterwards in order: the images the serial loop makes, bit for bit."""
    from inviz.quality.pixel import map_rng, pixel_ranks, target_outputs

    model = OneChannel().eval()
    rng = np.random.default_rng(5)
    n, h = 4, 12
    x = torch.as_tensor(rng.normal(size=(n, 1, h, h)).astype(np.float32))
    maps = {("Random", None): rng.random((n, h, h)).astype(np.float32), ("Other", "l"): rng.random((n, h, h))}
    cfg = RoadConfig(percentages=(20.0, 50.0, 80.0), noise=0.05, methods=("Random", "Other"))
    ids = [f"s{i}" for i in range(n)]
    y = [0, 1, 2, 1]
    one, three = (road(model, x, y, ids, maps, cfg, workers=w) for w in (1, 3))
    import pandas as pd

    pd.testing.assert_frame_equal(one, three)
    # the serial reference: impute with noise one image at a time, in the curve's order
    probs = []
    for i, sid in enumerate(ids):
        for key, stack in maps.items():
            g = map_rng(cfg.seed, sid, key)
            ranks = pixel_ranks(stack[i], "random", g)
            batch = []
            for order in ("MoRF", "LeRF"):
                for p in cfg.percentages:
                    k = int(ranks.size * p / 100)
                    removed = ranks < k if order == "MoRF" else ranks >= ranks.size - k
                    batch.append(linear_imputation(x[i].double().numpy(), removed, cfg.noise, g))
            probs += list(target_outputs(model, torch.as_tensor(np.stack(batch), dtype=x.dtype), y[i], 64)[0])
    np.testing.assert_array_equal(one["prob"].to_numpy(), np.asarray(probs, dtype=float))
