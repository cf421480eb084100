"""Channel weights and their normalisation (docs/method.md §1.2-§1.3).

Two registries, each a dict ``name -> function`` chosen by a string in ``params.yaml``:

- :data:`WEIGHTINGS` — channel weight ``w_k`` from activations ``A`` and gradients ``G`` of shape
  (N, C, H, W), returning (N, C):

  * ``guided`` (authors' code, default): spatial mean of ``G * 1[A > 0] * 1[G > 0]`` (zeros
    included in the mean), so ``w_k >= 0``;
  * ``gradcam`` (paper text): plain spatial mean of ``G`` (Grad-CAM's weights; may be negative).

- :data:`NORMALISATIONS` — the scale of the stored weights, from ``w`` (..., C) and the layer's
  total ``T = sum_k max(w_k, 0)`` (the L1 sum of the positive weights; for ``guided`` weights
  simply ``sum(w)``; for ``gradcam`` the sum after removing the maps with ``w <= 0``):

  * ``percent`` (code, default): ``100 * w / T``, weights of a layer sum to 100;
  * ``unit`` (paper text, "unit normalisation"): ``w / T``, weights sum to 1;
  * ``none``: the raw ``w`` (e.g. to compare with Grad-CAM in its own units).

The map threshold (:mod:`inviz.fmaps.threshold`) is always expressed as a **percentage share**
``100 * w / T`` (:func:`share_percent`) whatever the normalisation, so the normalisation only
rescales the stored weights and cluster weights; the pruning rule and Table 1 are scale-free.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: (activations, gradients) -> weights; shapes (N, C, H, W), (N, C, H, W) -> (N, C)
WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def guided_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Spatial mean of ``grads * 1[acts > 0] * 1[grads > 0]`` (authors' code).

    Parameters
    ----------
    acts : Tensor of shape (N, C, H, W), activations.
    grads : Tensor of shape (N, C, H, W), gradients of the target logit.

    Returns
    -------
    Tensor of shape (N, C), non-negative.
    """
    masked = _masked_cpu(acts, grads)
    if masked is None:
        masked = grads * ((acts > 0) & (grads > 0))
    return masked.mean(dim=(2, 3))


def _masked_cpu(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor | None:
    """Return ``grads * 1[acts > 0] * 1[grads > 0]`` of contiguous float32 CPU tensors in one pass, else None.

    The same values as the torch expression (see :mod:`inviz.fmaps._fused_numba`), several times
    faster on large maps; tensors that need autograd keep the torch expression.
    """
    if not (
        acts.device.type == grads.device.type == "cpu"
        and acts.dtype == grads.dtype == torch.float32
        and acts.shape == grads.shape
        and acts.is_contiguous()
        and grads.is_contiguous()  # (torch's mean of a strided product sums in another order)
        and not (acts.requires_grad or grads.requires_grad)
    ):
        return None
    from inviz.fmaps._fused_numba import masked_gradients

    out = torch.empty_like(grads)  # torch's (aligned) memory, as the torch expression's product
    masked_gradients(acts.numpy().reshape(-1), grads.numpy().reshape(-1), out.numpy().reshape(-1))
    return out


def gradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Spatial mean of ``grads`` (Grad-CAM, paper text).

    Parameters
    ----------
    acts : Tensor of shape (N, C, H, W), activations (unused).
    grads : Tensor of shape (N, C, H, W), gradients of the target logit.

    Returns
    -------
    Tensor of shape (N, C).
    """
    return grads.mean(dim=(2, 3))


WEIGHTINGS: dict[str, WeightFn] = {
    "guided": guided_weights,
    "gradcam": gradcam_weights,
}


def layer_total(w: torch.Tensor) -> torch.Tensor:
    """Return the layer's total ``T = sum_k max(w_k, 0)``.

    Parameters
    ----------
    w : Tensor of shape (..., C), channel weights.

    Returns
    -------
    Tensor of shape (...).
    """
    return w.clamp(min=0).sum(-1)


def _safe(total: torch.Tensor) -> torch.Tensor:
    return torch.where(total > 0, total, torch.ones_like(total))


#: name -> ``f(w (..., C), T (...)) -> (..., C)``; ``T = 0`` divides by 1 instead
NORMALISATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "percent": lambda w, total: 100.0 * w / _safe(total)[..., None],
    "unit": lambda w, total: w / _safe(total)[..., None],
    "none": lambda w, total: w,
}


def normalisation_scale(name: str, total: torch.Tensor) -> torch.Tensor:
    """Return the factor ``s`` with ``normalised = s * raw`` of normalisation ``name``, in float64.

    Parameters
    ----------
    name : a key of :data:`NORMALISATIONS`.
    total : Tensor of shape (N,), the layers' totals ``T``.

    Returns
    -------
    float64 Tensor of shape (N,): :data:`NORMALISATIONS` applied to a unit weight.
    """
    total = total.double()
    unit = torch.ones((*total.shape, 1), dtype=torch.float64, device=total.device)
    return NORMALISATIONS[name](unit, total)[..., 0]


def share_percent(w: torch.Tensor) -> torch.Tensor:
    """Percentage share ``100 * w / T`` of each channel.

    Parameters
    ----------
    w : Tensor of shape (..., C), channel weights.

    Returns
    -------
    Tensor of shape (..., C); zeros when ``T = 0``.
    """
    return NORMALISATIONS["percent"](w, layer_total(w))
