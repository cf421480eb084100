"""Kept maps -> 2-D points: PCA and t-SNE (docs/method.md §1.6).

Each *problem* is the set of kept maps of one image and one layer, a matrix ``X`` of shape
(n_maps, n_pixels), already min-max scaled (:func:`inviz.fmaps.pca.minmax_rows`). The steps:

1. PCA to ``d = min(pca_components, n_maps, n_pixels)`` components
   (:func:`inviz.fmaps.pca.pca_scores`).
2. t-SNE to 2-D with perplexity ``min(perplexity, (n - 1) / 3)`` (lowered for few points, the
   rule of openTSNE), PCA initialisation scaled to a standard deviation of 1e-4 (as scikit-learn),
   learning rate ``auto`` = ``max(n / early_exaggeration / 4, 50)``.

Problems with fewer than :data:`MIN_TSNE_POINTS` maps are not embedded by t-SNE (a perplexity of
at least 1 needs 4 points); their points are the first two PCA scores (``method="pca"``).

t-SNE backends (:data:`TSNE_BACKENDS`, chosen by ``extract.tsne.backend``):

- ``numba`` — exact t-SNE compiled for the CPU (:mod:`inviz.fmaps._tsne_cpu`), all problems of a batch
  in parallel; deterministic (no random numbers: PCA initialisation). CPU default.
- ``torch`` — the same exact algorithm batched in torch (padded problems, :mod:`inviz.fmaps._tsne_torch`),
  for CUDA devices; a problem's result does not depend on the problems batched with it.
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
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from inviz.fmaps.pca import pca_scores

log = logging.getLogger(__name__)

#: fewest maps for which t-SNE is run (perplexity (n-1)/3 >= 1)
MIN_TSNE_POINTS = 4


@dataclass(frozen=True)
class TSNEConfig:
    """``extract.tsne``: t-SNE settings (defaults = scikit-learn's, as used by the authors).

    Parameters
    ----------
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
        """Check the backend name and the ranges."""
        if self.backend != "auto" and self.backend not in TSNE_BACKENDS:
            raise ValueError(
                f"tsne.backend: expected one of auto, {', '.join(TSNE_BACKENDS)}; got {self.backend!r}"
            )
        if self.perplexity <= 0:
            raise ValueError(f"tsne.perplexity: expected > 0, got {self.perplexity}")
        if self.n_iter < 1 or self.exaggeration_iter < 0 or self.n_iter_check < 1:
            raise ValueError("tsne: n_iter and n_iter_check must be >= 1, exaggeration_iter >= 0")


@dataclass(frozen=True, eq=False)
class Embedding:
    """2-D points of one problem.

    Parameters
    ----------
    points : ndarray of shape (n, 2) (shape (n, d) from :func:`embed_pca`), float64.
    method : ``tsne``, ``pca`` (too few points for t-SNE, or no t-SNE), ``tsne_diverged`` (t-SNE left
        non-finite points: the first two PCA scores are used) or ``none`` (no points).
    perplexity : the perplexity used (NaN unless ``tsne``).
    kl : final KL divergence (NaN when not reported).
    n_iter : iterations run.
    """

    points: np.ndarray
    method: str
    perplexity: float = math.nan
    kl: float = math.nan
    n_iter: int = 0


_TIMINGS_LOCK = threading.Lock()


@contextlib.contextmanager
def timed(timings: dict[str, float] | None, key: str) -> Iterator[None]:
    """Add the wall time of the block to ``timings[key]``.

    Parameters
    ----------
    timings : dict of seconds per step, or None (then nothing is measured).
    key : the step's name.

    Yields
    ------
    None
    """
    if timings is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        seconds = time.perf_counter() - start
        with _TIMINGS_LOCK:  # threads of one extraction add to the same dict
            timings[key] = timings.get(key, 0.0) + seconds


def effective_perplexity(n: int, perplexity: float) -> float:
    """Return ``min(perplexity, (n - 1) / 3)``, the perplexity t-SNE uses for ``n`` points.

    Parameters
    ----------
    n : number of points.
    perplexity : the configured perplexity.

    Returns
    -------
    float
    """
    return float(min(perplexity, (n - 1) / 3.0))


def tsne_init(scores: torch.Tensor) -> torch.Tensor:
    """Return the initial 2-D points: the first two PCA scores, column 0 scaled to std 1e-4 (scikit-learn).

    Parameters
    ----------
    scores : Tensor of shape (n, d), PCA scores (d may be below 2: missing columns are zero).

    Returns
    -------
    float64 Tensor of shape (n, 2).
    """
    init = torch.zeros((scores.shape[0], 2), dtype=torch.float64, device=scores.device)
    k = min(2, scores.shape[1])
    init[:, :k] = scores[:, :k]
    if init.shape[0] < 2:
        return init
    std = init[:, 0].std(unbiased=False)
    return torch.where(std > 0, init / std * 1e-4, init)  # no host synchronisation


def learning_rate(n: int, cfg: TSNEConfig) -> float:
    """Return the t-SNE learning rate for ``n`` points.

    Parameters
    ----------
    n : number of points.
    cfg : ``learning_rate`` is ``auto`` (``max(n / early_exaggeration / 4, 50)``) or a number.

    Returns
    -------
    float
    """
    if cfg.learning_rate == "auto":
        return float(max(n / cfg.early_exaggeration / 4.0, 50.0))
    return float(cfg.learning_rate)


# ----------------------------------------------------------------------------------------------
# backends


def _few_points(scores: torch.Tensor) -> Embedding:
    """Points of a problem too small for t-SNE: its first two PCA scores (zero-padded)."""
    n = scores.shape[0]
    pts = np.zeros((n, 2))
    k = min(2, scores.shape[1])
    pts[:, :k] = scores[:, :k].cpu().numpy()
    return Embedding(pts, "pca" if n else "none")


def _diverged(scores: torch.Tensor, e: Embedding) -> Embedding:
    """Replace a t-SNE run that left non-finite points by the problem's first two PCA scores.

    This happens to tiny problems whose joint probabilities pair the points off (e.g. 4 maps at
    perplexity 1): the early exaggeration then throws the pairs apart without bound (scikit-learn's
    exact t-SNE ends at coordinates in the thousands; float32 pair arithmetic overflows). The
    records say so (``embedding_method`` ``tsne_diverged``) and a warning names the problem size.
    """
    log.warning(
        "t-SNE diverged on a problem of %d maps (perplexity %.3g, %d iterations): its first two PCA "
        "scores are clustered instead (embedding_method 'tsne_diverged')",
        scores.shape[0],
        e.perplexity,
        e.n_iter,
    )
    return Embedding(_few_points(scores).points, "tsne_diverged", e.perplexity, math.nan, e.n_iter)


class TSNEBackend:
    """A t-SNE backend: PCA of every problem, then t-SNE of the problems with enough points.

    The steps common to every backend live in :meth:`__call__`; a backend overrides :meth:`tsne`
    (and :meth:`pca` when it reduces the maps its own way). Problems with fewer than
    :data:`MIN_TSNE_POINTS` maps keep their first two PCA scores (``method="pca"``).
    """

    def __call__(
        self,
        xs: Sequence[torch.Tensor],
        cfg: TSNEConfig,
        n_components: int,
        seed: int = 0,
        timings: dict[str, float] | None = None,
    ) -> list[Embedding]:
        """Embed several problems to 2-D points.

        Parameters
        ----------
        xs : tensors of shape (n_i, P_i), the (min-max scaled) kept maps of each problem.
        cfg : t-SNE settings.
        n_components : PCA dimensions (at most; problem ``i`` gets ``min(n_components, n_i, P_i)``).
        seed : random seed (used by the ``reference`` backend only).
        timings : optional dict receiving the seconds spent in ``pca`` and ``tsne``.

        Returns
        -------
        list of :class:`Embedding`, one per problem: points of shape (n_i, 2).
        """
        with timed(timings, "pca"):
            scores = self.pca(xs, n_components, seed)
        return self.embed_scores(scores, cfg, seed, timings)

    def embed_scores(
        self,
        scores: Sequence[torch.Tensor],
        cfg: TSNEConfig,
        seed: int = 0,
        timings: dict[str, float] | None = None,
    ) -> list[Embedding]:
        """Embed problems already reduced by :meth:`pca` (the second half of :meth:`__call__`).

        Parameters
        ----------
        scores : tensors of shape (n_i, d_i), the PCA scores of each problem (from :meth:`pca`).
        cfg : t-SNE settings.
        seed : random seed (used by the ``reference`` backend only).
        timings : optional dict receiving the seconds spent in ``tsne``.

        Returns
        -------
        list of :class:`Embedding`, one per problem: points of shape (n_i, 2).
        """
        results = [_few_points(s) if s.shape[0] < MIN_TSNE_POINTS else None for s in scores]
        todo = [i for i, s in enumerate(scores) if s.shape[0] >= MIN_TSNE_POINTS]
        if todo:
            embedded = self.tsne([scores[i] for i in todo], cfg, seed, timings)
            for i, e in zip(todo, embedded, strict=True):
                results[i] = e if np.all(np.isfinite(e.points)) else _diverged(scores[i], e)
        return results  # type: ignore[return-value]

    def pca(self, xs: Sequence[torch.Tensor], n_components: int, seed: int) -> list[torch.Tensor]:
        """Reduce each problem to its PCA scores, shape (n_i, d_i), with torch on its device."""
        return pca_scores([x.detach() for x in xs], n_components)

    def tsne(
        self, scores: list[torch.Tensor], cfg: TSNEConfig, seed: int, timings: dict[str, float] | None
    ) -> list[Embedding]:
        """Embed the PCA scores of problems with at least :data:`MIN_TSNE_POINTS` points (override)."""
        raise NotImplementedError


class NumbaTSNE(TSNEBackend):
    """Fast CPU path: torch PCA + exact t-SNE compiled with numba, every problem in parallel."""

    def tsne(
        self, scores: list[torch.Tensor], cfg: TSNEConfig, seed: int, timings: dict[str, float] | None
    ) -> list[Embedding]:
        """Stack the problems and run :func:`inviz.fmaps._tsne_cpu.tsne_many` on all of them."""
        from inviz.fmaps._tsne_cpu import kernel_settings, tsne_many

        ns = np.array([s.shape[0] for s in scores], dtype=np.int64)
        dims = np.array([max(s.shape[1], 1) for s in scores], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(ns)]).astype(np.int64)
        x = np.zeros((int(offsets[-1]), int(dims.max())))
        y = np.zeros((int(offsets[-1]), 2))
        for b, s in enumerate(scores):
            x[offsets[b] : offsets[b + 1], : s.shape[1]] = s.cpu().numpy()
            y[offsets[b] : offsets[b + 1]] = tsne_init(s).cpu().numpy()
        perp = np.array([effective_perplexity(int(n), cfg.perplexity) for n in ns])
        lrs = np.array([learning_rate(int(n), cfg) for n in ns])
        order = np.argsort(-ns, kind="stable").astype(np.int64)
        with timed(timings, "tsne"):
            kl, iters = tsne_many(x, offsets, dims, y, perp, lrs, order, kernel_settings(cfg))
        points = [y[offsets[b] : offsets[b + 1]].copy() for b in range(len(scores))]
        return [
            Embedding(pts, "tsne", float(pp), float(k), int(it))
            for pts, pp, k, it in zip(points, perp, kl, iters, strict=True)
        ]


class TorchTSNE(TSNEBackend):
    """Batched torch path (on the problems' device, meant for CUDA): torch PCA + batched exact t-SNE."""

    #: padded pair entries per call of :func:`inviz.fmaps._tsne_torch.tsne_torch`
    budget = 2**24

    def tsne(
        self, scores: list[torch.Tensor], cfg: TSNEConfig, seed: int, timings: dict[str, float] | None
    ) -> list[Embedding]:
        """Run :func:`inviz.fmaps._tsne_torch.tsne_torch` on chunks of problems of similar size."""
        from inviz.fmaps._tsne_torch import tsne_torch

        results: list[Embedding | None] = [None] * len(scores)
        # chunks of problems of similar size (less padding); a problem's result does not depend
        # on its chunk (see inviz.fmaps._tsne_torch)
        todo = sorted(range(len(scores)), key=lambda i: scores[i].shape[0])
        chunks: list[list[int]] = [[]]
        for i in todo:
            n = scores[i].shape[0]
            if chunks[-1] and (len(chunks[-1]) + 1) * n * n > self.budget:
                chunks.append([])
            chunks[-1].append(i)
        for chunk in chunks:
            with timed(timings, "tsne"):
                embedded = tsne_torch([scores[i] for i in chunk], cfg)
            for i, e in zip(chunk, embedded, strict=True):
                results[i] = e
        return results  # type: ignore[return-value]


class ReferenceTSNE(TSNEBackend):
    """Embed like the authors: scikit-learn ``PCA`` + Barnes-Hut ``TSNE`` (``init="pca"``), one by one."""

    def pca(self, xs: Sequence[torch.Tensor], n_components: int, seed: int) -> list[torch.Tensor]:
        """Reduce each problem with scikit-learn's ``PCA`` (seeded), float64 on the CPU."""
        from sklearn.decomposition import PCA

        out = []
        for x in xs:
            arr = x.detach().cpu().double().numpy()
            n, p = arr.shape
            d = min(n_components, n, p)
            if n >= 2 and d > 0:
                scores = PCA(n_components=d, random_state=seed).fit_transform(arr)
            else:
                scores = np.zeros((n, 0))
            out.append(torch.from_numpy(np.asarray(scores, dtype=np.float64)))
        return out

    def tsne(
        self, scores: list[torch.Tensor], cfg: TSNEConfig, seed: int, timings: dict[str, float] | None
    ) -> list[Embedding]:
        """Run scikit-learn's Barnes-Hut ``TSNE`` (seeded with ``seed``) on each problem."""
        from sklearn.manifold import TSNE

        out = []
        for s in scores:
            perp = effective_perplexity(s.shape[0], cfg.perplexity)
            tsne = TSNE(
                n_components=2,
                perplexity=perp,
                early_exaggeration=cfg.early_exaggeration,
                learning_rate=cfg.learning_rate,
                max_iter=cfg.n_iter,
                n_iter_without_progress=cfg.n_iter_without_progress,
                min_grad_norm=cfg.min_grad_norm,
                init="pca",
                method="barnes_hut",
                angle=cfg.angle,
                random_state=seed,
            )
            with timed(timings, "tsne"):
                pts = tsne.fit_transform(s.numpy())
            points = np.asarray(pts, dtype=np.float64)
            out.append(Embedding(points, "tsne", perp, float(tsne.kl_divergence_), int(tsne.n_iter_)))
        return out


def embed_pca(
    xs: Sequence[torch.Tensor], n_components: int, timings: dict[str, float] | None = None
) -> list[Embedding]:
    """Embed without t-SNE: the PCA scores are the points.

    Parameters
    ----------
    xs : tensors of shape (n_i, P_i), the (min-max scaled) kept maps of each problem.
    n_components : PCA dimensions (at most).
    timings : optional dict receiving the seconds spent in ``pca``.

    Returns
    -------
    list of :class:`Embedding`, points of shape (n_i, d_i) with ``d_i = min(n_components, n_i, P_i)``
    (padded with zeros to at least 2 columns).
    """
    with timed(timings, "pca"):
        scores = pca_scores([x.detach() for x in xs], n_components)
    return pca_points(scores)


def pca_points(scores: Sequence[torch.Tensor]) -> list[Embedding]:
    """Return the PCA scores themselves as the points to cluster (``extract.embedding: pca``).

    Parameters
    ----------
    scores : tensors of shape (n_i, d_i), from :func:`inviz.fmaps.pca.pca_scores`.

    Returns
    -------
    list of :class:`Embedding`, points of shape (n_i, max(d_i, 2)) (zero-padded to 2 columns).
    """
    out = []
    for s in scores:
        pts = s.cpu().numpy().astype(np.float64)
        if pts.shape[1] < 2:
            pts = np.pad(pts, ((0, 0), (0, 2 - pts.shape[1])))
        out.append(Embedding(pts, "pca" if len(pts) else "none"))
    return out


#: name -> backend, called ``backend(xs, cfg, n_components, seed, timings) -> list[Embedding]``
TSNE_BACKENDS: dict[str, TSNEBackend] = {
    "numba": NumbaTSNE(),
    "torch": TorchTSNE(),
    "reference": ReferenceTSNE(),
}


def resolve_backend(name: str, device: torch.device | str) -> str:
    """Resolve ``auto`` to ``torch`` on CUDA, ``numba`` otherwise; other names are checked and returned.

    Parameters
    ----------
    name : ``auto`` or a key of :data:`TSNE_BACKENDS`.
    device : where the problems are.

    Returns
    -------
    str, a key of :data:`TSNE_BACKENDS`.
    """
    if name == "auto":
        return "torch" if torch.device(device).type == "cuda" else "numba"
    if name not in TSNE_BACKENDS:
        raise ValueError(
            f"unknown t-SNE backend {name!r}; expected auto or one of {', '.join(TSNE_BACKENDS)}"
        )
    return name


def embed(
    xs: Sequence[torch.Tensor],
    cfg: TSNEConfig,
    n_components: int = 50,
    seed: int = 0,
    backend: str | None = None,
    timings: dict[str, float] | None = None,
) -> list[Embedding]:
    """Embed several problems (already min-max scaled maps) to 2-D points.

    Parameters
    ----------
    xs : tensors of shape (n_i, P_i).
    cfg : t-SNE settings.
    n_components : PCA dimensions (paper: 50).
    seed : ``reference`` backend seed.
    backend : overrides ``cfg.backend``; ``auto`` resolves on the device of the first problem.
        The ``torch`` backend runs where the tensors are; ``numba``/``reference`` move them to the CPU.
    timings : optional dict receiving the seconds spent in ``pca`` and ``tsne``.

    Returns
    -------
    list of :class:`Embedding`, points of shape (n_i, 2).
    """
    if not xs:
        return []
    name = resolve_backend(backend or cfg.backend, xs[0].device)
    if name != "torch":
        xs = [x.cpu() for x in xs]
    return TSNE_BACKENDS[name](xs, cfg, n_components, seed, timings)
