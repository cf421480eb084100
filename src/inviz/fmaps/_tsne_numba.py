"""Exact t-SNE compiled for the CPU with numba (docs/method.md §1.6): the ``numba`` t-SNE backend.

The algorithm is scikit-learn's exact t-SNE step for step (binary search for the perplexity on
squared Euclidean distances, symmetrised joint probabilities, Student-t kernel with one degree of
freedom, gradient descent with momentum and per-parameter gains, an early-exaggeration phase that
restarts the momentum and gains, convergence checks every ``n_iter_check`` iterations), so its
result is what ``sklearn.manifold.TSNE(method="exact")`` computes up to floating-point rounding.

Many problems (every layer of every image of a batch) are solved in one call: the outer loop over
problems is ``prange``-parallel and each problem is solved by a single thread, so the result is
deterministic and does not depend on the number of threads. The pair sums (gradient, KL) are
:mod:`inviz.fmaps._tsne_pairs`: each unordered pair once, float32 pair arithmetic with float64
accumulation of ``Z`` and float64 optimiser state (``error_model="numpy"`` and ``fastmath`` so
that the inner loops vectorise),

    grad_i = 4 * (exag * sum_j p_ij q_ij (y_i - y_j)  -  sum_j q_ij^2 (y_i - y_j) / Z),
    q_ij = 1 / (1 + |y_i - y_j|^2).

Compiled with ``cache=True`` (the compiled code is stored next to this file; the first call in a
fresh environment pays the JIT cost once). Called by :class:`inviz.fmaps.embedding.NumbaTSNE`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit, prange

from inviz.fmaps._tsne_pairs import _vlog, gradient, kl, padded

_EPS_DBL = 1e-8  # sklearn's EPSILON_DBL in the binary search
_MACHINE_EPS = np.finfo(np.double).eps
_LOG_EPS = math.log(_MACHINE_EPS)
_LN2 = math.log(2.0)
_LOG2E = 1.0 / _LN2


@njit(cache=True, error_model="numpy")
def _sqdist(x: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances of the rows, each a sum over the dimensions in order (no fastmath).

    The coordinates are transposed so that the loop over the second point vectorises; every
    distance is still ``((x_i0 - x_j0)^2 + (x_i1 - x_j1)^2) + ...`` in that order.
    """
    n, d = x.shape
    xt = np.ascontiguousarray(x.T)
    out = np.zeros((n, n))
    for i in range(n):
        row = out[i]
        for c in range(d):
            xi = x[i, c]
            xc = xt[c]
            for j in range(np.uint64(i + 1), np.uint64(n)):  # unsigned: no negative-index wrap
                t = xi - xc[j]
                row[j] += t * t
    for i in range(n):
        for j in range(i):
            out[i, j] = out[j, i]
    return out


@njit(cache=True, fastmath=True, error_model="numpy")
def _vexp(x: np.ndarray, out: np.ndarray, ibuf: np.ndarray) -> None:
    """``out = exp(x)`` elementwise for ``x <= 0`` (1-D float64), vectorisable (relative error < 1e-12).

    Results below 2**-1022 are flushed to 0. ``ibuf`` is an int64 work buffer of the same length.
    """
    n = x.shape[0]
    for j in range(n):
        t = x[j] * _LOG2E
        if t < -1022.0:
            t = -1022.0
        k = math.floor(t)
        r = (t - k) * _LN2  # exp(r), r in [0, ln 2): Taylor polynomial of degree 12
        # Horner's scheme of the Taylor polynomial, kept compact by hand:
        # fmt: off
        out[j] = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120 + r * (
            1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (1.0 / 362880 + r * (
                1.0 / 3628800 + r * (1.0 / 39916800 + r / 479001600)))))))))))
        # fmt: on
        ibuf[j] = (np.int64(k) + 1023) << 52  # 2**k as float64 bits
    scale = ibuf.view(np.float64)
    for j in range(n):
        v = out[j] * scale[j]
        out[j] = 0.0 if x[j] * _LOG2E < -1022.0 else v


@njit(cache=True, fastmath=True, error_model="numpy")
def _conditional_p(dist: np.ndarray, perplexity: float, n_steps: int, tol: float) -> np.ndarray:
    """Scikit-learn's ``_binary_search_perplexity`` (rows: conditional p_{j|i}; diagonal 0).

    Same bisection on the precision ``beta`` and the same stopping rule (``|H - log perplexity|
    <= tol`` nats, at most ``n_steps`` steps). Two changes that do not alter what is computed:
    distances are shifted by each row's minimum (p and H are unchanged mathematically; no
    underflow for far-apart points), and each row's search starts from the previous row's
    ``beta`` instead of 1 (fewer steps to the same tolerance).
    """
    n = dist.shape[0]
    p = np.zeros((n, n))
    desired = math.log(perplexity)
    arg = np.empty(n)
    row = np.empty(n)
    ibuf = np.empty(n, dtype=np.int64)
    beta_start = 1.0
    for i in range(n):
        dmin = 1e308  # (fastmath: no infinities; unset bounds are -1 since beta > 0)
        for j in range(n):
            if j != i and dist[i, j] < dmin:
                dmin = dist[i, j]
        beta = beta_start
        beta_min = -1.0
        beta_max = -1.0
        for _ in range(n_steps):
            for j in range(n):
                arg[j] = -(dist[i, j] - dmin) * beta
            arg[i] = -1e300  # p_ii = 0 (no infinities under fastmath)
            _vexp(arg, row, ibuf)
            row[i] = 0.0
            sum_p = 0.0
            for j in range(n):
                sum_p += row[j]
            if sum_p == 0.0:
                sum_p = _EPS_DBL
            inv = 1.0 / sum_p
            sum_dp = 0.0
            for j in range(n):
                row[j] *= inv
                sum_dp += (dist[i, j] - dmin) * row[j]
            entropy = math.log(sum_p) + beta * sum_dp
            diff = entropy - desired
            if abs(diff) <= tol:
                break
            if diff > 0.0:
                beta_min = beta
                if beta_max < 0.0:
                    beta *= 2.0
                else:
                    beta = (beta + beta_max) / 2.0
            else:
                beta_max = beta
                if beta_min < 0.0:
                    beta /= 2.0
                else:
                    beta = (beta + beta_min) / 2.0
        beta_start = beta
        for j in range(n):
            p[i, j] = row[j]
    return p


@njit(cache=True, error_model="numpy")
def _joint_p(cond: np.ndarray) -> np.ndarray:
    n = cond.shape[0]
    total = 0.0
    for i in range(n):
        for j in range(n):
            total += cond[i, j]
    total = max(2.0 * total, _MACHINE_EPS)  # sum of (cond + cond.T) over the full matrix
    p = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            v = max((cond[i, j] + cond[j, i]) / total, _MACHINE_EPS)
            p[i, j] = v
            p[j, i] = v
    return p


@njit(cache=True, fastmath=True, error_model="numpy")
def _p_stats(p: np.ndarray) -> tuple[float, float]:
    """(sum_{i != j} p_ij, sum_{i != j} p_ij log p_ij) of the joint probabilities."""
    n = p.shape[0]
    row = np.empty(n)
    logs = np.empty(n)
    ibuf = np.empty(n, dtype=np.int64)
    total = 0.0
    plogp = 0.0
    for i in range(n):
        for j in range(n):
            row[j] = p[i, j] if j != i else 1.0
        _vlog(row, logs, ibuf)
        for j in range(n):
            if j != i:
                total += p[i, j]
                plogp += p[i, j] * logs[j]
    return total, plogp


@njit(cache=True, error_model="numpy")
def _step(
    y: np.ndarray,
    g: np.ndarray,
    u: np.ndarray,
    k: np.ndarray,
    yf: np.ndarray,
    momentum: float,
    lr: float,
    min_gain: float,
    gnorm2: float,
) -> float:
    """One coordinate's gains, momentum and step (scikit-learn's update), in place; ``yf[:n] = y``.

    Written without branches (selects), the same operations in the same order: returns ``gnorm2``
    plus the squared gain-scaled gradient, summed point by point.
    """
    for a in range(y.shape[0]):
        ka = k[a] + 0.2 if u[a] * g[a] < 0.0 else k[a] * 0.8
        ka = min_gain if ka < min_gain else ka
        k[a] = ka
        ga = g[a] * ka
        gnorm2 += ga * ga
        ua = momentum * u[a] - lr * ga
        u[a] = ua
        y[a] += ua
        yf[a] = y[a]
    return gnorm2


@njit(cache=True, error_model="numpy")
def _descend(
    y0: np.ndarray,
    y1: np.ndarray,
    p: np.ndarray,
    exag: float,
    start: int,
    stop: int,
    momentum: float,
    n_without_progress: int,
    opt: tuple[float, float, float, int],
    p_sum: float,
    p_logp: float,
) -> tuple[float, int]:
    """Scikit-learn's ``_gradient_descent`` on (y0, y1) in place; returns (last error, last iteration).

    ``opt`` is ``(learning rate, min_gain, min_grad_norm, n_iter_check)``, the same in both phases.
    """
    lr, min_gain, min_grad_norm, n_iter_check = opt
    n = y0.shape[0]
    p32, y0f, y1f, acc = padded(p, exag)
    g0 = np.zeros(n)
    g1 = np.zeros(n)
    u0 = np.zeros(n)
    u1 = np.zeros(n)
    k0 = np.ones(n)
    k1 = np.ones(n)
    error = np.finfo(np.float64).max
    best_error = error
    best_iter = start
    i = start
    for a in range(n):
        y0f[a] = y0[a]
        y1f[a] = y1[a]
    for i in range(start, stop):
        gradient(y0f, y1f, p32, g0, g1, acc)
        gnorm2 = _step(y0, g0, u0, k0, y0f, momentum, lr, min_gain, 0.0)
        gnorm2 = _step(y1, g1, u1, k1, y1f, momentum, lr, min_gain, gnorm2)
        if (i + 1) % n_iter_check == 0 or i == stop - 1:
            error = kl(y0, y1, p, exag, p_sum, p_logp)
            if (i + 1) % n_iter_check == 0:
                if error < best_error:
                    best_error = error
                    best_iter = i
                elif i - best_iter > n_without_progress:
                    break
                if math.sqrt(gnorm2) <= min_grad_norm:
                    break
    return error, i


#: the scalar t-SNE settings handed to the kernels, in this order (:func:`kernel_settings`)
SETTINGS = (
    "n_iter",
    "early_exaggeration",
    "exaggeration_iter",
    "momentum_early",
    "momentum_final",
    "min_gain",
    "min_grad_norm",
    "n_iter_check",
    "n_iter_without_progress",
    "perplexity_steps",
    "perplexity_tol",
)
_INTEGER_SETTINGS = (
    "n_iter",
    "exaggeration_iter",
    "n_iter_check",
    "n_iter_without_progress",
    "perplexity_steps",
)


def kernel_settings(cfg: Any) -> tuple:
    """Return the scalar settings of :func:`tsne_one` and :func:`tsne_many` from a t-SNE config.

    Parameters
    ----------
    cfg : :class:`inviz.fmaps.embedding.TSNEConfig`
        ``n_iter`` (total iterations, early exaggeration included), ``early_exaggeration`` and
        ``exaggeration_iter`` (factor on P in the first phase and its length), ``momentum_early``
        and ``momentum_final`` (momentum in the first and second phase), ``min_gain`` (floor of the
        per-parameter gains), ``min_grad_norm`` (stop when the gradient norm falls below it),
        ``n_iter_check`` (iterations between convergence checks), ``n_iter_without_progress`` (stop
        after this many iterations without a lower KL), ``perplexity_steps`` and ``perplexity_tol``
        (binary search of the perplexity: steps, tolerance in nats).

    Returns
    -------
    tuple
        The values of :data:`SETTINGS` in that order (ints for counts, floats otherwise).
    """
    return tuple(int(getattr(cfg, k)) if k in _INTEGER_SETTINGS else float(getattr(cfg, k)) for k in SETTINGS)


@njit(cache=True, error_model="numpy")
def tsne_one(
    x: np.ndarray, y: np.ndarray, perplexity: float, lr: float, settings: tuple
) -> tuple[float, int]:
    """Exact t-SNE of one problem, in place.

    Parameters
    ----------
    x : ndarray of shape (n, d), float64, the points (PCA scores).
    y : ndarray of shape (n, 2), float64, the initial embedding; receives the result.
    perplexity : the (effective) perplexity.
    lr : learning rate.
    settings : the scalar settings, :data:`SETTINGS` in order (see :func:`kernel_settings`).

    Returns
    -------
    (kl, iterations) : the final KL divergence and the iterations run.
    """
    n_iter, exaggeration, exaggeration_iter, momentum_early, momentum_final = settings[:5]
    min_gain, min_grad_norm, n_iter_check, n_without_progress, n_steps, tol = settings[5:]
    dist = _sqdist(x)
    p = _joint_p(_conditional_p(dist, perplexity, n_steps, tol))
    y0 = np.ascontiguousarray(y[:, 0])
    y1 = np.ascontiguousarray(y[:, 1])
    p_sum, p_logp = _p_stats(p)
    opt = (lr, min_gain, min_grad_norm, n_iter_check)
    stop1 = min(exaggeration_iter, n_iter)
    err, it = 0.0, -1
    if stop1 > 0:
        err, it = _descend(
            y0, y1, p, exaggeration, 0, stop1, momentum_early, exaggeration_iter, opt, p_sum, p_logp
        )
    if n_iter > stop1:
        err, it = _descend(
            y0, y1, p, 1.0, it + 1, n_iter, momentum_final, n_without_progress, opt, p_sum, p_logp
        )
    else:
        err = kl(y0, y1, p, 1.0, p_sum, p_logp)
    y[:, 0] = y0
    y[:, 1] = y1
    return err, it + 1


@njit(cache=True, parallel=True, error_model="numpy")
def tsne_many(
    x: np.ndarray,
    offsets: np.ndarray,
    dims: np.ndarray,
    y: np.ndarray,
    perplexity: np.ndarray,
    lr: np.ndarray,
    order: np.ndarray,
    settings: tuple,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact t-SNE of B problems in parallel, in place: problem ``b`` is rows ``offsets[b]:offsets[b+1]``.

    Parameters
    ----------
    x : ndarray of shape (sum n_b, d_max), float64, the problems' points stacked; problem ``b``
        uses the columns ``:dims[b]``.
    offsets : int64 ndarray of shape (B + 1,), row offsets of the problems.
    dims : int64 ndarray of shape (B,), dimensions of the problems.
    y : ndarray of shape (sum n_b, 2), float64, the initial embeddings; receives the results.
    perplexity : ndarray of shape (B,), the (effective) perplexities.
    lr : ndarray of shape (B,), the learning rates.
    order : int64 ndarray of shape (B,), the problems largest first (better load balance).
    settings : the scalar settings shared by all problems (:func:`kernel_settings`).

    Returns
    -------
    kl : ndarray of shape (B,), the final KL divergence per problem.
    iterations : int64 ndarray of shape (B,), the iterations run per problem.
    """
    nb = offsets.shape[0] - 1
    kl = np.zeros(nb)
    iters = np.zeros(nb, dtype=np.int64)
    for t in prange(nb):
        b = order[t]
        lo = offsets[b]
        hi = offsets[b + 1]
        xb = np.ascontiguousarray(x[lo:hi, : dims[b]])
        yb = np.ascontiguousarray(y[lo:hi])
        err, it = tsne_one(xb, yb, perplexity[b], lr[b], settings)
        y[lo:hi] = yb
        kl[b] = err
        iters[b] = it
    return kl, iters
