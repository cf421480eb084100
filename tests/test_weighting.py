"""Channel weights and their normalisation (inviz.fmaps.weighting)."""

from __future__ import annotations

import pytest
import torch

from inviz.fmaps.weighting import NORMALISATIONS, WEIGHTINGS, layer_total, normalisation_scale, share_percent


def test_guided_and_gradcam_exact_values():
    # one image, two channels, 2x2 maps
    acts = torch.tensor([[[[1.0, 0.0], [2.0, 3.0]], [[0.0, 0.0], [0.0, 1.0]]]])
    grads = torch.tensor([[[[2.0, 4.0], [-1.0, 1.0]], [[1.0, 1.0], [1.0, -2.0]]]])
    guided = WEIGHTINGS["guided"](acts, grads)
    # channel 0: A>0 & G>0 at (0,0)=2 and (1,1)=1 -> (2+1)/4; channel 1: only (1,1) has A>0 but G<0 -> 0
    torch.testing.assert_close(guided, torch.tensor([[0.75, 0.0]]))
    gradcam = WEIGHTINGS["gradcam"](acts, grads)
    torch.testing.assert_close(gradcam, torch.tensor([[1.5, 0.25]]))


@pytest.mark.parametrize("name", sorted(WEIGHTINGS))
def test_every_weighting_has_shape_and_is_linear_in_the_gradient(name):
    torch.manual_seed(0)
    acts = torch.relu(torch.randn(3, 5, 4, 4))
    grads = torch.randn(3, 5, 4, 4)
    w = WEIGHTINGS[name](acts, grads)
    assert w.shape == (3, 5)
    torch.testing.assert_close(WEIGHTINGS[name](acts, 2 * grads), 2 * w)
    if name == "guided":
        assert (w >= 0).all()


def test_normalisations():
    w = torch.tensor([[3.0, 1.0, -2.0, 0.0]])
    total = layer_total(w)
    assert total.tolist() == [4.0]
    torch.testing.assert_close(NORMALISATIONS["percent"](w, total), torch.tensor([[75.0, 25.0, -50.0, 0.0]]))
    torch.testing.assert_close(NORMALISATIONS["unit"](w, total), torch.tensor([[0.75, 0.25, -0.5, 0.0]]))
    torch.testing.assert_close(NORMALISATIONS["none"](w, total), w)
    # no positive weight: no division by zero
    z = torch.zeros(1, 3)
    for fn in NORMALISATIONS.values():
        assert torch.isfinite(fn(z, layer_total(z))).all()
    assert torch.isfinite(share_percent(-torch.ones(1, 3))).all()


@pytest.mark.parametrize("name", sorted(NORMALISATIONS))
def test_normalisation_scale_is_the_factor_of_every_normalisation(name):
    w = torch.tensor([[3.0, 1.0, -2.0, 0.0], [0.5, 0.25, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0]])
    total = layer_total(w)
    scale = normalisation_scale(name, total)
    assert scale.shape == (3,) and scale.dtype == torch.float64
    torch.testing.assert_close(scale[:, None] * w.double(), NORMALISATIONS[name](w, total).double())
    assert torch.isfinite(scale).all()


def test_guided_cpu_pass_is_bit_identical_to_the_torch_expression():
    """The one-pass CPU kernel gives the torch expression's values, signs of zeros included."""
    torch.manual_seed(1)
    acts = torch.randn(4, 7, 33, 31)  # negative activations and gradients, odd sizes
    grads = torch.randn(4, 7, 33, 31) * 1e-3
    grads[0, 0] = -1.0  # a channel without any positive gradient (products -0.0)
    ref = (grads * ((acts > 0) & (grads > 0))).mean(dim=(2, 3))
    for a, g in ((acts, grads), (acts.transpose(2, 3), grads.transpose(2, 3))):  # also non-contiguous
        ref = (g * ((a > 0) & (g > 0))).mean(dim=(2, 3))
        out = WEIGHTINGS["guided"](a, g)
        assert torch.equal(out, ref) and torch.equal(out.signbit(), ref.signbit())
    grads.requires_grad_(True)  # autograd keeps the torch expression (and its graph)
    assert WEIGHTINGS["guided"](acts, grads).requires_grad
