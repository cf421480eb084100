"""Ward + silhouette estimator and its implementations (inviz.fmaps.clustering)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score, silhouette_score

import inviz.fmaps.clustering as clustering
from inviz.fmaps.clustering import (
    CLUSTERINGS,
    WardSilhouette,
    canonical_labels,
    cut_ward_tree,
    silhouette_from_distances,
)


@pytest.mark.parametrize("implementation", sorted(CLUSTERINGS))
@pytest.mark.parametrize("k", [3, 5, 8])
def test_recovers_known_groups_and_k(implementation, k):
    angles = 2 * np.pi * np.arange(k) / k
    centers = 20 * np.stack([np.cos(angles), np.sin(angles)], 1)  # well separated
    x, y = make_blobs(n_samples=40 * k, centers=centers, cluster_std=0.5, random_state=k)
    est = WardSilhouette(3, 8, implementation=implementation).fit(x)
    assert est.n_clusters_ == k
    assert adjusted_rand_score(y, est.labels_) == 1.0
    assert est.status_ == "ok"
    assert est.ks_ == tuple(range(3, 9))
    assert len(est.silhouette_scores_) == 6
    assert est.silhouette_ == max(est.silhouette_scores_)


@pytest.mark.parametrize("implementation", sorted(CLUSTERINGS))
@pytest.mark.parametrize("seed", range(4))
def test_every_implementation_agrees_with_the_sklearn_recipe(seed, implementation):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(150, 2)) * rng.uniform(0.5, 3, size=(1, 2))
    a = WardSilhouette(implementation=implementation).fit(x)
    b = WardSilhouette(implementation="sklearn").fit(x)
    assert a.n_clusters_ == b.n_clusters_
    np.testing.assert_allclose(a.silhouette_scores_, b.silhouette_scores_, rtol=1e-10, atol=1e-12)
    assert adjusted_rand_score(a.labels_, b.labels_) == 1.0


def test_cut_tree_matches_sklearn_for_every_k():
    from scipy.cluster.hierarchy import linkage

    x, _ = make_blobs(120, centers=6, random_state=1)
    z = linkage(x, "ward")
    parts = cut_ward_tree(z, len(x), list(range(1, 12)))
    for k in range(2, 12):
        ref = AgglomerativeClustering(n_clusters=k, linkage="ward").fit_predict(x)
        assert len(np.unique(parts[k])) == k
        assert adjusted_rand_score(ref, parts[k]) == 1.0
    assert (parts[1] == 0).all()


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(5, 60), st.integers(2, 5))
def test_silhouette_matches_sklearn(seed, n, k):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    labels = rng.integers(0, k, n)
    labels[:k] = np.arange(k)  # every label present
    if len(np.unique(labels)) >= n:
        return
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    assert silhouette_from_distances(d, labels) == pytest.approx(silhouette_score(x, labels), abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(0, 40))
def test_properties_for_any_points(seed, n):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2)).round(1)  # rounding creates coinciding points
    est = WardSilhouette(3, 8).fit(x)
    assert est.labels_.shape == (n,)
    if n:
        assert set(est.labels_) == set(range(est.n_clusters_))
        # canonical: labels first appear in increasing order
        _, first = np.unique(est.labels_, return_index=True)
        assert list(np.argsort(first)) == list(range(est.n_clusters_))
        # coinciding points always share a cluster
        for p in np.unique(x, axis=0):
            same = (x == p).all(1)
            assert len(set(est.labels_[same])) == 1
    again = WardSilhouette(3, 8).fit(x)
    assert np.array_equal(est.labels_, again.labels_)  # deterministic


def test_ties_go_to_the_smaller_k(monkeypatch):
    from inviz.fmaps import _ward_numba

    monkeypatch.setattr(clustering, "silhouette_from_distances", lambda d, labels: 0.5)
    monkeypatch.setattr(_ward_numba, "silhouettes", lambda x, labels: np.full(len(labels), 0.5))
    x, _ = make_blobs(60, centers=5, random_state=0)
    est = WardSilhouette(3, 8).fit(x)
    assert est.n_clusters_ == 3
    assert est.silhouette_scores_ == (0.5,) * 6


@pytest.mark.parametrize("seed", range(3))
def test_compiled_cuts_and_silhouettes_equal_the_numpy_steps(seed):
    """ward_scipy's numba loops: the same partitions as cut_ward_tree, silhouettes to rounding."""
    from scipy.cluster.hierarchy import linkage

    from inviz.fmaps import _ward_numba

    rng = np.random.default_rng(seed)
    for n in (6, 40, 150, 333):
        x = rng.normal(size=(n, 2)) * rng.uniform(0.1, 30)
        if n % 2 == 0:
            x = np.round(x, 1)  # coinciding points and tied merge heights
        ks = list(range(2, min(8, n - 1) + 1))
        tree = linkage(x, method="ward")
        labels = _ward_numba.cuts(tree[:, :2].astype(np.int64), n, np.asarray(ks, dtype=np.int64))
        ref = clustering.cut_ward_tree(tree, n, ks)
        dist = clustering._distances(x)
        got = _ward_numba.silhouettes(x, labels)
        for i, k in enumerate(ks):
            np.testing.assert_array_equal(labels[i], ref[k])
            assert got[i] == pytest.approx(clustering.silhouette_from_distances(dist, ref[k]), abs=1e-13)


def test_edge_cases_have_defined_outcomes():
    empty = WardSilhouette().fit(np.zeros((0, 2)))
    assert (empty.status_, empty.n_clusters_, empty.labels_.shape) == ("empty", 0, (0,))
    same = WardSilhouette().fit(np.ones((7, 2)))
    assert (same.status_, same.n_clusters_) == ("identical", 1)
    assert (same.labels_ == 0).all()
    # fewer points than k_min
    few = WardSilhouette(3, 8).fit(np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert (few.status_, few.n_clusters_, few.ks_) == ("few_points", 2, ())
    assert few.labels_.tolist() == [0, 1]
    one = WardSilhouette(3, 8, few_points="one_cluster").fit(np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert (one.n_clusters_, one.labels_.tolist()) == (1, [0, 0])
    # exactly k_min points: a silhouette needs k <= n - 1, so no k can be scored either
    three = WardSilhouette(3, 8).fit(np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]]))
    assert (three.status_, three.n_clusters_) == ("few_points", 3)
    # range clipped to n_distinct - 1
    five = WardSilhouette(3, 8).fit(np.array([[0.0, 0], [1, 0], [5, 5], [6, 5], [20, 20], [20, 20]]))
    assert five.ks_ == (3, 4)
    assert five.status_ == "ok"
    with pytest.raises(ValueError, match="NaN"):
        WardSilhouette().fit(np.array([[0.0, np.nan], [1.0, 1.0]]))
    with pytest.raises(ValueError, match="k_min"):
        WardSilhouette(5, 3).fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="implementation"):
        WardSilhouette(implementation="hdbscan").fit(np.zeros((4, 2)))


def test_sklearn_estimator_conventions():
    est = WardSilhouette(k_min=2, k_max=5, few_points="one_cluster", implementation="sklearn")
    assert est.get_params() == {
        "k_min": 2,
        "k_max": 5,
        "few_points": "one_cluster",
        "implementation": "sklearn",
    }
    copy = clone(est).set_params(k_max=6)
    assert copy.k_max == 6 and est.k_max == 5
    x, _ = make_blobs(50, centers=3, random_state=0)
    assert est.fit(x) is est
    np.testing.assert_array_equal(WardSilhouette().fit_predict(x), WardSilhouette().fit(x).labels_)


def test_canonical_labels():
    assert canonical_labels(np.array([7, 7, 2, 9, 2])).tolist() == [0, 0, 1, 2, 1]


def test_compiled_silhouettes_of_partitions_that_are_not_nested():
    """The common refinement of unrelated partitions (not cuts of one tree): scikit-learn's silhouettes."""
    from sklearn.metrics import silhouette_score

    from inviz.fmaps import _ward_numba

    rng = np.random.default_rng(7)
    x = rng.normal(size=(90, 3))
    labels = np.stack([rng.integers(0, k, 90) for k in (2, 3, 5, 7)]).astype(np.int64)
    labels[:, :7] = np.arange(7) % np.array([2, 3, 5, 7])[:, None]  # every label present
    fine, coarse = _ward_numba._refinement(labels)
    np.testing.assert_array_equal(coarse[:, fine], labels)
    got = _ward_numba.silhouettes(x, labels)
    for a in range(4):
        assert got[a] == pytest.approx(silhouette_score(x, labels[a]), abs=1e-13)
