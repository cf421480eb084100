"""Deep Reveal's blur for the upscale factors of other networks (ResNet, EfficientNet at 224 px)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inviz.game.reveal import RevealConfig, game_image, reveal

#: ResNet-18 at 224 px: layer1..layer4 maps are 56, 28, 14, 7 pixels wide
RESNET_SIDES = (56, 28, 14, 7)


@pytest.mark.parametrize(
    "game_size, expected",
    [
        (448, {56: 12.0, 28: 16.0, 14: 24.0, 7: 24 * math.sqrt(2)}),  # x8 x16 x32 x64
        (224, {56: 12 * math.sqrt(0.5), 28: 12.0, 14: 16.0, 7: 24.0}),  # x4 x8 x16 x32
        (512, {7: 24 * math.sqrt(512 / 7 / 32)}),  # x73.1: nearest table entry 32 (log scale)
    ],
)
def test_sigma_for_the_factors_of_resnet_maps(game_size, expected):
    cfg = RevealConfig(game_size=game_size)
    image = np.zeros((game_size, game_size, 3), np.uint8)
    for side, sigma in expected.items():
        rv = reveal(np.arange(side * side, dtype=float).reshape(side, side), image, cfg)
        assert rv.factor == pytest.approx(game_size / side)
        assert rv.sigma == pytest.approx(sigma)


@pytest.mark.parametrize("game_size", [448, 512])
def test_layer4_map_reveals_its_hottest_block(game_size):
    """A 7x7 map (ResNet layer4 at 224 px): the 2 % level shows exactly the hottest block of pixels,
    blurred symmetrically around it with the mass of the binary mask kept (reflect borders)."""
    cmap = np.zeros((7, 7))
    cmap[3, 3] = 1.0
    cmap[0, 6] = 0.5
    cfg = RevealConfig(game_size=game_size)
    rv = reveal(cmap, np.full((game_size, game_size, 3), 200, np.uint8), cfg)
    rows = (np.arange(game_size) * 7) // game_size
    block = (rows[:, None] == 3) & (rows[None, :] == 3)
    np.testing.assert_array_equal(rv.binary[0], block)
    assert rv.revealed_share[0] == pytest.approx(block.mean())
    soft = rv.soft[0]
    assert soft.sum() == pytest.approx(block.sum(), rel=1e-3)
    ys, xs = np.nonzero(block)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    peak = np.unravel_index(np.argmax(soft), soft.shape)
    assert abs(peak[0] - cy) <= 1 and abs(peak[1] - cx) <= 1
    if game_size == 448:  # the block is centred in the image: the soft mask is point-symmetric
        np.testing.assert_allclose(soft, soft[::-1, ::-1], atol=1e-6)
    # further levels reveal the second block too, never less than before
    assert rv.binary[-1][0, -1] and (rv.binary[1:] >= rv.binary[:-1]).all()


def test_game_image_of_a_224_input():
    photo = np.random.default_rng(0).integers(0, 255, (300, 451, 3), dtype=np.uint8)
    assert game_image(photo, 224, 448).shape == (448, 448, 3)
