"""Ward clustering of the 2-D t-SNE points with the number of clusters chosen by silhouette (METHOD.md §1.7).

:class:`WardSilhouette` is a scikit-learn-style estimator: parameters in ``__init__``, work in
:meth:`~WardSilhouette.fit`, results in trailing-underscore attributes. For every ``k`` in
``[k_min, k_max]`` the points are cut into ``k`` Ward clusters (Euclidean) and scored by the mean
silhouette on the same points; the best ``k`` wins, ties go to the smaller ``k``.

Two implementations, chosen by ``method``:

- ``tree`` (default): one scipy ``linkage(method="ward")`` tree; the partition into ``k`` clusters
  is read off the tree by undoing its last ``k - 1`` merges, for every ``k`` from the same tree;
  silhouettes from one distance matrix. Same partitions as scikit-learn's
  ``AgglomerativeClustering(linkage="ward")``, which cuts its Ward tree the same way.
- ``reference``: the authors' recipe, ``AgglomerativeClustering(n_clusters=k, linkage="ward")`` and
  ``silhouette_score`` refitted for every ``k``.

Defined outcomes for degenerate inputs (``status_``):

- ``ok`` — at least one ``k`` could be scored.
- ``empty`` — no points: ``labels_`` is empty and ``n_clusters_ = 0``.
- ``identical`` — all points coincide (e.g. every kept map is the same, or constant): one
  cluster, ``n_clusters_ = 1``.
- ``few_points`` — a silhouette needs ``2 <= k <= n_distinct - 1``; when no ``k`` of the range
  satisfies that (fewer distinct points than ``k_min + 1``, e.g. fewer kept maps than ``k_min``),
  ``few_points`` decides: ``singletons`` (default) puts every distinct point in its own cluster
  (coinciding points share one), ``one_cluster`` puts all points in one cluster.

The range is clipped to ``k <= n_distinct - 1`` (coinciding points are never split); the
silhouettes of the ``k`` actually tried are in ``silhouette_scores_``. Labels are canonical:
numbered 0, 1, ... in order of first appearance.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin


def silhouette_from_distances(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of ``labels`` given a square distance matrix (scikit-learn's definition).

    Points in singleton clusters score 0. Needs ``2 <= n_labels <= n - 1``.
    """
    labels = np.asarray(labels)
    _, inv = np.unique(labels, return_inverse=True)
    k = int(inv.max()) + 1
    n = len(labels)
    onehot = np.zeros((n, k))
    onehot[np.arange(n), inv] = 1.0
    counts = onehot.sum(0)
    sums = dist @ onehot  # (n, k): sum of distances from each point to each cluster
    own = inv
    a = sums[np.arange(n), own] / np.maximum(counts[own] - 1, 1)
    mean_other = sums / counts[None, :]
    mean_other[np.arange(n), own] = np.inf
    b = mean_other.min(1)
    denom = np.maximum(a, b)
    s = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    s[counts[own] <= 1] = 0.0
    return float(s.mean())


def canonical_labels(labels: np.ndarray) -> np.ndarray:
    """Renumber labels 0, 1, ... in order of first appearance."""
    labels = np.asarray(labels)
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv].astype(np.int64)


def cut_ward_tree(linkage_matrix: np.ndarray, n: int, ks: list[int]) -> dict[int, np.ndarray]:
    """Partitions into exactly ``k`` clusters for every ``k`` in ``ks``, from one linkage matrix.

    The partition into ``k`` clusters applies the first ``n - k`` merges (what scikit-learn's
    ``AgglomerativeClustering`` does), via a union-find over the merge list.
    """
    parent = np.arange(2 * n - 1)

    def find(a: int) -> int:
        root = a
        while parent[root] != root:
            root = parent[root]
        while parent[a] != root:
            parent[a], a = root, parent[a]
        return root

    wanted = {n - k: k for k in ks if 1 <= k <= n}
    out: dict[int, np.ndarray] = {}
    if 0 in wanted:
        out[wanted[0]] = np.arange(n, dtype=np.int64)
    for step in range(n - 1):
        a, b = int(linkage_matrix[step, 0]), int(linkage_matrix[step, 1])
        new = n + step
        parent[find(a)] = new
        parent[find(b)] = new
        if step + 1 in wanted:
            roots = np.array([find(i) for i in range(n)])
            out[wanted[step + 1]] = canonical_labels(roots)
    return out


class WardSilhouette(ClusterMixin, BaseEstimator):
    """Ward clustering with ``k`` chosen by the silhouette score.

    Parameters
    ----------
    k_min, k_max : range of cluster counts tried (paper: 3..8).
    few_points : outcome when no ``k`` of the range can be scored: ``singletons`` or ``one_cluster``.
    method : ``tree`` (one scipy Ward tree for every ``k``) or ``reference`` (scikit-learn refitted per ``k``).

    Attributes
    ----------
    labels_ : ndarray of shape (n,), canonical cluster labels.
    n_clusters_ : int, the chosen number of clusters.
    ks_ : tuple of int, the ``k`` tried (empty when none could be scored).
    silhouette_scores_ : tuple of float, silhouette per ``k`` in ``ks_``.
    silhouette_ : float, silhouette of the chosen ``k`` (NaN when none was scored).
    status_ : ``ok`` | ``empty`` | ``identical`` | ``few_points``.
    linkage_ : the scipy linkage matrix (``tree`` method with at least 2 points), else None.
    """

    def __init__(
        self,
        k_min: int = 3,
        k_max: int = 8,
        few_points: Literal["singletons", "one_cluster"] = "singletons",
        method: Literal["tree", "reference"] = "tree",
    ):
        self.k_min = k_min
        self.k_max = k_max
        self.few_points = few_points
        self.method = method

    def _validate(self) -> None:
        if self.k_min < 2 or self.k_max < self.k_min:
            raise ValueError(f"expected 2 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}")
        if self.few_points not in ("singletons", "one_cluster"):
            raise ValueError(f"few_points: expected 'singletons' or 'one_cluster', got {self.few_points!r}")
        if self.method not in ("tree", "reference"):
            raise ValueError(f"method: expected 'tree' or 'reference', got {self.method!r}")

    def fit(self, X: np.ndarray, y: None = None) -> WardSilhouette:
        """Cluster ``X`` (n, d) (the 2-D t-SNE points)."""
        self._validate()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"X: expected a 2-D array (n_points, n_dims), got shape {X.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X: contains NaN or infinite values")
        n = X.shape[0]
        self.linkage_ = None
        self.ks_: tuple[int, ...] = ()
        self.silhouette_scores_: tuple[float, ...] = ()
        self.silhouette_ = math.nan
        if n == 0:
            self.labels_ = np.zeros(0, dtype=np.int64)
            self.n_clusters_, self.status_ = 0, "empty"
            return self
        distinct, inverse = np.unique(X, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        n_distinct = distinct.shape[0]
        if n_distinct == 1:
            self.labels_ = np.zeros(n, dtype=np.int64)
            self.n_clusters_, self.status_ = 1, "identical"
            return self
        ks = list(range(self.k_min, min(self.k_max, n_distinct - 1) + 1))
        if not ks:
            if self.few_points == "singletons":
                self.labels_ = canonical_labels(inverse)
                self.n_clusters_ = n_distinct
            else:
                self.labels_ = np.zeros(n, dtype=np.int64)
                self.n_clusters_ = 1
            self.status_ = "few_points"
            return self
        partitions = self._partitions(X, ks)
        dist = np.sqrt(np.maximum(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1), 0.0))
        scores = []
        for k in ks:
            if self.method == "reference":
                from sklearn.metrics import silhouette_score

                scores.append(float(silhouette_score(X, partitions[k], metric="euclidean")))
            else:
                scores.append(silhouette_from_distances(dist, partitions[k]))
        best = int(np.argmax(scores))  # first maximum: ties -> smaller k
        self.ks_ = tuple(ks)
        self.silhouette_scores_ = tuple(scores)
        self.silhouette_ = scores[best]
        self.labels_ = partitions[ks[best]]
        self.n_clusters_ = int(ks[best])
        self.status_ = "ok"
        return self

    def _partitions(self, X: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
        if self.method == "reference":
            from sklearn.cluster import AgglomerativeClustering

            return {
                k: canonical_labels(AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(X)) for k in ks
            }
        from scipy.cluster.hierarchy import linkage

        self.linkage_ = linkage(X, method="ward", metric="euclidean")
        return cut_ward_tree(self.linkage_, X.shape[0], ks)
