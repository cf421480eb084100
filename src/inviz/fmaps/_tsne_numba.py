"""Exact t-SNE compiled for the CPU with numba (docs/method.md §1.6): the ``numba`` t-SNE backend.

The algorithm is scikit-learn's exact t-SNE step for step (binary search for the perplexity on
squared Euclidean distances, symmetrised joint probabilities, Student-t kernel with one degree of
freedom, gradient descent with momentum and per-parameter gains, an early-exaggeration phase that
restarts the momentum and gains, convergence checks every ``n_iter_check`` iterations), so its
result is what ``sklearn.manifold.TSNE(method="exact")`` computes up to floating-point rounding.
The joint probabilities are :mod:`inviz.fmaps._tsne_affinities`; this module is the descent.

Many problems (every layer of every image of a batch) are solved in one call: the outer loop over
problems is ``prange``-parallel and each problem is solved by a single thread, so the result is
deterministic and does not depend on the number of threads.

The pair sums run over each unordered pair ``i < j`` once and add its term to both points (P and
Q are symmetric), which halves the Student-t kernels and logarithms of a full-row pass:

- :func:`gradient` — ``grad_i = 4 (sum_j p'_ij q_ij (y_i - y_j) - sum_j q_ij^2 (y_i - y_j) / Z)``
  with ``q_ij = 1 / (1 + |y_i - y_j|^2)``, ``Z = sum_{i != j} q_ij`` and ``p' = exaggeration * p``.
  Float32 pair arithmetic (relative error ~1e-7; scikit-learn's Barnes-Hut code is float32
  throughout), float64 ``Z``, gradient and optimiser state. Rows are taken four at a time against
  the columns after them: the row sums are vector reductions, the column sums one fused
  multiply-add chain per column (:func:`fma`), so the inner loop vectorises (``fastmath``,
  ``error_model="numpy"``). The points are padded (:func:`padded`) so that every column run is a
  whole number of vectors: padding points lie ~1e15 away with ``p = 0``, so their terms are
  exactly 0 or (``q`` ~1e-31 in ``Z``) below float rounding.
- :func:`kl` — scikit-learn's error ``KL(P || Q)`` over ordered pairs, float64.

Against the previous full-row pass: the same results up to float rounding (sums in another order;
tests/test_embedding.py); per iteration 1.05-1.25x faster on the problems of the paper's VGG-16
(n = 130-300; more for larger n: 1.3-1.45x at n = 1000-2000), measured single-threaded on this
2-core machine under load. The per-tile overhead (row reductions, the 6 pairs inside a tile, loop
set-up) is what keeps small problems from the ~1.7x that the count of vector operations allows.

Compiled with ``cache=True`` (the compiled code is stored next to this file; the first call in a
fresh environment pays the JIT cost once). numba's on-disk cache sees only the source file of a
cached function, not the modules it calls, so every kernel the cached entry points call lives in
this module. Called through :mod:`inviz.fmaps._tsne_cpu`.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core.extending import intrinsic

_LN2 = math.log(2.0)
#: rows per tile of :func:`gradient` (the kernel is written out for 4)
TILE = 4
#: columns per vector (float32 lanes of AVX2): column runs are padded to a multiple of this
LANES = 8
#: coordinate step of the padding points (far from any embedding: q ~ 1e-31, q^2 = 0 in float32)
PAD_STEP = 1e15


@intrinsic
def fma(typingctx, a, b, c):
    """Return ``a * b + c`` rounded once (``llvm.fma``); the three arguments of one float type."""
    if not (a == b == c and isinstance(a, types.Float)):
        return None

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty, ty, ty]))
        return builder.call(fn, args)

    return a(a, b, c), codegen


@njit(cache=True, fastmath=True, error_model="numpy")
def _vlog(x: np.ndarray, out: np.ndarray, ibuf: np.ndarray) -> None:
    """``out = log(x)`` elementwise for positive normal ``x`` (1-D float64), vectorisable (error < 1e-14)."""
    n = x.shape[0]
    bits = x.view(np.int64)
    for j in range(n):
        b = bits[j]
        out[j] = ((b >> 52) & 0x7FF) - 1023  # exponent
        ibuf[j] = (b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000  # mantissa in [1, 2)
    mant = ibuf.view(np.float64)
    for j in range(n):
        m = mant[j]
        e = out[j]
        if m > 1.4142135623730951:
            m *= 0.5
            e += 1.0
        s = (m - 1.0) / (m + 1.0)  # log m = 2 atanh(s), |s| <= 0.1716
        s2 = s * s
        # Horner's scheme of the odd series of atanh, kept compact by hand:
        # fmt: off
        poly = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (
            1.0 / 11 + s2 * (1.0 / 13 + s2 * (1.0 / 15 + s2 / 17)))))))
        # fmt: on
        out[j] = e * _LN2 + 2.0 * s * poly


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


@njit(cache=True)
def padded(p: np.ndarray, exag: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Float32 work arrays of :func:`gradient` for ``n`` points.

    Parameters
    ----------
    p : float64 ndarray of shape (n, n), the joint probabilities.
    exag : the exaggeration factor, applied here (``float32(exag) * float32(p)``, as the full-row pass).

    Returns
    -------
    p32 : float32 ndarray of shape (n4, m), ``exag * p`` zero-padded (``n4`` = n rounded up to
        :data:`TILE`, ``m = n4 + LANES``).
    y0, y1 : float32 ndarrays of shape (m,): the points go in ``[:n]``; the rest are padding points.
    work : float32 ndarray of shape (4, m), the gradient's column sums.
    """
    n = p.shape[0]
    n4 = -(-n // TILE) * TILE
    m = n4 + LANES
    ex = np.float32(exag)
    p32 = np.zeros((n4, m), dtype=np.float32)
    for i in range(n):
        for j in range(n):
            p32[i, j] = ex * np.float32(p[i, j])
    y0 = np.zeros(m, dtype=np.float32)
    y1 = np.zeros(m, dtype=np.float32)
    for k in range(n, m):
        y0[k] = np.float32(PAD_STEP * (k - n + 1))  # distinct: padding pairs are far apart too
    return p32, y0, y1, np.zeros((4, m), dtype=np.float32)


@njit(cache=True, fastmath=True, error_model="numpy")
def _tile(
    y0: np.ndarray,
    y1: np.ndarray,
    p: np.ndarray,
    a0: np.ndarray,
    a1: np.ndarray,
    b0: np.ndarray,
    b1: np.ndarray,
    i: int,
    stop: int,
) -> float:
    """Pairs of the rows ``i .. i+3`` with the columns ``i+4 .. stop-1``; returns their sum of q (float32).

    ``a0, a1`` (attractive x, y) and ``b0, b1`` (repulsive x, y) receive the row and column sums.
    Written out for 4 rows, one statement per row and term: tuple unpacking in the loop measured
    slower, and so did row views taken in :func:`gradient`.
    """
    one = np.float32(1.0)
    zero = np.float32(0.0)
    u0, u1, u2, u3 = y0[i], y0[i + 1], y0[i + 2], y0[i + 3]
    v0, v1, v2, v3 = y1[i], y1[i + 1], y1[i + 2], y1[i + 3]
    p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
    ax0 = ay0 = rx0 = ry0 = zero
    ax1 = ay1 = rx1 = ry1 = zero
    ax2 = ay2 = rx2 = ry2 = zero
    ax3 = ay3 = rx3 = ry3 = zero
    zt = zero
    for j in range(np.uint64(i + 4), np.uint64(stop)):  # unsigned: no negative-index wrap, vectorises
        yj0 = y0[j]
        yj1 = y1[j]
        dx0 = u0 - yj0
        dy0 = v0 - yj1
        dx1 = u1 - yj0
        dy1 = v1 - yj1
        dx2 = u2 - yj0
        dy2 = v2 - yj1
        dx3 = u3 - yj0
        dy3 = v3 - yj1
        q0 = one / (one + dx0 * dx0 + dy0 * dy0)
        q1 = one / (one + dx1 * dx1 + dy1 * dy1)
        q2 = one / (one + dx2 * dx2 + dy2 * dy2)
        q3 = one / (one + dx3 * dx3 + dy3 * dy3)
        zt += (q0 + q1) + (q2 + q3)
        pq0 = p0[j] * q0
        s0 = q0 * q0
        pq1 = p1[j] * q1
        s1 = q1 * q1
        pq2 = p2[j] * q2
        s2 = q2 * q2
        pq3 = p3[j] * q3
        s3 = q3 * q3
        # rows: vector reductions (multiply-adds); columns: one fma chain each (explicit, so that
        # the products are not shared between the two and both contract)
        ax0 += pq0 * dx0
        ay0 += pq0 * dy0
        rx0 += s0 * dx0
        ry0 += s0 * dy0
        ax1 += pq1 * dx1
        ay1 += pq1 * dy1
        rx1 += s1 * dx1
        ry1 += s1 * dy1
        ax2 += pq2 * dx2
        ay2 += pq2 * dy2
        rx2 += s2 * dx2
        ry2 += s2 * dy2
        ax3 += pq3 * dx3
        ay3 += pq3 * dy3
        rx3 += s3 * dx3
        ry3 += s3 * dy3
        a0[j] = fma(-pq3, dx3, fma(-pq2, dx2, fma(-pq1, dx1, fma(-pq0, dx0, a0[j]))))
        a1[j] = fma(-pq3, dy3, fma(-pq2, dy2, fma(-pq1, dy1, fma(-pq0, dy0, a1[j]))))
        b0[j] = fma(-s3, dx3, fma(-s2, dx2, fma(-s1, dx1, fma(-s0, dx0, b0[j]))))
        b1[j] = fma(-s3, dy3, fma(-s2, dy2, fma(-s1, dy1, fma(-s0, dy0, b1[j]))))
    a0[i + 0] += ax0
    a1[i + 0] += ay0
    b0[i + 0] += rx0
    b1[i + 0] += ry0
    a0[i + 1] += ax1
    a1[i + 1] += ay1
    b0[i + 1] += rx1
    b1[i + 1] += ry1
    a0[i + 2] += ax2
    a1[i + 2] += ay2
    b0[i + 2] += rx2
    b1[i + 2] += ry2
    a0[i + 3] += ax3
    a1[i + 3] += ay3
    b0[i + 3] += rx3
    b1[i + 3] += ry3
    return zt


@njit(cache=True, fastmath=True, error_model="numpy")
def gradient(
    y0: np.ndarray, y1: np.ndarray, p: np.ndarray, g0: np.ndarray, g1: np.ndarray, acc: np.ndarray
) -> float:
    """Fill the gradient (g0, g1) of the points; returns Z = sum_{i != j} q_ij (unnormalised).

    Parameters
    ----------
    y0, y1 : float32 ndarrays of shape (m,), the points' coordinates, then the padding points.
    p : float32 ndarray of shape (n4, m), the exaggerated joint probabilities (:func:`padded`).
    g0, g1 : float64 ndarrays of shape (n,), receive the gradient.
    acc : float32 ndarray of shape (4, m), work space.

    Returns
    -------
    float, Z.
    """
    n = g0.shape[0]
    one = np.float32(1.0)
    acc[:] = np.float32(0.0)
    a0 = acc[0]
    a1 = acc[1]
    b0 = acc[2]
    b1 = acc[3]
    z = 0.0
    for i in range(0, p.shape[0], TILE):
        span = n - (i + TILE)  # real columns after the tile, rounded up to whole vectors
        stop = i + TILE + (-(-span // LANES) * LANES if span > 0 else 0)
        z += _tile(y0, y1, p, a0, a1, b0, b1, i, stop)
        for r in range(i, i + TILE - 1):  # the pairs inside the tile
            for s in range(r + 1, i + TILE):
                dx = y0[r] - y0[s]
                dy = y1[r] - y1[s]
                q = one / (one + dx * dx + dy * dy)
                z += q
                pq = p[r, s] * q
                q2 = q * q
                a0[r] += pq * dx
                a1[r] += pq * dy
                b0[r] += q2 * dx
                b1[r] += q2 * dy
                a0[s] -= pq * dx
                a1[s] -= pq * dy
                b0[s] -= q2 * dx
                b1[s] -= q2 * dy
    z *= 2.0
    inv_z = 1.0 / z
    for i in range(n):
        g0[i] = 4.0 * (a0[i] - b0[i] * inv_z)
        g1[i] = 4.0 * (a1[i] - b1[i] * inv_z)
    return z


@njit(cache=True, fastmath=True, error_model="numpy")
def kl(y0: np.ndarray, y1: np.ndarray, p: np.ndarray, exag: float, p_sum: float, p_logp: float) -> float:
    """Scikit-learn's error, KL(exag P || Q) over ordered pairs, from the pair sums (float64).

    KL = exag (sum p log p + log(exag) sum p + sum p log(1 + d^2) + sum p log Z)

    (scikit-learn floors q at machine epsilon, which matters only for q < 2e-16). ``y0, y1`` are
    float64 of shape (n,), ``p`` float64 of shape (n, n); ``p_sum, p_logp`` from ``_p_stats``.
    """
    n = y0.shape[0]
    u = np.empty(n)
    logs = np.empty(n)
    ibuf = np.empty(n, dtype=np.int64)
    z = 0.0
    s = 0.0
    for i in range(n - 1):
        yi0 = y0[i]
        yi1 = y1[i]
        m = n - i - 1
        yj0 = y0[i + 1 :]
        yj1 = y1[i + 1 :]
        pj = p[i, i + 1 :]
        for j in range(m):
            dx = yi0 - yj0[j]
            dy = yi1 - yj1[j]
            u[j] = 1.0 + dx * dx + dy * dy
        _vlog(u[:m], logs[:m], ibuf[:m])
        zi = 0.0
        si = 0.0
        for j in range(m):
            zi += 1.0 / u[j]
            si += pj[j] * logs[j]
        z += zi
        s += si
    z *= 2.0
    s *= 2.0
    return exag * (p_logp + math.log(exag) * p_sum + s + p_sum * math.log(z))


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


@njit(cache=True, error_model="numpy")
def descend(p: np.ndarray, y: np.ndarray, lr: float, settings: tuple) -> tuple[float, int]:
    """Gradient descent of one problem from its joint probabilities, in place.

    Parameters
    ----------
    p : float64 ndarray of shape (n, n), the joint probabilities.
    y : float64 ndarray of shape (n, 2), the initial embedding; receives the result.
    lr : learning rate.
    settings : the scalar settings, :data:`inviz.fmaps._tsne_cpu.SETTINGS` in order.

    Returns
    -------
    (kl, iterations) : the final KL divergence and the iterations run.
    """
    n_iter, exaggeration, exaggeration_iter, momentum_early, momentum_final = settings[:5]
    min_gain, min_grad_norm, n_iter_check, n_without_progress = settings[5:9]
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
def descend_many(
    p: np.ndarray,
    p_offsets: np.ndarray,
    offsets: np.ndarray,
    y: np.ndarray,
    lr: np.ndarray,
    order: np.ndarray,
    settings: tuple,
) -> tuple[np.ndarray, np.ndarray]:
    """Run :func:`descend` on B problems in parallel, in place (the layout of ``_tsne_cpu.tsne_many``).

    ``p`` and ``p_offsets`` are :func:`inviz.fmaps._tsne_affinities.joint_probabilities_many`'s
    output; ``offsets, y, lr, order, settings`` as in ``tsne_many``. Returns (kl, iterations),
    ndarrays of shape (B,).
    """
    nb = offsets.shape[0] - 1
    kls = np.zeros(nb)
    iters = np.zeros(nb, dtype=np.int64)
    for t in prange(nb):
        b = order[t]
        lo = offsets[b]
        hi = offsets[b + 1]
        pb = p[p_offsets[b] : p_offsets[b + 1]].reshape((hi - lo, hi - lo))
        yb = np.ascontiguousarray(y[lo:hi])
        kls[b], iters[b] = descend(pb, yb, lr[b], settings)
        y[lo:hi] = yb
    return kls, iters
