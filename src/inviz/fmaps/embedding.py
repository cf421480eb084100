"""Feature maps -> 2-D points: min-max scaling, PCA, t-SNE (METHOD.md §1.5-§1.6).

Each *problem* is the set of kept maps of one image and one layer, a matrix ``X`` of shape
(n_maps, n_pixels). The steps:

1. :func:`minmax_rows` — every map scaled to [0, 1] over its own pixels; a constant map is left
   as it is (no division by zero).
2. PCA to ``d = min(pca_components, n_maps, n_pixels)`` components (:func:`pca_scores`: one
   float32 eigen-decomposition of the smaller Gram/covariance matrix per problem, in torch, on
   the problems' device; signs fixed like scikit-learn's ``svd_flip``).
3. t-SNE to 2-D with perplexity ``min(perplexity, (n - 1) / 3)`` (lowered for few points, the
   rule of openTSNE), PCA initialisation scaled to a standard deviation of 1e-4 (as scikit-learn),
   learning rate ``auto`` = ``max(n / early_exaggeration / 4, 50)``.

Problems with fewer than :data:`MIN_TSNE_POINTS` maps are not embedded by t-SNE (a perplexity of
at least 1 needs 4 points); their points are the first two PCA scores (``method="pca"``).

t-SNE backends (:data:`TSNE_BACKENDS`, chosen by ``extract.tsne.backend``):

- ``numba`` — exact t-SNE compiled for the CPU (:mod:`inviz.fmaps._tsne_numba`), all problems of a batch
  in parallel; deterministic (no random numbers: PCA initialisation). CPU default.
- ``torch`` — the same exact algorithm batched in torch (padded problems), for CUDA devices.
- ``reference`` — the recipe of the authors' code: scikit-learn ``PCA`` and Barnes-Hut ``TSNE``,
  one problem at a time (seeded with ``seed``). Slow; kept for agreement checks.
- ``auto`` — ``torch`` when the device is CUDA, ``numba`` otherwise.

Without t-SNE (``extract.embedding: pca``, the ablation "t-SNE vs clustering directly on PCA"),
:func:`embed_pca` returns the PCA scores themselves as the points.

t-SNE embeddings differ between implementations (and between seeds), so backends are compared
on the downstream clustering (recovery of known groups, Table 1 aggregates), not point by point.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

log = logging.getLogger(__name__)

#: fewest maps for which t-SNE is run (perplexity (n-1)/3 >= 1)
MIN_TSNE_POINTS = 4


@dataclass(frozen=True)
class TSNEConfig:
    """``extract.tsne``: t-SNE settings (defaults = scikit-learn's, as used by the authors).

    backend : ``auto`` | ``numba`` | ``torch`` | ``reference`` (see module docstring).
    perplexity : target perplexity (paper: 30); lowered to ``(n - 1) / 3`` for few points.
    n_iter : total iterations, early exaggeration included (scikit-learn ``max_iter``: 1000).
    early_exaggeration : factor on P during the first phase (12).
    exaggeration_iter : length of the first phase (250).
    learning_rate : ``auto`` (``max(n / early_exaggeration / 4, 50)``) or a number.
    momentum_early, momentum_final : momentum in the first and second phase (0.5, 0.8).
    min_gain : floor of the per-parameter gains (0.01).
    min_grad_norm : stop when the gradient norm falls below this (1e-7).
    n_iter_check : iterations between convergence checks (50).
    n_iter_without_progress : stop after this many iterations without a lower KL (300).
    angle : Barnes-Hut angle, ``reference`` backend only (0.5).
    perplexity_steps, perplexity_tol : binary search of the perplexity (100 steps, 1e-5 nats).
    """

    backend: Literal["auto", "numba", "torch", "reference"] = "auto"
    perplexity: float = 30.0
    n_iter: int = 1000
    early_exaggeration: float = 12.0
    exaggeration_iter: int = 250
    learning_rate: float | Literal["auto"] = "auto"
    momentum_early: float = 0.5
    momentum_final: float = 0.8
    min_gain: float = 0.01
    min_grad_norm: float = 1e-7
    n_iter_check: int = 50
    n_iter_without_progress: int = 300
    angle: float = 0.5
    perplexity_steps: int = 100
    perplexity_tol: float = 1e-5

    def __post_init__(self) -> None:
        if self.backend != "auto" and self.backend not in TSNE_BACKENDS:
            raise ValueError(f"tsne.backend: expected one of auto, {', '.join(TSNE_BACKENDS)}; got {self.backend!r}")
        if self.perplexity <= 0:
            raise ValueError(f"tsne.perplexity: expected > 0, got {self.perplexity}")
        if self.n_iter < 1 or self.exaggeration_iter < 0 or self.n_iter_check < 1:
            raise ValueError("tsne: n_iter and n_iter_check must be >= 1, exaggeration_iter >= 0")


@dataclass(frozen=True, eq=False)
class Embedding:
    """2-D points of one problem.

    points : ndarray of shape (n, 2), float64.
    method : ``tsne``, ``pca`` (too few points for t-SNE) or ``none`` (no points).
    perplexity : the perplexity used (NaN unless ``tsne``).
    kl : final KL divergence (NaN when not reported). n_iter : iterations run.
    """

    points: np.ndarray
    method: str
    perplexity: float = math.nan
    kl: float = math.nan
    n_iter: int = 0


@contextlib.contextmanager
def timed(timings: dict[str, float] | None, key: str) -> Iterator[None]:
    """Add the wall time of the block to ``timings[key]`` (no-op when ``timings`` is None)."""
    if timings is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - start


# ----------------------------------------------------------------------------------------------
# scaling and PCA


#: a map whose range is at most this fraction of its magnitude counts as constant (float32 rounding)
CONSTANT_RTOL = 1e-6


def minmax_rows(x: torch.Tensor) -> torch.Tensor:
    """Scale each row of ``x`` (n, P) to [0, 1]; constant rows are returned unchanged.

    A row is constant when ``max - min <= CONSTANT_RTOL * max(|max|, |min|)`` (rounding noise
    on a constant map is not blown up to [0, 1]).
    """
    lo = x.amin(dim=1, keepdim=True)
    hi = x.amax(dim=1, keepdim=True)
    rng = hi - lo
    flat = rng <= CONSTANT_RTOL * torch.maximum(hi.abs(), lo.abs())
    return torch.where(flat, x, (x - lo) / torch.where(flat, torch.ones_like(rng), rng))


def effective_perplexity(n: int, perplexity: float) -> float:
    """``min(perplexity, (n - 1) / 3)``: the perplexity t-SNE uses for ``n`` points."""
    return float(min(perplexity, (n - 1) / 3.0))


def _flip_signs(scores: torch.Tensor) -> torch.Tensor:
    """Make the largest-magnitude entry of every column positive (scikit-learn's ``svd_flip``)."""
    if scores.numel() == 0:
        return scores
    idx = scores.abs().argmax(0)
    signs = torch.sign(scores[idx, torch.arange(scores.shape[1], device=scores.device)])
    signs[signs == 0] = 1
    return scores * signs


def pca_scores(xs: Sequence[torch.Tensor], n_components: int) -> list[torch.Tensor]:
    """PCA scores of several problems.

    Parameters
    ----------
    xs : tensors of shape (n_i, P_i) (any device, float).
    n_components : at most this many components; problem ``i`` gets ``min(n_components, n_i, P_i)``.

    Returns
    -------
    list of float64 tensors of shape (n_i, d_i), components ordered by decreasing variance
    (computed in float32: exact up to float32 rounding, unlike scikit-learn's randomized solver).
    Rows that are identical up to rounding (:data:`CONSTANT_RTOL`) give all-zero scores.
    """
    out: list[torch.Tensor] = []
    for x in xs:
        n, p = x.shape
        d = min(n_components, n, p)
        if n == 0 or d == 0:
            out.append(torch.zeros((n, 0), dtype=torch.float64, device=x.device))
            continue
        xc = (x - x.mean(0, keepdim=True)).float()
        if float(xc.abs().max()) <= CONSTANT_RTOL * float(x.abs().max()):
            # identical maps up to rounding: no direction of variance (t-SNE must not blow up noise)
            out.append(torch.zeros((n, d), dtype=torch.float64, device=x.device))
            continue
        if n <= p:  # Gram matrix (n, n): scores = U sqrt(lambda)
            evals, evecs = torch.linalg.eigh(xc @ xc.T)
            evals, evecs = evals.flip(0)[:d], evecs.flip(1)[:, :d]
            scores = evecs * evals.clamp(min=0).sqrt()
        else:  # covariance (P, P): scores = X V
            evals, evecs = torch.linalg.eigh(xc.T @ xc)
            scores = xc @ evecs.flip(1)[:, :d]
        out.append(_flip_signs(scores.double()))
    return out


def tsne_init(scores: torch.Tensor) -> torch.Tensor:
    """Initial 2-D points: the first two PCA scores, scaled so column 0 has std 1e-4 (scikit-learn)."""
    init = torch.zeros((scores.shape[0], 2), dtype=torch.float64, device=scores.device)
    k = min(2, scores.shape[1])
    init[:, :k] = scores[:, :k]
    std = init[:, 0].std(unbiased=False) if init.shape[0] > 1 else torch.tensor(0.0)
    if float(std) > 0:
        init = init / std * 1e-4
    return init


def learning_rate(n: int, cfg: TSNEConfig) -> float:
    if cfg.learning_rate == "auto":
        return float(max(n / cfg.early_exaggeration / 4.0, 50.0))
    return float(cfg.learning_rate)


# ----------------------------------------------------------------------------------------------
# backends


def _few_points(scores: torch.Tensor) -> Embedding:
    n = scores.shape[0]
    pts = np.zeros((n, 2))
    k = min(2, scores.shape[1])
    pts[:, :k] = scores[:, :k].cpu().numpy()
    return Embedding(pts, "pca" if n else "none")


def embed_numba(
    xs: Sequence[torch.Tensor], cfg: TSNEConfig, n_components: int, seed: int = 0, timings: dict[str, float] | None = None
) -> list[Embedding]:
    """Fast CPU path: torch PCA + exact t-SNE compiled with numba, every problem in parallel."""
    from inviz.fmaps._tsne_numba import tsne_many

    with timed(timings, "pca"):
        scores = pca_scores([x.detach() for x in xs], n_components)
    results: list[Embedding | None] = [None] * len(xs)
    todo = []
    for i, s in enumerate(scores):
        if s.shape[0] < MIN_TSNE_POINTS:
            results[i] = _few_points(s)
        else:
            todo.append(i)
    if todo:
        ns = np.array([scores[i].shape[0] for i in todo], dtype=np.int64)
        dims = np.array([max(scores[i].shape[1], 1) for i in todo], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(ns)]).astype(np.int64)
        x = np.zeros((int(offsets[-1]), int(dims.max())))
        y = np.zeros((int(offsets[-1]), 2))
        for b, i in enumerate(todo):
            s = scores[i].cpu().numpy()
            x[offsets[b] : offsets[b + 1], : s.shape[1]] = s
            y[offsets[b] : offsets[b + 1]] = tsne_init(scores[i]).cpu().numpy()
        perp = np.array([effective_perplexity(int(n), cfg.perplexity) for n in ns])
        lrs = np.array([learning_rate(int(n), cfg) for n in ns])
        order = np.argsort(-ns, kind="stable").astype(np.int64)
        with timed(timings, "tsne"):
            kl, iters = tsne_many(
                x, offsets, dims, y, perp, lrs, cfg.n_iter, cfg.early_exaggeration, cfg.exaggeration_iter,
                cfg.momentum_early, cfg.momentum_final, cfg.min_gain, cfg.min_grad_norm, cfg.n_iter_check,
                cfg.n_iter_without_progress, cfg.perplexity_steps, cfg.perplexity_tol, order,
            )
        for b, i in enumerate(todo):
            results[i] = Embedding(y[offsets[b] : offsets[b + 1]].copy(), "tsne", float(perp[b]), float(kl[b]), int(iters[b]))
    return results  # type: ignore[return-value]


def _conditional_p_torch(dist: torch.Tensor, valid: torch.Tensor, perplexity: torch.Tensor, cfg: TSNEConfig) -> torch.Tensor:
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


def _tsne_torch(scores: Sequence[torch.Tensor], cfg: TSNEConfig) -> list[Embedding]:
    """The exact algorithm of :mod:`inviz.fmaps._tsne_numba`, batched over padded problems in torch."""
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
    lr = torch.tensor([learning_rate(n, cfg) for n in ns], dtype=dtype, device=device)[:, None, None]

    def grad_and_z(y: torch.Tensor, exag: float) -> torch.Tensor:
        ysq = (y * y).sum(-1)
        d2 = (ysq[:, :, None] + ysq[:, None, :] - 2 * y @ y.transpose(1, 2)).clamp(min=0)
        q = torch.where(valid, 1.0 / (1.0 + d2), torch.zeros_like(d2))
        z = q.sum((1, 2), keepdim=True)
        w = exag * p * q - q * q / z
        return 4.0 * (w.sum(-1, keepdim=True) * y - w @ y)

    def kl(y: torch.Tensor, exag: float) -> torch.Tensor:
        ysq = (y * y).sum(-1)
        d2 = (ysq[:, :, None] + ysq[:, None, :] - 2 * y @ y.transpose(1, 2)).clamp(min=0)
        q = torch.where(valid, 1.0 / (1.0 + d2), torch.zeros_like(d2))
        q = (q / q.sum((1, 2), keepdim=True)).clamp(min=eps)
        pe = exag * p
        return torch.where(valid, pe * torch.log(pe.clamp(min=eps) / q), torch.zeros_like(q)).sum((1, 2))

    iters = torch.zeros(nb, dtype=torch.long, device=device)
    err = torch.full((nb,), math.nan, dtype=dtype, device=device)
    phases = [(0, min(cfg.exaggeration_iter, cfg.n_iter), cfg.early_exaggeration, cfg.momentum_early, cfg.exaggeration_iter)]
    if cfg.n_iter > cfg.exaggeration_iter:
        phases.append((cfg.exaggeration_iter, cfg.n_iter, 1.0, cfg.momentum_final, cfg.n_iter_without_progress))
    for start, stop, exag, momentum, patience in phases:
        # like scikit-learn, a problem that stopped early in the first phase still runs the second
        # (here every problem starts the second phase at ``exaggeration_iter``)
        active = torch.ones(nb, dtype=torch.bool, device=device)
        update = torch.zeros_like(y)
        gains = torch.ones_like(y)
        best = torch.full((nb,), math.inf, dtype=dtype, device=device)
        best_it = torch.full((nb,), start, dtype=torch.long, device=device)
        for i in range(start, stop):
            g = grad_and_z(y, exag)
            inc = update * g < 0
            gains = torch.where(inc, gains + 0.2, gains * 0.8).clamp(min=cfg.min_gain)
            g = g * gains
            update = torch.where(active[:, None, None], momentum * update - lr * g, update)
            y = torch.where(active[:, None, None], y + update, y)
            iters = torch.where(active, torch.full_like(iters, i + 1), iters)
            if (i + 1) % cfg.n_iter_check == 0 or i == stop - 1:
                e = kl(y, exag)
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
        err = kl(y, 1.0)
    y_np, err_np, it_np, perp_np = y.double().cpu().numpy(), err.double().cpu().numpy(), iters.cpu().numpy(), perp.cpu().numpy()
    return [Embedding(y_np[b, : ns[b]].copy(), "tsne", float(perp_np[b]), float(err_np[b]), int(it_np[b])) for b in range(nb)]


def embed_torch(
    xs: Sequence[torch.Tensor], cfg: TSNEConfig, n_components: int, seed: int = 0, timings: dict[str, float] | None = None
) -> list[Embedding]:
    """Batched torch path (on the problems' device, meant for CUDA): torch PCA + batched exact t-SNE."""
    with timed(timings, "pca"):
        scores = pca_scores([x.detach() for x in xs], n_components)
    results: list[Embedding | None] = [None] * len(xs)
    todo = [i for i, s in enumerate(scores) if s.shape[0] >= MIN_TSNE_POINTS]
    for i, s in enumerate(scores):
        if s.shape[0] < MIN_TSNE_POINTS:
            results[i] = _few_points(s)
    # bucket by size so that small problems are not padded to the largest one
    todo.sort(key=lambda i: scores[i].shape[0])
    chunk: list[int] = []
    budget = 2**24  # padded pair entries per call

    def flush() -> None:
        if chunk:
            with timed(timings, "tsne"):
                embedded = _tsne_torch([scores[i] for i in chunk], cfg)
            for i, e in zip(chunk, embedded, strict=True):
                results[i] = e
            chunk.clear()

    for i in todo:
        n = scores[i].shape[0]
        if chunk and (len(chunk) + 1) * n * n > budget:
            flush()
        chunk.append(i)
    flush()
    return results  # type: ignore[return-value]


def embed_reference(
    xs: Sequence[torch.Tensor], cfg: TSNEConfig, n_components: int, seed: int = 0, timings: dict[str, float] | None = None
) -> list[Embedding]:
    """The authors' recipe: scikit-learn ``PCA`` + Barnes-Hut ``TSNE`` (``init="pca"``), one problem at a time."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    out = []
    for x in xs:
        arr = x.detach().cpu().double().numpy()
        n, p = arr.shape
        d = min(n_components, n, p)
        if n < MIN_TSNE_POINTS:
            scores = PCA(n_components=d, random_state=seed).fit_transform(arr) if n >= 2 and d > 0 else np.zeros((n, 0))
            out.append(_few_points(torch.from_numpy(np.asarray(scores, dtype=np.float64))))
            continue
        with timed(timings, "pca"):
            reduced = PCA(n_components=d, random_state=seed).fit_transform(arr)
        perp = effective_perplexity(n, cfg.perplexity)
        tsne = TSNE(
            n_components=2, perplexity=perp, early_exaggeration=cfg.early_exaggeration,
            learning_rate=cfg.learning_rate, max_iter=cfg.n_iter, n_iter_without_progress=cfg.n_iter_without_progress,
            min_grad_norm=cfg.min_grad_norm, init="pca", method="barnes_hut", angle=cfg.angle, random_state=seed,
        )
        with timed(timings, "tsne"):
            pts = tsne.fit_transform(reduced)
        out.append(Embedding(np.asarray(pts, dtype=np.float64), "tsne", perp, float(tsne.kl_divergence_), int(tsne.n_iter_)))
    return out


def embed_pca(
    xs: Sequence[torch.Tensor], cfg: TSNEConfig, n_components: int, seed: int = 0, timings: dict[str, float] | None = None
) -> list[Embedding]:
    """No t-SNE: the PCA scores, shape (n, d) with d = min(n_components, n, P) (padded to 2), are the points."""
    with timed(timings, "pca"):
        scores = pca_scores([x.detach() for x in xs], n_components)
    out = []
    for s in scores:
        pts = s.cpu().numpy().astype(np.float64)
        if pts.shape[1] < 2:
            pts = np.pad(pts, ((0, 0), (0, 2 - pts.shape[1])))
        out.append(Embedding(pts, "pca" if len(pts) else "none"))
    return out


#: name -> ``f(xs, cfg, n_components, seed, timings) -> list[Embedding]`` (scaled maps in, 2-D points out)
TSNE_BACKENDS: dict[str, Callable[..., list[Embedding]]] = {
    "numba": embed_numba,
    "torch": embed_torch,
    "reference": embed_reference,
}


def resolve_backend(name: str, device: torch.device | str) -> str:
    """``auto`` -> ``torch`` on CUDA, ``numba`` otherwise; other names are checked and returned."""
    if name == "auto":
        return "torch" if torch.device(device).type == "cuda" else "numba"
    if name not in TSNE_BACKENDS:
        raise ValueError(f"unknown t-SNE backend {name!r}; expected auto or one of {', '.join(TSNE_BACKENDS)}")
    return name


def embed(
    xs: Sequence[torch.Tensor],
    cfg: TSNEConfig,
    n_components: int = 50,
    seed: int = 0,
    backend: str | None = None,
    timings: dict[str, float] | None = None,
) -> list[Embedding]:
    """Embed several problems (already min-max scaled maps, (n_i, P_i) each) to 2-D points.

    Parameters
    ----------
    xs : tensors of shape (n_i, P_i).
    cfg : t-SNE settings. n_components : PCA dimensions (paper: 50). seed : ``reference`` backend seed.
    backend : overrides ``cfg.backend``; ``auto`` resolves on the device of the first problem.
        The ``torch`` backend runs where the tensors are; ``numba``/``reference`` move them to the CPU.
    timings : optional dict receiving the seconds spent in ``pca`` and ``tsne``.
    """
    if not xs:
        return []
    name = resolve_backend(backend or cfg.backend, xs[0].device)
    if name != "torch":
        xs = [x.cpu() for x in xs]
    return TSNE_BACKENDS[name](xs, cfg, n_components, seed, timings)
