"""Deep Reveal masked images (docs/method.md §2): exact values on tiny maps, properties for any map."""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from inviz.core.config import ParamsError, from_dict
from inviz.game.reveal import (
    RevealConfig,
    apply_mask,
    binary_levels,
    blur_sigma,
    game_image,
    mask_sigma,
    percentile_mask,
    reveal,
    reveal_mask,
    reveal_masks,
    soft_mask,
    upscale_factor,
    upscale_nearest,
)


def test_nearest_upscaling_is_block_replication():
    m = np.arange(16, dtype=float).reshape(4, 4)
    up = upscale_nearest(m, 32)
    np.testing.assert_array_equal(up, np.kron(m, np.ones((8, 8))))
    assert upscale_factor(m.shape, 32) == 8


def test_nearest_upscaling_non_integer_factor_keeps_every_value():
    m = np.arange(9, dtype=float).reshape(3, 3)
    up = upscale_nearest(m, 8)
    assert up.shape == (8, 8)
    assert set(np.unique(up)) == set(m.ravel())
    assert up[0, 0] == 0 and up[-1, -1] == 8


def test_paper_sigmas_and_rule_for_other_factors():
    table = RevealConfig().sigma
    assert [blur_sigma(f, table) for f in (8, 16, 32)] == [12.0, 16.0, 24.0]
    assert blur_sigma(8.0, table) == 12.0
    assert blur_sigma(4, table) == pytest.approx(12 * np.sqrt(0.5))  # nearest entry 8, sqrt scaling
    assert blur_sigma(64, table) == pytest.approx(24 * np.sqrt(2))
    assert blur_sigma(12, table) == pytest.approx(16 * np.sqrt(12 / 16))  # log-nearer to 16 than to 8
    assert blur_sigma(10, table) == pytest.approx(12 * np.sqrt(10 / 8))


def test_percentile_mask_top_share_and_ties():
    v = np.arange(100, dtype=float)
    assert percentile_mask(v, 2).sum() == 2  # 98, 99
    assert percentile_mask(v, 30).sum() == 30
    assert percentile_mask(np.ones(50), 2).all()  # a constant map reveals everything
    with pytest.raises(ValueError, match="NaN"):
        percentile_mask(np.array([0.0, np.nan]), 2)


def test_soft_mask_is_scipy_gaussian_with_truncate():
    b = np.zeros((64, 64), bool)
    b[20:30, 30:40] = True
    s = soft_mask(b, 4.0, truncate=1.5)
    np.testing.assert_allclose(s, gaussian_filter(b.astype(np.float32), 4.0, truncate=1.5), atol=1e-6)
    # truncate 1.5: nothing beyond 1.5 sigma (rounded to whole pixels) of the mask is lit
    assert s[20:30, : 30 - int(1.5 * 4 + 0.5) - 1].max() == 0
    np.testing.assert_array_equal(soft_mask(b, 0.0), b.astype(np.float32))


def test_apply_mask():
    img = np.full((2, 2, 3), 200, np.uint8)
    soft = np.array([[0.0, 0.5], [1.0, 0.25]])
    out = apply_mask(img, soft)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[..., 0], [[0, 100], [200, 50]])


def test_reveal_levels_exact_on_a_ramp_map():
    cfg = RevealConfig(game_size=80, sigma={8: 0.0})
    cmap = np.arange(100, dtype=float).reshape(10, 10)  # x8 to 80 px, every value appears 64 times
    img = np.full((80, 80, 3), 100, np.uint8)
    r = reveal(cmap, img, cfg)
    assert r.factor == 8 and r.sigma == 0.0
    assert r.masked.shape == (6, 80, 80, 3) and r.masked.dtype == np.uint8
    np.testing.assert_allclose(
        r.revealed_share, [0.02, 0.05, 0.08, 0.13, 0.20, 0.30]
    )  # 4.5 % -> 5 whole cells
    top2 = np.zeros((10, 10), bool)
    top2.flat[98:] = True
    np.testing.assert_array_equal(r.binary[0], np.kron(top2, np.ones((8, 8), bool)))
    np.testing.assert_array_equal(r.masked[0][..., 0], np.where(r.binary[0], 100, 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reveal_properties_for_any_map(seed):
    rng = np.random.default_rng(seed)
    cfg = RevealConfig(game_size=128)
    for side in (4, 8, 16):
        cmap = rng.random((side, side))
        img = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
        r = reveal(cmap, img, cfg)
        assert r.sigma == blur_sigma(128 / side, cfg.sigma)
        # levels nest: each hint reveals a superset of the previous view
        for a, b in zip(r.binary[:-1], r.binary[1:], strict=False):
            assert not (a & ~b).any()
        assert np.all(np.diff(r.revealed_share) >= 0)  # coarse maps: two levels may show the same cells
        assert np.all(r.revealed_share >= np.asarray(cfg.levels) / 100 - 1e-9)
        assert np.all((r.soft >= 0) & (r.soft <= 1))
        assert np.all(r.masked <= img)  # masking only darkens


def test_binary_levels_invariant_to_monotone_rescaling():
    rng = np.random.default_rng(3)
    cmap = rng.random((8, 8))
    cfg = RevealConfig(game_size=64)
    np.testing.assert_array_equal(binary_levels(cmap, cfg), binary_levels(3 * cmap + 7, cfg))


def test_game_image_resizes_like_the_network_input():
    from PIL import Image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (50, 70, 3), dtype=np.uint8)
    out = game_image(img, 32, 64, "nearest")
    assert out.shape == (64, 64, 3)
    net = np.asarray(Image.fromarray(img).resize((32, 32), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(out[::2, ::2], net)


def test_reveal_rejects_wrong_shapes():
    cfg = RevealConfig(game_size=32)
    with pytest.raises(ValueError, match="image"):
        reveal(np.zeros((4, 4)), np.zeros((16, 16, 3), np.uint8), cfg)
    with pytest.raises(ValueError, match="square"):
        reveal(np.zeros((4, 2)), np.zeros((32, 32, 3), np.uint8), cfg)


def test_config_validation_from_params():
    cfg = from_dict(RevealConfig, {"game_size": 256, "levels": [1, 5], "sigma": {8: 3}}, "masks")
    assert cfg.levels == (1.0, 5.0) and cfg.sigma == {8: 3.0}
    with pytest.raises(ParamsError, match="strictly increasing"):
        from_dict(RevealConfig, {"levels": [5, 1]}, "masks")
    with pytest.raises(ParamsError, match="unknown key"):
        from_dict(RevealConfig, {"level": [5]}, "masks")


@pytest.mark.parametrize("seed", [0, 1])
def test_one_soft_mask_for_the_game_the_overlays_and_the_players(seed):
    rng = np.random.default_rng(seed)
    cfg = RevealConfig(game_size=64)
    cmap = rng.random((8, 8))
    r = reveal(cmap, rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), cfg)
    binary, soft = reveal_masks(cmap, cfg)
    np.testing.assert_array_equal(binary, r.binary)
    np.testing.assert_array_equal(soft, r.soft)
    assert soft.dtype == np.float32 and r.sigma == mask_sigma(cmap.shape, cfg) == blur_sigma(8, cfg.sigma)
    for i, q in enumerate(cfg.levels):  # one level at the game size: the game's mask, bit for bit
        np.testing.assert_array_equal(reveal_mask(cmap, 64, q, cfg), r.soft[i])
    # at another size the blur scales with it: step 4 of the method on a 32-px grid
    half = reveal_mask(cmap, 32, 30.0, cfg)
    expected = gaussian_filter(
        percentile_mask(upscale_nearest(cmap, 32), 30.0).astype(np.float32),
        blur_sigma(8, cfg.sigma) / 2,
        truncate=cfg.truncate,
    )
    np.testing.assert_allclose(half, np.clip(expected, 0, 1), atol=1e-6)
    assert mask_sigma(cmap.shape, cfg, 32) == blur_sigma(8, cfg.sigma) / 2


def test_workers_are_a_run_setting_and_the_old_key_still_works(caplog):
    cfg = from_dict(RevealConfig, {"run": {"workers": 3}}, "masks")
    assert cfg.run.workers == 3
    with caplog.at_level("WARNING"):
        old = from_dict(RevealConfig, {"workers": 3}, "masks", "old.yaml")
    assert old == cfg and "masks.run.workers" in caplog.text
    with pytest.raises(ParamsError, match="give only the new key"):
        from_dict(RevealConfig, {"workers": 3, "run": {"workers": 2}}, "masks")
    with pytest.raises(ParamsError, match="workers"):
        from_dict(RevealConfig, {"run": {"workers": 0}}, "masks")


@pytest.mark.parametrize(
    ("side", "size", "mode"),
    [
        (8, 256, "reflect"),
        (16, 256, "reflect"),
        (32, 256, "nearest"),
        (14, 224, "reflect"),
        (10, 64, "reflect"),
        (56, 48, "constant"),
    ],
)
def test_soft_masks_by_small_matrices_equal_the_full_size_gaussian_filter(side, size, mode):
    """Step 4 computed as (G U) B (G U)^T equals scipy's gaussian_filter of the full-size mask.

    Integer factors (x32, x16, x8 as in the paper), non-integer ones (14 -> 224 is x16; 10 -> 64
    and 56 -> 48 are not integers: uneven blocks, a downscale), three border modes, maps with ties.
    """
    cfg = RevealConfig(game_size=size, levels=(2, 4.5, 8, 13, 20, 30), blur_mode=mode)
    rng = np.random.default_rng(side)
    for trial in range(4):
        cmap = rng.random((side, side)).astype(np.float32)
        if trial % 2:
            cmap = np.round(cmap * 4) / 4  # ties at the thresholds
        binary, soft = reveal_masks(cmap, cfg)
        up = upscale_nearest(cmap.astype(np.float64), size)
        sigma = mask_sigma(cmap.shape, cfg)
        ref_binary = np.stack([percentile_mask(up, q) for q in cfg.levels])
        ref_soft = np.stack([soft_mask(b, sigma, cfg.truncate, mode) for b in ref_binary])
        np.testing.assert_array_equal(binary, ref_binary)
        assert soft.dtype == np.float32 and soft.shape == (6, size, size)
        np.testing.assert_allclose(soft, ref_soft, rtol=0, atol=2e-7)


@pytest.mark.parametrize("sigma", [None, {8: 0.0, 16: 0.0}])
def test_soft_masks_and_part_coverage_equal_the_full_masks_bit_for_bit(sigma):
    """``soft_masks`` skips the binary masks; ``maps_part_coverage`` gathers each image's part pixels
    once: both give exactly what the full masks and a per-level boolean-mask mean give."""
    from inviz.game.coverage import maps_part_coverage, part_coverage
    from inviz.game.reveal import soft_masks

    cfg = RevealConfig(game_size=64) if sigma is None else RevealConfig(game_size=64, sigma=sigma)
    rng = np.random.default_rng(4)

    class Parts:  # PartMasks' interface: two images, three parts (one empty)
        masks = {
            im: {p: rng.random((16, 16)) < share for p, share in (("a", 0.3), ("b", 0.05), ("c", 0.0))}
            for im in ("x", "y")
        }

        def parts_of(self, image):
            return sorted(self.masks[image])

        def mask(self, image, part):
            return self.masks[image][part]

    maps = {i: rng.random((s, s)) ** 3 for i, s in enumerate([8, 16, 8, 16, 8])}
    images = {0: "x", 1: "x", 2: "y", 3: "y", 4: "x"}
    got = maps_part_coverage(maps, images, Parts(), cfg)
    for cid, cmap in maps.items():
        binary, soft = reveal_masks(cmap, cfg)
        assert np.array_equal(soft_masks(cmap, cfg), soft)
        present = Parts.masks[images[cid]]
        big = {p: upscale_nearest(m.astype(np.uint8), 64).astype(bool) for p, m in present.items()}
        ref = np.array(
            [[float(lv[big[p]].mean()) if big[p].any() else 0.0 for p in sorted(big)] for lv in soft]
        )
        parts, cov = got[cid]
        assert parts == ["a", "b", "c"] and np.array_equal(cov, ref)
        assert np.array_equal(part_coverage(cmap, present, cfg)[1], ref)
