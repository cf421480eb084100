"""Deep Reveal exports in, one validated canonical table out (METHOD.md §3 input).

Two input layouts (files in one *game folder*; names are params, see :class:`ImportFiles`):

**Canonical long format** (ours) — ``guesses.csv``, one row per typed feature, plus one row per
guess without text and per resign:

=================  =========================================================================
column             meaning
=================  =========================================================================
guess_id           id of the guess (features of one guess share it); any string
player_id          id of the player (may be empty: unknown player, then not screenable)
cluster_id         cluster map id from the ``masks`` manifest
true_class         class of the image (game id, game name, class name or class folder)
kind               ``feature`` (a typed text), ``guess`` (guess without text), ``resign``
guessed_class      class the player chose (empty for ``resign``)
hints              hints used, integer 0..``max_hints`` (may be empty for ``resign``)
text               the typed feature (``feature`` rows only)
language           language of ``text`` (``en``, ``it``, ``Italian``…; empty = default)
text_en            optional: an English translation shipped with the export
passed_screening   optional: ``true``/``false`` per row's player
=================  =========================================================================

**Authors' export layout** — three tables: ``features.csv`` (``characteristic, guess_id,
percentile`` (= hints used), ``guessed_label_id, layer, cluster, cluster_id, image, label_en``,
optional ``characteristic_en, language_en, player_id``), ``resigns.csv`` (``cluster_id,
number_of_resigns``, optional ``player_id``) and ``guesses_without_text.csv`` (``cluster_id,
label, guessed_label_id, percentile``, optional ``player_id, guess_id``). Game class ids follow
the game's own class list, given as a *class map* file (``game_id, game_name, class_folder,
class_name``; the paper's is ``inviz/resources/game_classes_imagenette.csv``). An optional
``players.csv`` (``player_id, passed_screening``) flags players who failed the screening images.

Validation. *Structural* problems stop the import with an error naming the file (missing file,
missing or misspelt columns, no rows, a bad class map). *Row* problems drop the row and are
counted per reason in the report and listed (file, row = line in the file, column, value) in a
problems table — never silently: ``bad_encoding``, ``malformed_row``, ``missing_value``,
``bad_value``, ``unknown_cluster``, ``cluster_mismatch``, ``hints_out_of_range``,
``unknown_class``, ``true_class_mismatch``, ``empty_text``, ``text_too_long``,
``duplicate_row``, ``inconsistent_guess``. With ``strict`` any row problem is an error.
Screening: rows of players listed in ``failed_players`` or flagged by the export are excluded
and counted.
"""

from __future__ import annotations

import csv
import difflib
import io
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError
from inviz.labels.translate import language_code

log = logging.getLogger(__name__)

KINDS = ("feature", "guess", "resign")

CANONICAL_REQUIRED = ("guess_id", "player_id", "cluster_id", "true_class", "kind", "guessed_class", "hints", "text", "language")
CANONICAL_OPTIONAL = ("text_en", "passed_screening")
FEATURES_REQUIRED = ("characteristic", "guess_id", "percentile", "guessed_label_id", "layer", "cluster", "cluster_id", "image", "label_en")
FEATURES_OPTIONAL = ("characteristic_en", "language_en", "player_id")
RESIGNS_REQUIRED = ("cluster_id", "number_of_resigns")
RESIGNS_OPTIONAL = ("player_id",)
NO_TEXT_REQUIRED = ("cluster_id", "label", "guessed_label_id", "percentile")
NO_TEXT_OPTIONAL = ("player_id", "guess_id")
PLAYERS_REQUIRED = ("player_id", "passed_screening")
CLASS_MAP_REQUIRED = ("game_id", "game_name", "class_folder", "class_name")
DICTIONARY_REQUIRED = ("text", "language", "translation")

#: Columns of the canonical table written by :func:`import_game` (and read by label analysis).
OUTPUT_COLUMNS = [
    "guess_id", "player_id", "cluster_id", "image", "layer", "cluster", "true_label", "true_class", "kind",
    "guessed_label", "guessed_class", "correct", "hints", "text", "text_en", "language", "source_file", "source_row",
]

#: Row-problem reasons, in the order rows are checked.
REASONS = (
    "bad_encoding", "malformed_row", "missing_value", "bad_value", "unknown_cluster", "cluster_mismatch",
    "hints_out_of_range", "unknown_class", "true_class_mismatch", "empty_text", "text_too_long",
    "duplicate_row", "inconsistent_guess",
)


class GameExportError(InvizError, ValueError):
    """A structural problem with a game export (file, columns, class map) or strict-mode rows.

    ``problems`` holds the row problems (a DataFrame) when strict mode raised it.
    """

    def __init__(self, message: str, problems: pd.DataFrame | None = None):
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class ImportFiles:
    """``labels_import.files``: file names inside the game folder.

    guesses : canonical long format. features, resigns, no_text : the authors' three tables.
    players : optional screening flags (``player_id, passed_screening``).
    translations : optional manual translations (``text, language, translation[, context]``),
    passed on to label analysis (``dictionary`` translator).
    """

    guesses: str = "guesses.csv"
    features: str = "features.csv"
    resigns: str = "resigns.csv"
    no_text: str = "guesses_without_text.csv"
    players: str = "players.csv"
    translations: str = "translations.csv"


@dataclass(frozen=True)
class ImportConfig:
    """``labels_import`` section.

    source_dir : the game folder (read by ``dvc.yaml``, which passes it as ``--game-dir``; the
        demo points it at the simulator's output, the paper profile at a user-provided folder).
    class_map : game class list file (``--class-map`` in ``dvc.yaml``).
    format : ``auto`` (canonical if ``files.guesses`` exists, else the authors' layout),
        ``canonical`` or ``authors``.
    files : file names in the game folder.
    encoding : text encoding of the files (undecodable bytes make a ``bad_encoding`` row).
    max_hints : most hints a player can use (paper: 5).
    max_text_length : longest accepted text in characters.
    default_language : language of texts without one.
    check_cluster_identity : check the authors' ``image, layer, cluster`` against the manifest.
    strict : turn every row problem into an error.
    failed_players : player ids that failed the screening images (excluded).
    use_export_screening : also exclude players flagged in ``players.csv`` / ``passed_screening``.
    max_listed_problems : problems quoted in error messages and logs.
    """

    source_dir: str = "game_export"
    class_map: str = "src/inviz/resources/game_classes_imagenette.csv"
    format: Literal["auto", "canonical", "authors"] = "auto"
    files: ImportFiles = field(default_factory=ImportFiles)
    encoding: str = "utf-8"
    max_hints: int = 5
    max_text_length: int = 200
    default_language: str = "en"
    check_cluster_identity: bool = True
    strict: bool = False
    failed_players: list[str] = field(default_factory=list)
    use_export_screening: bool = True
    max_listed_problems: int = 20

    def __post_init__(self) -> None:
        if self.max_hints < 0:
            raise ValueError(f"max_hints: expected >= 0, got {self.max_hints}")
        if self.max_text_length < 1:
            raise ValueError(f"max_text_length: expected >= 1, got {self.max_text_length}")


@dataclass(frozen=True)
class Problem:
    """One row-level problem: ``file`` name, ``row`` (line in the file), ``column``, ``reason``."""

    file: str
    row: int
    column: str
    reason: str
    value: str
    message: str


PROBLEM_COLUMNS = ["file", "row", "column", "reason", "value", "message"]


def problems_frame(problems: Iterable[Problem]) -> pd.DataFrame:
    return pd.DataFrame([p.__dict__ for p in problems], columns=PROBLEM_COLUMNS)


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------

_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]|\ufffd")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass
class RawTable:
    """A CSV read as strings: ``frame`` (columns as in the header), ``lines`` (line of each row)."""

    name: str
    frame: pd.DataFrame
    lines: list[int]
    problems: list[Problem]


def encoding_problem(value: str) -> str | None:
    """Why ``value`` looks wrongly encoded (undecodable bytes, U+FFFD, mojibake, controls), or None."""
    if _SURROGATE.search(value):
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
                problems.append(Problem(name, start, "", "malformed_row", ",".join(rec)[:80],
                                        f"{len(rec)} field(s), the header has {len(header)}"))
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


def check_columns(table: RawTable, required: Sequence[str], optional: Sequence[str], path: Path) -> list[str]:
    """Raise :class:`GameExportError` on missing or misspelt columns; return ignored extra columns.

    An unknown column that closely resembles an expected one (``difflib`` ratio >= 0.75) is a
    misspelling (error); other unknown columns are ignored and reported.
    """
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
        raise GameExportError(f"{path}: {'; '.join(msgs)}. Expected columns: {', '.join(required)}"
                              + (f" (optional: {', '.join(optional)})" if optional else ""))
    ignored = [c for c in unknown if c not in named]
    if ignored:
        log.warning("%s: ignoring unknown column(s) %s", path, ", ".join(ignored))
    return ignored


# --------------------------------------------------------------------------------------------
# classes and clusters
# --------------------------------------------------------------------------------------------


def _norm_name(value: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(value).strip().lower())


@dataclass(frozen=True)
class ClassMap:
    """The game's class list joined to the dataset's classes.

    table : ``game_id, game_name, class_folder, class_name, label`` (``label`` = dataset index).
    """

    table: pd.DataFrame

    def __post_init__(self) -> None:
        lookup: dict[str, int] = {}
        ids: dict[int, int] = {}
        for gid, gname, folder, cname, label in self.table[["game_id", "game_name", "class_folder", "class_name", "label"]].itertuples(index=False):
            ids[int(gid)] = int(label)
            for alias in (gname, folder, cname):
                lookup[_norm_name(alias)] = int(label)
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_ids", ids)

    def resolve(self, value: Any) -> int | None:
        """Dataset label of a class given as game id (``3``), game name, class name or folder."""
        s = str(value).strip()
        if not s:
            return None
        if re.fullmatch(r"\d+(\.0+)?", s):
            return self._ids.get(int(float(s)))  # type: ignore[attr-defined]
        return self._lookup.get(_norm_name(s))  # type: ignore[attr-defined]

    def class_name(self, label: int) -> str:
        return str(self.table.loc[self.table["label"] == label, "class_name"].iloc[0])

    def aliases(self, label: int) -> list[str]:
        """Names of a class for text cleaning: its class name and game name."""
        row = self.table[self.table["label"] == label].iloc[0]
        return sorted({str(row["class_name"]), str(row["game_name"])})


def load_class_map(path: str | Path, classes: Sequence[dict[str, Any]], encoding: str = "utf-8") -> ClassMap:
    """Read the game's class list and join it to ``classes`` (``data/classes.json`` records).

    Every game class must name an existing ``class_folder`` and every dataset class must appear
    once; otherwise :class:`GameExportError` names the file and the class.
    """
    path = Path(path)
    raw = read_table(path, encoding)
    check_columns(raw, CLASS_MAP_REQUIRED, (), path)
    if raw.problems:
        p = raw.problems[0]
        raise GameExportError(f"{path}: row {p.row}: {p.message}")
    t = raw.frame.copy()
    by_folder = {str(c["class_folder"]): int(c["label"]) for c in classes}
    errs = []
    labels = []
    for i, (gid, folder) in enumerate(zip(t["game_id"], t["class_folder"], strict=False)):
        line = raw.lines[i]
        if not re.fullmatch(r"\s*\d+\s*", str(gid)):
            errs.append(f"row {line}: game_id {gid!r} is not an integer")
        if str(folder).strip() not in by_folder:
            errs.append(f"row {line}: class_folder {folder!r} is not a dataset class ({', '.join(sorted(by_folder))})")
        labels.append(by_folder.get(str(folder).strip(), -1))
    if errs:
        raise GameExportError(f"{path}: " + "; ".join(errs))
    t["game_id"] = t["game_id"].astype(int)
    t["label"] = labels
    for col, what in (("game_id", "game id"), ("label", "class_folder")):
        d = t[col][t[col].duplicated()]
        if len(d):
            raise GameExportError(f"{path}: {what} {d.iloc[0]} appears more than once")
    missing = sorted(set(by_folder) - set(t["class_folder"].str.strip()))
    if missing:
        raise GameExportError(f"{path}: dataset class(es) {', '.join(missing)} missing from the game's class list")
    return ClassMap(t.sort_values("game_id").reset_index(drop=True))


def cluster_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per cluster map from the ``masks`` manifest (which has one row per level)."""
    cols = ["cluster_id", "image", "layer", "cluster", "label", "true_class", "weight"]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise GameExportError(f"masks manifest: missing column(s) {', '.join(missing)}")
    return manifest.drop_duplicates("cluster_id")[cols].sort_values("cluster_id").reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# row validation
# --------------------------------------------------------------------------------------------


class _Rows:
    """Validates the rows of one table and collects canonical records and problems."""

    def __init__(self, raw: RawTable, cfg: ImportConfig, classes: ClassMap, clusters: pd.DataFrame):
        self.raw, self.cfg, self.classes = raw, cfg, classes
        self.clusters = clusters.set_index("cluster_id")
        self.problems: list[Problem] = list(raw.problems)
        self.records: list[dict[str, Any]] = []
        self.dropped_rows: Counter[str] = Counter(p.reason for p in raw.problems)
        self._seen: dict[tuple, int] = {}

    def problem(self, line: int, column: str, reason: str, value: Any, message: str) -> Problem:
        return Problem(self.raw.name, line, column, reason, str(value)[:80], message)

    # helpers returning (value, problem)
    def cluster(self, line: int, value: str, column: str = "cluster_id") -> tuple[int | None, Problem | None]:
        s = str(value).strip()
        if not re.fullmatch(r"\d+(\.0+)?", s):
            return None, self.problem(line, column, "bad_value", value, "cluster id must be a non-negative integer")
        cid = int(float(s))
        if cid not in self.clusters.index:
            return None, self.problem(line, column, "unknown_cluster", value, "cluster id not in the masks manifest")
        return cid, None

    def hints(self, line: int, value: str, column: str) -> tuple[float | None, Problem | None]:
        s = str(value).strip()
        try:
            h = float(s)
        except ValueError:
            return None, self.problem(line, column, "hints_out_of_range", value, f"hints must be an integer 0..{self.cfg.max_hints}")
        if not (h == int(h) and 0 <= h <= self.cfg.max_hints):
            return None, self.problem(line, column, "hints_out_of_range", value, f"hints must be an integer 0..{self.cfg.max_hints}")
        return float(h), None

    def klass(self, line: int, value: str, column: str) -> tuple[int | None, Problem | None]:
        label = self.classes.resolve(value)
        if label is None:
            return None, self.problem(line, column, "unknown_class", value, "not a game id or class name of the class map")
        return label, None

    def text(self, line: int, value: str, column: str) -> tuple[str | None, Problem | None]:
        t = re.sub(r"\s+", " ", str(value)).strip()
        if not t:
            return None, self.problem(line, column, "empty_text", value, "the typed feature is empty")
        if len(t) > self.cfg.max_text_length:
            return None, self.problem(line, column, "text_too_long", value, f"{len(t)} characters > max_text_length {self.cfg.max_text_length}")
        return t, None

    def finish(self, line: int, probs: list[Problem], record: dict[str, Any] | None, key: tuple) -> bool:
        """Record the row's problems (the first one counts the dropped row) or keep it; a row equal
        to an earlier kept row (``key``) is a ``duplicate_row``. Returns whether the row is kept."""
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
        if record is not None:
            self.records.append(record)
        return True


def _encoding_probs(rows: _Rows, line: int, values: dict[str, str]) -> list[Problem]:
    out = []
    for col, v in values.items():
        why = encoding_problem(str(v))
        if why:
            clean = _SURROGATE.sub("?", str(v))
            out.append(rows.problem(line, col, "bad_encoding", clean, why))
    return out


def _cluster_record(rows: _Rows, cid: int) -> dict[str, Any]:
    c = rows.clusters.loc[cid]
    return {"cluster_id": cid, "image": c["image"], "layer": c["layer"], "cluster": int(c["cluster"]),
            "true_label": int(c["label"]), "true_class": c["true_class"]}


def _check_true(rows: _Rows, line: int, cid: int | None, value: str, column: str) -> list[Problem]:
    label, p = rows.klass(line, value, column)
    if p:
        return [p]
    if cid is not None and label != int(rows.clusters.loc[cid, "label"]):
        return [rows.problem(line, column, "true_class_mismatch", value,
                             f"the manifest's class of cluster {cid} is {rows.clusters.loc[cid, 'true_class']!r}")]
    return []


def _stem(value: Any) -> str:
    return Path(str(value).strip().replace("\\", "/")).stem.lower()


def _identity_probs(rows: _Rows, line: int, cid: int, row: dict[str, str]) -> list[Problem]:
    c = rows.clusters.loc[cid]
    out = []
    if str(row["layer"]).strip().lower() != str(c["layer"]).lower():
        out.append(rows.problem(line, "layer", "cluster_mismatch", row["layer"], f"cluster {cid} is on layer {c['layer']!r}"))
    if str(row["cluster"]).strip() not in (str(int(c["cluster"])), f"{int(c['cluster'])}.0"):
        out.append(rows.problem(line, "cluster", "cluster_mismatch", row["cluster"], f"cluster {cid} is cluster {int(c['cluster'])} of its layer"))
    if _stem(row["image"]) != _stem(c["image"]):
        out.append(rows.problem(line, "image", "cluster_mismatch", row["image"], f"cluster {cid} belongs to image {c['image']!r}"))
    return out


def _missing(rows: _Rows, line: int, row: dict[str, str], columns: Sequence[str]) -> list[Problem]:
    return [rows.problem(line, c, "missing_value", "", "required value is empty") for c in columns if not str(row[c]).strip()]


def _parse_bool(value: str) -> bool | None:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes", "y", "t"):
        return True
    if v in ("false", "0", "no", "n", "f"):
        return False
    return None


def _validate_canonical(raw: RawTable, cfg: ImportConfig, classes: ClassMap, clusters: pd.DataFrame) -> tuple[_Rows, dict[str, bool]]:
    rows = _Rows(raw, cfg, classes, clusters)
    flags: dict[str, bool] = {}
    has_en = "text_en" in raw.frame.columns
    has_flag = "passed_screening" in raw.frame.columns
    for i, rec in enumerate(raw.frame.to_dict("records")):
        line = raw.lines[i]
        probs = _encoding_probs(rows, line, rec)
        kind = str(rec["kind"]).strip().lower()
        if not probs:
            probs += _missing(rows, line, rec, ["guess_id", "cluster_id", "true_class", "kind"])
        if not probs and kind not in KINDS:
            probs.append(rows.problem(line, "kind", "bad_value", rec["kind"], f"kind must be one of {', '.join(KINDS)}"))
        if not probs and kind != "resign":
            probs += _missing(rows, line, rec, ["guessed_class", "hints"])
        cid = hints = guessed = text = None
        if not probs:
            cid, p = rows.cluster(line, rec["cluster_id"])
            probs += [p] if p else []
        if not probs and str(rec["hints"]).strip():
            hints, p = rows.hints(line, rec["hints"], "hints")
            probs += [p] if p else []
        if not probs:
            probs += _check_true(rows, line, cid, rec["true_class"], "true_class")
        if not probs and kind != "resign":
            guessed, p = rows.klass(line, rec["guessed_class"], "guessed_class")
            probs += [p] if p else []
        if not probs and kind == "feature":
            text, p = rows.text(line, rec["text"], "text")
            probs += [p] if p else []
        if not probs and kind != "feature" and str(rec["text"]).strip():
            probs.append(rows.problem(line, "text", "bad_value", rec["text"], f"'{kind}' rows carry no text (use kind 'feature')"))
        flag = None
        if not probs and has_flag and str(rec["passed_screening"]).strip():
            flag = _parse_bool(rec["passed_screening"])
            if flag is None:
                probs.append(rows.problem(line, "passed_screening", "bad_value", rec["passed_screening"], "expected true or false"))
        record = None
        if not probs:
            player = str(rec["player_id"]).strip()
            if flag is not None and player:
                flags[player] = flags.get(player, True) and flag
            record = {
                "guess_id": str(rec["guess_id"]).strip(),
                "player_id": player,
                **_cluster_record(rows, cid),  # type: ignore[arg-type]
                "kind": kind,
                "guessed_label": guessed,
                "hints": hints,
                "text": text or "",
                "text_en": re.sub(r"\s+", " ", str(rec.get("text_en", "") if has_en else "")).strip(),
                "language": language_code(rec["language"], cfg.default_language),
                "source_file": raw.name,
                "source_row": line,
            }
        rows.finish(line, probs, record, tuple(str(rec[c]).strip() for c in raw.frame.columns))
    return rows, flags


def _validate_features(raw: RawTable, cfg: ImportConfig, classes: ClassMap, clusters: pd.DataFrame) -> _Rows:
    rows = _Rows(raw, cfg, classes, clusters)
    cols = raw.frame.columns
    for i, rec in enumerate(raw.frame.to_dict("records")):
        line = raw.lines[i]
        probs = _encoding_probs(rows, line, rec)
        if not probs:
            probs += _missing(rows, line, rec, ["guess_id", "cluster_id", "percentile", "guessed_label_id", "label_en"])
        cid = hints = guessed = text = None
        if not probs:
            cid, p = rows.cluster(line, rec["cluster_id"])
            probs += [p] if p else []
        if not probs and cfg.check_cluster_identity:
            probs += _identity_probs(rows, line, cid, rec)  # type: ignore[arg-type]
        if not probs:
            hints, p = rows.hints(line, rec["percentile"], "percentile")
            probs += [p] if p else []
        if not probs:
            probs += _check_true(rows, line, cid, rec["label_en"], "label_en")
        if not probs:
            guessed, p = rows.klass(line, rec["guessed_label_id"], "guessed_label_id")
            probs += [p] if p else []
        if not probs:
            text, p = rows.text(line, rec["characteristic"], "characteristic")
            probs += [p] if p else []
        record = None
        if not probs:
            record = {
                "guess_id": str(rec["guess_id"]).strip(),
                "player_id": str(rec.get("player_id", "") or "").strip(),
                **_cluster_record(rows, cid),  # type: ignore[arg-type]
                "kind": "feature",
                "guessed_label": guessed,
                "hints": hints,
                "text": text,
                "text_en": re.sub(r"\s+", " ", str(rec.get("characteristic_en", "") or "")).strip(),
                "language": language_code(rec.get("language_en", ""), cfg.default_language),
                "source_file": raw.name,
                "source_row": line,
            }
        rows.finish(line, probs, record, tuple(str(rec[c]).strip() for c in cols))
    return rows


def _validate_no_text(raw: RawTable, cfg: ImportConfig, classes: ClassMap, clusters: pd.DataFrame) -> _Rows:
    rows = _Rows(raw, cfg, classes, clusters)
    cols = raw.frame.columns
    for i, rec in enumerate(raw.frame.to_dict("records")):
        line = raw.lines[i]
        probs = _encoding_probs(rows, line, rec)
        if not probs:
            probs += _missing(rows, line, rec, list(NO_TEXT_REQUIRED))
        cid = hints = guessed = None
        if not probs:
            cid, p = rows.cluster(line, rec["cluster_id"])
            probs += [p] if p else []
        if not probs:
            hints, p = rows.hints(line, rec["percentile"], "percentile")
            probs += [p] if p else []
        if not probs:
            probs += _check_true(rows, line, cid, rec["label"], "label")
        if not probs:
            guessed, p = rows.klass(line, rec["guessed_label_id"], "guessed_label_id")
            probs += [p] if p else []
        record = None
        if not probs:
            gid = str(rec.get("guess_id", "") or "").strip() or f"{raw.name}:{line}"
            record = {
                "guess_id": gid, "player_id": str(rec.get("player_id", "") or "").strip(),
                **_cluster_record(rows, cid),  # type: ignore[arg-type]
                "kind": "guess", "guessed_label": guessed, "hints": hints, "text": "", "text_en": "",
                "language": cfg.default_language, "source_file": raw.name, "source_row": line,
            }
        if "guess_id" in cols and str(rec.get("guess_id", "")).strip():
            key = tuple(str(rec[c]).strip() for c in cols)
        else:  # without guess ids two equal rows are two guesses, not a duplicate
            key = (line,)
        rows.finish(line, probs, record, key)
    return rows


def _validate_resigns(raw: RawTable, cfg: ImportConfig, classes: ClassMap, clusters: pd.DataFrame) -> _Rows:
    rows = _Rows(raw, cfg, classes, clusters)
    cols = raw.frame.columns
    for i, rec in enumerate(raw.frame.to_dict("records")):
        line = raw.lines[i]
        probs = _encoding_probs(rows, line, rec)
        if not probs:
            probs += _missing(rows, line, rec, list(RESIGNS_REQUIRED))
        cid = None
        n = 0
        if not probs:
            cid, p = rows.cluster(line, rec["cluster_id"])
            probs += [p] if p else []
        if not probs:
            s = str(rec["number_of_resigns"]).strip()
            if not re.fullmatch(r"\d+(\.0+)?", s):
                probs.append(rows.problem(line, "number_of_resigns", "bad_value", s, "expected a non-negative integer"))
            else:
                n = int(float(s))
        if rows.finish(line, probs, None, tuple(str(rec[c]).strip() for c in cols)):
            for k in range(n):
                rows.records.append({
                    "guess_id": f"{raw.name}:{line}:{k + 1}", "player_id": str(rec.get("player_id", "") or "").strip(),
                    **_cluster_record(rows, cid),  # type: ignore[arg-type]
                    "kind": "resign", "guessed_label": None, "hints": None, "text": "", "text_en": "",
                    "language": cfg.default_language, "source_file": raw.name, "source_row": line,
                })
    return rows


def _inconsistent_guesses(frame: pd.DataFrame, problems: list[Problem], dropped: Counter[str]) -> pd.DataFrame:
    """Drop feature rows whose guess id disagrees with the guess's first row (cluster, class, hints)."""
    feats = frame[frame["kind"] == "feature"]
    if feats.empty:
        return frame
    key = feats[["cluster_id", "guessed_label", "hints", "player_id"]].astype(str).agg("|".join, axis=1)
    first = key.groupby(feats["guess_id"]).transform("first")
    bad = feats.index[key != first]
    for idx in bad:
        r = frame.loc[idx]
        problems.append(Problem(r["source_file"], int(r["source_row"]), "guess_id", "inconsistent_guess", str(r["guess_id"]),
                                "another row of this guess has a different cluster, guessed class, hints or player"))
        dropped["inconsistent_guess"] += 1
    return frame.drop(index=bad)


# --------------------------------------------------------------------------------------------
# the import
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    """Output of :func:`import_game`.

    guesses : the canonical table (:data:`OUTPUT_COLUMNS`), screened, every row valid.
    problems : every row problem (:data:`PROBLEM_COLUMNS`).
    report : counts (rows read/kept/dropped per reason and file, screening, kinds).
    translations : manual translations shipped in the game folder (may be empty).
    """

    guesses: pd.DataFrame
    problems: pd.DataFrame
    report: dict[str, Any]
    translations: pd.DataFrame


def detect_format(game_dir: Path, cfg: ImportConfig) -> str:
    """``canonical`` or ``authors`` (``cfg.format: auto`` looks at which files exist)."""
    if cfg.format != "auto":
        return cfg.format
    if (game_dir / cfg.files.guesses).is_file():
        return "canonical"
    if (game_dir / cfg.files.features).is_file():
        return "authors"
    raise GameExportError(
        f"{game_dir}: no game export found; expected {cfg.files.guesses} (canonical format) or "
        f"{cfg.files.features} (+ {cfg.files.resigns}, {cfg.files.no_text}; the authors' layout)"
    )


def _read_players(path: Path, cfg: ImportConfig, problems: list[Problem], dropped: Counter[str]) -> dict[str, bool]:
    raw = read_table(path, cfg.encoding)
    check_columns(raw, PLAYERS_REQUIRED, (), path)
    problems.extend(raw.problems)
    dropped.update(p.reason for p in raw.problems)
    flags: dict[str, bool] = {}
    for i, rec in enumerate(raw.frame.to_dict("records")):
        line = raw.lines[i]
        pid, flag = str(rec["player_id"]).strip(), _parse_bool(rec["passed_screening"])
        why = encoding_problem(pid)
        if why or not pid or flag is None:
            col, reason = ("player_id", "bad_encoding") if why else (("player_id", "missing_value") if not pid else ("passed_screening", "bad_value"))
            problems.append(Problem(raw.name, line, col, reason, str(rec[col])[:80], why or "expected a player id and true/false"))
            dropped[reason] += 1
            continue
        flags[pid] = flags.get(pid, True) and flag
    return flags


def _read_translations(path: Path, cfg: ImportConfig, problems: list[Problem], dropped: Counter[str]) -> pd.DataFrame:
    cols = ["text", "language", "translation", "context"]
    if not path.is_file():
        return pd.DataFrame(columns=cols)
    raw = read_table(path, cfg.encoding)
    check_columns(raw, DICTIONARY_REQUIRED, ("context",), path)
    problems.extend(raw.problems)
    dropped.update(p.reason for p in raw.problems)
    keep = []
    for i, rec in enumerate(raw.frame.to_dict("records")):
        bad = [c for c in raw.frame.columns if encoding_problem(str(rec[c]))]
        if bad:
            problems.append(Problem(raw.name, raw.lines[i], bad[0], "bad_encoding", _SURROGATE.sub("?", str(rec[bad[0]]))[:80],
                                    encoding_problem(str(rec[bad[0]])) or ""))
            dropped["bad_encoding"] += 1
            continue
        keep.append({"text": str(rec["text"]).strip(), "language": language_code(rec["language"], cfg.default_language),
                     "translation": str(rec["translation"]).strip(), "context": str(rec.get("context", "") or "").strip()})
    return pd.DataFrame(keep, columns=cols)


def import_game(
    game_dir: str | Path,
    class_map: ClassMap,
    clusters: pd.DataFrame,
    cfg: ImportConfig = ImportConfig(),
) -> ImportResult:
    """Read, validate and screen a game export.

    Parameters
    ----------
    game_dir : folder with the export files (:class:`ImportFiles`).
    class_map : from :func:`load_class_map`.
    clusters : one row per cluster map (:func:`cluster_table` of the masks manifest).
    cfg : import settings.

    Raises
    ------
    GameExportError
        Structural problems; with ``cfg.strict``, any row problem.
    """
    game_dir = Path(game_dir)
    fmt = detect_format(game_dir, cfg)
    files = cfg.files
    validated: list[_Rows] = []
    read_counts: dict[str, int] = {}
    ignored: dict[str, list[str]] = {}
    warnings: list[str] = []
    export_flags: dict[str, bool] = {}
    if fmt == "canonical":
        path = game_dir / files.guesses
        raw = read_table(path, cfg.encoding)
        ignored[raw.name] = check_columns(raw, CANONICAL_REQUIRED, CANONICAL_OPTIONAL, path)
        if raw.frame.empty and not raw.problems:
            raise GameExportError(f"{path}: no data rows")
        rows, export_flags = _validate_canonical(raw, cfg, class_map, clusters)
        validated.append(rows)
        read_counts[raw.name] = len(raw.frame) + len(raw.problems)
    else:
        specs = [
            (files.features, FEATURES_REQUIRED, FEATURES_OPTIONAL, _validate_features, True),
            (files.no_text, NO_TEXT_REQUIRED, NO_TEXT_OPTIONAL, _validate_no_text, False),
            (files.resigns, RESIGNS_REQUIRED, RESIGNS_OPTIONAL, _validate_resigns, False),
        ]
        for fname, req, opt, fn, required in specs:
            path = game_dir / fname
            if not path.is_file():
                if required:
                    raise GameExportError(f"{path}: file not found (the authors' layout needs {files.features})")
                warnings.append(f"{fname}: not found; treated as empty")
                log.warning("%s: not found; treated as empty", path)
                continue
            raw = read_table(path, cfg.encoding)
            ignored[raw.name] = check_columns(raw, req, opt, path)
            if required and raw.frame.empty and not raw.problems:
                raise GameExportError(f"{path}: no data rows")
            validated.append(fn(raw, cfg, class_map, clusters))
            read_counts[raw.name] = len(raw.frame) + len(raw.problems)

    problems: list[Problem] = [p for v in validated for p in v.problems]
    dropped: Counter[str] = Counter()
    for v in validated:
        dropped.update(v.dropped_rows)
    records = [r for v in validated for r in v.records]
    frame = pd.DataFrame(records, columns=[c for c in OUTPUT_COLUMNS if c not in ("guessed_class", "correct")])
    frame = _inconsistent_guesses(frame, problems, dropped)

    # screening
    if cfg.use_export_screening and (game_dir / files.players).is_file():
        for pid, ok in _read_players(game_dir / files.players, cfg, problems, dropped).items():
            export_flags[pid] = export_flags.get(pid, True) and ok
    elif (game_dir / files.players).is_file():
        warnings.append(f"{files.players}: ignored (use_export_screening is false)")
    failed = set(map(str, cfg.failed_players))
    if cfg.use_export_screening:
        failed |= {p for p, ok in export_flags.items() if not ok}
    screened = frame["player_id"].isin(failed) & (frame["player_id"] != "")
    excluded = frame[screened]
    frame = frame[~screened].reset_index(drop=True)
    unknown_player = int((frame["player_id"] == "").sum())

    translations = _read_translations(game_dir / files.translations, cfg, problems, dropped)

    problem_table = problems_frame(problems).sort_values(["file", "row", "column"], kind="stable").reset_index(drop=True)
    if cfg.strict and len(problem_table):
        listed = "\n".join(f"  {p.file} row {p.row} column {p.column or '-'}: {p.reason}: {p.message} ({p.value!r})"
                           for p in problem_table.head(cfg.max_listed_problems).itertuples())
        raise GameExportError(f"{len(problem_table)} row problem(s) in {game_dir} (strict mode):\n{listed}", problem_table)

    frame["guessed_class"] = [class_map.class_name(int(g)) if g is not None and not pd.isna(g) else "" for g in frame["guessed_label"]]
    frame["correct"] = [bool(g is not None and not pd.isna(g) and int(g) == t) for g, t in zip(frame["guessed_label"], frame["true_label"], strict=False)]
    frame["guessed_label"] = frame["guessed_label"].astype("Int64")
    frame["hints"] = pd.to_numeric(frame["hints"], errors="coerce").astype(float)
    frame = frame[OUTPUT_COLUMNS]

    kinds = {k: int((frame["kind"] == k).sum()) for k in KINDS}
    rows_read = int(sum(read_counts.values()))
    report = {
        "format": fmt,
        "files": {name: {"rows": n} for name, n in read_counts.items()},
        "rows_read": rows_read,
        "rows_dropped": int(sum(dropped.values())),
        "dropped_by_reason": {r: int(dropped.get(r, 0)) for r in REASONS if dropped.get(r, 0)},
        "problems_by_reason": {r: int(n) for r, n in Counter(problem_table["reason"]).most_common()},
        "problems_by_file": {f: int(n) for f, n in Counter(problem_table["file"]).most_common()},
        "ignored_columns": {k: v for k, v in ignored.items() if v},
        "screening": {
            "failed_players": len(failed),
            "excluded_players": int(excluded["player_id"].nunique()),
            "excluded_rows": int(len(excluded)),
            "excluded_by_kind": {k: int((excluded["kind"] == k).sum()) for k in KINDS},
            "rows_without_player": unknown_player,
        },
        "kept": {"rows": int(len(frame)), **kinds},
        "n_guesses": int(frame.loc[frame["kind"] != "resign", "guess_id"].nunique()),
        "n_players": int(frame.loc[frame["player_id"] != "", "player_id"].nunique()),
        "n_cluster_maps": int(len(clusters)),
        "n_cluster_maps_played": int(frame["cluster_id"].nunique()),
        "n_translations": int(len(translations)),
        "warnings": warnings,
    }
    if len(problem_table):
        log.warning("import: %d row problem(s) dropped %d row(s): %s", len(problem_table), report["rows_dropped"],
                    ", ".join(f"{k} {v}" for k, v in report["dropped_by_reason"].items()))
    return ImportResult(frame, problem_table, report, translations)


GUESS_DTYPES = {
    "guess_id": str, "player_id": str, "image": str, "layer": str, "true_class": str, "kind": str,
    "guessed_class": str, "text": str, "text_en": str, "language": str, "source_file": str,
}


def read_guesses(path: str | Path) -> pd.DataFrame:
    """Read the canonical table written by the ``labels_import`` stage (dtypes restored)."""
    path = Path(path)
    if not path.is_file():
        raise GameExportError(f"{path}: canonical guesses table not found (run the 'labels_import' stage first)")
    frame = pd.read_csv(path, dtype=GUESS_DTYPES, keep_default_na=False, na_values={"hints": [""], "guessed_label": [""]})
    missing = [c for c in OUTPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise GameExportError(f"{path}: not a canonical guesses table; missing column(s) {', '.join(missing)}")
    frame["correct"] = frame["correct"].astype(str).str.lower().isin(["true", "1"])
    frame["hints"] = pd.to_numeric(frame["hints"], errors="coerce").astype(float)
    frame["guessed_label"] = pd.to_numeric(frame["guessed_label"], errors="coerce").astype("Int64")
    for col in ("cluster_id", "cluster", "true_label", "source_row"):
        frame[col] = frame[col].astype(int)
    return frame


def game_classes_frame(class_names: Sequence[str], folders: Sequence[str]) -> pd.DataFrame:
    """A game class list like the paper's: ids 1..K in alphabetical order of the readable names.

    ``game_name`` is the readable name in title case (``"Night Sky"``).
    """
    order = sorted(range(len(class_names)), key=lambda i: str(class_names[i]).lower())
    return pd.DataFrame(
        {
            "game_id": np.arange(1, len(order) + 1),
            "game_name": [str(class_names[i]).title() for i in order],
            "class_folder": [folders[i] for i in order],
            "class_name": [class_names[i] for i in order],
        }
    )
