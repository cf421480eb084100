"""Significance tests of Table 2 (docs/method.md §5) and their multiple-comparison correction.

* **summaries** (input B): Welch's t-test from the summary statistics
  (:func:`scipy.stats.ttest_ind_from_stats`) for every pair of methods within each aspect;
* **raw responses** (input A): a paired t-test (:func:`scipy.stats.ttest_rel`) and a Wilcoxon
  signed-rank test (:func:`scipy.stats.wilcoxon`, ratings are ordinal) for every pair of methods
  within each aspect, over the participants who rated every method of that aspect
  (:func:`complete_cases`; the others are dropped and counted).

P-values are corrected with :func:`inviz.core.stats.adjust_pvalues` (statsmodels'
``multipletests`` with an explicit ``method``, ``Table2Config.correction``). A family is the
comparisons of one test within one aspect (``family: aspect``, as the paper tested) or within the
whole table (``family: all``); different tests and AI-background groups are always separate families.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from inviz.core.stats import adjust_pvalues
from inviz.survey.table2.config import (
    PAIRED_T,
    TEST_COLUMNS,
    WELCH_T,
    WILCOXON,
    Table2Config,
    Table2Error,
    sort_rows,
    table_order,
)


def apply_correction(tests: pd.DataFrame, cfg: Table2Config) -> pd.DataFrame:
    """Fill ``p_adjusted``, ``significant``, ``correction`` and ``family_size`` of a tests table.

    Families: per ``test`` (and ``group`` when present), and per ``aspect`` when
    ``cfg.family == "aspect"``. ``significant`` = adjusted p < ``cfg.alpha``.

    Parameters
    ----------
    tests : DataFrame of shape (K, C)
        One row per comparison, with ``test``, ``aspect``, ``p_value`` (and optionally ``group``).
    cfg : the correction method, the family and alpha.

    Returns
    -------
    DataFrame of shape (K, C')
        A copy with the four columns filled (NaN p-values stay NaN and are never significant).
    """
    tests = tests.copy()
    keys = [k for k in ("group", "test") if k in tests.columns]
    if cfg.family == "aspect":
        keys.append("aspect")
    tests["p_adjusted"] = np.nan
    tests["family_size"] = 0
    for _, idx in tests.groupby(keys[0] if len(keys) == 1 else keys, sort=False).groups.items():
        p = tests.loc[idx, "p_value"].to_numpy(dtype=float)
        tests.loc[idx, "p_adjusted"] = adjust_pvalues(p, cfg.correction, cfg.alpha)
        tests.loc[idx, "family_size"] = int(np.isfinite(p).sum())
    tests["significant"] = (tests["p_adjusted"] < cfg.alpha).fillna(False).astype(bool)
    tests["correction"] = cfg.correction
    return tests


def welch_from_summary(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int, effect: str = "hedges_g"
) -> dict[str, float]:
    """Welch's t-test from summary statistics, its Welch-Satterthwaite df and an effect size.

    Parameters
    ----------
    mean_a, sd_a, n_a, mean_b, sd_b, n_b : float, float, int
        Mean, standard deviation (ddof 1) and size of the two groups.
    effect : {"hedges_g", "cohens_d"}
        The effect size (both with the pooled sd).

    Returns
    -------
    dict of str to float
        ``statistic`` (t for a - b), ``p_value`` (two-sided), ``df``, ``effect_size`` (NaN when
        both sd are 0).
    """
    res = stats.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, equal_var=False)
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1)) if va + vb > 0 else np.nan
    pooled = math.sqrt(((n_a - 1) * sd_a**2 + (n_b - 1) * sd_b**2) / (n_a + n_b - 2))
    d = (mean_a - mean_b) / pooled if pooled > 0 else np.nan
    if effect == "hedges_g":
        d *= 1.0 - 3.0 / (4.0 * (n_a + n_b) - 9.0)
    return {
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "df": float(df),
        "effect_size": float(d),
    }


def signed_ranks(diff: np.ndarray, zero_method: str = "wilcox") -> tuple[np.ndarray, float]:
    """Rank ``|diff|`` as the signed-rank statistic R+ sums them; also the zeros' share of R+.

    Parameters
    ----------
    diff : ndarray of shape (P,)
        Paired differences a - b.
    zero_method : {"wilcox", "pratt", "zsplit"}
        Zeros as scipy's ``zero_method``: ``wilcox`` drops them before ranking (rank 0 here),
        ``pratt`` ranks them and then drops their ranks, ``zsplit`` splits their ranks between R+
        and R-.

    Returns
    -------
    ranks : ndarray of shape (P,)
        Average ranks of ``|diff|``; R+ = ``ranks[diff > 0].sum() + zero_share``, R- likewise.
    zero_share : float
        Half the zeros' ranks (``zsplit``), else 0.
    """
    d = np.asarray(diff, dtype=float)
    zero = d == 0
    ranks = np.zeros_like(d)
    if zero_method == "wilcox":
        if (~zero).any():
            ranks[~zero] = stats.rankdata(np.abs(d[~zero]))
    elif d.size:
        ranks = stats.rankdata(np.abs(d))
    zero_share = float(ranks[zero].sum() / 2) if zero_method == "zsplit" else 0.0
    return ranks, zero_share


def rank_biserial(diff: np.ndarray, zero_method: str = "wilcox") -> float:
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) of paired differences.

    Parameters
    ----------
    diff : ndarray of shape (P,)
        Paired differences a - b.
    zero_method : {"wilcox", "pratt", "zsplit"}
        Zeros as in :func:`signed_ranks`.

    Returns
    -------
    float
        In [-1, 1]; NaN when no non-zero difference is left.
    """
    d = np.asarray(diff, dtype=float)
    ranks, zero_share = signed_ranks(d, zero_method)
    r_plus = ranks[d > 0].sum() + zero_share
    r_minus = ranks[d < 0].sum() + zero_share
    total = r_plus + r_minus
    return float((r_plus - r_minus) / total) if total > 0 else float("nan")


#: scipy's ``wilcoxon(method="auto")`` tests samples up to this size by all 2**n sign flips when
#: there are ties or zero differences (2**13 < its 9,999 resamples, so the p-value is exact)
EXHAUSTIVE_MAX_N = 13


def wilcoxon_test(a: np.ndarray, b: np.ndarray, cfg: Table2Config) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of ``a`` vs ``b``: :func:`scipy.stats.wilcoxon`'s values.

    Where scipy's ``method="auto"`` picks its exhaustive permutation test (ties or zero
    differences, n <= :data:`EXHAUSTIVE_MAX_N`: the usual case for Likert ratings of a small
    survey), scipy calls its statistic once per sign flip, 2**n Python calls (1-2 s per test).
    Here the same :func:`scipy.stats.permutation_test` evaluates R+ for every flip at once
    (flipping signs leaves ``|d|``, and so the ranks, unchanged): the same statistic and p-value
    (``tests/test_table2.py`` compares them with scipy's on thousands of samples), ~100x faster.

    Parameters
    ----------
    a, b : ndarray of shape (P,)
        Paired ratings; not all differences zero.
    cfg : ``wilcoxon_zero_method``, ``wilcoxon_method``, ``wilcoxon_correction``.

    Returns
    -------
    statistic : float
        min(R+, R-), as scipy.
    p_value : float
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    nonzero = np.abs(d[d != 0])
    exhaustive = (
        cfg.wilcoxon_method == "auto"
        and d.size <= EXHAUSTIVE_MAX_N
        and (nonzero.size < d.size or np.unique(nonzero).size < nonzero.size)
    )
    w = stats.wilcoxon(
        a,
        b,
        zero_method=cfg.wilcoxon_zero_method,
        correction=cfg.wilcoxon_correction,
        method="asymptotic" if exhaustive else cfg.wilcoxon_method,
    )
    if not exhaustive:
        return float(w.statistic), float(w.pvalue)
    ranks, zero_share = signed_ranks(d, cfg.wilcoxon_zero_method)

    def r_plus(flipped: np.ndarray, axis: int) -> np.ndarray:
        return np.sum((np.moveaxis(flipped, axis, -1) > 0) * ranks, axis=-1) + zero_share

    res = stats.permutation_test(
        (d,),
        r_plus,
        permutation_type="samples",
        vectorized=True,
        n_resamples=stats.PermutationMethod().n_resamples,
        alternative="two-sided",
        axis=-1,
    )
    return float(w.statistic), float(res.pvalue)


def paired_pair_tests(a: np.ndarray, b: np.ndarray, cfg: Table2Config) -> list[dict[str, Any]]:
    """Paired t-test and Wilcoxon signed-rank test of ratings ``a`` vs ``b`` (same participants).

    Parameters
    ----------
    a, b : ndarray of shape (P,)
        Participant p's ratings of the two methods.
    cfg : effect size and Wilcoxon options.

    Returns
    -------
    list of two dicts
        ``paired_t`` and ``wilcoxon``, each with ``test, statistic, df, p_value, effect_size,
        effect_size_name, note``. When every difference is zero both tests are undefined: NaN
        statistic and p-value (left out of the correction, never significant) and a ``note``.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    n = d.size
    if np.all(d == 0):
        note = "all differences are zero"
        nan = float("nan")
        return [
            {
                "test": PAIRED_T,
                "statistic": nan,
                "df": float(n - 1),
                "p_value": nan,
                "effect_size": nan,
                "effect_size_name": cfg.paired_effect_size,
                "note": note,
            },
            {
                "test": WILCOXON,
                "statistic": nan,
                "df": nan,
                "p_value": nan,
                "effect_size": nan,
                "effect_size_name": "rank_biserial",
                "note": note,
            },
        ]
    t = stats.ttest_rel(a, b)
    if cfg.paired_effect_size == "d_z":
        scale = d.std(ddof=1)
    else:  # d_av
        scale = (a.std(ddof=1) + b.std(ddof=1)) / 2
    effect = float(d.mean() / scale) if scale > 0 else float(np.sign(d.mean()) * np.inf)
    w_statistic, w_p = wilcoxon_test(a, b, cfg)
    return [
        {
            "test": PAIRED_T,
            "statistic": float(t.statistic),
            "df": float(n - 1),
            "p_value": float(t.pvalue),
            "effect_size": effect,
            "effect_size_name": cfg.paired_effect_size,
            "note": "",
        },
        {
            "test": WILCOXON,
            "statistic": w_statistic,
            "df": float("nan"),
            "p_value": w_p,
            "effect_size": rank_biserial(d, cfg.wilcoxon_zero_method),
            "effect_size_name": "rank_biserial",
            "note": "",
        },
    ]


def finish_tests(rows: list[dict[str, Any]], cfg: Table2Config, group: bool = False) -> pd.DataFrame:
    """Correct ``rows`` (:func:`apply_correction`) into a tests table with :data:`TEST_COLUMNS`.

    Parameters
    ----------
    rows : list of K dicts
        One comparison each (all of :data:`TEST_COLUMNS` but the four the correction fills).
    cfg : the correction.
    group : the rows carry a ``group`` (AI background), put in front and its own family.

    Returns
    -------
    DataFrame of shape (K, 19) (20 with ``group``)
    """
    cols = (("group",) if group else ()) + TEST_COLUMNS
    filled = ("p_adjusted", "significant", "correction", "family_size")
    tests = pd.DataFrame(rows, columns=[c for c in cols if c not in filled])
    tests = (
        apply_correction(tests, cfg)
        if len(tests)
        else tests.assign(p_adjusted=np.nan, significant=False, correction=cfg.correction, family_size=0)
    )
    return tests[list(cols)]


def welch_tests(summary: pd.DataFrame, cfg: Table2Config | None = None) -> pd.DataFrame:
    """Welch's t-test from summaries for every pair of methods within each aspect (input B).

    Parameters
    ----------
    summary : DataFrame of shape (R, 5)
        A validated summary (:func:`inviz.survey.table2.inputs.validate_summary`).
    cfg : effect size, names order and correction; default :class:`Table2Config`.

    Returns
    -------
    DataFrame of shape (K, 19)
        Tests table (:data:`TEST_COLUMNS`), ``test = welch_t``; pairs in table order (method_a
        before method_b), statistic and mean_diff are a - b; corrected per :func:`apply_correction`.
    """
    cfg = cfg or Table2Config()
    rows = []
    for aspect in table_order(summary["aspect"], cfg.aspects):
        sub = summary[summary["aspect"] == aspect].set_index("method")
        for ma, mb in itertools.combinations(table_order(sub.index, cfg.methods), 2):
            ra, rb = sub.loc[ma], sub.loc[mb]
            res = welch_from_summary(
                ra["mean"], ra["sd"], int(ra["n"]), rb["mean"], rb["sd"], int(rb["n"]), cfg.welch_effect_size
            )
            note = "both sd are zero" if not math.isfinite(res["p_value"]) else ""
            rows.append(
                {
                    "aspect": aspect,
                    "method_a": ma,
                    "method_b": mb,
                    "test": WELCH_T,
                    "n_a": int(ra["n"]),
                    "n_b": int(rb["n"]),
                    "mean_a": float(ra["mean"]),
                    "mean_b": float(rb["mean"]),
                    "mean_diff": float(ra["mean"] - rb["mean"]),
                    **res,
                    "effect_size_name": cfg.welch_effect_size,
                    "note": note,
                }
            )
    return finish_tests(rows, cfg)


@dataclass(frozen=True)
class CompleteCases:
    """Participants kept per aspect for the paired tests.

    Parameters
    ----------
    ratings : dict of str to DataFrame of shape (P_a, M_a)
        One wide frame per aspect: index participant, columns the aspect's methods (table order).
    dropped : DataFrame of shape (D, 3)
        ``participant, aspect, missing``: participants without a rating for every method of the
        aspect (``missing`` lists the methods they lack).
    """

    ratings: dict[str, pd.DataFrame]
    dropped: pd.DataFrame

    def dropped_counts(self) -> dict[str, int]:
        """Participants dropped per aspect (every aspect of ``ratings``, 0 included)."""
        return dropped_per_aspect(self.dropped, self.ratings)


def dropped_per_aspect(dropped: pd.DataFrame, aspects: Iterable[str]) -> dict[str, int]:
    """Count the rows of a ``participant, aspect, missing`` frame per aspect.

    Parameters
    ----------
    dropped : DataFrame of shape (D, 3)
        :attr:`CompleteCases.dropped`.
    aspects : the aspects to report, in order (0 when none was dropped).

    Returns
    -------
    dict of str to int
    """
    counts = dropped.groupby("aspect").size() if len(dropped) else pd.Series(dtype=int)
    return {a: int(counts.get(a, 0)) for a in aspects}


def complete_cases(responses: pd.DataFrame, cfg: Table2Config | None = None) -> CompleteCases:
    """Per aspect, keep the participants who rated every method rated in that aspect.

    A participant of the data set who lacks any of them (including one who did not rate the
    aspect at all) is dropped for that aspect and listed in ``dropped``.

    Parameters
    ----------
    responses : DataFrame of shape (R, 5)
        Validated responses (:func:`inviz.survey.table2.inputs.validate_responses`).
    cfg : names order; default :class:`Table2Config`.

    Returns
    -------
    CompleteCases
    """
    cfg = cfg or Table2Config()
    everyone = list(dict.fromkeys(responses["participant"]))
    ratings, dropped = {}, []
    for aspect in table_order(responses["aspect"], cfg.aspects):
        sub = responses[responses["aspect"] == aspect]
        methods = table_order(sub["method"], cfg.methods)
        wide = sub.pivot(index="participant", columns="method", values="rating")
        wide = wide.reindex(index=everyone, columns=methods)
        complete = wide.notna().all(axis=1)
        for pid in wide.index[~complete]:
            missing = [m for m in methods if pd.isna(wide.at[pid, m])]
            dropped.append({"participant": pid, "aspect": aspect, "missing": "; ".join(missing)})
        ratings[aspect] = wide[complete]
    return CompleteCases(ratings, pd.DataFrame(dropped, columns=["participant", "aspect", "missing"]))


def describe_cases(cases: CompleteCases, cfg: Table2Config | None = None) -> pd.DataFrame:
    """Mean ± sd (ddof 1) per method × aspect over the kept participants.

    Parameters
    ----------
    cases : the kept participants (:func:`complete_cases`).
    cfg : names order; default :class:`Table2Config`.

    Returns
    -------
    DataFrame of shape (M × A, 5)
        ``method, aspect, mean, sd, n`` in table order.
    """
    cfg = cfg or Table2Config()
    rows = []
    for aspect, wide in cases.ratings.items():
        for m in wide.columns:
            x = wide[m].to_numpy(float)
            rows.append(
                {
                    "method": m,
                    "aspect": aspect,
                    "mean": float(x.mean()) if x.size else np.nan,
                    "sd": float(x.std(ddof=1)) if x.size > 1 else np.nan,
                    "n": int(x.size),
                }
            )
    frame = pd.DataFrame(rows, columns=["method", "aspect", "mean", "sd", "n"])
    return sort_rows(frame, cfg) if len(frame) else frame


def paired_rows(cases: CompleteCases, cfg: Table2Config, min_n: int) -> list[dict[str, Any]]:
    """Uncorrected paired t-test and Wilcoxon rows for every pair of methods of every aspect.

    Parameters
    ----------
    cases : the kept participants (:func:`complete_cases`).
    cfg : the test options (:func:`paired_pair_tests`).
    min_n : aspects with fewer participants are skipped.

    Returns
    -------
    list of dicts
        Rows for :func:`finish_tests`, two per pair (``paired_t``, ``wilcoxon``).
    """
    rows = []
    for aspect, wide in cases.ratings.items():
        if len(wide) < min_n:
            continue
        for ma, mb in itertools.combinations(list(wide.columns), 2):
            a, b = wide[ma].to_numpy(float), wide[mb].to_numpy(float)
            for res in paired_pair_tests(a, b, cfg):
                rows.append(
                    {
                        "aspect": aspect,
                        "method_a": ma,
                        "method_b": mb,
                        "n_a": len(a),
                        "n_b": len(b),
                        "mean_a": float(a.mean()),
                        "mean_b": float(b.mean()),
                        "mean_diff": float((a - b).mean()),
                        **res,
                    }
                )
    return rows


def paired_tests(
    responses: pd.DataFrame, cfg: Table2Config | None = None, source: str = "responses"
) -> pd.DataFrame:
    """Paired t-test and Wilcoxon for every pair of methods within each aspect (input A).

    Only participants who rated every method of the aspect enter (:func:`complete_cases`).

    Parameters
    ----------
    responses : DataFrame of shape (R, 5)
        Validated responses (:func:`inviz.survey.table2.inputs.validate_responses`).
    cfg : test options and correction; default :class:`Table2Config`.
    source : file name used in error messages.

    Returns
    -------
    DataFrame of shape (K, 19)
        Tests table (:data:`TEST_COLUMNS`), two rows per pair of methods, corrected.

    Raises
    ------
    Table2Error
        An aspect with fewer than 2 such participants (naming the aspect and the drop count).
    """
    cfg = cfg or Table2Config()
    cases = complete_cases(responses, cfg)
    require_two(cases, source)
    return finish_tests(paired_rows(cases, cfg, 2), cfg)


def require_two(cases: CompleteCases, source: str) -> None:
    """Raise :class:`Table2Error` when an aspect has fewer than 2 complete participants.

    Parameters
    ----------
    cases : the kept participants (:func:`complete_cases`).
    source : file name used in the message.
    """
    counts = cases.dropped_counts()
    for aspect, wide in cases.ratings.items():
        if len(wide) < 2:
            raise Table2Error(
                f"{source}: aspect {aspect!r}: {len(wide)} participant(s) rated every method "
                f"({', '.join(wide.columns)}), {counts[aspect]} dropped for a missing method; "
                "paired tests need at least 2"
            )
