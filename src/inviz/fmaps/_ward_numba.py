"""Cuts of a Ward tree and their silhouettes, compiled with numba (docs/method.md §1.7).

The inner loops of :func:`inviz.fmaps.clustering.ward_scipy`: the partition into ``k`` clusters
for every ``k`` from one scipy linkage matrix (the union-find of
:func:`inviz.fmaps.clustering.cut_ward_tree`, labels numbered by first appearance) and the mean
silhouette of each (the definition of :func:`inviz.fmaps.clustering.silhouette_from_distances`,
Euclidean distances). Same partitions as the Python functions; silhouettes equal up to float
rounding (sums in another order; tests/test_clustering.py). Compiled with ``cache=True`` and ``nogil=True``.

Why by hand: the Ward tree itself stays scipy's ``linkage``; what no library does is scoring every
``k`` at once. scipy's ``cut_tree`` + scikit-learn's ``silhouette_score`` per ``k`` recompute the
distances for each ``k`` and hold the GIL, and the numpy steps build an ``n x n`` matrix and a
Python union-find loop. Here one pass over the pairs accumulates the distance sums of all ``k``
partitions, without the GIL, so the clustering of one batch runs in the background thread while the
next batch goes through the network (``inviz.fmaps.analysis``). ``experiments/bench_ward.py``
measures it (k = 3..8, 2-D points, 2 shared cores, so pessimistic): n = 64: 0.2-0.6 ms against
1.3-2.2 ms (numpy steps) and 21-33 ms (``cut_tree`` + ``silhouette_score``); n = 512: 10-50 ms
against 94-98 ms and 384 ms; identical partitions, silhouettes within 3.3e-16. Since then the
silhouettes sum distances per cluster of the cuts' common refinement (each pair once): 3.7x faster
on the 72 problems of 8 photos (6.3 -> 1.7 ms per image), within 2.8e-16 of the previous pass.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _find(parent: np.ndarray, a: int) -> int:
    root = a
    while parent[root] != root:
        root = parent[root]
    while parent[a] != root:  # path compression
        nxt = parent[a]
        parent[a] = root
        a = nxt
    return root


@njit(cache=True, nogil=True)
def cuts(merges: np.ndarray, n: int, ks: np.ndarray) -> np.ndarray:
    """Partitions into exactly ``k`` clusters for every ``k`` (``1 <= k <= n``) from a linkage's merges.

    Parameters
    ----------
    merges : int64 ndarray of shape (n - 1, 2), the first two columns of a scipy linkage matrix.
    n : number of points.
    ks : int64 ndarray of shape (m,), the cluster counts.

    Returns
    -------
    int64 ndarray of shape (m, n), canonical labels (0, 1, ... in order of first appearance).
    """
    parent = np.arange(2 * n - 1)
    out = np.zeros((ks.shape[0], n), dtype=np.int64)
    relabel = np.full(2 * n - 1, -1, dtype=np.int64)
    for step in range(n):  # step = merges applied so far
        for m in range(ks.shape[0]):
            if n - ks[m] == step:
                relabel[:] = -1
                nxt = 0
                for i in range(n):
                    r = _find(parent, i)
                    if relabel[r] < 0:
                        relabel[r] = nxt
                        nxt += 1
                    out[m, i] = relabel[r]
        if step < n - 1:
            new = n + step
            parent[_find(parent, merges[step, 0])] = new
            parent[_find(parent, merges[step, 1])] = new
    return out


@njit(cache=True, nogil=True)
def _refinement(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the common refinement of ``m`` partitions (refined clusters in order of first appearance).

    Returns
    -------
    fine : int64 ndarray of shape (n,), the refined cluster of each point.
    coarse : int64 ndarray of shape (m, c), the label of each refined cluster in each partition.
    """
    m, n = labels.shape
    fine = np.empty(n, dtype=np.int64)
    rep = np.empty(n, dtype=np.int64)
    nc = 0
    for i in range(n):
        found = -1
        for c in range(nc):
            same = True
            for a in range(m):
                if labels[a, rep[c]] != labels[a, i]:
                    same = False
                    break
            if same:
                found = c
                break
        if found < 0:
            rep[nc] = i
            found = nc
            nc += 1
        fine[i] = found
    coarse = np.empty((m, nc), dtype=np.int64)
    for a in range(m):
        for c in range(nc):
            coarse[a, c] = labels[a, rep[c]]
    return fine, coarse


@njit(cache=True, nogil=True)
def silhouettes(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean silhouette of each partition, Euclidean distances (points in singleton clusters score 0).

    One pass over the pairs ``i < j`` adds each distance to both points' sums per cluster of the
    partitions' common refinement (for the nested cuts of one Ward tree: the finest cut); each
    partition's sums per cluster are then sums of those.

    Parameters
    ----------
    x : float64 ndarray of shape (n, d), the points.
    labels : int64 ndarray of shape (m, n), canonical labels of ``m`` partitions (each with at
        least 2 and at most ``n - 1`` clusters).

    Returns
    -------
    float64 ndarray of shape (m,).
    """
    n, d = x.shape
    m = labels.shape[0]
    kmax = 0
    for a in range(m):
        for i in range(n):
            kmax = max(kmax, labels[a, i] + 1)
    counts = np.zeros((m, kmax))
    for a in range(m):
        for i in range(n):
            counts[a, labels[a, i]] += 1.0
    fine, coarse = _refinement(labels)
    nc = coarse.shape[1]
    per = np.zeros((n, nc))  # per[i, c]: sum of the distances from i to the points of refined cluster c
    for i in range(n):
        for j in range(i + 1, n):
            s = 0.0
            for c in range(d):
                t = x[i, c] - x[j, c]
                s += t * t
            dist = math.sqrt(s)
            per[i, fine[j]] += dist
            per[j, fine[i]] += dist
    sums = np.zeros(kmax)
    total = np.zeros(m)
    for a in range(m):
        for i in range(n):
            own = labels[a, i]
            if counts[a, own] <= 1.0:
                continue  # a singleton scores 0
            sums[:] = 0.0
            for c in range(nc):
                sums[coarse[a, c]] += per[i, c]
            ai = sums[own] / (counts[a, own] - 1.0)
            bi = np.inf
            for c in range(kmax):
                if c != own and counts[a, c] > 0.0:
                    bi = min(bi, sums[c] / counts[a, c])
            den = max(ai, bi)
            if den > 0.0:
                total[a] += (bi - ai) / den
    return total / n
