"""Reading and validating the Table 2 inputs (docs/method.md §5).

Two inputs: **raw responses** (input A, long format, columns ``participant, ai_background, method,
aspect, rating``) and **published summaries** (input B, columns ``method, aspect, mean, sd, n``);
the paper's own Table 2 ships as :func:`paper_table2`. Reading a CSV (:func:`read_responses`,
:func:`read_summary`) validates every cell and raises :class:`Table2InputError` naming the file,
the row (the CSV line number, header = row 1) and the column.
"""

from __future__ import annotations

import csv
import difflib
import logging
import math
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.survey.responses import BACKGROUNDS, RESPONSE_COLUMNS
from inviz.survey.table2.config import (
    SUMMARY_COLUMNS,
    Table2Config,
    Table2InputError,
    sort_rows,
)

log = logging.getLogger(__name__)

_MAX_PROBLEMS = 10
_LINE = "_line"  # internal column: the CSV line number of each data row


def paper_table2_path() -> Any:
    """Locate the packaged copy of the paper's Table 2.

    Returns
    -------
    importlib.resources.abc.Traversable
        ``inviz/resources/paper_table2.csv`` (use :func:`importlib.resources.as_file` for a path).
    """
    return resources.files("inviz").joinpath("resources/paper_table2.csv")


def paper_table2(cfg: Table2Config | None = None) -> pd.DataFrame:
    """Read the paper's published Table 2 (docs/method.md §5) as a validated summary frame.

    Parameters
    ----------
    cfg : names and rating scale; default :class:`Table2Config`.

    Returns
    -------
    DataFrame of shape (25, 5)
        ``method, aspect, mean, sd, n`` (n = 165 each).
    """
    with resources.as_file(paper_table2_path()) as path:
        return read_summary(path, cfg, source="paper_table2.csv")


def _read_rows(path: str | Path, expected: Sequence[str], source: str) -> tuple[pd.DataFrame, int]:
    """Read a CSV into a frame of stripped strings plus the CSV line number of each row.

    Checks the header (every expected column present) and the field count of each row; blank
    lines are skipped and counted. Extra columns are kept (and ignored by the analysis).
    """
    path = Path(path)
    if not path.is_file():
        raise Table2InputError(f"{source}: file not found ({path})")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise Table2InputError(
                    f"{source}: empty file; expected a header row with columns {', '.join(expected)}"
                )
            header = [h.strip() for h in header]
            rows, lines, blank = [], [], 0
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    blank += 1
                    continue
                if len(fields) != len(header):
                    raise Table2InputError(
                        f"{source}: row {reader.line_num}: expected {len(header)} fields "
                        f"(as in the header), got {len(fields)}"
                    )
                rows.append([f.strip() for f in fields])
                lines.append(reader.line_num)
    except UnicodeDecodeError as err:
        raise Table2InputError(f"{source}: not a UTF-8 text file ({err})") from err
    except csv.Error as err:
        raise Table2InputError(f"{source}: not a valid CSV file ({err})") from err
    _check_header(header, expected, source)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame[_LINE] = lines
    return frame, blank


def _check_header(header: Sequence[str], expected: Sequence[str], source: str) -> None:
    missing = [c for c in expected if c not in header]
    if missing:
        hint = ""
        other = RESPONSE_COLUMNS if tuple(expected) == SUMMARY_COLUMNS else SUMMARY_COLUMNS
        if all(c in header for c in other):
            kind = (
                "raw responses (use --responses)"
                if other == RESPONSE_COLUMNS
                else "summaries (use --summary)"
            )
            hint = f"; this file looks like {kind}"
        else:
            close = {m: difflib.get_close_matches(m, header, n=1) for m in missing}
            sugg = [f"{c[0]!r} for {m!r}" for m, c in close.items() if c]
            if sugg:
                hint = f"; found {', '.join(sugg)}"
        raise Table2InputError(
            f"{source}: missing column(s) {', '.join(missing)}; expected header columns "
            f"{', '.join(expected)} (found: {', '.join(header) or 'none'}){hint}"
        )
    dup = sorted({h for h in header if list(header).count(h) > 1 and h in expected})
    if dup:
        raise Table2InputError(f"{source}: column(s) {', '.join(dup)} appear more than once in the header")


def _lines(frame: pd.DataFrame) -> np.ndarray:
    if _LINE in frame.columns:
        return frame[_LINE].to_numpy()
    return np.arange(len(frame)) + 2  # a frame built in memory: row i is CSV line i + 2


def _raise(problems: list[str], source: str) -> None:
    if problems:
        shown = [f"{source}: {p}" for p in problems[:_MAX_PROBLEMS]]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"{source}: ... and {len(problems) - _MAX_PROBLEMS} more problem(s)")
        raise Table2InputError("\n".join(shown))


def _numbers(frame: pd.DataFrame, column: str, problems: list[str]) -> np.ndarray:
    """Parse one column as floats; bad cells are added to ``problems`` (and become NaN)."""
    out = np.full(len(frame), np.nan)
    for i, (value, line) in enumerate(zip(frame[column].tolist(), _lines(frame), strict=True)):
        text = "" if value is None else str(value).strip()
        if isinstance(value, float) and math.isnan(value):
            text = ""
        if text == "":
            problems.append(f"row {line}, column {column}: missing value")
            continue
        try:
            number = float(text)
        except ValueError:
            problems.append(f"row {line}, column {column}: expected a number, got {text!r}")
            continue
        if not math.isfinite(number):
            problems.append(f"row {line}, column {column}: expected a finite number, got {text!r}")
            continue
        out[i] = number
    return out


def _texts(frame: pd.DataFrame, column: str, problems: list[str]) -> list[str]:
    values = []
    for value, line in zip(frame[column].tolist(), _lines(frame), strict=True):
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
        if text == "":
            problems.append(f"row {line}, column {column}: missing value")
        values.append(text)
    return values


def _check_names(
    values: Sequence[str], allowed: Sequence[str] | None, column: str, lines: np.ndarray, problems: list[str]
) -> None:
    """Every non-empty value must be in ``allowed`` (one problem per distinct unknown name)."""
    if allowed is None:
        return
    allowed_set = set(allowed)
    seen: dict[str, list[int]] = {}
    for value, line in zip(values, lines, strict=True):
        if value and value not in allowed_set:
            seen.setdefault(value, []).append(int(line))
    lowered = {a.lower(): a for a in allowed}
    for value, rows in seen.items():
        close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
        hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
        more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
        problems.append(
            f"row {rows[0]}, column {column}: unknown {column} {value!r}{hint}{more}; expected one of: "
            f"{', '.join(allowed)} (set table2.{column}s: null to accept any name)"
        )


def _duplicates(frame: pd.DataFrame, keys: Sequence[str], source: str) -> None:
    lines = _lines(frame)
    dup = frame.duplicated(list(keys), keep=False).to_numpy()
    if not dup.any():
        return
    problems = []
    groups = frame[dup].assign(**{_LINE: lines[dup]}).groupby(list(keys), sort=False)[_LINE]
    for key, rows in groups:
        key = key if isinstance(key, tuple) else (key,)
        desc = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
        at = ", ".join(str(r) for r in rows)
        problems.append(f"rows {at}: duplicate rows for {desc} (one row expected)")
    _raise(problems, source)


def validate_summary(
    frame: pd.DataFrame, cfg: Table2Config | None = None, source: str = "summary"
) -> pd.DataFrame:
    """Check and type a summary table (input B).

    Parameters
    ----------
    frame : DataFrame of shape (R, C)
        At least the columns ``method, aspect, mean, sd, n`` (strings or numbers); rows are
        numbered as CSV lines (header = row 1): from :func:`read_summary`, or row i = i + 2.
    cfg : names, scale; default :class:`Table2Config`.
    source : file name used in error messages.

    Returns
    -------
    DataFrame of shape (R, 5)
        ``method, aspect, mean, sd, n`` (n int), rows in table order (``cfg.methods`` then
        ``cfg.aspects``).

    Raises
    ------
    Table2InputError
        Missing columns; empty, non-numeric or non-finite cells; a mean outside the rating scale;
        sd < 0; n not a whole number or n < 2; unknown method/aspect names; duplicate
        (method, aspect) rows. Each message names the file, row and column.
    """
    cfg = cfg or Table2Config()
    _check_header(list(frame.columns), SUMMARY_COLUMNS, source)
    lines = _lines(frame)
    problems: list[str] = []
    methods = _texts(frame, "method", problems)
    aspects = _texts(frame, "aspect", problems)
    _check_names(methods, cfg.methods, "method", lines, problems)
    _check_names(aspects, cfg.aspects, "aspect", lines, problems)
    mean = _numbers(frame, "mean", problems)
    sd = _numbers(frame, "sd", problems)
    n = _numbers(frame, "n", problems)
    lo, hi = f"{cfg.rating_min:g}", f"{cfg.rating_max:g}"
    for i, line in enumerate(lines):
        if np.isfinite(mean[i]) and not cfg.rating_min <= mean[i] <= cfg.rating_max:
            problems.append(f"row {line}, column mean: {mean[i]:g} is outside the rating scale {lo}-{hi}")
        if np.isfinite(sd[i]) and sd[i] < 0:
            problems.append(f"row {line}, column sd: {sd[i]:g} is negative")
        if np.isfinite(n[i]):
            if n[i] != round(n[i]):
                problems.append(f"row {line}, column n: {n[i]:g} is not a whole number")
            elif n[i] < 2:
                problems.append(
                    f"row {line}, column n: n = {int(n[i])}, but at least 2 ratings are needed "
                    "for a standard deviation and a t-test"
                )
    _raise(problems, source)
    out = pd.DataFrame({"method": methods, "aspect": aspects, "mean": mean, "sd": sd, "n": n.astype(int)})
    if _LINE in frame.columns:
        out[_LINE] = lines
    _duplicates(out, ("method", "aspect"), source)
    return sort_rows(out.drop(columns=[_LINE], errors="ignore"), cfg)


def _read_data(path: str | Path, expected: Sequence[str], source: str) -> pd.DataFrame:
    """:func:`_read_rows`, logging skipped blank lines; a file without data rows is an error."""
    frame, blank = _read_rows(path, expected, source)
    if blank:
        log.info("%s: skipped %d blank line(s)", source, blank)
    if frame.empty:
        raise Table2InputError(f"{source}: no data rows below the header")
    return frame


def _read_valid(
    path: str | Path,
    expected: Sequence[str],
    validate: Callable[[pd.DataFrame, Table2Config | None, str], pd.DataFrame],
    cfg: Table2Config | None,
    source: str | None,
) -> pd.DataFrame:
    """Read ``path`` (:func:`_read_data`) and check it with ``validate``; ``source`` defaults to its name."""
    source = source or Path(path).name
    return validate(_read_data(path, expected, source), cfg, source)


def read_summary(
    path: str | Path, cfg: Table2Config | None = None, source: str | None = None
) -> pd.DataFrame:
    """Read and validate a summary CSV (input B: mean, sd and n per method and aspect).

    Parameters
    ----------
    path : the CSV file (header ``method, aspect, mean, sd, n``; extra columns are ignored).
    cfg : names and rating scale; default :class:`Table2Config`.
    source : file name used in error messages (default: the file's name).

    Returns
    -------
    DataFrame of shape (R, 5), checked by :func:`validate_summary`.
    """
    return _read_valid(path, SUMMARY_COLUMNS, validate_summary, cfg, source)


def validate_responses(
    frame: pd.DataFrame, cfg: Table2Config | None = None, source: str = "responses"
) -> pd.DataFrame:
    """Check and type raw survey responses (input A, long format, one rating per row).

    Parameters
    ----------
    frame : DataFrame of shape (R, C)
        At least ``participant, ai_background, method, aspect, rating``; one row per
        participant × method × aspect (average a participant's ratings over the four
        images before, if there are several). Rows are numbered as CSV lines (header = row 1).
    cfg : names and rating scale; default :class:`Table2Config`.
    source : file name used in error messages.

    Returns
    -------
    DataFrame of shape (R, 5)
        ``participant, ai_background, method, aspect, rating`` (``ai_background`` lower-case
        ``yes``/``no``, rating float).

    Raises
    ------
    Table2InputError
        Missing columns; empty cells; ``ai_background`` not yes/no, or both for one participant;
        ratings non-numeric or outside ``[rating_min, rating_max]``; unknown method/aspect names;
        duplicate (participant, method, aspect) rows (naming their rows).
    """
    cfg = cfg or Table2Config()
    _check_header(list(frame.columns), RESPONSE_COLUMNS, source)
    lines = _lines(frame)
    problems: list[str] = []
    participants = _texts(frame, "participant", problems)
    background = [b.lower() for b in _texts(frame, "ai_background", problems)]
    methods = _texts(frame, "method", problems)
    aspects = _texts(frame, "aspect", problems)
    for b, line in zip(background, lines, strict=True):
        if b and b not in BACKGROUNDS:
            problems.append(f"row {line}, column ai_background: expected yes or no, got {b!r}")
    _check_names(methods, cfg.methods, "method", lines, problems)
    _check_names(aspects, cfg.aspects, "aspect", lines, problems)
    rating = _numbers(frame, "rating", problems)
    lo, hi = f"{cfg.rating_min:g}", f"{cfg.rating_max:g}"
    for r, line in zip(rating, lines, strict=True):
        if np.isfinite(r) and not cfg.rating_min <= r <= cfg.rating_max:
            problems.append(f"row {line}, column rating: {r:g} is outside {lo}-{hi}")
    _raise(problems, source)
    out = pd.DataFrame(
        {
            "participant": participants,
            "ai_background": background,
            "method": methods,
            "aspect": aspects,
            "rating": rating,
        }
    )
    out[_LINE] = lines
    mixed = out.groupby("participant", sort=False)["ai_background"].nunique()
    for pid in mixed[mixed > 1].index[:_MAX_PROBLEMS]:
        rows = out.loc[out["participant"] == pid].groupby("ai_background")[_LINE].first()
        problems.append(
            f"column ai_background: participant {pid!r} is both 'yes' (row {rows['yes']}) "
            f"and 'no' (row {rows['no']})"
        )
    _raise(problems, source)
    _duplicates(out, ("participant", "method", "aspect"), source)
    return out.drop(columns=[_LINE]).reset_index(drop=True)


def read_responses(
    path: str | Path, cfg: Table2Config | None = None, source: str | None = None
) -> pd.DataFrame:
    """Read and validate a raw-responses CSV (input A: one rating per participant, method and aspect).

    Parameters
    ----------
    path : str or Path
        The CSV file, header ``participant, ai_background, method, aspect, rating``.
    cfg : Table2Config, optional
        Names and rating scale (default :class:`Table2Config`).
    source : str, optional
        Name used in error messages; the file's name by default.

    Returns
    -------
    DataFrame of shape (R, 5), checked by :func:`validate_responses`.
    """
    return _read_valid(path, RESPONSE_COLUMNS, validate_responses, cfg, source)
