"""The ``numba`` t-SNE backend's entry points (docs/method.md §1.6): settings, one problem, many.

Exact t-SNE as scikit-learn's ``TSNE(method="exact")``, compiled for the CPU in two units (numba's
on-disk cache tracks one source file per unit): the joint probabilities
(:mod:`inviz.fmaps._tsne_affinities`) and the gradient descent (:mod:`inviz.fmaps._tsne_numba`).
Called by :class:`inviz.fmaps.embedding.NumbaTSNE`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inviz.fmaps._tsne_affinities import joint_probabilities, joint_probabilities_many
from inviz.fmaps._tsne_numba import descend, descend_many

#: the scalar t-SNE settings handed to the kernels, in this order (:func:`kernel_settings`)
SETTINGS = (
    "n_iter",
    "early_exaggeration",
    "exaggeration_iter",
    "momentum_early",
    "momentum_final",
    "min_gain",
    "min_grad_norm",
    "n_iter_check",
    "n_iter_without_progress",
    "perplexity_steps",
    "perplexity_tol",
)
_INTEGER_SETTINGS = (
    "n_iter",
    "exaggeration_iter",
    "n_iter_check",
    "n_iter_without_progress",
    "perplexity_steps",
)


def kernel_settings(cfg: Any) -> tuple:
    """Return the scalar settings of :func:`tsne_one` and :func:`tsne_many` from a t-SNE config.

    Parameters
    ----------
    cfg : :class:`inviz.fmaps.embedding.TSNEConfig`
        ``n_iter`` (total iterations, early exaggeration included), ``early_exaggeration`` and
        ``exaggeration_iter`` (factor on P in the first phase and its length), ``momentum_early``
        and ``momentum_final`` (momentum in the first and second phase), ``min_gain`` (floor of the
        per-parameter gains), ``min_grad_norm`` (stop when the gradient norm falls below it),
        ``n_iter_check`` (iterations between convergence checks), ``n_iter_without_progress`` (stop
        after this many iterations without a lower KL), ``perplexity_steps`` and ``perplexity_tol``
        (binary search of the perplexity: steps, tolerance in nats).

    Returns
    -------
    tuple
        The values of :data:`SETTINGS` in that order (ints for counts, floats otherwise).
    """
    return tuple(int(getattr(cfg, k)) if k in _INTEGER_SETTINGS else float(getattr(cfg, k)) for k in SETTINGS)


def tsne_one(
    x: np.ndarray, y: np.ndarray, perplexity: float, lr: float, settings: tuple
) -> tuple[float, int]:
    """Exact t-SNE of one problem, in place.

    Parameters
    ----------
    x : ndarray of shape (n, d), float64, the points (PCA scores).
    y : ndarray of shape (n, 2), float64, the initial embedding; receives the result.
    perplexity : the (effective) perplexity.
    lr : learning rate.
    settings : the scalar settings, :data:`SETTINGS` in order (see :func:`kernel_settings`).

    Returns
    -------
    (kl, iterations) : the final KL divergence and the iterations run.
    """
    n_steps, tol = settings[-2:]
    p = joint_probabilities(np.ascontiguousarray(x, dtype=np.float64), float(perplexity), n_steps, tol)
    return descend(p, y, float(lr), settings)


def tsne_many(
    x: np.ndarray,
    offsets: np.ndarray,
    dims: np.ndarray,
    y: np.ndarray,
    perplexity: np.ndarray,
    lr: np.ndarray,
    order: np.ndarray,
    settings: tuple,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact t-SNE of B problems in parallel, in place: problem ``b`` is rows ``offsets[b]:offsets[b+1]``.

    Parameters
    ----------
    x : ndarray of shape (sum n_b, d_max), float64, the problems' points stacked; problem ``b``
        uses the columns ``:dims[b]``.
    offsets : int64 ndarray of shape (B + 1,), row offsets of the problems.
    dims : int64 ndarray of shape (B,), dimensions of the problems.
    y : ndarray of shape (sum n_b, 2), float64, the initial embeddings; receives the results.
    perplexity : ndarray of shape (B,), the (effective) perplexities.
    lr : ndarray of shape (B,), the learning rates.
    order : int64 ndarray of shape (B,), the problems largest first (better load balance).
    settings : the scalar settings shared by all problems (:func:`kernel_settings`).

    Returns
    -------
    kl : ndarray of shape (B,), the final KL divergence per problem.
    iterations : int64 ndarray of shape (B,), the iterations run per problem.
    """
    n_steps, tol = settings[-2:]
    p, p_offsets = joint_probabilities_many(x, offsets, dims, perplexity, order, n_steps, tol)
    return descend_many(p, p_offsets, offsets, y, lr, order, settings)
