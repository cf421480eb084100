"""TCAV validation of concept labels (METHOD.md §4, Figure 4 of the paper).

A global explanation names, for a class and a layer, the top labels of the cluster maps; each
label is validated with TCAV (Kim et al. 2018, `arXiv:1711.11279 <https://arxiv.org/abs/1711.11279>`_)
as the authors did: 20-30 concept examples per label, 50 random runs, a two-sided t-test against
random-vs-random scores, Bonferroni over the labels tested for the class and layer.

This module is data-format independent: it takes tensors. The wiring to cluster maps and labels
builds the concept examples with :func:`reveal_region` (the cluster-map-revealed region of an
image) and calls :func:`validate_concepts`.

Protocol (per class, layer and concept)
---------------------------------------
1. Concept examples: the concept's images, at most ``max_examples`` (a seeded random subset when
   more are given, in the caller's order). Fewer than ``min_examples`` → the concept is reported
   with ``status="too_few_examples"`` and its count; no score is computed.
2. Run ``i = 0 .. n_runs-1`` draws two **disjoint** random sets ``A_i`` and ``B_i`` of
   ``n_random_examples`` images from ``random_pool`` (seeded by ``(seed, i)``: the same sets for
   every concept and layer of a call, and for every call with the same pool and seed).
3. Concept CAV: a linear classifier concept-vs-``A_i`` on the layer's activations; its weight
   vector (pointing to the concept) is the CAV. Null CAV: ``B_i``-vs-``A_i``, trained the same way.
4. TCAV score of a CAV ``v`` on the class inputs ``x_1..x_n`` for the target class ``c``, with
   ``g_j`` the gradient of the logit of ``c`` w.r.t. the layer's output at ``x_j``:
   ``sign_count = mean_j 1[g_j . v > 0]`` (captum's default) or ``magnitude = mean_j g_j . v``
   (captum's ``magnitude``: the mean directional derivative, not bounded to [0, 1]).
5. Two-sided t-test (:func:`scipy.stats.ttest_ind`) of the ``n_runs`` concept scores against the
   ``n_runs`` null scores; p-values corrected over the concepts tested for this class and layer
   (``correction``, Bonferroni by default, via :func:`statsmodels.stats.multitest.multipletests`).
   ``significant = p_adjusted < alpha``; ``direction`` tells whether the concept pushes the class
   up (``positive``: score above the random mean) or down.

Caveat (TCAV's, not this implementation's): the concept set is the same in every run, so
whatever its examples share by chance (not only the concept) enters every one of its CAVs; the
t-test over runs measures the variability due to the random sets only, and a concept unrelated
to the class can test significant, more easily the more runs. ``tcav_score`` and ``direction``
belong next to the p-value in any report.

What captum does and what is done here
--------------------------------------
CAVs are trained, stored and re-loaded by :class:`captum.concept.TCAV` (``compute_cavs``: layer
activations via captum's ``LayerActivation``, the :class:`captum.concept.Classifier` API, captum's
``CAV`` pickles), and the sensitivities ``g_j`` come from captum's ``LayerGradientXActivation``
with ``multiply_by_inputs=False`` -- exactly the layer attribution ``TCAV.interpret`` uses. The
score itself (step 4, one matrix product) is computed here with the formula of captum's
``TCAV._tcav_sub_computation``, because ``TCAV.interpret`` copies every CAV into nested Python
lists (``.tolist()``) and back into one tensor per call: for VGG's block5 (131k features) and the
~300 CAVs of 5 concepts x 50 runs that is several GB and tens of seconds per batch of inputs, and
calling it once per run instead would redo the gradient pass 50 times. ``tests/test_tcav.py``
checks that the scores agree with ``TCAV.interpret``.

The CAV classifier (:data:`CAV_CLASSIFIERS`) is seeded from ``seed`` and the two concept ids, so
a CAV does not depend on the order of training or on what was cached. It is fitted on centred
activations (``center``, see :class:`TCAVConfig`) and its weight vector is scaled to unit norm
(``unit_cav``), so ``magnitude`` scores are comparable between runs.

The layer is captured where :func:`inviz.fmaps.gradients.resolve_layers` captures it: a VGG convolution
(``block5_conv3`` or ``features.28``) at the output of its ReLU, as Keras' convolution layers
include their activation.

Model handling
--------------
The caller's model is never modified: the work is done on a structural copy that **shares** the
parameter and buffer tensors (no memory cost), in eval mode, with every ``inplace`` flag
(``ReLU(inplace=True)``, ``Dropout``...) set to ``False`` -- captum's layer hooks hand a cloned,
gradient-requiring tensor downstream, which an in-place ReLU after the hooked layer would modify
(``a leaf Variable that requires grad is being used in an in-place operation``).

CAV cache layout (a tracked, persistent DVC output)
---------------------------------------------------
::

    <cache_dir>/
      <model_hash[:16]>/                 one directory per model checkpoint (sha256 of the file)
        model.json                       {"model_sha256": <full hash>}
        cav-<settings[:12]>/             one directory per CAV classifier setting (+ seed)
          settings.json                  the settings hashed into the directory name
          <id_a>-<id_b>-<layer>.pkl      captum CAV pickle ({"weights", "classes", "accs"})

``<layer>`` is the captured module's name (``features.29``). ``<id_a>``/``<id_b>`` are captum
concept ids derived from the **content** of the example sets (sha256 of the image tensors, the
role "concept"/"random" included), ``id_a`` the concept (or ``B_i``), ``id_b`` the random
counter-set ``A_i``. A changed checkpoint gives a new top directory, changed examples give new
ids and changed classifier settings a new settings directory, so a stale CAV is never reused;
identical inputs reuse every CAV (no activation is computed then). Captum works in a temporary
directory: cached CAVs are copied in, new ones are copied out atomically after each run (an
interrupted job keeps its finished runs), and the activation vectors captum stores to train
CAVs are scratch (a random set's are deleted after its run, the concepts' at the end of the
call), never in the cache.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import math
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from inviz.core.errors import InvizError
from inviz.core.io import atomic_path, write_json
from inviz.core.stats import adjust_pvalues

log = logging.getLogger(__name__)

#: bump when the meaning of a cached CAV changes (part of the settings directory hash)
CACHE_FORMAT = "inviz-tcav/1"


class TCAVError(InvizError, ValueError):
    """Inputs to the TCAV validation are inconsistent (shapes, class index, model hash)."""


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TCAVConfig:
    """TCAV validation parameters (the ``tcav`` section of ``params.yaml``).

    layers : layers to test, module names (``features.28``) or, for a model with a VGG
        ``features`` Sequential, Keras aliases (``block5_conv3``); see
        :func:`inviz.fmaps.gradients.resolve_layers`. Default: the last layer (paper's example).
    n_runs : random runs per concept (paper: 50); also the size of the null distribution.
    min_examples : fewer concept examples than this → ``status="too_few_examples"`` (paper: 20).
    max_examples : at most this many concept examples are used (paper: 30); more are subsampled
        with a seeded random subset.
    n_random_examples : images per random set; ``None`` = ``max_examples`` (same size as a full
        concept set, as in the reference TCAV code). Shrunk to ``len(random_pool) // 2`` (with a
        warning, and reported in ``n_random``) when the pool is smaller than two sets.
    alpha : significance level after correction (paper: 0.05).
    correction : multiple-testing correction over the concepts tested per class and layer, a
        :func:`statsmodels.stats.multitest.multipletests` method (``bonferroni``, ``holm``,
        ``fdr_bh``) or ``none``.
    equal_var : Student's t-test (``True``, as the reference TCAV code) or Welch's (``False``).
    score : ``sign_count`` (captum's default: fraction of class inputs whose directional
        derivative along the CAV is positive) or ``magnitude`` (captum's: the mean directional
        derivative).
    classifier : CAV classifier, a key of :data:`CAV_CLASSIFIERS`: ``sgd`` (captum's default
        classifier: sklearn ``SGDClassifier``, hinge loss) or ``logistic`` (sklearn
        ``LogisticRegression``). Both are seeded.
    sgd_alpha, max_iter, tol : ``SGDClassifier`` regularisation and stopping (captum's defaults
        0.01, 1000, 1e-3); ``max_iter``/``tol`` also bound ``LogisticRegression``.
    logistic_c : inverse regularisation of ``LogisticRegression``.
    test_split : fraction of each CAV's examples held out (stratified, seeded) to report the
        CAV accuracy (captum's default 0.33; the CAV is trained on the rest). 0 trains on all
        examples and reports no accuracy.
    unit_cav : scale every CAV to unit L2 norm (changes ``magnitude`` only, not ``sign_count``).
    center : fit the classifier on activations minus the mean of its training examples. This
        moves only the plane's intercept, but SGD's iterates are not translation-invariant: on
        raw, all-positive post-ReLU activations the CAV keeps a component along the mean
        activation (on the test network an irrelevant concept scored 0.69 against 0.40 for
        random, p = 0.001, without centring; 0.50, p = 0.33, with). ``False`` = captum's default.
    seed : seeds the random sets, the concept subsampling and the CAV classifiers.
    batch_size : images per forward/backward pass.
    reveal_fill : what fills the hidden part of a revealed region (:func:`reveal_region`):
        ``mean`` (the dataset mean, i.e. 0 after normalisation) or ``zero`` (black pixels, the
        game's ``mask * image``).
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
        if isinstance(self.layers, str) or not self.layers:
            raise ValueError(f"layers: expected a non-empty list of layer names, got {self.layers!r}")
        if self.n_runs < 2:
            raise ValueError(f"n_runs: the t-test needs at least 2 runs, got {self.n_runs}")
        if self.min_examples < 4:
            raise ValueError(f"min_examples: expected at least 4 (CAV train/test split), got {self.min_examples}")
        if self.max_examples < self.min_examples:
            raise ValueError(f"max_examples ({self.max_examples}) must be >= min_examples ({self.min_examples})")
        if self.n_random_examples is not None and self.n_random_examples < 4:
            raise ValueError(f"n_random_examples: expected at least 4 or null, got {self.n_random_examples}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha: expected a probability in (0, 1), got {self.alpha}")
        if self.classifier not in CAV_CLASSIFIERS:
            raise ValueError(f"classifier: expected one of {sorted(CAV_CLASSIFIERS)}, got {self.classifier!r}")
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
        """Everything besides the model, the examples and the layer that determines a CAV."""
        keys = ["classifier", "test_split", "unit_cav", "center", "seed"]
        keys += ["sgd_alpha", "max_iter", "tol"] if self.classifier == "sgd" else ["logistic_c", "max_iter", "tol"]
        return {"format": CACHE_FORMAT, **{k: getattr(self, k) for k in keys}}


# --------------------------------------------------------------------------------------------
# concept examples
# --------------------------------------------------------------------------------------------


def reveal_region(
    image: torch.Tensor,
    mask: torch.Tensor,
    fill: Literal["mean", "zero"] = "mean",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """The region of a (normalised) image revealed by a soft mask, as a network input.

    The label game shows ``mask * image`` in pixel space (METHOD.md §2). As a TCAV concept
    example the hidden part is filled with

    - ``mean``: the dataset mean colour, which is 0 after normalisation (a neutral input):
      ``mask * image``;
    - ``zero``: black pixels, i.e. exactly the game's masked image, normalised:
      ``mask * image + (1 - mask) * (-mean / std)`` (needs ``mean`` and ``std``).

    Parameters
    ----------
    image : Tensor of shape (3, H, W) or (N, 3, H, W), normalised with ``mean``/``std``.
    mask : Tensor of shape (H, W) or (N, H, W), values in [0, 1] (1 = revealed).
    fill : ``mean`` or ``zero`` (``TCAVConfig.reveal_fill``).
    mean, std : per-channel normalisation statistics (``ModelConfig.mean``/``std``), required
        for ``fill="zero"``.

    Returns
    -------
    Tensor of the shape and dtype of ``image``.
    """
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise TCAVError(f"reveal_region: image: expected shape (3, H, W) or (N, 3, H, W), got {tuple(image.shape)}")
    if mask.shape != image.shape[:-3] + image.shape[-2:]:
        raise TCAVError(
            f"reveal_region: mask: expected shape {tuple(image.shape[:-3] + image.shape[-2:])} "
            f"to match the image, got {tuple(mask.shape)}"
        )
    if not bool(torch.isfinite(mask).all()) or float(mask.min()) < 0 or float(mask.max()) > 1:
        raise TCAVError("reveal_region: mask: expected finite values in [0, 1]")
    m = mask.to(image.dtype).unsqueeze(-3)
    if fill == "mean":
        return m * image
    if fill == "zero":
        if mean is None or std is None:
            raise TCAVError("reveal_region: fill='zero' needs the normalisation mean and std")
        shape = (3, 1, 1)
        black = -torch.as_tensor(mean, dtype=image.dtype).reshape(shape) / torch.as_tensor(std, dtype=image.dtype).reshape(shape)
        return m * image + (1 - m) * black.to(image.device)
    raise TCAVError(f"reveal_region: fill: expected 'mean' or 'zero', got {fill!r}")


# --------------------------------------------------------------------------------------------
# CAV classifiers (captum ``Classifier`` API), seeded per concept pair
# --------------------------------------------------------------------------------------------


def _make_sgd(cfg: TCAVConfig, seed: int) -> Any:
    from sklearn.linear_model import SGDClassifier

    return SGDClassifier(loss="hinge", alpha=cfg.sgd_alpha, max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed)


def _make_logistic(cfg: TCAVConfig, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=cfg.logistic_c, max_iter=cfg.max_iter, tol=cfg.tol, random_state=seed)


#: name -> factory ``(cfg, seed) -> sklearn linear classifier`` with ``coef_`` and ``classes_``
CAV_CLASSIFIERS: dict[str, Callable[[TCAVConfig, int], Any]] = {
    "sgd": _make_sgd,
    "logistic": _make_logistic,
}


def _derive_seed(*parts: int) -> int:
    """A 32-bit seed from non-negative integers (order-sensitive)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _make_captum_classifier(cfg: TCAVConfig) -> Any:
    from captum.concept import Classifier

    class SeededLinearClassifier(Classifier):
        """captum ``Classifier`` over a seeded sklearn linear model (see :data:`CAV_CLASSIFIERS`).

        The seed of each fit derives from ``cfg.seed`` and the two concept ids (the labels), so
        a CAV is the same whatever was trained before it. ``n_trained`` counts the fits,
        ``n_not_converged`` those that stopped at ``max_iter``.
        """

        def __init__(self) -> None:
            self.n_trained = 0
            self.n_not_converged = 0
            self._weights: torch.Tensor | None = None
            self._classes: list[int] | None = None

        def train_and_eval(self, dataloader: Any, **kwargs: Any) -> dict[str, Any]:
            from sklearn.model_selection import train_test_split

            xs, ys = zip(*[(x.detach().cpu(), y.detach().cpu()) for x, y in dataloader], strict=True)
            x = torch.cat(xs).flatten(1).numpy()
            y = torch.cat(ys).numpy()
            labels = sorted(int(v) for v in np.unique(y))
            if len(labels) != 2:
                raise TCAVError(f"CAV classifier: expected examples of 2 concepts, got labels {labels}")
            seed = _derive_seed(cfg.seed, *labels)
            acc = float("nan")
            if cfg.test_split > 0:
                x_tr, x_te, y_tr, y_te = train_test_split(
                    x, y, test_size=cfg.test_split, stratify=y, random_state=seed
                )
            else:
                x_tr, y_tr, x_te, y_te = x, y, None, None
            # centring moves only the intercept of the separating plane (w.x + b = w.(x - mu) +
            # b + w.mu), but SGD's iterates are not translation-invariant: on raw, all-positive
            # post-ReLU activations they keep a component along the mean activation
            mu = x_tr.mean(axis=0, keepdims=True) if cfg.center else np.zeros((1, x.shape[1]), x.dtype)
            clf = CAV_CLASSIFIERS[cfg.classifier](cfg, seed)
            from sklearn.exceptions import ConvergenceWarning

            with warnings.catch_warnings(record=True) as caught:
                # counted here and reported once per call by run_tcav, not once per CAV
                warnings.simplefilter("always", ConvergenceWarning)
                clf.fit(x_tr - mu, y_tr)
            if any(issubclass(c.category, ConvergenceWarning) for c in caught):
                self.n_not_converged += 1
            for c in caught:
                if not issubclass(c.category, ConvergenceWarning):
                    warnings.warn_explicit(c.message, c.category, c.filename, c.lineno)
            if x_te is not None:
                acc = float(clf.score(x_te - mu, y_te))
            w = np.asarray(clf.coef_[0], dtype=np.float64)
            if cfg.unit_cav:
                norm = float(np.linalg.norm(w))
                if norm > 0:
                    w = w / norm
            # row k is the direction of class k (classes_ sorted): (-w, w) as captum does
            self._weights = torch.from_numpy(np.stack([-w, w])).float()
            self._classes = [int(c) for c in clf.classes_]
            self.n_trained += 1
            return {"accs": acc}

        def weights(self) -> torch.Tensor:
            if self._weights is None:
                raise RuntimeError("train_and_eval must be called before weights()")
            return self._weights

        def classes(self) -> list[int]:  # a list of ints: loadable with torch.load(weights_only=True)
            if self._classes is None:
                raise RuntimeError("train_and_eval must be called before classes()")
            return self._classes

    return SeededLinearClassifier()


# --------------------------------------------------------------------------------------------
# model copy, content ids, lazy example batches
# --------------------------------------------------------------------------------------------


def working_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` that shares its parameters/buffers, in eval mode, with no in-place ops.

    Module objects are new (so flags and hooks can change freely), tensors are shared (no memory
    cost, nothing is written to them). Every boolean ``inplace`` attribute is set to ``False``.
    """
    memo: dict[int, Any] = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    clone = copy.deepcopy(model, memo)
    for module in clone.modules():
        if isinstance(getattr(module, "inplace", None), bool):
            module.inplace = False
    return clone.eval()


def _row_hashes(x: torch.Tensor) -> list[bytes]:
    x = x.detach().cpu().contiguous()
    head = f"{tuple(x.shape[1:])}|{x.dtype}".encode()
    return [hashlib.sha256(head + row.numpy().tobytes()).digest() for row in x]


def _set_id(role: str, row_hashes: Sequence[bytes]) -> int:
    """A captum concept id (< 2**60) from the role and the content of an example set."""
    h = hashlib.sha256(role.encode() + b"".join(row_hashes)).hexdigest()
    return int(h[:15], 16)


class _Batches:
    """Re-iterable batches ``source[indices]`` on ``device`` (a captum concept's ``data_iter``)."""

    def __init__(self, source: torch.Tensor, indices: np.ndarray, batch_size: int, device: torch.device):
        self.source, self.indices, self.batch_size, self.device = source, indices, batch_size, device

    def __iter__(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.indices), self.batch_size):
            idx = torch.as_tensor(self.indices[start : start + self.batch_size], dtype=torch.long)
            yield self.source[idx].to(self.device)

    def __len__(self) -> int:
        return math.ceil(len(self.indices) / self.batch_size)


def _safe_hash(model_hash: str) -> str:
    if not isinstance(model_hash, str) or not re.fullmatch(r"[0-9A-Za-z]{16,}", model_hash):
        raise TCAVError(
            f"model_hash: expected the checkpoint's hex digest (at least 16 alphanumeric characters), got {model_hash!r}"
        )
    return model_hash


def cache_dir_for(cache_dir: str | Path, model_hash: str, cfg: TCAVConfig) -> Path:
    """The directory holding the CAVs of ``model_hash`` under the settings of ``cfg``."""
    settings = hashlib.sha256(repr(sorted(cfg.cav_settings().items())).encode()).hexdigest()
    return Path(cache_dir) / _safe_hash(model_hash)[:16] / f"cav-{settings[:12]}"


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------

#: columns of :attr:`TCAVResult.table`, in order
TABLE_COLUMNS = [
    "target_class", "concept", "layer", "status", "n_available", "n_examples", "n_random", "n_runs",
    "score_type", "tcav_score", "tcav_std", "random_score_mean", "random_score_std", "cav_accuracy",
    "t_statistic", "p_value", "n_tests", "p_adjusted", "significant", "direction",
]


@dataclass(frozen=True, eq=False)
class TCAVResult:
    """Output of :func:`run_tcav`.

    table : one row per (concept, layer), columns :data:`TABLE_COLUMNS`:
        ``status`` ``ok`` / ``too_few_examples`` / ``too_few_random`` (scores NaN unless ``ok``);
        ``n_available`` concept images given, ``n_examples`` used, ``n_random`` per random set;
        ``tcav_score``/``tcav_std`` mean/sd over runs of the concept's score;
        ``random_score_mean``/``_std`` the same for the random-vs-random null; ``cav_accuracy``
        mean held-out accuracy of the concept's CAVs; ``t_statistic``, ``p_value`` (two-sided),
        ``n_tests`` (concepts corrected together), ``p_adjusted``, ``significant``
        (``p_adjusted < alpha``), ``direction`` (``positive``/``negative``: score above/below
        the random mean).
    runs : long table of per-run scores: ``layer, kind ("concept"|"random"), concept (None for
        random), run, score, cav_accuracy, cav_file`` (for box plots of concept vs random
        scores; ``cav_file`` is the CAV's file name under ``cache_path``).
    n_trained, n_cached : CAVs trained in this call / loaded from the cache.
    cache_path : the settings directory of this model under ``cache_dir``.
    """

    table: pd.DataFrame
    runs: pd.DataFrame
    n_trained: int
    n_cached: int
    cache_path: Path


# --------------------------------------------------------------------------------------------
# the validation
# --------------------------------------------------------------------------------------------


def _check_images(name: str, x: Any, chw: tuple[int, ...] | None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise TCAVError(f"{name}: expected a Tensor of shape (n, C, H, W), got {shape}")
    if chw is not None and tuple(x.shape[1:]) != chw:
        raise TCAVError(f"{name}: expected images of shape {chw} like class_inputs, got {tuple(x.shape[1:])}")
    if not bool(torch.isfinite(x).all()):
        raise TCAVError(f"{name}: NaN or infinite pixel values")
    return x.detach()


def _select_examples(name: str, n: int, cfg: TCAVConfig) -> np.ndarray:
    """Indices of the concept examples used: all, or a seeded subset of ``max_examples``."""
    if n <= cfg.max_examples:
        return np.arange(n)
    name_key = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([cfg.seed, 2, name_key])
    return np.sort(rng.choice(n, size=cfg.max_examples, replace=False))


def _sensitivities(
    model: nn.Module, modules: Sequence[str], x: torch.Tensor, target: int, batch_size: int, device: torch.device
) -> list[torch.Tensor]:
    """captum layer gradients of the target logit, flattened: one (n, F) tensor per module."""
    from captum._utils.common import _get_module_from_name
    from captum.attr import LayerGradientXActivation

    layer_mods = [_get_module_from_name(model, m) for m in modules]
    attr = LayerGradientXActivation(model, layer_mods if len(layer_mods) > 1 else layer_mods[0], multiply_by_inputs=False)
    out: list[list[torch.Tensor]] = [[] for _ in modules]
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size].to(device)
        grads = attr.attribute(batch, target=target, attribute_to_layer_input=False)
        grads = grads if isinstance(grads, list) else [grads]
        for store, g in zip(out, grads, strict=True):
            g = g[0] if isinstance(g, tuple) else g
            store.append(g.detach().reshape(g.shape[0], -1).float().cpu())
    return [torch.cat(store) for store in out]


def _tcav_scores(sens: torch.Tensor, cav: Any, concept_id: int) -> tuple[float, float]:
    """(sign_count, magnitude) of the concept row of a captum ``CAV``, as ``_tcav_sub_computation``."""
    stats = cav.stats
    classes = [int(c) for c in stats["classes"]]
    w = stats["weights"][classes.index(concept_id)].float().reshape(-1).cpu()
    d = sens @ w
    return float((d > 0).float().mean()), float(d.mean())


def _ttest(a: np.ndarray, b: np.ndarray, equal_var: bool) -> tuple[float, float]:
    from scipy.stats import ttest_ind

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # both samples constant: scipy returns NaN (t undefined), reported as not significant
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ttest_ind(a, b, equal_var=equal_var)
    return float(res.statistic), float(res.pvalue)


def _tcav_class(base: type) -> type:
    """captum's ``TCAV`` with activations computed once.

    ``TCAV.compute_cavs`` recomputes the layer activations of *every* concept of an experimental
    set whose CAV is missing, even when they are stored already: a random set ``A_i`` shared by
    the concepts' and the null's sets of run ``i`` was forwarded once per set, and the concepts
    once per run. Here a (concept, layer) whose activations exist is skipped, and the random sets
    (rows of the random pool) take their rows of the pool's activations, computed once per call
    with captum's ``LayerActivation`` exactly as ``TCAV.generate_activation`` does (flattened per
    example) and saved with captum's ``AV.save`` in the same batches. 50 runs of 5 concepts:
    ~105 forward passes of 30 images become ~7 plus one pass over the pool.
    """
    from captum._utils.av import AV
    from captum._utils.common import _get_module_from_name
    from captum.attr import LayerActivation

    class PooledTCAV(base):  # type: ignore[misc, valid-type]
        pool_source: torch.Tensor | None = None
        _pool_acts: dict[str, torch.Tensor] | None = None

        def _pool_activations(self, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
            if self._pool_acts is None:
                modules = [_get_module_from_name(self.model, layer) for layer in self.layers]
                act = LayerActivation(self.model, modules)
                chunks: dict[str, list[torch.Tensor]] = {layer: [] for layer in self.layers}
                for start in range(0, len(self.pool_source), batch_size):
                    x = self.pool_source[start : start + batch_size].to(device)
                    out = act.attribute.__wrapped__(act, x, attribute_to_layer_input=self.attribute_to_layer_input)
                    out = out if isinstance(out, (list, tuple)) else [out]
                    for a, layer in zip(out, self.layers, strict=True):
                        chunks[layer].append(torch.reshape(a, (a.shape[0], -1)).detach())
                self._pool_acts = {layer: torch.cat(v) for layer, v in chunks.items()}
            return self._pool_acts

        def generate_activations(self, concept_layers: dict[Any, list[str]]) -> None:
            for concept, layers in concept_layers.items():
                missing = [ly for ly in dict.fromkeys(layers) if not AV.exists(self.save_path, self.model_id, concept.identifier, ly)]
                if not missing:
                    continue
                it = concept.data_iter
                if isinstance(it, _Batches) and self.pool_source is not None and it.source is self.pool_source:
                    acts = self._pool_activations(it.batch_size, it.device)
                    idx = torch.as_tensor(it.indices, dtype=torch.long)
                    for ly in missing:
                        rows = acts[ly][idx]
                        for j, start in enumerate(range(0, len(rows), it.batch_size)):
                            AV.save(self.save_path, self.model_id, concept.identifier, ly, rows[start : start + it.batch_size], str(j))
                else:
                    self.generate_activation(missing, concept)

    return PooledTCAV


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def run_tcav(
    model: nn.Module,
    target_class: int,
    concepts: Mapping[str, torch.Tensor],
    random_pool: torch.Tensor,
    class_inputs: torch.Tensor,
    cfg: TCAVConfig,
    cache_dir: str | Path,
    model_hash: str,
) -> TCAVResult:
    """TCAV scores and significance of concepts for one class (all of ``cfg.layers``).

    See the module docstring for the protocol and the cache layout.

    Parameters
    ----------
    model : classifier returning logits (N, K); never modified (a shared-weight copy is used).
    target_class : index of the class whose logit is explained (``0 <= target_class < K``).
    concepts : ``{label: Tensor of shape (n, 3, H, W)}`` normalised concept examples (e.g. from
        :func:`reveal_region`); ``n`` may be 0.
    random_pool : Tensor of shape (m, 3, H, W), images the random counter-sets are drawn from
        (other images, not the concept's).
    class_inputs : Tensor of shape (k, 3, H, W), images of the target class the scores are
        computed on.
    cfg : :class:`TCAVConfig`.
    cache_dir : root of the CAV cache (a persistent DVC output).
    model_hash : sha256 of the model checkpoint (``LoadedModel.sha256``); keys the cache.

    Returns
    -------
    TCAVResult
    """
    from captum.concept import TCAV, Concept
    from captum.concept._core.cav import CAV
    from tqdm.auto import tqdm

    from inviz.fmaps.gradients import resolve_layers

    model_hash = _safe_hash(model_hash)
    class_inputs = _check_images("class_inputs", class_inputs, None)
    if len(class_inputs) == 0:
        raise TCAVError("class_inputs: no images of the target class to compute TCAV scores on")
    chw = tuple(class_inputs.shape[1:])
    random_pool = _check_images("random_pool", random_pool, chw)
    concepts = {str(k): _check_images(f"concepts[{k!r}]", v, chw) for k, v in concepts.items()}
    if not isinstance(target_class, (int, np.integer)) or isinstance(target_class, bool):
        raise TCAVError(f"target_class: expected a class index (int), got {target_class!r}")
    target_class = int(target_class)

    work = working_copy(model)
    device = next(itertools.chain(work.parameters(), work.buffers()), torch.zeros(0)).device
    with torch.no_grad():
        n_out = work(class_inputs[:1].to(device)).shape[-1]
    if not 0 <= target_class < n_out:
        raise TCAVError(f"target_class: expected an index in [0, {n_out}), got {target_class}")

    resolved = resolve_layers(work, list(cfg.layers))
    modules = list(dict.fromkeys(r.capture for r in resolved))  # captum layer names, deduplicated

    # ---- concept examples and random sets ------------------------------------------------------
    n_random = cfg.random_set_size
    if len(random_pool) < 2 * n_random:
        shrunk = len(random_pool) // 2
        log.warning(
            "random_pool has %d images, fewer than two random sets of %d: using sets of %d",
            len(random_pool), n_random, shrunk,
        )
        n_random = shrunk
    pool_ok = n_random >= cfg.min_examples

    rows: list[dict[str, Any]] = []
    tested: dict[str, np.ndarray] = {}
    for name, x in concepts.items():
        status = "ok"
        if len(x) < cfg.min_examples:
            status = "too_few_examples"
        elif not pool_ok:
            status = "too_few_random"
        idx = _select_examples(name, len(x), cfg)
        if status == "ok":
            tested[name] = idx
        for r in resolved:
            rows.append({
                "target_class": target_class, "concept": name, "layer": r.name, "status": status,
                "n_available": len(x), "n_examples": len(idx) if status != "too_few_examples" else len(x),
                "n_random": n_random, "n_runs": cfg.n_runs, "score_type": cfg.score,
            })
        if status != "ok":
            log.warning(
                "concept %r: %s (%d examples, %d random images per set; at least %d needed): not tested",
                name, status, len(x), n_random, cfg.min_examples,
            )

    settings_dir = cache_dir_for(cache_dir, model_hash, cfg)
    runs_rows: list[dict[str, Any]] = []
    n_trained = n_cached = 0
    if tested:
        by_id: dict[int, Any] = {}

        def make_concept(role: str, source: torch.Tensor, idx: np.ndarray, hashes: Sequence[bytes]) -> Any:
            """The captum ``Concept`` of ``source[idx]``; ``hashes`` of every row of ``source``."""
            cid = _set_id(role, [hashes[i] for i in idx])
            if cid not in by_id:  # identical example sets share one captum Concept
                by_id[cid] = Concept(cid, role, _Batches(source, idx, cfg.batch_size, device))
            return by_id[cid]

        concept_sets = {
            name: make_concept("concept", concepts[name], idx, _row_hashes(concepts[name]))
            for name, idx in tested.items()
        }

        pool_hashes = _row_hashes(random_pool)
        random_a, random_b = [], []
        for run in range(cfg.n_runs):
            perm = np.random.default_rng([cfg.seed, 1, run]).permutation(len(random_pool))
            random_a.append(make_concept("random", random_pool, perm[:n_random], pool_hashes))
            random_b.append(make_concept("random", random_pool, perm[n_random : 2 * n_random], pool_hashes))

        # ---- sensitivities of the target logit on the class inputs (once per layer) -----------
        sens = dict(zip(modules, _sensitivities(work, modules, class_inputs, target_class, cfg.batch_size, device), strict=True))

        settings_dir.mkdir(parents=True, exist_ok=True)
        model_json = settings_dir.parent / "model.json"
        if not model_json.is_file():
            write_json(model_json, {"model_sha256": model_hash})
        if not (settings_dir / "settings.json").is_file():
            write_json(settings_dir / "settings.json", cfg.cav_settings())

        classifier = _make_captum_classifier(cfg)
        scores: dict[tuple[str, str | None, int], tuple[float, float, float, str]] = {}
        with tempfile.TemporaryDirectory(prefix="inviz-tcav-") as scratch:
            save_path = str(Path(scratch) / "captum")
            model_id = settings_dir.name
            tcav = _tcav_class(TCAV)(work, modules, model_id=model_id, classifier=classifier, save_path=save_path)
            tcav.pool_source = random_pool
            cav_dir = Path(save_path) / model_id
            av_dir = Path(save_path) / "av" / model_id

            for run in tqdm(range(cfg.n_runs), desc=f"TCAV class {target_class}", leave=False):
                a, b = random_a[run], random_b[run]
                exp_sets = [[c, a] for c in concept_sets.values()] + [[b, a]]
                exp_sets = [list(s) for s in dict.fromkeys(tuple(s) for s in exp_sets)]
                files = {
                    (tuple(s), m): Path(CAV.assemble_save_path(save_path, model_id, s, m)).name
                    for s in exp_sets for m in modules
                }
                # cached CAVs in (an unreadable file is dropped and retrained)
                for (s, m), fname in files.items():
                    src = settings_dir / fname
                    if src.is_file() and not (cav_dir / fname).is_file():
                        shutil.copyfile(src, cav_dir / fname)
                        try:
                            with warnings.catch_warnings():
                                warnings.filterwarnings("ignore", category=DeprecationWarning)
                                CAV.load(save_path, model_id, list(s), m)
                        except Exception as err:  # a corrupt or foreign file: retrain and replace it
                            log.warning("unreadable CAV cache file %s (%s): retraining it", src, err)
                            (cav_dir / fname).unlink()
                            src.unlink()
                        else:
                            n_cached += 1
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", category=DeprecationWarning)  # numpy.core in CAV.load
                    cavs = tcav.compute_cavs(exp_sets)
                # new CAVs out (atomically), scratch activations of this run's random sets away
                for fname in files.values():
                    if not (settings_dir / fname).is_file():
                        _copy_atomic(cav_dir / fname, settings_dir / fname)
                for rs in (a, b):
                    shutil.rmtree(av_dir / rs.identifier, ignore_errors=True)
                for m in modules:
                    for name, pos in [*concept_sets.items(), (None, b)]:
                        cav = cavs[_key(pos, a)][m]
                        sc, mg = _tcav_scores(sens[m], cav, pos.id)
                        accs = float(cav.stats.get("accs", float("nan")))
                        scores[(m, name, run)] = (sc, mg, accs, files[((pos, a), m)])
                for s in exp_sets:  # keep memory flat: CAVs of finished runs are not needed
                    tcav.cavs.pop(_key(*s), None)
        n_trained = classifier.n_trained
        if classifier.n_not_converged:
            log.warning(
                "%d of %d CAV classifiers stopped at max_iter=%d before reaching tol=%g",
                classifier.n_not_converged, n_trained, cfg.max_iter, cfg.tol,
            )

        pick = 0 if cfg.score == "sign_count" else 1
        for r in resolved:
            for name in [*tested, None]:
                for run in range(cfg.n_runs):
                    sc = scores[(r.capture, name, run)]
                    runs_rows.append({
                        "layer": r.name, "kind": "random" if name is None else "concept", "concept": name,
                        "run": run, "score": sc[pick], "cav_accuracy": sc[2], "cav_file": sc[3],
                    })

    runs = pd.DataFrame(runs_rows, columns=["layer", "kind", "concept", "run", "score", "cav_accuracy", "cav_file"])
    table = pd.DataFrame(rows)
    for col in TABLE_COLUMNS:
        if col not in table:
            table[col] = np.nan
    table["significant"] = False
    table["direction"] = None
    table["n_tests"] = 0
    for r in resolved:
        sel = (table["layer"] == r.name) & (table["status"] == "ok")
        if not sel.any():
            continue
        null = runs[(runs["layer"] == r.name) & (runs["kind"] == "random")]["score"].to_numpy()
        for i in table.index[sel]:
            cr = runs[(runs["layer"] == r.name) & (runs["concept"] == table.at[i, "concept"])]
            s = cr["score"].to_numpy()
            t, p = _ttest(s, null, cfg.equal_var)
            table.loc[i, ["tcav_score", "tcav_std", "random_score_mean", "random_score_std", "cav_accuracy"]] = [
                s.mean(), s.std(ddof=1), null.mean(), null.std(ddof=1), cr["cav_accuracy"].mean()
            ]
            table.loc[i, ["t_statistic", "p_value"]] = [t, p]
            table.at[i, "direction"] = "positive" if s.mean() > null.mean() else "negative"
        idx = table.index[sel]
        p = table.loc[idx, "p_value"].to_numpy(dtype=float)
        finite = np.isfinite(p)
        p_adj = np.full_like(p, np.nan)
        p_adj[finite] = adjust_pvalues(p[finite], cfg.correction, cfg.alpha)
        table.loc[idx, "p_adjusted"] = p_adj
        table.loc[idx, "n_tests"] = int(finite.sum())
        table.loc[idx, "significant"] = np.isfinite(p_adj) & (p_adj < cfg.alpha)
    table = table[TABLE_COLUMNS].reset_index(drop=True)
    table["significant"] = table["significant"].astype(bool)
    table["n_tests"] = table["n_tests"].astype(int)
    log.info("TCAV class %d: %d CAVs trained, %d from the cache (%s)", target_class, n_trained, n_cached, settings_dir)
    return TCAVResult(table, runs, n_trained, n_cached, settings_dir)


def _key(*concepts: Any) -> str:
    from captum.concept._utils.common import concepts_to_str

    return concepts_to_str(list(concepts))


def validate_concepts(
    model: nn.Module,
    target_class: int,
    concepts: Mapping[str, torch.Tensor],
    random_pool: torch.Tensor,
    class_inputs: torch.Tensor,
    cfg: TCAVConfig,
    cache_dir: str | Path,
    model_hash: str,
) -> pd.DataFrame:
    """TCAV validation table of concepts for one class: :attr:`TCAVResult.table` of :func:`run_tcav`.

    One row per (concept, layer) with ``concept, layer, n_examples, tcav_score, tcav_std,
    random_score_mean, t_statistic, p_value, p_adjusted, significant, status`` and more (see
    :class:`TCAVResult`).
    """
    return run_tcav(model, target_class, concepts, random_pool, class_inputs, cfg, cache_dir, model_hash).table
