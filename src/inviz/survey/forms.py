"""The survey's questionnaire and its fill-in form (docs/method.md §5), and the form importer.

:func:`questionnaire_markdown` / :func:`form_template` write the questionnaire (five 7-point items
per method, after Aechtner et al. 2022, plus the AI-background question) and a fill-in form with
one column per method and aspect; :func:`read_form` turns filled-in forms into the long responses
table of ``inviz table2 --responses`` (input A of :mod:`inviz.survey.table2`), validating every cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inviz.survey.panels import SurveyConfig, SurveyError
from inviz.survey.responses import BACKGROUNDS, RESPONSE_COLUMNS

#: columns of the table of empty rating cells (missing answers) returned by :func:`read_form`
MISSING_COLUMNS: tuple[str, ...] = ("participant", "method", "aspect", "line")
_MAX_PROBLEMS = 10


def form_columns(methods: Sequence[str], aspects: Sequence[str]) -> list[str]:
    """Columns of the fill-in form: ``participant, ai_background`` then ``<method> | <aspect>``.

    Parameters
    ----------
    methods, aspects : sequence of str
        The M methods in questionnaire order and the A rated aspects.

    Returns
    -------
    list of str
        2 + M × A column names, method-major.
    """
    return ["participant", "ai_background", *[f"{m} | {a}" for m in methods for a in aspects]]


def form_template(cfg: SurveyConfig) -> pd.DataFrame:
    """Return an empty fill-in form (header only) with one column per method and aspect.

    Parameters
    ----------
    cfg : the methods and the rated aspects (``cfg.items``).

    Returns
    -------
    DataFrame of shape (0, 2 + M × A)
    """
    return pd.DataFrame(columns=form_columns(cfg.methods, list(cfg.items)))


def questionnaire_markdown(cfg: SurveyConfig, images: pd.DataFrame, panel_files: dict[str, list[str]]) -> str:
    """Write the questionnaire as Markdown: per method its panels and the rated statements.

    Parameters
    ----------
    cfg : the methods, the statements (``cfg.items``) and the scale.
    images : DataFrame of shape (N, C)
        The survey images (only their number is shown).
    panel_files : dict of str to list of str
        Method -> the relative paths of its N panels.

    Returns
    -------
    str
    """
    scale = " · ".join(str(i) for i in range(1, cfg.scale + 1))
    lines = [
        "# Survey: explanations of a CNN's predictions",
        "",
        "Thank you for taking part. You will see explanations of the same "
        f"{len(images)} predictions made by five explanation methods. For each method, look at its "
        f"explanations, then rate each statement from 1 (strongly disagree) to {cfg.scale} "
        "(strongly agree).",
        "",
        "**Do you have a background in AI / machine learning?** yes / no",
        "",
    ]
    for i, method in enumerate(cfg.methods, start=1):
        lines += [f"## {i}. {method}", ""]
        for f in panel_files.get(method, []):
            lines.append(f"![{method}]({f})")
        lines += [
            "",
            "| statement | " + " | ".join(str(k) for k in range(1, cfg.scale + 1)) + " |",
            "|---|" + "---|" * cfg.scale,
        ]
        for aspect, text in cfg.items.items():
            lines.append(f"| **{aspect}** — {text} |" + " ◯ |" * cfg.scale)
        lines.append("")
    lines += [
        "---",
        f"Scale: {scale}. Record the answers in `questionnaire_form.csv` (one row per "
        "participant; columns `<method> | <aspect>`), then run `inviz survey_import --form "
        "questionnaire_form.csv --out responses.csv` and `inviz table2 --responses responses.csv "
        "--out table2/`.",
        "",
    ]
    return "\n".join(lines)


def _check_columns(path: Path, frame: pd.DataFrame, expected: list[str]) -> None:
    missing_cols = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing_cols or extra:
        raise SurveyError(
            f"{path}: missing column(s) {missing_cols or '-'}; "
            f"unexpected column(s) {extra or '-'}; expected {expected[:3]} … "
            "(one column '<method> | <aspect>' per method and aspect)"
        )


@dataclass
class _Cells:
    """What the rows of a form hold: ratings (long), empty rating cells, problems."""

    ratings: list[dict[str, Any]] = field(default_factory=list)
    empty: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add_row(self, r: pd.Series, line: int, rating_columns: list[str], scale: int) -> None:
        """Check one form row (CSV line ``line``) and collect its cells."""
        pid = r["participant"].strip()
        if not pid:
            self.problems.append(f"row {line}, column participant: empty")
            return
        bg = r["ai_background"].strip().lower()
        if bg not in BACKGROUNDS:
            self.problems.append(
                f"row {line}, column ai_background: expected yes or no, got {r['ai_background']!r}"
            )
        for col in rating_columns:
            method, aspect = col.split(" | ", 1)
            cell = r[col].strip()
            if cell == "":
                self.empty.append({"participant": pid, "method": method, "aspect": aspect, "line": line})
                continue
            if not cell.lstrip("+").isdigit() or not 1 <= int(cell) <= scale:
                self.problems.append(
                    f"row {line}, column {col!r}: expected an integer 1..{scale}, got {cell!r}"
                )
                continue
            self.ratings.append(
                {
                    "participant": pid,
                    "ai_background": bg,
                    "method": method,
                    "aspect": aspect,
                    "rating": int(cell),
                }
            )


def read_form(path: str | Path, cfg: SurveyConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Filled-in forms -> the long responses table of ``inviz table2 --responses``.

    Every cell is checked: a missing column or an unknown extra column stops with the file and the
    column; ``ai_background`` must be yes/no; a rating must be an integer 1..``scale``; anything
    else stops naming file, row (CSV line) and column. An **empty** rating cell is a missing answer:
    it is counted and listed in the second table (the paired tests of ``table2`` then drop that
    participant from that aspect and count it too).

    Parameters
    ----------
    path : the filled-in ``questionnaire_form.csv`` (one row per participant).
    cfg : the methods, aspects and scale of the form.

    Returns
    -------
    responses : DataFrame of shape (R, 5)
        ``participant, ai_background, method, aspect, rating`` (long).
    missing : DataFrame of shape (E, 4)
        ``participant, method, aspect, line`` of the empty cells.

    Raises
    ------
    SurveyError
        The file is missing, a column is missing or unexpected, or cells are invalid (up to 10 listed).
    """
    path = Path(path)
    if not path.is_file():
        raise SurveyError(f"{path}: survey form not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    expected = form_columns(cfg.methods, list(cfg.items))
    _check_columns(path, frame, expected)
    cells = _Cells()
    for i, r in frame.iterrows():
        cells.add_row(r, int(i) + 2, expected[2:], cfg.scale)
    problems = cells.problems
    if frame["participant"].str.strip().duplicated().any():
        dup = sorted(set(frame.loc[frame["participant"].str.strip().duplicated(), "participant"]))
        problems.append(f"participant(s) {', '.join(dup[:5])} appear in more than one row")
    if problems:
        more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
        raise SurveyError(f"{path}: " + "; ".join(problems[:_MAX_PROBLEMS]) + more)
    return (
        pd.DataFrame(cells.ratings, columns=list(RESPONSE_COLUMNS)),
        pd.DataFrame(cells.empty, columns=list(MISSING_COLUMNS)),
    )
