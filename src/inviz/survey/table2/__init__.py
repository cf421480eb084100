"""Table 2 of the paper: the comparative survey (docs/method.md §5) and its significance tests.

Two kinds of input, chosen by what the user has:

* **raw responses** (input A, long format, columns ``participant, ai_background, method, aspect,
  rating``): mean ± sd per method × aspect, a paired t-test and a Wilcoxon signed-rank test for
  every pair of methods within each aspect, over the participants who rated every method of that
  aspect (the others are dropped and counted), plus the same table and tests per AI-background group;
* **published summaries** (input B, columns ``method, aspect, mean, sd, n``): Welch's t-test from
  the summary statistics for every pair of methods within each aspect. The paper's own Table 2
  ships as :func:`paper_table2` so the pipeline can check the paper's claims from its published
  numbers.

P-values are corrected for multiple comparisons per family (``Table2Config.correction``, default
Holm, always passed explicitly to statsmodels); :func:`check_claims` turns the tests into verdicts
on the paper's claims, rendered by :func:`claims_markdown`.

Modules, in the order of the analysis: :mod:`~inviz.survey.table2.config` (configuration, names,
the paper's claims), :mod:`~inviz.survey.table2.inputs` (reading and validating the CSV files),
:mod:`~inviz.survey.table2.significance` (the tests and the correction),
:mod:`~inviz.survey.table2.claims`, :mod:`~inviz.survey.table2.analysis` (:func:`analyse` ->
:class:`Table2Result`), :mod:`~inviz.survey.table2.report` (Markdown, LaTeX),
:mod:`~inviz.survey.table2.figures` and :mod:`~inviz.survey.table2.outputs` (every file of
``inviz table2``: :func:`table2_report`).
"""

from inviz.survey.responses import BACKGROUNDS, RESPONSE_COLUMNS
from inviz.survey.table2.analysis import Table2Result, analyse, analyse_responses, analyse_summary, mark_best
from inviz.survey.table2.claims import ClaimResult, Comparison, check_claims
from inviz.survey.table2.config import (
    PAIRED_T,
    PAPER_ASPECTS,
    PAPER_CLAIMS,
    PAPER_METHODS,
    SUMMARY_COLUMNS,
    TEST_COLUMNS,
    WELCH_T,
    WILCOXON,
    Claim,
    Correction,
    Table2Config,
    Table2Error,
    Table2InputError,
)
from inviz.survey.table2.figures import P_CMAP, pvalue_figure, ratings_figure
from inviz.survey.table2.inputs import (
    paper_table2,
    paper_table2_path,
    read_responses,
    read_summary,
    validate_responses,
    validate_summary,
)
from inviz.survey.table2.outputs import Table2Report, table2_report
from inviz.survey.table2.report import (
    OUTPUTS,
    by_background_markdown,
    claims_markdown,
    latex_escape,
    table_latex,
    table_markdown,
)
from inviz.survey.table2.significance import (
    CompleteCases,
    apply_correction,
    complete_cases,
    describe_cases,
    paired_pair_tests,
    paired_tests,
    rank_biserial,
    signed_ranks,
    welch_from_summary,
    welch_tests,
    wilcoxon_test,
)

__all__ = [
    "BACKGROUNDS",
    "OUTPUTS",
    "PAIRED_T",
    "PAPER_ASPECTS",
    "PAPER_CLAIMS",
    "PAPER_METHODS",
    "P_CMAP",
    "RESPONSE_COLUMNS",
    "SUMMARY_COLUMNS",
    "TEST_COLUMNS",
    "WELCH_T",
    "WILCOXON",
    "Claim",
    "ClaimResult",
    "Comparison",
    "CompleteCases",
    "Correction",
    "Table2Config",
    "Table2Error",
    "Table2InputError",
    "Table2Report",
    "Table2Result",
    "analyse",
    "analyse_responses",
    "analyse_summary",
    "apply_correction",
    "by_background_markdown",
    "check_claims",
    "claims_markdown",
    "complete_cases",
    "describe_cases",
    "latex_escape",
    "mark_best",
    "paired_pair_tests",
    "paired_tests",
    "paper_table2",
    "paper_table2_path",
    "pvalue_figure",
    "rank_biserial",
    "ratings_figure",
    "read_responses",
    "read_summary",
    "signed_ranks",
    "table2_report",
    "table_latex",
    "table_markdown",
    "validate_responses",
    "validate_summary",
    "welch_from_summary",
    "welch_tests",
    "wilcoxon_test",
]
