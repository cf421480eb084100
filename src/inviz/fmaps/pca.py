"""Kept maps -> PCA scores: min-max scaling of each map (docs/method.md §1.5) and PCA (§1.6).

1. :func:`minmax_rows` — every map scaled to [0, 1] over its own pixels; a constant map is left
   as it is (no division by zero).
2. :func:`pca_scores` — PCA to ``d = min(pca_components, n_maps, n_pixels)`` components: one
   float32 eigen-decomposition of the smaller Gram/covariance matrix per problem, in torch, on
   the problems' device; signs fixed like scikit-learn's ``svd_flip``.

The scores are the input of t-SNE (:mod:`inviz.fmaps.embedding`, §1.6), or the points themselves
without t-SNE (``extract.embedding: pca``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: a map whose range is at most this fraction of its magnitude counts as constant (float32 rounding)
CONSTANT_RTOL = 1e-6


def minmax_rows(x: torch.Tensor) -> torch.Tensor:
    """Scale each row to [0, 1]; constant rows are returned unchanged.

    A row is constant when ``max - min <= CONSTANT_RTOL * max(|max|, |min|)`` (rounding noise
    on a constant map is not blown up to [0, 1]).

    Parameters
    ----------
    x : Tensor of shape (n, P), one flattened map per row.

    Returns
    -------
    Tensor of shape (n, P).
    """
    lo = x.amin(dim=1, keepdim=True)
    hi = x.amax(dim=1, keepdim=True)
    rng = hi - lo
    flat = rng <= CONSTANT_RTOL * torch.maximum(hi.abs(), lo.abs())
    return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(rng), rng))


def _flip_signs(scores: torch.Tensor) -> torch.Tensor:
    """Make the largest-magnitude entry of every column positive (scikit-learn's ``svd_flip``)."""
    if scores.numel() == 0:
        return scores
    idx = scores.abs().argmax(0)
    signs = torch.sign(scores[idx, torch.arange(scores.shape[1], device=scores.device)])
    signs[signs == 0] = 1
    return scores * signs


def pca_scores(xs: Sequence[torch.Tensor], n_components: int) -> list[torch.Tensor]:
    """PCA scores of several problems.

    Parameters
    ----------
    xs : tensors of shape (n_i, P_i) (any device, float).
    n_components : at most this many components; problem ``i`` gets ``min(n_components, n_i, P_i)``.

    Returns
    -------
    list of float64 tensors of shape (n_i, d_i), components ordered by decreasing variance
    (computed in float32: exact up to float32 rounding, unlike scikit-learn's randomized solver).
    Rows that are identical up to rounding (:data:`CONSTANT_RTOL`) give all-zero scores.
    """
    out: list[torch.Tensor] = []
    for x in xs:
        n, p = x.shape
        d = min(n_components, n, p)
        if n == 0 or d == 0:
            out.append(torch.zeros((n, 0), dtype=torch.float64, device=x.device))
            continue
        xc = (x - x.mean(0, keepdim=True)).float()
        if float(xc.abs().max()) <= CONSTANT_RTOL * float(x.abs().max()):
            # identical maps up to rounding: no direction of variance (t-SNE must not blow up noise)
            out.append(torch.zeros((n, d), dtype=torch.float64, device=x.device))
            continue
        if n <= p:  # Gram matrix (n, n): scores = U sqrt(lambda)
            evals, evecs = torch.linalg.eigh(xc @ xc.T)
            evals, evecs = evals.flip(0)[:d], evecs.flip(1)[:, :d]
            scores = evecs * evals.clamp(min=0).sqrt()
        else:  # covariance (P, P): scores = X V
            evals, evecs = torch.linalg.eigh(xc.T @ xc)
            scores = xc @ evecs.flip(1)[:, :d]
        out.append(_flip_signs(scores.double()))
    return out
