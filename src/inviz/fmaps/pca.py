"""Kept maps -> PCA scores: min-max scaling of each map (docs/method.md §1.5) and PCA (§1.6).

1. :func:`minmax_rows` — every map scaled to [0, 1] over its own pixels; a constant map is left
   as it is (no division by zero).
2. :func:`pca_scores` — PCA to ``d = min(pca_components, n_maps, n_pixels)`` components: a
   float32 eigen-decomposition of the smaller Gram/covariance matrix of each problem, batched
   over problems of one padded size, in torch, on the problems' device; signs fixed like
   scikit-learn's ``svd_flip``. A problem's scores do not depend on the other problems.

The scores are the input of t-SNE (:mod:`inviz.fmaps.embedding`, §1.6), or the points themselves
without t-SNE (``extract.embedding: pca``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from inviz.core.compute import one_thread

#: a map whose range is at most this fraction of its magnitude counts as constant (float32 rounding)
CONSTANT_RTOL = 1e-6
#: eigen-problems are zero-padded to a multiple of this size before the batched ``eigh`` (at least
#: 64, so that CUDA never switches to its batched Jacobi solver for tiny matrices)
EIGH_BLOCK = 64


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
    if x.device.type == "cpu" and x.dtype == torch.float32 and x.is_contiguous() and not x.requires_grad:
        from inviz.fmaps._fused_numba import minmax_scale

        out = torch.empty_like(x)  # one pass, the same float32 operations (bit-identical)
        minmax_scale(x.numpy(), lo[:, 0].numpy(), rng[:, 0].numpy(), flat[:, 0].numpy(), out.numpy())
        return out
    return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(rng), rng))


def _absmax(x: torch.Tensor) -> torch.Tensor:
    """``x.abs().amax()`` without the temporary of ``abs`` (two reductions instead of three passes)."""
    return torch.maximum(x.amax(), -x.amin())


def _flip_signs(scores: torch.Tensor) -> torch.Tensor:
    """Make the largest-magnitude entry of every column positive (scikit-learn's ``svd_flip``)."""
    if scores.numel() == 0:
        return scores
    idx = scores.abs().argmax(0)
    signs = torch.sign(scores[idx, torch.arange(scores.shape[1], device=scores.device)])
    return scores * torch.where(signs == 0, torch.ones_like(signs), signs)


def padded_size(m: int) -> int:
    """Size an eigen-problem of size ``m`` is padded to: a multiple of :data:`EIGH_BLOCK`, at least one block.

    Parameters
    ----------
    m : the matrix size.

    Returns
    -------
    int
    """
    return max(EIGH_BLOCK, -(-m // EIGH_BLOCK) * EIGH_BLOCK)


def pca_scores(xs: Sequence[torch.Tensor], n_components: int) -> list[torch.Tensor]:
    """PCA scores of several problems, each computed independently of the others.

    Parameters
    ----------
    xs : tensors of shape (n_i, P_i) (any device, float; all on one device).
    n_components : at most this many components; problem ``i`` gets ``min(n_components, n_i, P_i)``.

    Returns
    -------
    list of float64 tensors of shape (n_i, d_i), components ordered by decreasing variance
    (computed in float32: exact up to float32 rounding, unlike scikit-learn's randomized solver).
    Rows that are identical up to rounding (:data:`CONSTANT_RTOL`) give all-zero scores.

    Notes
    -----
    The smaller of the Gram matrix (n, n) and the covariance (P, P) of each problem is built on
    its own, zero-padded to :func:`padded_size` and eigen-decomposed together with the other
    problems of the same padded size (one ``eigh`` call per size, no host synchronisation per
    problem). The padding depends only on the problem's own size, so its scores do not depend on
    the other problems. On the CPU the algebra runs on one thread (:func:`inviz.core.compute.one_thread`):
    MKL's products and eigen-solvers round differently with different thread counts.
    """
    if not xs:
        return []
    out: list[torch.Tensor | None] = [None] * len(xs)
    jobs: dict[int, list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor, int]]] = {}
    with one_thread(xs[0].device):
        for i, x in enumerate(xs):
            n, p = x.shape
            d = min(n_components, n, p)
            if n == 0 or d == 0:
                out[i] = torch.zeros((n, 0), dtype=torch.float64, device=x.device)
                continue
            xc = (x - x.mean(0, keepdim=True)).float()
            # identical maps up to rounding: no direction of variance (t-SNE must not blow up noise)
            flat = _absmax(xc) <= CONSTANT_RTOL * _absmax(x)
            mat = xc @ xc.T if n <= p else xc.T @ xc  # Gram (n, n): scores = U sqrt(lambda); else X V
            jobs.setdefault(padded_size(mat.shape[0]), []).append((i, xc, mat, flat, d))
        for size, group in jobs.items():
            stack = torch.zeros((len(group), size, size), dtype=torch.float32, device=xs[0].device)
            for g, (_, _, mat, _, _) in enumerate(group):
                stack[g, : mat.shape[0], : mat.shape[0]] = mat
            evals, evecs = torch.linalg.eigh(stack)  # ascending
            for g, (i, xc, mat, flat, d) in enumerate(group):
                m = mat.shape[0]
                top = evecs[g, :m, size - d :].flip(1)
                if xc.shape[0] <= xc.shape[1]:  # Gram
                    scores = top * evals[g, size - d :].flip(0).clamp(min=0).sqrt()
                else:
                    scores = xc @ top
                out[i] = _flip_signs(torch.where(flat, torch.zeros_like(scores), scores).double())
    return out  # type: ignore[return-value]
