"""Exact t-SNE batched in torch over padded problems (docs/method.md §1.6): the ``torch`` t-SNE backend.

The algorithm of :mod:`inviz.fmaps._tsne_cpu` (scikit-learn's exact t-SNE step for step) on
problems zero-padded to a common size (B, N, N): padded rows and columns are not valid pairs and
take no part in the optimisation. Float64 on the CPU, float32 on CUDA. Called by
:class:`inviz.fmaps.embedding.TorchTSNE`.

Batch independence
------------------
A problem's result is bit for bit the same whatever other problems share its batch and however
far it is padded. Every per-problem quantity is an elementwise expression or a pairwise (tree) sum
over a zero-padded axis (:func:`tree_sum`), and adding an exact zero never changes a partial sum.
Library reductions (``sum``) and batched matrix products are not used in the iterations: GPU
reduction kernels and cuBLAS choose how to split a sum from the shape of the whole batch.
Distances are built column by column. On the CPU the backend runs on one thread and rows are
padded to a multiple of :data:`ROW_PAD`, so that vectorised and scalar code paths (``exp``, ``log``)
always meet the same elements. The binary search and the iterations stop early only for problems
that are done; their values are frozen, so extra rounds for slower companions change nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from inviz.core.compute import one_thread
from inviz.fmaps.embedding import Embedding, TSNEConfig, effective_perplexity, learning_rate, tsne_init

#: rows of the padded problems: a multiple of this (the widest SIMD loop step of torch on the CPU)
ROW_PAD = 32
#: perplexity-search steps between checks whether every row has converged (each check synchronises)
SEARCH_CHECK = 8


def tree_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over the last axis by pairs (``x[2i] + x[2i+1]``, recursively), whatever the batch shape.

    Trailing zeros do not change the result (a zero added to a partial sum is exact), so a
    zero-padded row sums to exactly the value of the unpadded row.

    Parameters
    ----------
    x : Tensor of shape (..., n).

    Returns
    -------
    Tensor of shape (...).
    """
    while x.shape[-1] > 1:
        if x.shape[-1] % 2:
            x = torch.nn.functional.pad(x, (0, 1))
        x = x[..., 0::2] + x[..., 1::2]
    return x[..., 0]


def _conditional_p_torch(
    dist: torch.Tensor, valid: torch.Tensor, perplexity: torch.Tensor, cfg: TSNEConfig
) -> torch.Tensor:
    """Batched binary search of the perplexity: dist (B, n, n), valid (B, n, n) -> p_{j|i}."""
    big = torch.finfo(dist.dtype).max
    dmin = torch.where(valid, dist, torch.full_like(dist, big)).amin(-1, keepdim=True)
    dmin = torch.where(dmin >= big, torch.zeros_like(dmin), dmin)
    d = torch.where(valid, dist - dmin, torch.zeros_like(dist))
    shape = dist.shape[:2]
    beta = torch.ones(shape, dtype=dist.dtype, device=dist.device)
    lo = torch.full_like(beta, -math.inf)
    hi = torch.full_like(beta, math.inf)
    done = torch.zeros(shape, dtype=torch.bool, device=dist.device)
    desired = torch.log(perplexity)[:, None]
    p = torch.zeros_like(dist)
    for step in range(cfg.perplexity_steps):
        cand = torch.where(valid, torch.exp(-d * beta[..., None]), torch.zeros_like(d))
        s = tree_sum(cand)
        s = torch.where(s == 0, torch.full_like(s, 1e-8), s)
        cand = cand / s[..., None]
        entropy = torch.log(s) + beta * tree_sum(d * cand)
        p = torch.where(done[..., None], p, cand)
        diff = entropy - desired
        done = done | (diff.abs() <= cfg.perplexity_tol)
        up = (diff > 0) & ~done
        down = (diff <= 0) & ~done
        new_up = torch.where(torch.isinf(hi), beta * 2, (beta + hi) / 2)
        new_down = torch.where(torch.isinf(lo), beta / 2, (beta + lo) / 2)
        lo = torch.where(up, beta, lo)
        hi = torch.where(down, beta, hi)
        beta = torch.where(up, new_up, torch.where(down, new_down, beta))
        if (step + 1) % SEARCH_CHECK == 0 and bool(done.all()):
            break
    return p


def _sq_distances(x: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (B, n, n) of points (B, n, d), summed over the columns in order."""
    dist = torch.zeros((*x.shape[:2], x.shape[1]), dtype=x.dtype, device=x.device)
    for c in range(x.shape[2]):
        diff = x[:, :, None, c] - x[:, None, :, c]
        dist = dist + diff * diff
    return dist


def _pad_problems(scores: Sequence[torch.Tensor], cfg: TSNEConfig) -> tuple[torch.Tensor, ...]:
    """Pad the problems: initial points (B, N, 2), valid pairs (B, N, N), joint P (B, N, N), perplexity (B,).

    The padded rows and columns are not valid pairs: they take no part in the optimisation.
    """
    device = scores[0].device
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    ns = [s.shape[0] for s in scores]
    nb, nmax = len(scores), -(-max(ns) // ROW_PAD) * ROW_PAD
    dmax = max(max(s.shape[1] for s in scores), 1)
    x = torch.zeros((nb, nmax, dmax), dtype=dtype, device=device)
    y = torch.zeros((nb, nmax, 2), dtype=dtype, device=device)
    rows = torch.zeros((nb, nmax), dtype=torch.bool, device=device)
    for b, s in enumerate(scores):
        x[b, : ns[b], : s.shape[1]] = s.to(dtype)
        y[b, : ns[b]] = tsne_init(s).to(dtype)
        rows[b, : ns[b]] = True
    eye = torch.eye(nmax, dtype=torch.bool, device=device)
    valid = rows[:, :, None] & rows[:, None, :] & ~eye
    perp = torch.tensor([effective_perplexity(n, cfg.perplexity) for n in ns], dtype=dtype, device=device)
    cond = _conditional_p_torch(_sq_distances(x), valid, perp, cfg)
    eps = torch.finfo(torch.float64).eps
    joint = cond + cond.transpose(1, 2)
    total = tree_sum(tree_sum(joint)).clamp(min=eps)[:, None, None]
    p = torch.where(valid, (joint / total).clamp(min=eps), torch.zeros_like(joint))
    return y, valid, p, perp


def _student_q(y: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Differences ``y_i - y_j`` (x and y, each (B, n, n)) and ``1 / (1 + |y_i - y_j|^2)`` of valid pairs."""
    dx = y[:, :, None, 0] - y[:, None, :, 0]
    dy = y[:, :, None, 1] - y[:, None, :, 1]
    q = torch.where(valid, 1.0 / (1.0 + dx * dx + dy * dy), torch.zeros_like(dx))
    return dx, dy, q


def _kl_gradient(y: torch.Tensor, pe: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Gradient of KL(P_e || Q) with respect to the points, (B, n, 2); ``pe`` is the exaggerated P."""
    dx, dy, q = _student_q(y, valid)
    z = tree_sum(tree_sum(q))[:, None, None]
    w = pe * q - q * q / z
    return 4.0 * torch.stack([tree_sum(w * dx), tree_sum(w * dy)], -1)


def _kl(y: torch.Tensor, pe: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """KL(P_e || Q) per problem, (B,); ``pe`` is the (exaggerated) P."""
    eps = torch.finfo(torch.float64).eps
    q = _student_q(y, valid)[2]
    q = (q / tree_sum(tree_sum(q))[:, None, None]).clamp(min=eps)
    terms = torch.where(valid, pe * torch.log(pe.clamp(min=eps) / q), torch.zeros_like(q))
    return tree_sum(tree_sum(terms))


def tsne_torch(scores: Sequence[torch.Tensor], cfg: TSNEConfig) -> list[Embedding]:
    """Run the exact algorithm of :mod:`inviz.fmaps._tsne_cpu`, batched over padded problems in torch.

    Parameters
    ----------
    scores : tensors of shape (n_b, d_b), the PCA scores of B problems (each ``n_b >= 4``), on one device.
    cfg : t-SNE settings.

    Returns
    -------
    list of B :class:`inviz.fmaps.embedding.Embedding`, points of shape (n_b, 2); each identical to
    what the problem gives alone.
    """
    with one_thread(scores[0].device):
        return _tsne_batch(scores, cfg)


def _tsne_batch(scores: Sequence[torch.Tensor], cfg: TSNEConfig) -> list[Embedding]:
    y, valid, p, perp = _pad_problems(scores, cfg)
    ns = [s.shape[0] for s in scores]
    nb, dtype, device = len(scores), y.dtype, y.device
    lr = torch.tensor([learning_rate(n, cfg) for n in ns], dtype=dtype, device=device)[:, None, None]
    iters = torch.zeros(nb, dtype=torch.long, device=device)
    err = torch.full((nb,), math.nan, dtype=dtype, device=device)
    phases = [
        (
            0,
            min(cfg.exaggeration_iter, cfg.n_iter),
            cfg.early_exaggeration,
            cfg.momentum_early,
            cfg.exaggeration_iter,
        )
    ]
    if cfg.n_iter > cfg.exaggeration_iter:
        phases.append(
            (cfg.exaggeration_iter, cfg.n_iter, 1.0, cfg.momentum_final, cfg.n_iter_without_progress)
        )
    for start, stop, exag, momentum, patience in phases:
        # like scikit-learn, a problem that stopped early in the first phase still runs the second
        # (here every problem starts the second phase at ``exaggeration_iter``)
        pe = p * exag
        active = torch.ones(nb, dtype=torch.bool, device=device)
        update = torch.zeros_like(y)
        gains = torch.ones_like(y)
        best = torch.full((nb,), math.inf, dtype=dtype, device=device)
        best_it = torch.full((nb,), start, dtype=torch.long, device=device)
        for i in range(start, stop):
            g = _kl_gradient(y, pe, valid)
            inc = update * g < 0
            gains = torch.where(inc, gains + 0.2, gains * 0.8).clamp(min=cfg.min_gain)
            g = g * gains
            update = torch.where(active[:, None, None], momentum * update - lr * g, update)
            y = torch.where(active[:, None, None], y + update, y)
            iters = torch.where(active, torch.full_like(iters, i + 1), iters)
            if (i + 1) % cfg.n_iter_check == 0 or i == stop - 1:
                e = _kl(y, pe, valid)
                err = torch.where(active, e, err)
                if (i + 1) % cfg.n_iter_check == 0:
                    better = e < best
                    best_it = torch.where(better & active, torch.full_like(best_it, i), best_it)
                    stalled = ~better & (i - best_it > patience)
                    best = torch.where(better & active, e, best)
                    gnorm = tree_sum((g * g).flatten(1)).sqrt()
                    active = active & ~stalled & ~(gnorm <= cfg.min_grad_norm)
                    if not bool(active.any()):
                        break
    if cfg.n_iter <= cfg.exaggeration_iter:  # like the numba kernel: report the plain KL
        err = _kl(y, p, valid)
    y_np, err_np, it_np = y.double().cpu().numpy(), err.double().cpu().numpy(), iters.cpu().numpy()
    perp_np = perp.cpu().numpy()
    return [
        Embedding(y_np[b, : ns[b]].copy(), "tsne", float(perp_np[b]), float(err_np[b]), int(it_np[b]))
        for b in range(nb)
    ]
