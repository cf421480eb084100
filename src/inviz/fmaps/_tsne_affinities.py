"""Joint probabilities of exact t-SNE, compiled for the CPU with numba (docs/method.md §1.6).

The first half of the ``numba`` t-SNE backend (:mod:`inviz.fmaps._tsne_numba` is the second):
scikit-learn's ``_joint_probabilities`` step for step — squared Euclidean distances, the binary
search for each point's precision that meets the perplexity, symmetrised and normalised, floored
at machine epsilon — for many problems at once (``prange`` over problems, each on one thread:
deterministic whatever the thread count).

Compiled with ``cache=True``. numba's on-disk cache sees only the source file of a cached function,
not the modules it calls, so every kernel that :func:`joint_probabilities_many` calls lives here.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

_EPS_DBL = 1e-8  # sklearn's EPSILON_DBL in the binary search
_MACHINE_EPS = np.finfo(np.double).eps
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


@njit(cache=True, error_model="numpy")
def joint_probabilities(x: np.ndarray, perplexity: float, n_steps: int, tol: float) -> np.ndarray:
    """Joint probabilities P of one problem.

    Parameters
    ----------
    x : float64 ndarray of shape (n, d), the points (PCA scores).
    perplexity : the (effective) perplexity.
    n_steps, tol : binary search of the perplexity: at most ``n_steps`` steps, tolerance in nats.

    Returns
    -------
    float64 ndarray of shape (n, n), symmetric, zero diagonal.
    """
    return _joint_p(_conditional_p(_sqdist(x), perplexity, n_steps, tol))


@njit(cache=True, parallel=True, error_model="numpy")
def joint_probabilities_many(
    x: np.ndarray,
    offsets: np.ndarray,
    dims: np.ndarray,
    perplexity: np.ndarray,
    order: np.ndarray,
    n_steps: int,
    tol: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Joint probabilities of B problems in parallel: problem ``b`` is rows ``offsets[b]:offsets[b+1]`` of x.

    Parameters
    ----------
    x : float64 ndarray of shape (sum n_b, d_max), the problems' points stacked; problem ``b`` uses
        the columns ``:dims[b]``.
    offsets : int64 ndarray of shape (B + 1,), row offsets.
    dims : int64 ndarray of shape (B,), dimensions.
    perplexity : ndarray of shape (B,), the (effective) perplexities.
    order : int64 ndarray of shape (B,), the problems largest first (load balance).
    n_steps, tol : binary search of the perplexity.

    Returns
    -------
    p : float64 ndarray of shape (sum n_b^2,), each problem's (n_b, n_b) matrix flattened, in order.
    p_offsets : int64 ndarray of shape (B + 1,), where each matrix starts in ``p``.
    """
    nb = offsets.shape[0] - 1
    p_offsets = np.zeros(nb + 1, dtype=np.int64)
    for b in range(nb):
        n = offsets[b + 1] - offsets[b]
        p_offsets[b + 1] = p_offsets[b] + n * n
    p = np.empty(p_offsets[nb])
    for t in prange(nb):
        b = order[t]
        xb = np.ascontiguousarray(x[offsets[b] : offsets[b + 1], : dims[b]])
        p[p_offsets[b] : p_offsets[b + 1]] = joint_probabilities(xb, perplexity[b], n_steps, tol).ravel()
    return p, p_offsets
