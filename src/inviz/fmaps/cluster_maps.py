"""Cluster weights, weighted cluster maps and cluster pruning (docs/method.md §1.8-§1.9).

For the kept maps ``A_j`` (raw activations, native resolution) with weights ``w_j`` and cluster
labels, cluster ``C`` gets

- weight ``w_C = sum_{j in C} w_j``,
- map ``A_C = sum_{j in C} w_j A_j / w_C`` (a weighted mean of the members' **raw** maps),

computed for all clusters with one matrix product at native size. Hence the identity

    sum_C w_C A_C = sum_j w_j A_j,

i.e. the Grad-CAM map restricted to the kept channels (:func:`weighted_sum`). A cluster whose
members' weights sum to exactly zero (only possible with ``keep_nonpositive``) has an undefined
weighted mean; its map is the plain mean of its members (the identity then holds only if that
cluster's weighted sum is zero too, which it is when all its weights are zero).

Pruning (:func:`prune_mask`): with ``th = max(max(w_C) / max_divisor, mean(w_C) / mean_divisor)``
(code: divisors 3 and 2) over the clusters of one image and layer, clusters with ``w_C < th`` are
dropped.

Map scalings (:data:`MAP_SCALINGS`), for what later stages display and mask:

- ``raw`` — ``A_C`` as defined above (the identity holds);
- ``code`` — the authors' display step: upsample bilinearly to the network input size, min-max
  scale to [0, 1], resize back to the native size (area averaging). Constant maps (up to float
  rounding, :data:`inviz.fmaps.pca.CONSTANT_RTOL`) become 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from inviz.fmaps.pca import CONSTANT_RTOL


def onehot(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Membership matrix of integer labels.

    Parameters
    ----------
    labels : LongTensor of shape (n,), values in ``0 .. k-1``.
    k : number of clusters.

    Returns
    -------
    float32 Tensor of shape (k, n), 1 where map ``j`` is in cluster ``c``.
    """
    m = torch.zeros((k, labels.shape[0]), dtype=torch.float32, device=labels.device)
    if labels.numel():
        m[labels, torch.arange(labels.shape[0], device=labels.device)] = 1.0
    return m


def cluster_weights(weights: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """Cluster weights ``w_C``, the sums of the members' weights.

    Parameters
    ----------
    weights : Tensor of shape (n,).
    labels : LongTensor of shape (n,), values in ``0 .. k-1``.
    k : number of clusters.

    Returns
    -------
    Tensor of shape (k,).
    """
    return onehot(labels, k).to(weights.dtype) @ weights


def cluster_maps(
    maps: torch.Tensor, weights: torch.Tensor, labels: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted cluster maps at native size.

    Parameters
    ----------
    maps : Tensor of shape (n, H, W), raw activations of the kept channels.
    weights : Tensor of shape (n,), their (normalised) weights.
    labels : LongTensor of shape (n,), cluster of each map in ``0 .. k-1``.
    k : number of clusters.

    Returns
    -------
    w_c : Tensor of shape (k,), cluster weights.
    a_c : Tensor of shape (k, H, W), weighted mean maps.
    """
    n, h, w = maps.shape
    member = onehot(labels, k).to(maps.dtype)
    wt = weights.to(maps.dtype)
    w_c = member @ wt
    sums = (member * wt[None, :]) @ maps.reshape(n, h * w)
    counts = member.sum(1)
    zero = w_c == 0
    plain = (member @ maps.reshape(n, h * w)) / counts.clamp(min=1)[:, None]
    safe = torch.where(zero, torch.ones_like(w_c), w_c)
    a_c = torch.where(zero[:, None], plain, sums / safe[:, None])
    return w_c, a_c.reshape(k, h, w)


def weighted_sum(maps: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sum ``sum_j w_j A_j`` of maps.

    Parameters
    ----------
    maps : Tensor of shape (n, H, W).
    weights : Tensor of shape (n,).

    Returns
    -------
    Tensor of shape (H, W).
    """
    return torch.einsum("n,nhw->hw", weights.to(maps.dtype), maps)


def prune_mask(w_c: torch.Tensor, max_divisor: float = 3.0, mean_divisor: float = 2.0) -> torch.Tensor:
    """Clusters kept after pruning: ``w_C >= max(max(w_C) / max_divisor, mean(w_C) / mean_divisor)``.

    Parameters
    ----------
    w_c : Tensor of shape (k,), the cluster weights of one image and layer.
    max_divisor, mean_divisor : the rule's divisors (code: 3 and 2).

    Returns
    -------
    BoolTensor of shape (k,) (empty when k = 0).
    """
    if w_c.numel() == 0:
        return torch.zeros(0, dtype=torch.bool, device=w_c.device)
    th = torch.maximum(w_c.max() / max_divisor, w_c.mean() / mean_divisor)
    return w_c >= th


def _raw(maps: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    return maps


def code_display(maps: torch.Tensor, input_size: tuple[int, int]) -> torch.Tensor:
    """Scale maps for display like the authors: bilinear upsampling to ``input_size``, min-max, resize back.

    Parameters
    ----------
    maps : Tensor of shape (k, H, W).
    input_size : (height, width) of the network input.

    Returns
    -------
    Tensor of shape (k, H, W), values in [0, 1].
    """
    if maps.numel() == 0:
        return maps
    k, h, w = maps.shape
    up = F.interpolate(maps[:, None].float(), size=tuple(input_size), mode="bilinear", align_corners=False)
    lo = up.amin(dim=(2, 3), keepdim=True)
    hi = up.amax(dim=(2, 3), keepdim=True)
    # area resizing averages, so it commutes with the min-max: scale the small maps, not the large
    # ones (the same values up to float rounding, clamped to [0, 1]; a third of the time)
    back = F.interpolate(up, size=(h, w), mode="area")
    rng = hi - lo
    varies = rng > CONSTANT_RTOL * torch.maximum(hi.abs(), lo.abs())  # else constant up to rounding
    scaled = ((back - lo) / torch.where(varies, rng, torch.ones_like(rng))).clamp_(0.0, 1.0)
    return torch.where(varies, scaled, torch.zeros_like(back))[:, 0].to(maps.dtype)


#: name -> ``f(maps (k, H, W), input_size (H_in, W_in)) -> (k, H, W)``
MAP_SCALINGS: dict[str, Callable[[torch.Tensor, tuple[int, int]], torch.Tensor]] = {
    "raw": _raw,
    "code": code_display,
}
