"""Verdicts on the paper's claims (docs/method.md §5, ``Table2Config.claims``) from a tests table.

A ``greater`` comparison holds when the first method's mean is higher and the adjusted p-value is
below ``alpha``; a ``no_difference`` comparison holds when it is not significant. A claim holds
when all its comparisons hold, and is untestable when one of them is missing from the data.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from inviz.survey.table2.config import WELCH_T, Claim, Table2Config


@dataclass(frozen=True)
class Comparison:
    """One pairwise comparison a claim depends on (``higher`` expected above ``lower``, or a tie)."""

    aspect: str
    higher: str
    lower: str
    mean_higher: float
    mean_lower: float
    p_value: float
    p_adjusted: float
    holds: bool


@dataclass(frozen=True)
class ClaimResult:
    """Verdict on one claim: ``holds`` is True/False, or None when the data lack a method/aspect."""

    claim: Claim
    holds: bool | None
    evidence: str
    comparisons: tuple[Comparison, ...] = field(default=())


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _describe(c: Comparison, kind: str, correction: str) -> str:
    rel = ">" if kind == "greater" else "vs"
    return (
        f"{c.higher} {rel} {c.lower} on {c.aspect}: mean {c.mean_higher:.2f} vs {c.mean_lower:.2f}, "
        f"p = {_fmt_p(c.p_value)}, p_adj ({correction}) = {_fmt_p(c.p_adjusted)}"
    )


def _pairs(claim: Claim) -> list[tuple[str, str, str]]:
    """``(aspect, expected higher or first, expected lower or second)`` of every comparison."""
    if claim.kind == "greater":
        return [(a, m, v) for a in claim.aspects for m in claim.methods for v in claim.versus]
    return [(a, m, v) for a in claim.aspects for m, v in itertools.combinations(claim.methods, 2)]


def _comparisons(claim: Claim, index: dict[tuple[str, str, str], Any]) -> tuple[list[Comparison], list[str]]:
    """Find the claim's comparisons in ``index`` ((aspect, method_a, method_b) -> row); list the missing."""
    comps, missing = [], []
    for aspect, hi, lo in _pairs(claim):
        row, flip = index.get((aspect, hi, lo)), False
        if row is None:
            row, flip = index.get((aspect, lo, hi)), True
        if row is None:
            missing.append(f"{hi} vs {lo} on {aspect}")
            continue
        m_hi, m_lo = (row.mean_b, row.mean_a) if flip else (row.mean_a, row.mean_b)
        sig = bool(row.significant)
        ok = (sig and m_hi > m_lo) if claim.kind == "greater" else not sig
        comps.append(
            Comparison(
                aspect, hi, lo, float(m_hi), float(m_lo), float(row.p_value), float(row.p_adjusted), ok
            )
        )
    return comps, missing


def _evidence(claim: Claim, comps: list[Comparison], correction: str) -> str:
    """One sentence: the deciding comparison when the claim holds, every failing one when not."""
    failed = [c for c in comps if not c.holds]
    if claim.kind == "greater":
        if not failed:
            worst = max(comps, key=lambda c: c.p_adjusted)
            return (
                f"all {len(comps)} comparisons significant in the stated direction "
                f"(largest: {_describe(worst, claim.kind, correction)})"
            )
        return f"{len(failed)} of {len(comps)} comparisons fail: " + "; ".join(
            _describe(c, claim.kind, correction)
            + (" (lower mean)" if c.mean_higher <= c.mean_lower else " (not significant)")
            for c in failed
        )
    if not failed:
        best = min(comps, key=lambda c: c.p_adjusted if math.isfinite(c.p_adjusted) else 2.0)
        return (
            f"none of {len(comps)} comparisons significant "
            f"(smallest: {_describe(best, claim.kind, correction)})"
        )
    return f"{len(failed)} of {len(comps)} comparisons significant: " + "; ".join(
        _describe(c, claim.kind, correction) for c in failed
    )


def check_claims(
    tests: pd.DataFrame, cfg: Table2Config | None = None, test: str | None = None
) -> list[ClaimResult]:
    """Check ``cfg.claims`` against a tests table.

    Parameters
    ----------
    tests : DataFrame of shape (K, 19)
        A tests table (:func:`~inviz.survey.table2.significance.welch_tests` or
        :func:`~inviz.survey.table2.significance.paired_tests`).
    cfg : the claims, alpha and correction name; default :class:`Table2Config`.
    test : which test decides (default: ``welch_t`` if present, else ``cfg.claim_test``).

    Returns
    -------
    list of ClaimResult
        One per claim of ``cfg.claims``, in order.
    """
    cfg = cfg or Table2Config()
    if test is None:
        test = WELCH_T if (tests["test"] == WELCH_T).any() else cfg.claim_test
    sub = tests[tests["test"] == test]
    index = {(row.aspect, row.method_a, row.method_b): row for row in sub.itertuples(index=False)}
    results = []
    for claim in cfg.claims:
        comps, missing = _comparisons(claim, index)
        if missing:
            evidence = f"not testable: no {test} result for {'; '.join(missing)}"
            results.append(ClaimResult(claim, None, evidence, tuple(comps)))
            continue
        holds = all(c.holds for c in comps)
        results.append(ClaimResult(claim, holds, _evidence(claim, comps, cfg.correction), tuple(comps)))
    return results
