"""Reading the CSV tables of a game export as strings, row by row (docs/method.md §3, input).

:func:`read_table` keeps each row's line number (problems name it) and turns undecodable bytes
and rows with a wrong number of fields into row problems instead of stopping;
:func:`check_columns` compares a table's header with its :class:`~inviz.game.export.layouts.Layout`.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from inviz.game.export.layouts import Layout
from inviz.game.export.problems import GameExportError, Problem

log = logging.getLogger(__name__)

_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\ufffd")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class RawTable:
    """A CSV read as strings: ``frame`` (columns as in the header), ``lines`` (line of each row)."""

    name: str
    frame: pd.DataFrame
    lines: list[int]
    problems: list[Problem]


def encoding_problem(value: str) -> str | None:
    """Tell why ``value`` looks wrongly encoded (undecodable bytes, U+FFFD, mojibake, controls).

    Parameters
    ----------
    value : str
        A value read from a file (undecodable bytes as surrogate escapes).

    Returns
    -------
    str or None
        The reason, or None when the value looks fine.
    """
    if SURROGATE.search(value):
        return "undecodable bytes"
    if _MOJIBAKE.search(value):
        return "mojibake (UTF-8 read as Latin-1?) or replacement character"
    if _CONTROL.search(value):
        return "control characters"
    return None


def read_table(path: Path, encoding: str = "utf-8") -> RawTable:
    """Read a CSV (``.tsv``: tab-separated) as strings, keeping each row's line number.

    Undecodable bytes do not stop the read: they surface as ``bad_encoding`` problems of the
    rows that contain them. Rows with a wrong number of fields are ``malformed_row`` problems.

    Parameters
    ----------
    path : Path
        The file.
    encoding : str
        Its text encoding (UTF-8 may start with a byte-order mark).

    Returns
    -------
    RawTable
        Every value a string; header names stripped and lower-cased.

    Raises
    ------
    GameExportError
        Missing or empty file, unknown encoding, invalid CSV, duplicated columns.
    """
    name = path.name
    if not path.is_file():
        raise GameExportError(f"{path}: file not found")
    data = path.read_bytes()
    enc = "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding
    try:
        text = data.decode(enc, errors="surrogateescape")
    except LookupError as err:
        raise GameExportError(f"{path}: unknown encoding {encoding!r}") from err
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[str]] = []
    lines: list[int] = []
    problems: list[Problem] = []
    header: list[str] | None = None
    prev = 0
    try:
        for rec in reader:
            start, prev = prev + 1, reader.line_num
            if not rec or all(not c.strip() for c in rec):
                continue
            if header is None:
                header = [c.strip().lower() for c in rec]
                continue
            if len(rec) != len(header):
                problems.append(
                    Problem(
                        name,
                        start,
                        "",
                        "malformed_row",
                        ",".join(rec)[:80],
                        f"{len(rec)} field(s), the header has {len(header)}",
                    )
                )
                continue
            rows.append(rec)
            lines.append(start)
    except csv.Error as err:
        raise GameExportError(f"{path}: line {reader.line_num}: not valid CSV ({err})") from err
    if header is None:
        raise GameExportError(f"{path}: empty file (no header row)")
    dupes = [c for c, n in Counter(header).items() if n > 1]
    if dupes:
        raise GameExportError(f"{path}: duplicated column(s) {', '.join(dupes)}")
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    return RawTable(name, frame, lines, problems)


def check_columns(table: RawTable, layout: Layout, path: Path) -> list[str]:
    """Check a table's columns against its layout; return the ignored extra columns.

    An unknown column that closely resembles an expected one (``difflib`` ratio >= 0.75) is a
    misspelling (error); other unknown columns are ignored and reported.

    Parameters
    ----------
    table : RawTable
        From :func:`read_table`.
    layout : Layout
        The table's column map (required and optional columns).
    path : Path
        The file (messages name it).

    Returns
    -------
    list of str
        The unknown columns that are ignored.

    Raises
    ------
    GameExportError
        A required column is missing or a column is misspelt.
    """
    required, optional = layout.required_columns, layout.optional_columns
    present = list(table.frame.columns)
    expected = list(required) + list(optional)
    unknown = [c for c in present if c not in expected]
    missing = [c for c in required if c not in present]
    msgs = []
    named: set[str] = set()
    for c in missing:
        close = difflib.get_close_matches(c, unknown, n=1, cutoff=0.75)
        msgs.append(f"missing column '{c}'" + (f" (found '{close[0]}': misspelt?)" if close else ""))
        named.update(close)
    absent = [c for c in expected if c not in present]
    for c in unknown:
        close = difflib.get_close_matches(c, absent, n=1, cutoff=0.75)
        if close and c not in named:
            msgs.append(f"unknown column '{c}' (did you mean '{close[0]}'?)")
            named.add(c)
    if msgs:
        raise GameExportError(
            f"{path}: {'; '.join(msgs)}. Expected columns: {', '.join(required)}"
            + (f" (optional: {', '.join(optional)})" if optional else "")
        )
    ignored = [c for c in unknown if c not in named]
    if ignored:
        log.warning("%s: ignoring unknown column(s) %s", path, ", ".join(ignored))
    return ignored
