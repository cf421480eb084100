"""Everything ``inviz table2`` writes (docs/method.md §5): read the input, analyse it, render it.

:func:`table2_report` is the stage's one library call: it reads raw responses, a summary or (with
neither) the paper's own packaged Table 2, runs the analysis and returns the tables, texts and
figures keyed by their file names (:data:`~inviz.survey.table2.report.OUTPUTS`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from inviz.core.io import file_digest
from inviz.survey.table2.analysis import Table2Result, analyse_responses, analyse_summary
from inviz.survey.table2.config import Table2Config, Table2Error
from inviz.survey.table2.figures import pvalue_figure, ratings_figure
from inviz.survey.table2.inputs import paper_table2_path, read_responses, read_summary
from inviz.survey.table2.report import (
    OUTPUTS,
    by_background_markdown,
    claims_markdown,
    table_latex,
    table_markdown,
)

#: the ``source`` of the packaged paper table
PAPER_SOURCE = "paper_table2.csv"


@dataclass(frozen=True)
class Table2Report:
    """The analysis of one input and the files that present it.

    Parameters
    ----------
    result : Table2Result
        The analysis.
    source : str
        The input's file name (``paper_table2.csv`` for the packaged paper table).
    input_sha256 : str
        SHA-256 of the input file.
    tables : dict of str to DataFrame
        File name -> table written as CSV (table, tests; for raw responses also the by-background
        table and tests and the dropped participants).
    texts : dict of str to str
        File name -> text (Markdown and LaTeX tables, claims text; by-background tables).
    """

    result: Table2Result
    source: str
    input_sha256: str
    tables: dict[str, pd.DataFrame]
    texts: dict[str, str]

    def figures(self) -> Iterator[tuple[str, Any]]:
        """Draw the figures one at a time; the caller saves and closes each before the next.

        Yields
        ------
        (str, matplotlib.figure.Figure)
            The PNG file name and the figure: the ratings, then the adjusted p-values of the test
            that decides the claims.
        """
        cfg = self.result.config
        yield OUTPUTS["ratings_fig"], ratings_figure(self.result.table, cfg)
        yield OUTPUTS["pvalues_fig"], pvalue_figure(self.result.tests, self.result.test_name, cfg)


def _analyse_input(
    cfg: Table2Config, responses: str | Path | None, summary: str | Path | None
) -> tuple[Table2Result, str, str]:
    """Read and analyse the chosen input; also return its file name and SHA-256."""
    if responses:
        path = Path(responses)
        frame = read_responses(path, cfg)
        return analyse_responses(frame, cfg, source=path.name), path.name, file_digest(path)
    if summary:
        path = Path(summary)
        return analyse_summary(read_summary(path, cfg), cfg), path.name, file_digest(path)
    with resources.as_file(paper_table2_path()) as packaged:
        frame = read_summary(packaged, cfg, source=PAPER_SOURCE)
        return analyse_summary(frame, cfg), PAPER_SOURCE, file_digest(packaged)


def table2_report(
    cfg: Table2Config, responses: str | Path | None = None, summary: str | Path | None = None
) -> Table2Report:
    """Read one input, analyse it and render every output of ``inviz table2``.

    Parameters
    ----------
    cfg : the ``table2`` section.
    responses : raw responses CSV (input A; paired t-test and Wilcoxon, split by AI background).
    summary : summary CSV (input B; Welch's t from mean, sd, n). With neither, the paper's own
        Table 2 packaged with inviz.

    Returns
    -------
    Table2Report

    Raises
    ------
    Table2InputError
        The input file is missing or invalid (naming file, row and column).
    Table2Error
        Both inputs are given, or the data allow no comparison.
    """
    if responses and summary:
        raise Table2Error("table2: give raw responses or a summary, not both")
    result, source, sha = _analyse_input(cfg, responses, summary)
    tables = {OUTPUTS["table_csv"]: result.table, OUTPUTS["tests"]: result.tests}
    texts = {
        OUTPUTS["table_md"]: table_markdown(result.table, cfg),
        OUTPUTS["table_tex"]: table_latex(result.table, cfg),
        OUTPUTS["claims"]: claims_markdown(result, source),
    }
    if result.kind == "responses":
        tables |= {
            OUTPUTS["by_background_csv"]: result.by_background_table,
            OUTPUTS["by_background_tests"]: result.by_background_tests,
            OUTPUTS["dropped"]: result.dropped,
        }
        texts[OUTPUTS["by_background_md"]] = by_background_markdown(result)
    return Table2Report(result, source, sha, tables, texts)
