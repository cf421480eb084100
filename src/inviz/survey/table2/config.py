"""Table 2 configuration (docs/method.md §5): names, columns, the paper's claims and ``Table2Config``.

Also the table order every part of the analysis shares: methods and aspects in the order of
``Table2Config.methods`` / ``Table2Config.aspects`` (or of first appearance when those are ``null``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from inviz.core.checks import check_unit
from inviz.core.errors import InvizError

#: the five explanation methods of the survey, in the paper's row order
PAPER_METHODS: tuple[str, ...] = ("Grad-CAM", "LIME", "SHAP (Gradient Explainer)", "INV (Simplified)", "INV")
#: the five rated aspects, in the paper's column order
PAPER_ASPECTS: tuple[str, ...] = (
    "Understandability",
    "Usefulness",
    "Trustworthiness",
    "Informativeness",
    "Satisfaction",
)

#: columns of the summary input (B), exactly as in the CSV header (the raw-responses input A has
#: :data:`~inviz.survey.responses.RESPONSE_COLUMNS`)
SUMMARY_COLUMNS: tuple[str, ...] = ("method", "aspect", "mean", "sd", "n")

#: test names used in the ``test`` column of the tests table
PAIRED_T, WILCOXON, WELCH_T = "paired_t", "wilcoxon", "welch_t"

#: columns of every tests table (by-background tables add ``group`` in front)
TEST_COLUMNS: tuple[str, ...] = (
    "aspect",
    "method_a",
    "method_b",
    "test",
    "n_a",
    "n_b",
    "mean_a",
    "mean_b",
    "mean_diff",
    "statistic",
    "df",
    "p_value",
    "p_adjusted",
    "significant",
    "effect_size",
    "effect_size_name",
    "correction",
    "family_size",
    "note",
)

Correction = Literal[
    "bonferroni",
    "sidak",
    "holm-sidak",
    "holm",
    "simes-hochberg",
    "hommel",
    "fdr_bh",
    "fdr_by",
    "fdr_tsbh",
    "fdr_tsbky",
]


class Table2Error(InvizError, ValueError):
    """Table 2 cannot be computed from the given data (too few participants, no comparisons)."""


class Table2InputError(Table2Error):
    """A survey CSV has a missing column, a bad cell, an unknown name or a duplicate row."""


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, checked against the tests.

    Parameters
    ----------
    name : str
        Short key (metrics, MLflow), e.g. ``inv_best_informativeness``.
    text : str
        The claim as the paper states it (shown in the report).
    kind : {"greater", "no_difference"}
        ``greater``: on every aspect in ``aspects`` each method in ``methods`` has a higher mean
        than each method in ``versus`` and the difference is significant (adjusted p < alpha);
        ``no_difference``: on every aspect no pair of ``methods`` differs significantly.
    aspects, methods, versus : tuple of str
        Names as in the data (``versus`` only for ``greater``).
    """

    name: str
    text: str
    kind: Literal["greater", "no_difference"]
    aspects: tuple[str, ...]
    methods: tuple[str, ...]
    versus: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.aspects or not self.methods:
            raise ValueError(f"claim {self.name!r}: aspects and methods must not be empty")
        if self.kind == "greater" and not self.versus:
            raise ValueError(f"claim {self.name!r}: kind 'greater' needs a 'versus' list")
        if self.kind == "no_difference":
            if self.versus:
                raise ValueError(f"claim {self.name!r}: kind 'no_difference' takes no 'versus' list")
            if len(self.methods) < 2:
                raise ValueError(f"claim {self.name!r}: kind 'no_difference' needs at least two methods")
        if set(self.methods) & set(self.versus):
            raise ValueError(f"claim {self.name!r}: a method is in both 'methods' and 'versus'")


_OTHER_ASPECTS = ("Understandability", "Usefulness", "Trustworthiness", "Satisfaction")
_TOP3 = ("INV", "INV (Simplified)", "Grad-CAM")

#: docs/method.md §5 "Claims", one entry per checkable statement
PAPER_CLAIMS: tuple[Claim, ...] = (
    Claim(
        name="inv_best_informativeness",
        text="On informativeness INV is significantly above every other method.",
        kind="greater",
        aspects=("Informativeness",),
        methods=("INV",),
        versus=("Grad-CAM", "LIME", "SHAP (Gradient Explainer)", "INV (Simplified)"),
    ),
    Claim(
        name="inv_simplified_informativeness",
        text="On informativeness INV (Simplified) is significantly above Grad-CAM, LIME and SHAP.",
        kind="greater",
        aspects=("Informativeness",),
        methods=("INV (Simplified)",),
        versus=("Grad-CAM", "LIME", "SHAP (Gradient Explainer)"),
    ),
    Claim(
        name="top3_tied_other_aspects",
        text="On the other four aspects INV, INV (Simplified) and Grad-CAM do not differ significantly.",
        kind="no_difference",
        aspects=_OTHER_ASPECTS,
        methods=_TOP3,
    ),
    Claim(
        name="lime_shap_trail_other_aspects",
        text="On the other four aspects LIME and SHAP trail "
        "(significantly below INV, INV (Simplified) and Grad-CAM).",
        kind="greater",
        aspects=_OTHER_ASPECTS,
        methods=_TOP3,
        versus=("LIME", "SHAP (Gradient Explainer)"),
    ),
)


def _duplicates(names: Sequence[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


@dataclass(frozen=True)
class Table2Config:
    """``table2`` section of ``params.yaml``.

    Parameters
    ----------
    alpha : float
        Significance level applied to the adjusted p-values (0.05).
    correction : str
        Multiple-comparison method passed explicitly to statsmodels' ``multipletests(method=...)``;
        default ``holm`` (statsmodels' default is ``hs``, Holm-Sidak).
    family : {"aspect", "all"}
        ``aspect``: correct within each aspect (the paper tested within each aspect; 10 comparisons
        for 5 methods); ``all``: over the whole table. Each test type and each AI-background group
        is always its own family.
    paired_effect_size : {"d_z", "d_av"}
        Effect size of the paired t-test: ``d_z`` = mean(diff) / sd(diff), or ``d_av`` =
        mean(diff) / mean(sd_a, sd_b). The Wilcoxon test always reports the matched-pairs
        rank-biserial correlation (zeros handled as by ``wilcoxon_zero_method``).
    welch_effect_size : {"hedges_g", "cohens_d"}
        Effect size of Welch's test from summaries: ``hedges_g`` (Cohen's d times the small-sample
        correction 1 - 3 / (4 (n_a + n_b) - 9)) or ``cohens_d``; both use the pooled sd.
    wilcoxon_zero_method, wilcoxon_method, wilcoxon_correction
        Passed to :func:`scipy.stats.wilcoxon` (defaults are scipy's: ``wilcox`` drops zero
        differences; ``auto`` is exact or an exhaustive permutation test for small samples, else
        normal approximation; no continuity correction).
    claim_test : {"paired_t", "wilcoxon"}
        Which test of the raw-responses input decides the claims (``paired_t``, as the paper;
        ``wilcoxon`` is reported alongside). Summaries always use Welch.
    rating_min, rating_max : float
        The Likert scale (1-7); ratings (and summary means) outside it are errors.
    decimals : int
        Decimals of mean ± sd in the rendered tables.
    methods, aspects : tuple of str or None
        Allowed names, in table order (default: the paper's five methods and five aspects); a name
        not in the list is an error. ``null`` accepts any name (table order = first appearance).
    claims : tuple of Claim
        The claims to check (default: docs/method.md §5).
    ai_background_share : float or None
        The paper's share of respondents with an AI background (0.71), shown next to the share in
        raw responses; ``null`` to omit.
    interval : {"ci", "sd"}
        Error bars of the ratings plot: ``ci`` (t-interval of the mean at ``ci_level``) or ``sd``.
    ci_level : float
        Confidence level of the plotted intervals (0.95).
    """

    alpha: float = 0.05
    correction: Correction = "holm"
    family: Literal["aspect", "all"] = "aspect"
    paired_effect_size: Literal["d_z", "d_av"] = "d_z"
    welch_effect_size: Literal["hedges_g", "cohens_d"] = "hedges_g"
    wilcoxon_zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox"
    wilcoxon_method: Literal["auto", "exact", "asymptotic"] = "auto"
    wilcoxon_correction: bool = False
    claim_test: Literal["paired_t", "wilcoxon"] = "paired_t"
    rating_min: float = 1.0
    rating_max: float = 7.0
    decimals: int = 2
    methods: tuple[str, ...] | None = PAPER_METHODS
    aspects: tuple[str, ...] | None = PAPER_ASPECTS
    claims: tuple[Claim, ...] = PAPER_CLAIMS
    ai_background_share: float | None = 0.71
    interval: Literal["ci", "sd"] = "ci"
    ci_level: float = 0.95

    def __post_init__(self) -> None:
        check_unit(self, ("alpha", "ci_level"), "()")
        if not self.rating_min < self.rating_max:
            raise ValueError(f"rating_min ({self.rating_min}) must be below rating_max ({self.rating_max})")
        if self.decimals < 0:
            raise ValueError(f"decimals: expected >= 0, got {self.decimals}")
        for key in ("methods", "aspects"):
            names = getattr(self, key)
            if names is not None:
                if not names:
                    raise ValueError(f"{key}: expected a non-empty list or null")
                dup = _duplicates(names)
                if dup:
                    raise ValueError(f"{key}: duplicate name(s) {', '.join(dup)}")
        dup = _duplicates([c.name for c in self.claims])
        if dup:
            raise ValueError(f"claims: duplicate claim name(s) {', '.join(dup)}")
        for c in self.claims:
            self._check_claim_names(c)

    def _check_claim_names(self, c: Claim) -> None:
        if self.methods is not None:
            bad = [m for m in (*c.methods, *c.versus) if m not in self.methods]
            if bad:
                raise ValueError(f"claim {c.name!r}: unknown method(s) {', '.join(bad)} (not in methods)")
        if self.aspects is not None:
            bad = [a for a in c.aspects if a not in self.aspects]
            if bad:
                raise ValueError(f"claim {c.name!r}: unknown aspect(s) {', '.join(bad)} (not in aspects)")


def table_order(values: Iterable[str], allowed: Sequence[str] | None) -> list[str]:
    """Order the distinct ``values`` as the table does.

    Parameters
    ----------
    values : iterable of str
        Names as they occur in the data.
    allowed : sequence of str or None
        The configured order (``Table2Config.methods`` / ``aspects``); ``None``: first appearance.

    Returns
    -------
    list of str
        The names present in ``values``, ordered as ``allowed`` (or by first appearance).
    """
    present = list(dict.fromkeys(values))
    if allowed is None:
        return present
    return [n for n in allowed if n in set(present)]


def sort_rows(frame: pd.DataFrame, cfg: Table2Config) -> pd.DataFrame:
    """Rows of a ``method, aspect, ...`` frame in table order: by method, then by aspect.

    Parameters
    ----------
    frame : DataFrame of shape (R, C) with columns ``method`` and ``aspect``.
    cfg : the method and aspect order.

    Returns
    -------
    DataFrame of shape (R, C), re-indexed from 0.
    """
    key_m = {m: i for i, m in enumerate(table_order(frame["method"], cfg.methods))}
    key_a = {a: i for i, a in enumerate(table_order(frame["aspect"], cfg.aspects))}
    order = np.lexsort((frame["aspect"].map(key_a).to_numpy(), frame["method"].map(key_m).to_numpy()))
    return frame.iloc[order].reset_index(drop=True)
