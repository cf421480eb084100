"""Elementwise steps of the analysis fused into one pass on the CPU (docs/method.md §1.2, §1.5).

Written in torch, ``grads * 1[acts > 0] * 1[grads > 0]`` (the ``guided`` channel weights, §1.2)
and the min-max scaling of the kept maps (§1.5) each make several passes over large tensors and
allocate a fresh temporary per step; on the CPU those passes (and the page faults of every new
temporary) dominate: ~60 ms per batch-layer of the paper's VGG-16 at 256 px for the masked
gradient, against ~10 ms for one pass. Each kernel computes the same IEEE float32 operations as
the torch expression it replaces (no ``fastmath``), so the results are bit-identical (signs of
zeros included). Used by :mod:`inviz.fmaps.weighting` and :mod:`inviz.fmaps.pca` for contiguous
float32 CPU tensors. Compiled with ``cache=True`` and ``nogil=True``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def masked_gradients(acts: np.ndarray, grads: np.ndarray, out: np.ndarray) -> None:
    """Write ``out = grads * (acts > 0 and grads > 0)`` (1-D float32 arrays of one length).

    Parameters
    ----------
    acts, grads : float32 ndarrays of shape (m,), activations and gradients (flattened).
    out : float32 ndarray of shape (m,), receives the masked gradients.
    """
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for k in range(acts.shape[0]):
        g = grads[k]
        out[k] = g * (one if (acts[k] > 0 and g > 0) else zero)


@njit(cache=True, nogil=True)
def minmax_scale(x: np.ndarray, lo: np.ndarray, rng: np.ndarray, flat: np.ndarray, out: np.ndarray) -> None:
    """Write ``out = x`` on flat rows, ``(x - lo) / rng`` elsewhere (row-wise, float32).

    Parameters
    ----------
    x : float32 ndarray of shape (n, P), the rows.
    lo, rng : float32 ndarrays of shape (n,), each row's minimum and range.
    flat : bool ndarray of shape (n,), rows left unchanged.
    out : float32 ndarray of shape (n, P), receives the scaled rows.
    """
    n, p = x.shape
    for i in range(n):
        if flat[i]:
            for j in range(p):
                out[i, j] = x[i, j]
        else:
            low = lo[i]
            r = rng[i]
            for j in range(p):
                out[i, j] = (x[i, j] - low) / r
