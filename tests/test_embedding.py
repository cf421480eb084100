"""Min-max scaling, PCA and the t-SNE backends (inviz.fmaps.pca, inviz.fmaps.embedding, _tsne_cpu/_affinities/_numba, _tsne_torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import squareform
from sklearn.decomposition import PCA
from sklearn.manifold._t_sne import _joint_probabilities, _kl_divergence
from sklearn.metrics import adjusted_rand_score, pairwise_distances

from inviz.fmaps import _tsne_affinities as aff
from inviz.fmaps import _tsne_cpu as tsne_cpu
from inviz.fmaps import _tsne_numba as nb
from inviz.fmaps.clustering import WardSilhouette
from inviz.fmaps.embedding import (
    MIN_TSNE_POINTS,
    TSNE_BACKENDS,
    Embedding,
    TSNEBackend,
    TSNEConfig,
    effective_perplexity,
    embed,
    resolve_backend,
    tsne_init,
)
from inviz.fmaps.pca import minmax_rows, pca_scores

#: every backend; the slow ones (scikit-learn Barnes-Hut, torch on the CPU) are marked slow
BACKENDS = [b if b == "numba" else pytest.param(b, marks=pytest.mark.slow) for b in sorted(TSNE_BACKENDS)]


def blob_maps(
    n_groups: int, per_group: int, side: int = 16, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    """Feature maps with known groups: a blob at a group-specific position (on a circle) plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    angles = 2 * np.pi * np.arange(n_groups) / n_groups
    centres = side / 2 + 0.32 * side * np.stack([np.sin(angles), np.cos(angles)], 1)
    maps, labels = [], []
    for g in range(n_groups):
        for _ in range(per_group):
            cy, cx = centres[g] + rng.normal(0, 0.03 * side, 2)
            blob = rng.uniform(0.5, 2) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.1 * side) ** 2))
            maps.append(np.maximum(blob + rng.normal(0, 0.05, blob.shape), 0))
            labels.append(g)
    order = rng.permutation(len(labels))
    return torch.tensor(np.array(maps)[order], dtype=torch.float32).flatten(1), np.array(labels)[order]


def test_minmax_rows():
    x = torch.tensor([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0], [-1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    out = minmax_rows(x)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 1.0, 0.5]))
    torch.testing.assert_close(out[1], x[1])  # constant map stays as it is
    torch.testing.assert_close(out[2], torch.tensor([0.0, 0.5, 1.0]))
    torch.testing.assert_close(out[3], x[3])


@pytest.mark.parametrize(("n", "p"), [(40, 100), (100, 30), (10, 10)])
def test_pca_scores_match_sklearn_up_to_sign(n, p):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, p)) * np.linspace(3, 0.1, p)
    (ours,) = pca_scores([torch.tensor(x, dtype=torch.float32)], 50)
    d = min(50, n, p)
    ref = PCA(n_components=d, svd_solver="full").fit_transform(x)
    assert ours.shape == (n, d)
    k = min(d, 8)  # leading components (well separated eigenvalues)
    np.testing.assert_allclose(np.abs(ours.numpy()[:, :k]), np.abs(ref[:, :k]), rtol=1e-3, atol=1e-3)
    # sign convention: largest |score| of each component is positive
    idx = np.abs(ours.numpy()).argmax(0)
    assert (ours.numpy()[idx, np.arange(d)] >= 0).all()


def test_effective_perplexity_and_init():
    assert effective_perplexity(500, 30) == 30
    assert effective_perplexity(31, 30) == 10
    assert effective_perplexity(4, 30) == 1
    init = tsne_init(torch.tensor([[1.0, 2.0], [3.0, -1.0], [5.0, 0.0]], dtype=torch.float64))
    assert init[:, 0].std(unbiased=False).item() == pytest.approx(1e-4)
    assert (tsne_init(torch.ones(3, 2, dtype=torch.float64)) == 1).all()  # zero variance: left unscaled


def test_numba_kernels_equal_sklearn_internals():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 10))
    d = pairwise_distances(x, squared=True)
    p_sk = _joint_probabilities(d, 20.0, 0)
    p_nb = aff._joint_p(aff._conditional_p(aff._sqdist(x), 20.0, 100, 1e-5))
    np.testing.assert_allclose(
        p_nb, squareform(p_sk), rtol=1e-4, atol=1e-12
    )  # sklearn uses float32 distances
    y = rng.normal(size=(80, 2))
    for exag in (1.0, 12.0):
        kl_sk, grad_sk = _kl_divergence(y.ravel(), p_nb[np.triu_indices(80, 1)] * exag, 1, 80, 2)
        g0, g1 = np.zeros(80), np.zeros(80)
        p32, y0, y1, acc = nb.padded(p_nb, exag)
        y0[:80], y1[:80] = y[:, 0], y[:, 1]  # float32 pair arithmetic
        nb.gradient(y0, y1, p32, g0, g1, acc)
        np.testing.assert_allclose(
            np.stack([g0, g1], 1), grad_sk.reshape(-1, 2), rtol=1e-5, atol=1e-5 * np.abs(grad_sk).max()
        )
        p_sum, p_logp = nb._p_stats(p_nb)
        assert nb.kl(y[:, 0].copy(), y[:, 1].copy(), p_nb, exag, p_sum, p_logp) == pytest.approx(
            kl_sk, rel=1e-9
        )


def _full_row_gradient(y: np.ndarray, p: np.ndarray, exag: float) -> tuple[np.ndarray, float]:
    """The previous kernel's arithmetic in numpy: full rows, float32 pair terms, float64 sums."""
    y32, p32 = y.astype(np.float32), p.astype(np.float32) * np.float32(exag)
    d = y32[:, None, :] - y32[None, :, :]  # (n, n, 2)
    q = np.float32(1) / (np.float32(1) + (d * d).sum(-1, dtype=np.float32))
    np.fill_diagonal(q, 0)
    z = q.astype(np.float64).sum()
    attr = ((p32 * q)[..., None] * d).astype(np.float64).sum(1)
    rep = ((q * q)[..., None] * d).astype(np.float64).sum(1)
    return 4 * (attr - rep / z), z


@pytest.mark.parametrize("n", [4, 5, 7, 8, 9, 13, 40, 77])
def test_pair_gradient_equals_the_full_row_sums(n):
    """Each pair once, tiles of 4 rows, padded columns: the full-row gradient up to float32 rounding.

    Sizes cover every remainder modulo the tile (4) and the vector (16) width, so padding rows and
    columns are exercised; points are spread like a late embedding (q down to ~1e-5)."""
    rng = np.random.default_rng(n)
    y = rng.normal(scale=30.0, size=(n, 2))
    p = rng.random((n, n))
    p = p + p.T
    np.fill_diagonal(p, 0)
    p /= p.sum()
    for exag in (1.0, 12.0):
        ref, z_ref = _full_row_gradient(y, p, exag)
        p32, y0, y1, acc = nb.padded(p, exag)
        assert p32.shape[0] % nb.TILE == 0 and (y0[n:] >= nb.PAD_STEP).all()
        y0[:n], y1[:n] = y[:, 0], y[:, 1]
        g0, g1 = np.zeros(n), np.zeros(n)
        z = nb.gradient(y0, y1, p32, g0, g1, acc)
        assert z == pytest.approx(z_ref, rel=1e-6)
        np.testing.assert_allclose(np.stack([g0, g1], 1), ref, rtol=0, atol=2e-6 * np.abs(ref).max())


def test_pair_kl_equals_the_full_sum():
    rng = np.random.default_rng(3)
    n = 37
    y = rng.normal(scale=5.0, size=(n, 2))
    p = rng.random((n, n))
    p = p + p.T
    np.fill_diagonal(p, 0)
    p /= p.sum()
    d2 = ((y[:, None] - y[None]) ** 2).sum(-1)
    q = 1 / (1 + d2)
    np.fill_diagonal(q, 0)
    q /= q.sum()
    off = ~np.eye(n, dtype=bool)
    for exag in (1.0, 12.0):
        pe = exag * p
        ref = (pe[off] * np.log(pe[off] / q[off])).sum()
        p_sum, p_logp = nb._p_stats(p)
        assert nb.kl(y[:, 0].copy(), y[:, 1].copy(), p, exag, p_sum, p_logp) == pytest.approx(ref, rel=1e-12)


def test_vectorised_exp_and_log():
    rng = np.random.default_rng(0)
    x = -rng.exponential(30, 2000)
    x[:3] = [0.0, -700.0, -800.0]
    out, ib = np.empty_like(x), np.empty(x.shape, np.int64)
    aff._vexp(x, out, ib)
    ref = np.exp(x)
    normal = ref > 1e-300
    np.testing.assert_allclose(out[normal], ref[normal], rtol=1e-12)
    assert out[2] == 0.0
    y = 1 + rng.exponential(50, 2000) ** 2
    nb._vlog(y, out, ib)
    np.testing.assert_allclose(out, np.log(y), rtol=0, atol=1e-13)


def test_numba_tsne_reaches_sklearn_exact_kl():
    """Same algorithm, same start: the final KL matches sklearn's exact t-SNE (mean over 5 data sets)."""
    from sklearn.manifold import TSNE

    ours, ref = [], []
    for seed in range(5):
        x = torch.tensor(np.random.default_rng(seed).normal(size=(80, 20)))  # no structure: KL well above 0
        (scores,) = pca_scores([x], 50)
        init = tsne_init(scores).numpy()
        ref.append(
            TSNE(perplexity=20, init=init.copy(), method="exact", random_state=0)
            .fit(scores.numpy())
            .kl_divergence_
        )
        y = init.copy()
        kl, _ = tsne_cpu.tsne_one(scores.numpy(), y, 20.0, 50.0, tsne_cpu.kernel_settings(TSNEConfig()))
        ours.append(kl)
        assert np.isfinite(y).all()
        assert kl == pytest.approx(ref[-1], rel=0.15)  # different local optima of the same objective
    assert np.mean(ours) == pytest.approx(np.mean(ref), rel=0.05)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_backend_recovers_known_groups(backend):
    cfg = TSNEConfig(backend=backend)
    problems = [blob_maps(k, 30, seed=k) for k in (3, 5)]
    results = embed([minmax_rows(x) for x, _ in problems], cfg, 50, seed=0)
    for (_x, truth), emb in zip(problems, results, strict=True):
        assert emb.method == "tsne" and emb.points.shape == (len(truth), 2)
        assert np.isfinite(emb.points).all() and emb.kl > 0
        est = WardSilhouette(3, 8).fit(emb.points)
        assert est.n_clusters_ == len(set(truth))
        assert adjusted_rand_score(truth, est.labels_) == 1.0


@pytest.mark.parametrize("backend", sorted(TSNE_BACKENDS))
def test_backends_are_deterministic_for_a_seed(backend):
    x, _ = blob_maps(3, 15, seed=3)
    a = embed([minmax_rows(x)], TSNEConfig(backend=backend, n_iter=300), 50, seed=5)[0]
    b = embed([minmax_rows(x)], TSNEConfig(backend=backend, n_iter=300), 50, seed=5)[0]
    np.testing.assert_array_equal(a.points, b.points)


def test_numba_and_torch_run_the_same_algorithm():
    """Identical up to the perplexity-search tolerance and float32 rounding after a few steps; t-SNE
    is chaotic (and may stop early without progress), so full runs are compared by their mean KL."""
    x = torch.tensor(np.random.default_rng(4).normal(size=(60, 10)))
    a = embed([x], TSNEConfig(n_iter=2, perplexity=15), 50, backend="numba")[0]
    b = embed([x], TSNEConfig(n_iter=2, perplexity=15), 50, backend="torch")[0]
    np.testing.assert_allclose(a.points, b.points, rtol=0, atol=1e-4 * np.abs(a.points).max())
    assert a.kl == pytest.approx(b.kl, rel=1e-4)
    assert a.n_iter == b.n_iter == 2
    xs = [torch.tensor(np.random.default_rng(s).normal(size=(60, 10))) for s in range(3)]
    kl_a = [e.kl for e in embed(xs, TSNEConfig(perplexity=15), 50, backend="numba")]
    kl_b = [e.kl for e in embed(xs, TSNEConfig(perplexity=15), 50, backend="torch")]
    assert np.mean(kl_a) == pytest.approx(np.mean(kl_b), rel=0.1)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_batch_of_problems_equals_one_at_a_time(backend):
    """A problem's embedding is bit-identical alone, in a batch, and padded by a larger companion."""
    problems = [minmax_rows(blob_maps(k, 12, seed=k)[0]) for k in (3, 4, 5)]
    big = minmax_rows(blob_maps(4, 30, seed=9)[0])  # 120 points: pads the others to 128 rows (torch)
    cfg = TSNEConfig(n_iter=300)
    together = embed(problems, cfg, 50, backend=backend)
    padded = embed([problems[2], big, problems[0], problems[1]], cfg, 50, backend=backend)
    for x, e, p in zip(problems, together, [padded[2], padded[3], padded[0]], strict=True):
        alone = embed([x], cfg, 50, backend=backend)[0]
        for other in (e, p):
            np.testing.assert_array_equal(alone.points, other.points)
            assert (alone.kl, alone.n_iter) == (other.kl, other.n_iter)


def test_tree_sum_is_exact_pairwise_and_ignores_zero_padding():
    from inviz.fmaps._tsne_torch import tree_sum

    x = torch.tensor([[1.0, 2.0, 3.0, 4.0, 5.0], [1e16, 1.0, -1e16, 1.0, 0.5]], dtype=torch.float64)
    # ((x0 + x1) + (x2 + x3)) + x4
    assert tree_sum(x).tolist() == [15.0, ((1e16 + 1.0) + (-1e16 + 1.0)) + 0.5]
    rng = torch.Generator().manual_seed(0)
    y = torch.rand(3, 37, generator=rng, dtype=torch.float32)
    for pad in (3, 27, 91):
        assert torch.equal(tree_sum(y), tree_sum(torch.nn.functional.pad(y, (0, pad))))


def test_pca_of_a_problem_does_not_depend_on_the_others_or_on_threads():
    """Each problem's Gram/covariance is solved on its own (padded by its own size), on one CPU thread."""
    g = torch.Generator().manual_seed(0)
    xs = [
        minmax_rows(torch.rand(n, p, generator=g) ** 3) for n, p in ((37, 64), (90, 64), (150, 64), (60, 100))
    ]
    before = torch.get_num_threads()
    try:
        results = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = pca_scores(xs, 50)
            for x, s in zip(xs, results[threads], strict=True):
                assert torch.equal(pca_scores([x], 50)[0], s)
        assert all(torch.equal(a, b) for a, b in zip(results[1], results[2], strict=True))
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("backend", sorted(TSNE_BACKENDS))
def test_few_points_and_perplexity_above_point_count(backend):
    cfg = TSNEConfig(backend=backend, perplexity=30)
    xs = [torch.zeros(0, 9), torch.rand(1, 9), torch.rand(3, 9), torch.rand(6, 9)]
    out = embed(xs, cfg, 50, seed=0)
    assert [e.method for e in out] == ["none", "pca", "pca", "tsne"]
    assert [e.points.shape for e in out] == [(0, 2), (1, 2), (3, 2), (6, 2)]
    assert out[3].perplexity == pytest.approx(5 / 3)  # lowered from 30 for 6 points
    assert all(np.isfinite(e.points).all() for e in out)
    assert MIN_TSNE_POINTS == 4


#: PCA scores of 4 kept maps (demo, threshold x4) whose joint probabilities pair the points off at
#: perplexity 1: the early exaggeration throws the pairs apart until float32 overflows (NaN points)
PAIRED_OFF = np.array(
    [
        [1.1576370000839233, -0.03434297069907188, 0.8430054187774658, 0.0],
        [-1.7192199230194092, -1.10429048538208, -0.05004443973302841, 0.0],
        [1.7471874952316284, -0.17348423600196838, -0.682649552822113, 0.0],
        [-1.185604214668274, 1.3121174573898315, -0.11031114310026169, 0.0],
    ]
)


def test_diverged_tsne_falls_back_to_pca_scores_and_says_so(caplog):
    class Diverging(TSNEBackend):  # a backend whose run ends in non-finite points
        def tsne(self, scores, cfg, seed, timings):
            return [Embedding(np.full((s.shape[0], 2), np.nan), "tsne", 1.0, 0.5, 140) for s in scores]

    scores = torch.as_tensor(PAIRED_OFF)
    with caplog.at_level("WARNING"):
        (emb,) = Diverging().embed_scores([scores], TSNEConfig(), seed=0)
    assert emb.method == "tsne_diverged" and emb.perplexity == 1.0 and math.isnan(emb.kl)
    assert emb.n_iter == 140
    np.testing.assert_array_equal(emb.points, PAIRED_OFF[:, :2])
    assert "t-SNE diverged on a problem of 4 maps" in caplog.text
    assert WardSilhouette(3, 8).fit(emb.points).labels_.shape == (4,)


def test_paired_off_problem_gives_finite_points():
    """The demo's problem that crashed extract (threshold x4): finite points from the numba backend."""
    (emb,) = TSNE_BACKENDS["numba"].embed_scores([torch.as_tensor(PAIRED_OFF)], TSNEConfig(), seed=0)
    assert emb.method in ("tsne", "tsne_diverged") and np.isfinite(emb.points).all()
    assert WardSilhouette(3, 8).fit(emb.points).labels_.shape == (4,)


def test_identical_maps_embed_to_one_point():
    x = torch.ones(10, 16) * 0.3
    (emb,) = embed([x], TSNEConfig(), 50, backend="numba")
    assert np.isfinite(emb.points).all()
    assert WardSilhouette().fit(emb.points).status_ == "identical"


def test_resolve_backend_and_config_validation():
    assert resolve_backend("auto", "cpu") == "numba"
    assert resolve_backend("auto", torch.device("cuda", 0)) == "torch"
    assert resolve_backend("reference", "cpu") == "reference"
    with pytest.raises(ValueError, match="backend"):
        TSNEConfig(backend="openTSNE")
    with pytest.raises(ValueError, match="perplexity"):
        TSNEConfig(perplexity=0)
    assert math.isnan(embed([torch.rand(2, 4)], TSNEConfig(), 50)[0].kl)


def test_embedding_without_tsne_is_the_pca_scores_and_recovers_groups():
    from inviz.fmaps.embedding import embed_pca

    problems = [blob_maps(k, 30, seed=k) for k in (3, 5)]
    xs = [minmax_rows(x) for x, _ in problems]
    out = embed_pca(xs, 10)
    for (_x, truth), emb, scores in zip(problems, out, pca_scores(xs, 10), strict=True):
        assert emb.method == "pca" and emb.points.shape == (len(truth), 10)
        np.testing.assert_allclose(emb.points, scores.numpy(), rtol=1e-6)
        est = WardSilhouette(3, 8).fit(emb.points)
        assert est.n_clusters_ == len(set(truth)) and adjusted_rand_score(truth, est.labels_) == 1.0
    few = embed_pca([torch.rand(1, 9), torch.zeros(0, 9)], 10)
    assert few[0].points.shape == (1, 2) and few[1].method == "none"


def test_squared_distances_sum_the_dimensions_in_order():
    """The vectorised kernel adds the squared differences dimension by dimension: bit-identical to that loop."""
    x = np.random.default_rng(5).normal(size=(37, 11))
    ref = np.zeros((37, 37))
    for c in range(11):
        ref += (x[:, None, c] - x[None, :, c]) ** 2
    assert np.array_equal(aff._sqdist(x), ref)


def test_minmax_cpu_pass_is_bit_identical_to_the_torch_expression():
    from inviz.fmaps.pca import CONSTANT_RTOL

    x = torch.randn(9, 77) * 5 + 2
    x[2] = 3.0  # constant rows are returned unchanged
    x[5] = -1.0 + 1e-7 * torch.arange(77.0) / 77  # constant up to rounding
    lo, hi = x.amin(1, keepdim=True), x.amax(1, keepdim=True)
    flat = (hi - lo) <= CONSTANT_RTOL * torch.maximum(hi.abs(), lo.abs())
    ref = torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(hi), hi - lo))
    out = minmax_rows(x)
    assert torch.equal(out, ref) and torch.equal(out[2], x[2]) and torch.equal(out[5], x[5])
    assert torch.equal(minmax_rows(x.T.contiguous().T), ref)  # strided input: the torch expression
