"""Ward clustering of the 2-D t-SNE points, the number of clusters chosen by silhouette (docs/method.md §1.7).

:class:`WardSilhouette` is a scikit-learn-style estimator: parameters in ``__init__``, work in
:meth:`~WardSilhouette.fit`, results in trailing-underscore attributes. For every ``k`` in
``[k_min, k_max]`` the points are cut into ``k`` Ward clusters (Euclidean) and scored by the mean
silhouette on the same points; the best ``k`` wins, ties go to the smaller ``k``.

Implementations (:data:`CLUSTERINGS`, chosen by ``extract.clustering``) compute the same
partitions and silhouettes (up to float rounding of the silhouettes):

- ``scipy`` (default): one scipy ``linkage(method="ward")`` tree; the partition into ``k`` clusters
  is read off the tree by undoing its last ``k - 1`` merges, for every ``k`` from the same tree;
  silhouettes of every ``k`` in one pass over the pairs (both loops compiled,
  :mod:`inviz.fmaps._ward_numba`; :func:`cut_ward_tree` and :func:`silhouette_from_distances` are
  the same steps in plain numpy). Same partitions as scikit-learn's
  ``AgglomerativeClustering(linkage="ward")``, which cuts its Ward tree the same way.
- ``sklearn``: the authors' recipe, ``AgglomerativeClustering(n_clusters=k, linkage="ward")`` and
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
from collections.abc import Callable
from typing import Literal, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin


def silhouette_from_distances(dist: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette of ``labels`` given a square distance matrix (scikit-learn's definition).

    Points in singleton clusters score 0. Needs ``2 <= n_labels <= n - 1``.

    Parameters
    ----------
    dist : ndarray of shape (n, n), pairwise distances.
    labels : ndarray of shape (n,), cluster labels.

    Returns
    -------
    float, the mean silhouette.
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
    """Renumber labels 0, 1, ... in order of first appearance.

    Parameters
    ----------
    labels : ndarray of shape (n,), any hashable labels.

    Returns
    -------
    int64 ndarray of shape (n,).
    """
    labels = np.asarray(labels)
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv].astype(np.int64)


def cut_ward_tree(linkage_matrix: np.ndarray, n: int, ks: list[int]) -> dict[int, np.ndarray]:
    """Partitions into exactly ``k`` clusters for every ``k`` in ``ks``, from one linkage matrix.

    The partition into ``k`` clusters applies the first ``n - k`` merges (what scikit-learn's
    ``AgglomerativeClustering`` does), via a union-find over the merge list.

    Parameters
    ----------
    linkage_matrix : ndarray of shape (n - 1, 4), a scipy linkage matrix.
    n : number of points.
    ks : cluster counts wanted (those outside ``1..n`` are skipped).

    Returns
    -------
    dict ``k -> canonical labels``, ndarray of shape (n,).
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


class WardCuts(NamedTuple):
    """Ward partitions of one point set and their silhouettes.

    Attributes
    ----------
    partitions : dict ``k -> canonical labels`` (ndarray of shape (n,)), one per ``k`` tried.
    scores : list of float, the silhouette of each ``k`` in the order asked for.
    linkage : ndarray of shape (n - 1, 4), the scipy linkage matrix, or None when not built.
    """

    partitions: dict[int, np.ndarray]
    scores: list[float]
    linkage: np.ndarray | None


def _distances(X: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1), 0.0))


def ward_scipy(X: np.ndarray, ks: list[int]) -> WardCuts:
    """One scipy Ward tree cut at every ``k``; the silhouettes of all ``k`` in one pass over the pairs.

    The cuts and silhouettes are the compiled loops of :mod:`inviz.fmaps._ward_numba` (same
    partitions as :func:`cut_ward_tree`, silhouettes as :func:`silhouette_from_distances` up to
    float rounding), which run without the GIL.

    Parameters
    ----------
    X : ndarray of shape (n, d), float64, at least ``max(ks) + 1`` distinct points.
    ks : the cluster counts to try (each in ``2..n - 1``), each read off the same tree.

    Returns
    -------
    :class:`WardCuts`, ``linkage`` the scipy matrix of shape (n - 1, 4).
    """
    from scipy.cluster.hierarchy import linkage

    from inviz.fmaps import _ward_numba

    tree = linkage(X, method="ward", metric="euclidean")
    labels = _ward_numba.cuts(tree[:, :2].astype(np.int64), X.shape[0], np.asarray(ks, dtype=np.int64))
    scores = _ward_numba.silhouettes(np.ascontiguousarray(X, dtype=np.float64), labels)
    return WardCuts({k: labels[i] for i, k in enumerate(ks)}, [float(v) for v in scores], tree)


def ward_sklearn(X: np.ndarray, ks: list[int]) -> WardCuts:
    """Cluster like the authors: ``AgglomerativeClustering`` and ``silhouette_score`` refitted per ``k``.

    Parameters
    ----------
    X : ndarray of shape (n, d), float64
        The points (as for :func:`ward_scipy`).
    ks : list of int
        The cluster counts; one fit and one silhouette per count.

    Returns
    -------
    WardCuts
        Partitions and silhouettes; ``linkage`` is None (no tree is kept across the fits).
    """
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.metrics import silhouette_score

    partitions = {
        k: canonical_labels(AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(X)) for k in ks
    }
    scores = [float(silhouette_score(X, partitions[k], metric="euclidean")) for k in ks]
    return WardCuts(partitions, scores, None)


#: name -> ``f(X (n, d), ks) -> WardCuts``; chosen by ``extract.clustering``
CLUSTERINGS: dict[str, Callable[[np.ndarray, list[int]], WardCuts]] = {
    "scipy": ward_scipy,
    "sklearn": ward_sklearn,
}


class WardSilhouette(ClusterMixin, BaseEstimator):
    """Ward clustering with ``k`` chosen by the silhouette score.

    Parameters
    ----------
    k_min, k_max : range of cluster counts tried (paper: 3..8).
    few_points : outcome when no ``k`` of the range can be scored: ``singletons`` or ``one_cluster``.
    implementation : a key of :data:`CLUSTERINGS`: ``scipy`` (one Ward tree for every ``k``) or
        ``sklearn`` (scikit-learn refitted per ``k``).

    Attributes
    ----------
    labels_ : ndarray of shape (n,), canonical cluster labels.
    n_clusters_ : int, the chosen number of clusters.
    ks_ : tuple of int, the ``k`` tried (empty when none could be scored).
    silhouette_scores_ : tuple of float, silhouette per ``k`` in ``ks_``.
    silhouette_ : float, silhouette of the chosen ``k`` (NaN when none was scored).
    status_ : ``ok`` | ``empty`` | ``identical`` | ``few_points``.
    linkage_ : the scipy linkage matrix (``scipy`` implementation, some ``k`` scored), else None.
    """

    def __init__(
        self,
        k_min: int = 3,
        k_max: int = 8,
        few_points: Literal["singletons", "one_cluster"] = "singletons",
        implementation: str = "scipy",
    ):
        self.k_min = k_min
        self.k_max = k_max
        self.few_points = few_points
        self.implementation = implementation

    def _validate(self) -> None:
        if self.k_min < 2 or self.k_max < self.k_min:
            raise ValueError(f"expected 2 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}")
        if self.few_points not in ("singletons", "one_cluster"):
            raise ValueError(f"few_points: expected 'singletons' or 'one_cluster', got {self.few_points!r}")
        if self.implementation not in CLUSTERINGS:
            raise ValueError(
                f"implementation: expected one of {', '.join(CLUSTERINGS)}, got {self.implementation!r}"
            )

    def fit(self, X: np.ndarray, y: None = None) -> WardSilhouette:
        """Cluster the points.

        Parameters
        ----------
        X : ndarray of shape (n, d), finite (the 2-D t-SNE points).
        y : ignored.

        Returns
        -------
        self, with the attributes above set.
        """
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
        cuts = CLUSTERINGS[self.implementation](X, ks)
        best = int(np.argmax(cuts.scores))  # first maximum: ties -> smaller k
        self.linkage_ = cuts.linkage
        self.ks_ = tuple(ks)
        self.silhouette_scores_ = tuple(cuts.scores)
        self.silhouette_ = cuts.scores[best]
        self.labels_ = cuts.partitions[ks[best]]
        self.n_clusters_ = int(ks[best])
        self.status_ = "ok"
        return self
