"""Exact t-SNE batched in torch over padded problems (docs/method.md §1.6): the ``torch`` t-SNE backend.

The algorithm of :mod:`inviz.fmaps._tsne_numba` (scikit-learn's exact t-SNE step for step) on
problems padded to the largest one (B, n, n): padded rows and columns are not valid pairs and take
no part in the optimisation. Float64 on the CPU, float32 on CUDA. Called by
:class:`inviz.fmaps.embedding.TorchTSNE`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from inviz.fmaps.embedding import Embedding, TSNEConfig, effective_perplexity, learning_rate, tsne_init


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
    for _ in range(cfg.perplexity_steps):
        cand = torch.exp(-d * beta[..., None]) * valid
        s = cand.sum(-1)
        s = torch.where(s == 0, torch.full_like(s, 1e-8), s)
        cand = cand / s[..., None]
        entropy = torch.log(s) + beta * (d * cand).sum(-1)
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
        if bool(done.all()):
            break
    return p


def _pad_problems(scores: Sequence[torch.Tensor], cfg: TSNEConfig) -> tuple[torch.Tensor, ...]:
    """Pad the problems: initial points (B, n, 2), valid pairs (B, n, n), joint P (B, n, n), perplexity (B,).

    The padded rows and columns are not valid pairs: they take no part in the optimisation.
    """
    device = scores[0].device
    dtype = torch.float64 if device.type == "cpu" else torch.float32
    ns = [s.shape[0] for s in scores]
    nb, nmax = len(scores), max(ns)
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
    sq = (x * x).sum(-1)
    dist = (sq[:, :, None] + sq[:, None, :] - 2 * x @ x.transpose(1, 2)).clamp(min=0)
    perp = torch.tensor([effective_perplexity(n, cfg.perplexity) for n in ns], dtype=dtype, device=device)
    cond = _conditional_p_torch(dist, valid, perp, cfg)
    eps = torch.finfo(torch.float64).eps
    joint = cond + cond.transpose(1, 2)
    total = joint.sum((1, 2), keepdim=True).clamp(min=eps)
    p = torch.where(valid, (joint / total).clamp(min=eps), torch.zeros_like(joint))
    return y, valid, p, perp


def _student_q(y: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Unnormalised Student-t affinities ``1 / (1 + |y_i - y_j|^2)`` of the valid pairs, (B, n, n)."""
    ysq = (y * y).sum(-1)
    d2 = (ysq[:, :, None] + ysq[:, None, :] - 2 * y @ y.transpose(1, 2)).clamp(min=0)
    return torch.where(valid, 1.0 / (1.0 + d2), torch.zeros_like(d2))


def _kl_gradient(y: torch.Tensor, p: torch.Tensor, valid: torch.Tensor, exag: float) -> torch.Tensor:
    """Gradient of KL(exag * P || Q) with respect to the points, (B, n, 2)."""
    q = _student_q(y, valid)
    z = q.sum((1, 2), keepdim=True)
    w = exag * p * q - q * q / z
    return 4.0 * (w.sum(-1, keepdim=True) * y - w @ y)


def _kl(y: torch.Tensor, p: torch.Tensor, valid: torch.Tensor, exag: float) -> torch.Tensor:
    """KL(exag * P || Q) per problem, (B,)."""
    eps = torch.finfo(torch.float64).eps
    q = _student_q(y, valid)
    q = (q / q.sum((1, 2), keepdim=True)).clamp(min=eps)
    pe = exag * p
    return torch.where(valid, pe * torch.log(pe.clamp(min=eps) / q), torch.zeros_like(q)).sum((1, 2))


def tsne_torch(scores: Sequence[torch.Tensor], cfg: TSNEConfig) -> list[Embedding]:
    """Run the exact algorithm of :mod:`inviz.fmaps._tsne_numba`, batched over padded problems in torch.

    Parameters
    ----------
    scores : tensors of shape (n_b, d_b), the PCA scores of B problems (each ``n_b >= 4``), on one device.
    cfg : t-SNE settings.

    Returns
    -------
    list of B :class:`inviz.fmaps.embedding.Embedding`, points of shape (n_b, 2).
    """
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
        active = torch.ones(nb, dtype=torch.bool, device=device)
        update = torch.zeros_like(y)
        gains = torch.ones_like(y)
        best = torch.full((nb,), math.inf, dtype=dtype, device=device)
        best_it = torch.full((nb,), start, dtype=torch.long, device=device)
        for i in range(start, stop):
            g = _kl_gradient(y, p, valid, exag)
            inc = update * g < 0
            gains = torch.where(inc, gains + 0.2, gains * 0.8).clamp(min=cfg.min_gain)
            g = g * gains
            update = torch.where(active[:, None, None], momentum * update - lr * g, update)
            y = torch.where(active[:, None, None], y + update, y)
            iters = torch.where(active, torch.full_like(iters, i + 1), iters)
            if (i + 1) % cfg.n_iter_check == 0 or i == stop - 1:
                e = _kl(y, p, valid, exag)
                err = torch.where(active, e, err)
                if (i + 1) % cfg.n_iter_check == 0:
                    better = e < best
                    best_it = torch.where(better & active, torch.full_like(best_it, i), best_it)
                    stalled = ~better & (i - best_it > patience)
                    best = torch.where(better & active, e, best)
                    gnorm = (g * g).sum((1, 2)).sqrt()
                    active = active & ~stalled & ~(gnorm <= cfg.min_grad_norm)
                    if not bool(active.any()):
                        break
    if cfg.n_iter <= cfg.exaggeration_iter:  # like the numba kernel: report the plain KL
        err = _kl(y, p, valid, 1.0)
    y_np, err_np, it_np = y.double().cpu().numpy(), err.double().cpu().numpy(), iters.cpu().numpy()
    perp_np = perp.cpu().numpy()
    return [
        Embedding(y_np[b, : ns[b]].copy(), "tsne", float(perp_np[b]), float(err_np[b]), int(it_np[b]))
        for b in range(nb)
    ]
