"""The whole Table 2 analysis (docs/method.md §5): input -> table, tests, claims (:class:`Table2Result`).

* **summaries** (input B): the table as published, Welch's t-tests, claims decided by Welch;
* **raw responses** (input A): the table over the participants kept for the paired tests, the
  paired t-test and Wilcoxon per aspect, claims decided by ``Table2Config.claim_test`` (the other
  test alongside), and the same table and tests per AI-background group.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from inviz.survey.responses import BACKGROUNDS, RESPONSE_COLUMNS
from inviz.survey.table2.claims import ClaimResult, check_claims
from inviz.survey.table2.config import (
    PAIRED_T,
    SUMMARY_COLUMNS,
    WELCH_T,
    WILCOXON,
    Table2Config,
    Table2Error,
    Table2InputError,
    sort_rows,
    table_order,
)
from inviz.survey.table2.inputs import validate_responses, validate_summary
from inviz.survey.table2.significance import (
    CompleteCases,
    complete_cases,
    describe_cases,
    dropped_per_aspect,
    finish_tests,
    paired_rows,
    require_two,
    welch_tests,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Table2Result:
    """Everything :func:`analyse_summary` / :func:`analyse_responses` computes.

    Parameters
    ----------
    kind : {"summary", "responses"}
        Input B (Welch) or input A (paired t-test + Wilcoxon).
    config : Table2Config
        The configuration of the analysis.
    table : DataFrame of shape (M × A, 6)
        ``method, aspect, mean, sd, n, best`` (best = highest rounded mean of its aspect).
    tests : DataFrame of shape (K, 19)
        Tests table (:data:`~inviz.survey.table2.config.TEST_COLUMNS`).
    claims : tuple of ClaimResult
        Verdicts on ``cfg.claims`` (decided by Welch, or by ``cfg.claim_test``).
    claims_other : tuple of ClaimResult
        Responses only: the same claims decided by the other paired test.
    dropped : DataFrame of shape (D, 3) or None
        Responses only: participants dropped per aspect (``participant, aspect, missing``).
    by_background_table, by_background_tests : DataFrame or None
        Responses only: the table and tests per AI-background group (``group`` column, ``yes``/``no``).
    skipped_groups : tuple of (str, str)
        Responses only: ``(group, aspect)`` pairs with < 2 participants (no tests).
    n_participants : int or None
        Responses only: distinct participants in the data.
    ai_background_share : float or None
        Responses only: share of participants with ``ai_background = yes``.
    """

    kind: Literal["summary", "responses"]
    config: Table2Config
    table: pd.DataFrame
    tests: pd.DataFrame
    claims: tuple[ClaimResult, ...]
    claims_other: tuple[ClaimResult, ...] = ()
    dropped: pd.DataFrame | None = None
    by_background_table: pd.DataFrame | None = None
    by_background_tests: pd.DataFrame | None = None
    skipped_groups: tuple[tuple[str, str], ...] = ()
    n_participants: int | None = None
    ai_background_share: float | None = None

    @property
    def test_name(self) -> str:
        """The test that decides the claims."""
        return WELCH_T if self.kind == "summary" else self.config.claim_test

    def metrics(self) -> dict[str, Any]:
        """Scalar summary for ``metrics/table2.json`` and MLflow.

        Returns
        -------
        dict
            Counts of methods, aspects, comparisons, significant ones and claim verdicts, the
            verdict per claim (1, 0 or None); for raw responses also participants and drops.
        """
        main = self.tests[self.tests["test"] == self.test_name]
        verdicts = [c.holds for c in self.claims]
        out: dict[str, Any] = {
            "input": self.kind,
            "test": self.test_name,
            "n_methods": int(self.table["method"].nunique()),
            "n_aspects": int(self.table["aspect"].nunique()),
            "n_comparisons": int(len(main)),
            "n_significant": int(main["significant"].sum()),
            "claims_total": len(verdicts),
            "claims_hold": sum(v is True for v in verdicts),
            "claims_fail": sum(v is False for v in verdicts),
            "claims_untestable": sum(v is None for v in verdicts),
            "claims": {c.claim.name: (None if c.holds is None else int(c.holds)) for c in self.claims},
        }
        if self.kind == "responses":
            aspects = table_order(self.table["aspect"], None)
            out.update(
                {
                    "n_participants": self.n_participants,
                    "ai_background_share": self.ai_background_share,
                    "dropped_participants": dropped_per_aspect(self.dropped, aspects),
                    "dropped_total": int(len(self.dropped)),
                    "skipped_group_aspects": len(self.skipped_groups),
                }
            )
        return out


def mark_best(table: pd.DataFrame, decimals: int = 2, by: Sequence[str] = ("aspect",)) -> pd.DataFrame:
    """Add ``best``: the highest mean of each aspect (compared as rounded; ties all best).

    Parameters
    ----------
    table : DataFrame of shape (R, C)
        With ``mean`` and the ``by`` columns.
    decimals : the rounding of the comparison (as the table shows the means).
    by : the groups within which the best is marked.

    Returns
    -------
    DataFrame of shape (R, C + 1)
        A copy with the boolean column ``best``.
    """
    table = table.copy()
    rounded = table["mean"].round(decimals)
    table["best"] = rounded.eq(rounded.groupby([table[k] for k in by]).transform("max"))
    return table


def analyse_summary(summary: pd.DataFrame, cfg: Table2Config | None = None) -> Table2Result:
    """Input B: Welch's t-tests from published mean, sd, n; claims decided by Welch.

    Parameters
    ----------
    summary : DataFrame of shape (R, 5)
        A validated summary (:func:`~inviz.survey.table2.inputs.validate_summary`).
    cfg : the analysis; default :class:`Table2Config`.

    Returns
    -------
    Table2Result
        ``kind = "summary"``.
    """
    cfg = cfg or Table2Config()
    table = mark_best(sort_rows(summary[["method", "aspect", "mean", "sd", "n"]], cfg), cfg.decimals)
    tests = welch_tests(summary, cfg)
    if tests.empty:
        raise Table2Error("summary: no aspect has two methods, so there is nothing to compare")
    return Table2Result("summary", cfg, table, tests, tuple(check_claims(tests, cfg, WELCH_T)))


def _by_background(
    background: pd.Series, cases: CompleteCases, cfg: Table2Config, source: str
) -> tuple[pd.DataFrame, pd.DataFrame, list[tuple[str, str]]]:
    """Describe and test each AI-background group; also list the (group, aspect) pairs left untested.

    ``background`` is each participant's ``yes``/``no`` (index participant).
    """
    group_tables, group_rows, skipped = [], [], []
    for group in BACKGROUNDS:
        members = set(background.index[background == group])
        sub = CompleteCases({a: w[w.index.isin(members)] for a, w in cases.ratings.items()}, cases.dropped)
        desc = describe_cases(sub, cfg)
        if len(desc):
            group_tables.append(desc.assign(group=group))
        for aspect, wide in sub.ratings.items():
            if len(wide) < 2:
                skipped.append((group, aspect))
                log.warning(
                    "%s: AI background %r has %d participant(s) on %s: no tests",
                    source,
                    group,
                    len(wide),
                    aspect,
                )
        group_rows += [dict(r, group=group) for r in paired_rows(sub, cfg, 2)]
    by_table = (
        pd.concat(group_tables, ignore_index=True)
        if group_tables
        else pd.DataFrame(columns=["group", "method", "aspect", "mean", "sd", "n"])
    )
    by_table = mark_best(by_table, cfg.decimals, by=("group", "aspect"))
    by_table = by_table[["group", "method", "aspect", "mean", "sd", "n", "best"]]
    return by_table, finish_tests(group_rows, cfg, group=True), skipped


def analyse_responses(
    responses: pd.DataFrame, cfg: Table2Config | None = None, source: str = "responses"
) -> Table2Result:
    """Input A: paired t-test and Wilcoxon per aspect, the same per AI-background group.

    Participants missing a method of an aspect are dropped for that aspect (counted in
    ``dropped``); the table describes the kept participants, so its n matches the tests.

    Parameters
    ----------
    responses : DataFrame of shape (R, 5)
        Validated responses (:func:`~inviz.survey.table2.inputs.validate_responses`).
    cfg : the analysis; default :class:`Table2Config`.
    source : file name used in messages.

    Returns
    -------
    Table2Result
        ``kind = "responses"``.
    """
    cfg = cfg or Table2Config()
    cases = complete_cases(responses, cfg)
    require_two(cases, source)
    table = mark_best(describe_cases(cases, cfg), cfg.decimals)
    tests = finish_tests(paired_rows(cases, cfg, 2), cfg)
    if tests.empty:
        raise Table2Error(f"{source}: no aspect has two methods, so there is nothing to compare")
    other = WILCOXON if cfg.claim_test == PAIRED_T else PAIRED_T
    background = responses.drop_duplicates("participant").set_index("participant")["ai_background"]
    by_table, by_tests, skipped = _by_background(background, cases, cfg, source)
    return Table2Result(
        "responses",
        cfg,
        table,
        tests,
        claims=tuple(check_claims(tests, cfg, cfg.claim_test)),
        claims_other=tuple(check_claims(tests, cfg, other)),
        dropped=cases.dropped,
        by_background_table=by_table,
        by_background_tests=by_tests,
        skipped_groups=tuple(skipped),
        n_participants=int(background.size),
        ai_background_share=float((background == "yes").mean()),
    )


def analyse(frame: pd.DataFrame, cfg: Table2Config | None = None, source: str = "input") -> Table2Result:
    """Dispatch on the input type: raw responses → paired tests; summaries → Welch.

    Parameters
    ----------
    frame : DataFrame of shape (R, C)
        Raw responses (input A columns) or summaries (input B columns), validated first
        (:func:`~inviz.survey.table2.inputs.validate_responses` / ``validate_summary``).
    cfg : the analysis; default :class:`Table2Config`.
    source : file name used in messages.

    Returns
    -------
    Table2Result
    """
    cols = set(frame.columns)
    if set(RESPONSE_COLUMNS) <= cols:
        return analyse_responses(validate_responses(frame, cfg, source), cfg, source)
    if set(SUMMARY_COLUMNS) <= cols:
        return analyse_summary(validate_summary(frame, cfg, source), cfg)
    raise Table2InputError(
        f"{source}: expected the columns of raw responses ({', '.join(RESPONSE_COLUMNS)}) or of summaries "
        f"({', '.join(SUMMARY_COLUMNS)}); found {', '.join(map(str, frame.columns))}"
    )
