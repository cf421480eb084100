"""Problems found while importing a game export (docs/method.md §3, input).

*Structural* problems (a missing file or column, no rows, a bad class map) raise
:class:`GameExportError`. *Row* problems drop the row; each is a :class:`Problem` with a reason
from :data:`REASONS`, collected into the problems table (:data:`PROBLEM_COLUMNS`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from inviz.core.errors import InvizError

#: Row-problem reasons, in the order rows are checked.
REASONS = (
    "bad_encoding",
    "malformed_row",
    "missing_value",
    "bad_value",
    "unknown_cluster",
    "cluster_mismatch",
    "hints_out_of_range",
    "unknown_class",
    "true_class_mismatch",
    "empty_text",
    "text_too_long",
    "duplicate_row",
    "inconsistent_guess",
)

#: Columns of the problems table.
PROBLEM_COLUMNS = ["file", "row", "column", "reason", "value", "message"]


class GameExportError(InvizError, ValueError):
    """A structural problem with a game export (file, columns, class map) or strict-mode rows.

    ``problems`` holds the row problems (a DataFrame) when strict mode raised it.
    """

    def __init__(self, message: str, problems: pd.DataFrame | None = None):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Problem:
    """One row-level problem: ``file`` name, ``row`` (line in the file), ``column``, ``reason``."""

    file: str
    row: int
    column: str
    reason: str
    value: str
    message: str


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    """Collect problems into a table.

    Parameters
    ----------
    problems : iterable of Problem
        The problems, in any order.

    Returns
    -------
    DataFrame
        One row per problem, columns :data:`PROBLEM_COLUMNS`, in the given order.
    """
    return pd.DataFrame([p.__dict__ for p in problems], columns=PROBLEM_COLUMNS)
