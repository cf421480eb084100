"""TCAV parameters and the registry of CAV classifiers (docs/method.md §4).

:class:`TCAVConfig` is the ``global.tcav`` section of ``params.yaml``; :data:`CAV_CLASSIFIERS`
maps its ``classifier`` string to a seeded scikit-learn linear model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from inviz.core.checks import check_unit
from inviz.core.errors import InvizError

#: bump when the meaning of a cached CAV changes (part of the settings directory hash)
CACHE_FORMAT = "inviz-tcav/1"


class TCAVError(InvizError, ValueError):
    """Inputs to the TCAV validation are inconsistent (shapes, class index, model hash)."""


@dataclass(frozen=True)
class TCAVConfig:
    """TCAV validation parameters (the ``tcav`` section of ``params.yaml``).

    Parameters
    ----------
    layers : tuple of str
        Layers to test, module names (``features.28``) or, for a model with a VGG ``features``
        Sequential, Keras aliases (``block5_conv3``); see :func:`inviz.fmaps.gradients.resolve_layers`.
        Default: the last layer (paper's example).
    n_runs : int
        Random runs per concept (paper: 50); also the size of the null distribution.
    min_examples : int
        Fewer concept examples than this → ``status="too_few_examples"`` (paper: 20).
    max_examples : int
        At most this many concept examples are used (paper: 30); more are subsampled with a
        seeded random subset.
    n_random_examples : int or None
        Images per random set; ``None`` = ``max_examples`` (same size as a full concept set, as in
        the reference TCAV code). Shrunk to ``len(random_pool) // 2`` (with a warning, and reported
        in ``n_random``) when the pool is smaller than two sets.
    alpha : float
        Significance level after correction (paper: 0.05).
    correction : str
        Multiple-testing correction over the concepts tested per class and layer, a
        :func:`statsmodels.stats.multitest.multipletests` method (``bonferroni``, ``holm``,
        ``fdr_bh``) or ``none``.
    equal_var : bool
        Student's t-test (``True``, as the reference TCAV code) or Welch's (``False``).
    score : str
        ``sign_count`` (captum's default: fraction of class inputs whose directional derivative
        along the CAV is positive) or ``magnitude`` (captum's: the mean directional derivative).
    classifier : str
        CAV classifier, a key of :data:`CAV_CLASSIFIERS`: ``sgd`` (captum's default classifier:
        sklearn ``SGDClassifier``, hinge loss) or ``logistic`` (sklearn ``LogisticRegression``).
        Both are seeded.
    sgd_alpha, max_iter, tol : float, int, float
        ``SGDClassifier`` regularisation and stopping (captum's defaults 0.01, 1000, 1e-3);
        ``max_iter``/``tol`` also bound ``LogisticRegression``.
    logistic_c : float
        Inverse regularisation of ``LogisticRegression``.
    test_split : float
        Fraction of each CAV's examples held out (stratified, seeded) to report the CAV accuracy
        (captum's default 0.33; the CAV is trained on the rest). 0 trains on all examples and
        reports no accuracy.
    unit_cav : bool
        Scale every CAV to unit L2 norm (changes ``magnitude`` only, not ``sign_count``).
    center : bool
        Fit the classifier on activations minus the mean of its training examples. This moves
        only the plane's intercept, but SGD's iterates are not translation-invariant: on raw,
        all-positive post-ReLU activations the CAV keeps a component along the mean activation (on
        the test network an irrelevant concept scored 0.69 against 0.40 for random, p = 0.001,
        without centring; 0.50, p = 0.33, with). ``False`` = captum's default.
    seed : int
        Seeds the random sets, the concept subsampling and the CAV classifiers.
    batch_size : int
        Images per forward/backward pass.
    reveal_fill : str
        What fills the hidden part of a revealed region
        (:func:`inviz.concepts.tcav.examples.reveal_region`): ``mean`` (the dataset mean, i.e. 0
        after normalisation) or ``zero`` (black pixels, the game's ``mask * image``).
    """

    layers: tuple[str, ...] = ("block5_conv3",)
    n_runs: int = 50
    min_examples: int = 20
    max_examples: int = 30
    n_random_examples: int | None = None
    alpha: float = 0.05
    correction: Literal["bonferroni", "holm", "fdr_bh", "none"] = "bonferroni"
    equal_var: bool = True
    score: Literal["sign_count", "magnitude"] = "sign_count"
    classifier: str = "sgd"
    sgd_alpha: float = 0.01
    max_iter: int = 1000
    tol: float = 1e-3
    logistic_c: float = 1.0
    test_split: float = 0.33
    unit_cav: bool = True
    center: bool = True
    seed: int = 432
    batch_size: int = 32
    reveal_fill: Literal["mean", "zero"] = "mean"

    def __post_init__(self) -> None:
        """Check the values (``ValueError`` naming the key)."""
        if isinstance(self.layers, str) or not self.layers:
            raise ValueError(f"layers: expected a non-empty list of layer names, got {self.layers!r}")
        if self.n_runs < 2:
            raise ValueError(f"n_runs: the t-test needs at least 2 runs, got {self.n_runs}")
        if self.min_examples < 4:
            raise ValueError(
                f"min_examples: expected at least 4 (CAV train/test split), got {self.min_examples}"
            )
        if self.max_examples < self.min_examples:
            raise ValueError(
                f"max_examples ({self.max_examples}) must be >= min_examples ({self.min_examples})"
            )
        if self.n_random_examples is not None and self.n_random_examples < 4:
            raise ValueError(f"n_random_examples: expected at least 4 or null, got {self.n_random_examples}")
        check_unit(self, ("alpha",), "()", what="a probability")
        if self.classifier not in CAV_CLASSIFIERS:
            raise ValueError(
                f"classifier: expected one of {sorted(CAV_CLASSIFIERS)}, got {self.classifier!r}"
            )
        if not 0 <= self.test_split < 1:
            raise ValueError(f"test_split: expected a fraction in [0, 1), got {self.test_split}")
        if self.sgd_alpha <= 0 or self.logistic_c <= 0 or self.tol <= 0 or self.max_iter < 1:
            raise ValueError("sgd_alpha, logistic_c, tol must be > 0 and max_iter >= 1")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {self.batch_size}")

    @property
    def random_set_size(self) -> int:
        """Images per random set before any shrinking to the pool size."""
        return self.n_random_examples if self.n_random_examples is not None else self.max_examples

    def cav_settings(self) -> dict[str, Any]:
        """Everything besides the model, the examples and the layer that determines a CAV.

        Returns
        -------
        dict
            ``format`` (:data:`CACHE_FORMAT`) and the classifier settings; hashed into the name of
            the cache's settings directory (:func:`inviz.concepts.tcav.cache.cache_dir_for`).
        """
        keys = ["classifier", "test_split", "unit_cav", "center", "seed"]
        if self.classifier == "sgd":
            keys += ["sgd_alpha", "max_iter", "tol"]
        else:
            keys += ["logistic_c", "max_iter", "tol"]
        return {"format": CACHE_FORMAT, **{k: getattr(self, k) for k in keys}}


def _make_sgd(cfg: TCAVConfig, seed: int) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(
        loss="hinge", alpha=cfg.sgd_alpha, max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed
    )


def _make_logistic(cfg: TCAVConfig, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=cfg.logistic_c, max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed)


#: name -> factory ``(cfg, seed) -> sklearn linear classifier`` with ``coef_`` and ``classes_``
CAV_CLASSIFIERS: dict[str, Callable[[TCAVConfig, int], Any]] = {
    "sgd": _make_sgd,
    "logistic": _make_logistic,
}
