"""TCAV validation of concept labels (docs/method.md §4, Figure 4 of the paper).

A global explanation names, for a class and a layer, the top labels of the cluster maps; each
label is validated with TCAV (Kim et al. 2018, `arXiv:1711.11279 <https://arxiv.org/abs/1711.11279>`_)
as the authors did: 20-30 concept examples per label, 50 random runs, a two-sided t-test against
random-vs-random scores, Bonferroni over the labels tested for the class and layer.

This package is data-format independent: it takes tensors. :mod:`inviz.concepts.explain` builds
the concept examples from cluster maps and labels (with :func:`reveal_region`) and calls
:func:`run_tcav`.

Modules
-------
``config``      :class:`TCAVConfig` (the ``global.tcav`` params), :data:`CAV_CLASSIFIERS`
``examples``    :func:`reveal_region`, input checks, seeded concept subsampling
``cache``       the persistent CAV folder keyed by the model hash (layout in its docstring)
``classifier``  the seeded captum ``Classifier`` (imports captum)
``pool``        captum's ``TCAV`` computing activations once; every captum private API (imports captum)
``run``         :func:`run_tcav`, :class:`TCAVResult`, :func:`working_copy`

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
   (``correction``, Bonferroni by default, via :func:`inviz.core.stats.adjust_pvalues`).
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
score itself is computed by :mod:`inviz.concepts.tcav.run` (see there why).

The layer is captured where :func:`inviz.fmaps.gradients.resolve_layers` captures it: a VGG
convolution (``block5_conv3`` or ``features.28``) at the output of its ReLU, as Keras' convolution
layers include their activation.
"""

from inviz.concepts.tcav.cache import cache_dir_for
from inviz.concepts.tcav.config import CACHE_FORMAT, CAV_CLASSIFIERS, TCAVConfig, TCAVError
from inviz.concepts.tcav.examples import reveal_region
from inviz.concepts.tcav.run import RUN_COLUMNS, TABLE_COLUMNS, TCAVResult, run_tcav, working_copy

__all__ = [
    "CACHE_FORMAT",
    "CAV_CLASSIFIERS",
    "RUN_COLUMNS",
    "TABLE_COLUMNS",
    "TCAVConfig",
    "TCAVError",
    "TCAVResult",
    "cache_dir_for",
    "reveal_region",
    "run_tcav",
    "working_copy",
]
