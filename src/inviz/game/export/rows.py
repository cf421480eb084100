"""The one row validator of game-export guess tables (docs/method.md §3, input).

:func:`validate_rows` reads any guess table (the canonical ``guesses.csv`` and the authors'
``features.csv``, ``guesses_without_text.csv``, ``resigns.csv``) through its column map
(:class:`~inviz.game.export.layouts.Layout`) and checks every row in the order of
:data:`~inviz.game.export.problems.REASONS`, stopping at the first step with a problem:

1. encoding of every value (``bad_encoding``);
2. values that must not be empty (``missing_value``); the kind, when the table has a ``kind``
   column (``bad_value``); values that must not be empty unless the row is a resign;
3. the cluster id (``bad_value``, ``unknown_cluster``) and, for the authors' features, the
   cluster's image, layer and index (``cluster_mismatch``);
4. hints (``hints_out_of_range``), the true class (``unknown_class``, ``true_class_mismatch``),
   the guessed class (``unknown_class``), the text (``empty_text``, ``text_too_long``; texts
   outside feature rows are a ``bad_value``), resign counts and screening flags (``bad_value``);
5. a valid row equal to an earlier one is a ``duplicate_row``.

A valid row becomes a canonical record (a resigns row one record per resign); every problem is
kept with its file, line and column.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inviz.game.export.classmap import ClassMap
from inviz.game.export.config import ImportConfig
from inviz.game.export.layouts import KINDS, Layout
from inviz.game.export.problems import Problem
from inviz.game.export.tables import SURROGATE, RawTable, encoding_problem
from inviz.labels.translate import language_code

_INTEGER = re.compile(r"\d+(\.0+)?")


class TableRows:
    """The validated rows of one table: canonical ``records``, ``problems``, ``dropped_rows`` per reason.

    ``flags`` holds the screening flags the table carries (player id -> passed), if any.
    Construct with the raw table, the import settings, the class map and the cluster table.
    """

    def __init__(self, raw: RawTable, cfg: ImportConfig, classes: ClassMap, clusters: pd.DataFrame):
        self.raw, self.cfg, self.classes = raw, cfg, classes
        self.clusters = clusters.set_index("cluster_id")
        self.problems: list[Problem] = list(raw.problems)
        self.records: list[dict[str, Any]] = []
        self.dropped_rows: Counter[str] = Counter(p.reason for p in raw.problems)
        self.flags: dict[str, bool] = {}
        self._seen: dict[tuple, int] = {}

    def problem(self, line: int, column: str, reason: str, value: Any, message: str) -> Problem:
        """Make a problem of this table (the value is cut to 80 characters)."""
        return Problem(self.raw.name, line, column, reason, str(value)[:80], message)

    def cluster(self, line: int, value: str, column: str) -> tuple[int | None, Problem | None]:
        """Parse a cluster id of the masks manifest; return ``(id, None)`` or ``(None, problem)``."""
        s = str(value).strip()
        if not _INTEGER.fullmatch(s):
            return None, self.problem(
                line, column, "bad_value", value, "cluster id must be a non-negative integer"
            )
        cid = int(float(s))
        if cid not in self.clusters.index:
            return None, self.problem(
                line, column, "unknown_cluster", value, "cluster id not in the masks manifest"
            )
        return cid, None

    def hints(self, line: int, value: str, column: str) -> tuple[float | None, Problem | None]:
        """Parse a hint count 0..``max_hints``; return ``(hints, None)`` or ``(None, problem)``."""
        why = f"hints must be an integer 0..{self.cfg.max_hints}"
        try:
            h = float(str(value).strip())
        except ValueError:
            return None, self.problem(line, column, "hints_out_of_range", value, why)
        if not (h == int(h) and 0 <= h <= self.cfg.max_hints):
            return None, self.problem(line, column, "hints_out_of_range", value, why)
        return float(h), None

    def klass(self, line: int, value: str, column: str) -> tuple[int | None, Problem | None]:
        """Resolve a class of the class map; return ``(label, None)`` or ``(None, problem)``."""
        label = self.classes.resolve(value)
        if label is None:
            return None, self.problem(
                line, column, "unknown_class", value, "not a game id or class name of the class map"
            )
        return label, None

    def text(self, line: int, value: str, column: str) -> tuple[str | None, Problem | None]:
        """Clean a typed feature (whitespace); return ``(text, None)`` or ``(None, problem)``."""
        t = re.sub(r"\s+", " ", str(value)).strip()
        if not t:
            return None, self.problem(line, column, "empty_text", value, "the typed feature is empty")
        if len(t) > self.cfg.max_text_length:
            return None, self.problem(
                line,
                column,
                "text_too_long",
                value,
                f"{len(t)} characters > max_text_length {self.cfg.max_text_length}",
            )
        return t, None

    def finish(self, line: int, probs: list[Problem], records: list[dict[str, Any]], key: tuple) -> bool:
        """Record the row's problems (the first one counts the dropped row) or keep its records.

        A row equal to an earlier kept row (same ``key``) is a ``duplicate_row``. Returns whether
        the row is kept.
        """
        if not probs:
            first = self._seen.get(key)
            if first is not None:
                probs = [self.problem(line, "", "duplicate_row", "", f"same values as row {first}")]
            else:
                self._seen[key] = line
        if probs:
            self.problems.extend(probs)
            self.dropped_rows[probs[0].reason] += 1
            return False
        self.records.extend(records)
        return True


def parse_bool(value: str) -> bool | None:
    """Parse ``true/false`` (also ``1/0``, ``yes/no``, ``y/n``, ``t/f``, any case); None if neither."""
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "t"):
        return True
    if v in ("false", "0", "no", "n", "f"):
        return False
    return None


def _encoding_probs(rows: TableRows, line: int, values: dict[str, str]) -> list[Problem]:
    out = []
    for col, v in values.items():
        why = encoding_problem(str(v))
        if why:
            out.append(rows.problem(line, col, "bad_encoding", SURROGATE.sub("?", str(v)), why))
    return out


def _missing(rows: TableRows, line: int, row: dict[str, str], columns: Sequence[str]) -> list[Problem]:
    return [
        rows.problem(line, c, "missing_value", "", "required value is empty")
        for c in columns
        if not str(row[c]).strip()
    ]


def _stem(value: Any) -> str:
    return Path(str(value).strip().replace("\\", "/")).stem.lower()


@dataclass
class _Row:
    """One row being checked.

    line : its line in the file. values : column -> text. cols : the table's field -> column.
    parsed : what the checks parsed so far (field -> value).
    """

    line: int
    values: dict[str, str]
    cols: dict[str, str]
    parsed: dict[str, Any] = field(default_factory=dict)

    def value(self, name: str) -> str:
        """Return the text of field ``name`` ("" when the table has no column for it)."""
        return str(self.values[self.cols[name]] or "") if name in self.cols else ""


# One step of the row check: (rows, row) -> problems. A step stores what it parsed in
# ``row.parsed`` and does nothing when the table has no column for it.
_Step = Callable[[TableRows, _Row], list[Problem]]


def _identity(rows: TableRows, r: _Row) -> list[Problem]:
    if not rows.cfg.check_cluster_identity or not {"layer", "cluster", "image"} <= set(r.cols):
        return []
    cid = r.parsed["cluster_id"]
    c = rows.clusters.loc[cid]
    cols = r.cols
    layer, cluster, image = (r.values[cols[f]] for f in ("layer", "cluster", "image"))
    out = []
    if str(layer).strip().lower() != str(c["layer"]).lower():
        out.append(
            rows.problem(
                r.line, cols["layer"], "cluster_mismatch", layer, f"cluster {cid} is on layer {c['layer']!r}"
            )
        )
    if str(cluster).strip() not in (str(int(c["cluster"])), f"{int(c['cluster'])}.0"):
        out.append(
            rows.problem(
                r.line,
                cols["cluster"],
                "cluster_mismatch",
                cluster,
                f"cluster {cid} is cluster {int(c['cluster'])} of its layer",
            )
        )
    if _stem(image) != _stem(c["image"]):
        out.append(
            rows.problem(
                r.line,
                cols["image"],
                "cluster_mismatch",
                image,
                f"cluster {cid} belongs to image {c['image']!r}",
            )
        )
    return out


def _parse(
    r: _Row, key: str, parse: Callable[[int, str, str], tuple[Any, Problem | None]], col: str
) -> list[Problem]:
    """Parse column ``col`` of the row with ``parse`` (a :class:`TableRows` parser) into ``r.parsed[key]``."""
    r.parsed[key], p = parse(r.line, r.values[col], col)
    return [p] if p else []


def _hints(rows: TableRows, r: _Row) -> list[Problem]:
    col = r.cols.get("hints")
    if col is None or not str(r.values[col]).strip():  # resigns may leave hints empty
        return []
    return _parse(r, "hints", rows.hints, col)


def _true_class(rows: TableRows, r: _Row) -> list[Problem]:
    col = r.cols.get("true_class")
    if col is None:
        return []
    label, p = rows.klass(r.line, r.values[col], col)
    if p:
        return [p]
    cid = r.parsed["cluster_id"]
    if label != int(rows.clusters.loc[cid, "label"]):
        truth = rows.clusters.loc[cid, "true_class"]
        return [
            rows.problem(
                r.line,
                col,
                "true_class_mismatch",
                r.values[col],
                f"the manifest's class of cluster {cid} is {truth!r}",
            )
        ]
    return []


def _guessed(rows: TableRows, r: _Row) -> list[Problem]:
    col = r.cols.get("guessed_class")
    if col is None or r.parsed["kind"] == "resign":
        return []
    return _parse(r, "guessed", rows.klass, col)


def _text(rows: TableRows, r: _Row) -> list[Problem]:
    col = r.cols.get("text")
    if col is None:
        return []
    kind = r.parsed["kind"]
    if kind == "feature":
        return _parse(r, "text", rows.text, col)
    if str(r.values[col]).strip():
        return [
            rows.problem(
                r.line, col, "bad_value", r.values[col], f"'{kind}' rows carry no text (use kind 'feature')"
            )
        ]
    return []


def _count(rows: TableRows, r: _Row) -> list[Problem]:
    col = r.cols.get("count")
    if col is None:
        return []
    s = str(r.values[col]).strip()
    if not _INTEGER.fullmatch(s):
        return [rows.problem(r.line, col, "bad_value", s, "expected a non-negative integer")]
    r.parsed["count"] = int(float(s))
    return []


def _flag(rows: TableRows, r: _Row) -> list[Problem]:
    col = r.cols.get("passed_screening")
    if col is None or not str(r.values[col]).strip():
        return []
    r.parsed["flag"] = parse_bool(r.values[col])
    if r.parsed["flag"] is None:
        return [rows.problem(r.line, col, "bad_value", r.values[col], "expected true or false")]
    return []


_STEPS: tuple[_Step, ...] = (_identity, _hints, _true_class, _guessed, _text, _count, _flag)


def _check(rows: TableRows, layout: Layout, r: _Row) -> list[Problem]:
    """Check one row (steps 1-4 of the module docstring); return its problems."""
    cols, values = r.cols, r.values
    kind = r.parsed["kind"] = layout.kind or str(values[cols["kind"]]).strip().lower()
    probs = _encoding_probs(rows, r.line, values)
    if not probs:
        probs += _missing(rows, r.line, values, [cols[f] for f in layout.nonempty])
    if not probs and layout.kind is None and kind not in KINDS:
        probs.append(
            rows.problem(
                r.line,
                cols["kind"],
                "bad_value",
                values[cols["kind"]],
                f"kind must be one of {', '.join(KINDS)}",
            )
        )
    if not probs and kind != "resign":
        probs += _missing(rows, r.line, values, [cols[f] for f in layout.nonempty_unless_resign])
    if not probs:
        probs += _parse(r, "cluster_id", rows.cluster, cols["cluster_id"])
    for step in _STEPS:
        if probs:
            break
        probs += step(rows, r)
    return probs


def _records(rows: TableRows, r: _Row) -> list[dict[str, Any]]:
    """Make the canonical records of a valid row (a resigns row: one per resign)."""
    v = r.parsed
    c = rows.clusters.loc[v["cluster_id"]]
    record = {
        "player_id": r.value("player_id").strip(),
        "cluster_id": v["cluster_id"],
        "image": c["image"],
        "layer": c["layer"],
        "cluster": int(c["cluster"]),
        "true_label": int(c["label"]),
        "true_class": c["true_class"],
        "kind": v["kind"],
        "guessed_label": v.get("guessed"),
        "hints": v.get("hints"),
        "text": v.get("text") or "",
        "text_en": re.sub(r"\s+", " ", r.value("text_en")).strip(),
        "language": language_code(r.value("language"), rows.cfg.default_language),
        "source_file": rows.raw.name,
        "source_row": r.line,
    }
    if "count" in r.cols:
        return [{**record, "guess_id": f"{rows.raw.name}:{r.line}:{k + 1}"} for k in range(v["count"])]
    return [{**record, "guess_id": r.value("guess_id").strip() or f"{rows.raw.name}:{r.line}"}]


def validate_rows(
    raw: RawTable, layout: Layout, cfg: ImportConfig, classes: ClassMap, clusters: pd.DataFrame
) -> TableRows:
    """Validate every row of a guess table through its column map.

    Parameters
    ----------
    raw : RawTable
        The table (:func:`~inviz.game.export.tables.read_table`), its columns checked.
    layout : Layout
        Its column map (:mod:`inviz.game.export.layouts`).
    cfg : ImportConfig
        The ``labels_import`` section (hint and text limits, default language, identity check).
    classes : ClassMap
        The game's class list.
    clusters : DataFrame
        One row per cluster map (:func:`~inviz.game.export.importer.cluster_table`).

    Returns
    -------
    TableRows
        Canonical records of the valid rows, the problems, dropped rows per reason, screening flags.
    """
    rows = TableRows(raw, cfg, classes, clusters)
    cols = layout.present(raw.frame.columns)
    for line, values in zip(raw.lines, raw.frame.to_dict("records"), strict=True):
        r = _Row(line, values, cols)
        probs = _check(rows, layout, r)
        records = [] if probs else _records(rows, r)
        player = r.value("player_id").strip()
        if not probs and r.parsed.get("flag") is not None and player:
            rows.flags[player] = rows.flags.get(player, True) and r.parsed["flag"]
        if layout.distinct_without_guess_id and not r.value("guess_id").strip():
            key: tuple = (line,)  # two equal rows without guess ids are two guesses, not a duplicate
        else:
            key = tuple(str(values[c]).strip() for c in raw.frame.columns)
        rows.finish(line, probs, records, key)
    return rows
