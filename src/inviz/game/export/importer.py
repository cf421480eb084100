"""Import a game folder: read, validate and screen, one canonical table out (docs/method.md §3, input).

:func:`import_game` finds the layout (:func:`detect_format`), validates every guess table with
the one row validator (:func:`inviz.game.export.rows.validate_rows`), drops guesses whose rows
disagree (``inconsistent_guess``), excludes the rows of players who failed the screening images,
passes the manual translations on and counts everything in a report. :func:`read_guesses`
reads the canonical table back for label analysis.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from inviz.core.io import require_file
from inviz.game.export.classmap import ClassMap
from inviz.game.export.config import ImportConfig, ImportFiles
from inviz.game.export.layouts import (
    CANONICAL,
    FEATURES,
    KINDS,
    NO_TEXT,
    OUTPUT_COLUMNS,
    PLAYERS,
    RESIGNS,
    TRANSLATIONS,
    Layout,
)
from inviz.game.export.problems import REASONS, GameExportError, Problem, problems_frame
from inviz.game.export.rows import TableRows, parse_bool, validate_rows
from inviz.game.export.tables import SURROGATE, check_columns, encoding_problem, read_table
from inviz.labels.translate import language_code

log = logging.getLogger(__name__)

#: Message of an ``inconsistent_guess`` problem.
INCONSISTENT = "another row of this guess has a different cluster, guessed class, hints or player"

#: Columns of the manual translations passed on to label analysis.
TRANSLATION_COLUMNS = ["text", "language", "translation", "context"]


@dataclass(frozen=True)
class ImportResult:
    """Output of :func:`import_game`.

    guesses : the canonical table (:data:`~inviz.game.export.layouts.OUTPUT_COLUMNS`), screened,
        every row valid.
    problems : every row problem (:data:`~inviz.game.export.problems.PROBLEM_COLUMNS`).
    report : counts (rows read/kept/dropped per reason and file, screening, kinds).
    translations : manual translations shipped in the game folder (may be empty).
    class_names : the class names label analysis removes from texts
        (:meth:`~inviz.game.export.classmap.ClassMap.names_table`).
    """

    guesses: pd.DataFrame
    problems: pd.DataFrame
    report: dict[str, Any]
    translations: pd.DataFrame
    class_names: pd.DataFrame


def detect_format(game_dir: Path, cfg: ImportConfig) -> str:
    """Tell the layout of a game folder: ``canonical`` or ``authors``.

    Parameters
    ----------
    game_dir : Path
        The game folder.
    cfg : ImportConfig
        ``format`` (``auto`` looks at which files exist) and the file names.

    Returns
    -------
    str
    """
    if cfg.format != "auto":
        return cfg.format
    if (game_dir / cfg.files.guesses).is_file():
        return "canonical"
    if (game_dir / cfg.files.features).is_file():
        return "authors"
    raise GameExportError(
        f"no game export in {game_dir}/ yet (labels_import.source_dir): expected {cfg.files.guesses} "
        "(canonical format) or "
        f"{cfg.files.features} (+ {cfg.files.resigns}, {cfg.files.no_text}; the authors' layout). "
        "Collect labels with the game: 'inviz game serve --params params.yaml' (people play), then "
        f"'inviz game export --params params.yaml' (writes {game_dir}), then 'dvc repro' again; "
        "every stage before this one is done and will not re-run "
        "(README 'Label game data' and 'The label game')"
    )


def cluster_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """List the cluster maps of the ``masks`` manifest (which has one row per level).

    Parameters
    ----------
    manifest : DataFrame
        The masks manifest (:func:`inviz.game.manifest.read_manifest`).

    Returns
    -------
    DataFrame
        ``cluster_id, image, layer, cluster, label, true_class, weight``, one row per cluster
        map, by cluster id.
    """
    cols = ["cluster_id", "image", "layer", "cluster", "label", "true_class", "weight"]
    missing = [c for c in cols if c not in manifest.columns]
    if missing:
        raise GameExportError(f"masks manifest: missing column(s) {', '.join(missing)}")
    return manifest.drop_duplicates("cluster_id")[cols].sort_values("cluster_id").reset_index(drop=True)


@dataclass
class _Tables:
    """The guess tables of a game folder, validated: rows, counts, ignored columns, warnings."""

    validated: list[TableRows] = field(default_factory=list)
    read_counts: dict[str, int] = field(default_factory=dict)
    ignored: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _guess_tables(fmt: str, files: ImportFiles) -> list[tuple[str, Layout, str | None]]:
    """(file name, layout, hint of the error when missing; None: optional) of each guess table."""
    if fmt == "canonical":
        return [(files.guesses, CANONICAL, "")]
    return [
        (files.features, FEATURES, f" (the authors' layout needs {files.features})"),
        (files.no_text, NO_TEXT, None),
        (files.resigns, RESIGNS, None),
    ]


def _read_guess_tables(
    game_dir: Path, fmt: str, cfg: ImportConfig, class_map: ClassMap, clusters: pd.DataFrame
) -> _Tables:
    """Read, check and validate the guess tables of the layout ``fmt``."""
    out = _Tables()
    for name, layout, missing_hint in _guess_tables(fmt, cfg.files):
        path = game_dir / name
        if not path.is_file():
            if missing_hint is not None:
                raise GameExportError(f"{path}: file not found{missing_hint}")
            out.warnings.append(f"{name}: not found; treated as empty")
            log.warning("%s: not found; treated as empty", path)
            continue
        raw = read_table(path, cfg.encoding)
        out.ignored[raw.name] = check_columns(raw, layout, path)
        if missing_hint is not None and raw.frame.empty and not raw.problems:
            raise GameExportError(f"{path}: no data rows")
        out.validated.append(validate_rows(raw, layout, cfg, class_map, clusters))
        out.read_counts[raw.name] = len(raw.frame) + len(raw.problems)
    return out


def _inconsistent_guesses(
    frame: pd.DataFrame, problems: list[Problem], dropped: Counter[str]
) -> pd.DataFrame:
    """Drop feature rows whose guess id disagrees with the guess's first row (cluster, class, hints)."""
    feats = frame[frame["kind"] == "feature"]
    if feats.empty:
        return frame
    key = feats[["cluster_id", "guessed_label", "hints", "player_id"]].astype(str).agg("|".join, axis=1)
    first = key.groupby(feats["guess_id"]).transform("first")
    bad = feats.index[key != first]
    for idx in bad:
        r = frame.loc[idx]
        problems.append(
            Problem(
                r["source_file"],
                int(r["source_row"]),
                "guess_id",
                "inconsistent_guess",
                str(r["guess_id"]),
                INCONSISTENT,
            )
        )
        dropped["inconsistent_guess"] += 1
    return frame.drop(index=bad)


def _read_players(
    path: Path, cfg: ImportConfig, problems: list[Problem], dropped: Counter[str]
) -> dict[str, bool]:
    """Screening flags of ``players.csv`` (player id -> passed); bad rows become problems."""
    raw = read_table(path, cfg.encoding)
    check_columns(raw, PLAYERS, path)
    problems.extend(raw.problems)
    dropped.update(p.reason for p in raw.problems)
    flags: dict[str, bool] = {}
    for i, rec in enumerate(raw.frame.to_dict("records")):
        line = raw.lines[i]
        pid, flag = str(rec["player_id"]).strip(), parse_bool(rec["passed_screening"])
        why = encoding_problem(pid)
        if why or not pid or flag is None:
            col, reason = (
                ("player_id", "bad_encoding")
                if why
                else (("player_id", "missing_value") if not pid else ("passed_screening", "bad_value"))
            )
            problems.append(
                Problem(
                    raw.name,
                    line,
                    col,
                    reason,
                    str(rec[col])[:80],
                    why or "expected a player id and true/false",
                )
            )
            dropped[reason] += 1
            continue
        flags[pid] = flags.get(pid, True) and flag
    return flags


def _read_translations(
    path: Path, cfg: ImportConfig, problems: list[Problem], dropped: Counter[str]
) -> pd.DataFrame:
    """Manual translations of ``translations.csv`` (empty when absent); bad rows become problems."""
    if not path.is_file():
        return pd.DataFrame(columns=TRANSLATION_COLUMNS)
    raw = read_table(path, cfg.encoding)
    check_columns(raw, TRANSLATIONS, path)
    problems.extend(raw.problems)
    dropped.update(p.reason for p in raw.problems)
    keep = []
    for i, rec in enumerate(raw.frame.to_dict("records")):
        bad = [c for c in raw.frame.columns if encoding_problem(str(rec[c]))]
        if bad:
            value = str(rec[bad[0]])
            problems.append(
                Problem(
                    raw.name,
                    raw.lines[i],
                    bad[0],
                    "bad_encoding",
                    SURROGATE.sub("?", value)[:80],
                    encoding_problem(value) or "",
                )
            )
            dropped["bad_encoding"] += 1
            continue
        keep.append(
            {
                "text": str(rec["text"]).strip(),
                "language": language_code(rec["language"], cfg.default_language),
                "translation": str(rec["translation"]).strip(),
                "context": str(rec.get("context", "") or "").strip(),
            }
        )
    return pd.DataFrame(keep, columns=TRANSLATION_COLUMNS)


def _screen(
    frame: pd.DataFrame,
    game_dir: Path,
    cfg: ImportConfig,
    flags: dict[str, bool],
    tables: _Tables,
    problems: list[Problem],
    dropped: Counter[str],
) -> tuple[pd.DataFrame, pd.DataFrame, set[str]]:
    """Exclude the rows of players who failed the screening; return (kept, excluded, failed players)."""
    players = game_dir / cfg.files.players
    if cfg.use_export_screening and players.is_file():
        for pid, ok in _read_players(players, cfg, problems, dropped).items():
            flags[pid] = flags.get(pid, True) and ok
    elif players.is_file():
        tables.warnings.append(f"{cfg.files.players}: ignored (use_export_screening is false)")
    failed = set(map(str, cfg.failed_players))
    if cfg.use_export_screening:
        failed |= {p for p, ok in flags.items() if not ok}
    screened = frame["player_id"].isin(failed) & (frame["player_id"] != "")
    return frame[~screened].reset_index(drop=True), frame[screened], failed


def _canonical(frame: pd.DataFrame, class_map: ClassMap) -> pd.DataFrame:
    """Add the guessed class names and correctness; set the dtypes and the column order."""
    guessed = frame["guessed_label"]
    frame["guessed_class"] = [
        class_map.class_name(int(g)) if g is not None and not pd.isna(g) else "" for g in guessed
    ]
    frame["correct"] = [
        bool(g is not None and not pd.isna(g) and int(g) == t)
        for g, t in zip(guessed, frame["true_label"], strict=False)
    ]
    frame["guessed_label"] = frame["guessed_label"].astype("Int64")
    frame["hints"] = pd.to_numeric(frame["hints"], errors="coerce").astype(float)
    return frame[OUTPUT_COLUMNS]


def _report(
    fmt: str,
    tables: _Tables,
    dropped: Counter[str],
    problems: pd.DataFrame,
    failed: set[str],
    excluded: pd.DataFrame,
    frame: pd.DataFrame,
    clusters: pd.DataFrame,
    translations: pd.DataFrame,
) -> dict[str, Any]:
    """Count the import: rows read, kept and dropped per reason and file, screening, kinds."""
    return {
        "format": fmt,
        "files": {name: {"rows": n} for name, n in tables.read_counts.items()},
        "rows_read": int(sum(tables.read_counts.values())),
        "rows_dropped": int(sum(dropped.values())),
        "dropped_by_reason": {r: int(dropped.get(r, 0)) for r in REASONS if dropped.get(r, 0)},
        "problems_by_reason": {r: int(n) for r, n in Counter(problems["reason"]).most_common()},
        "problems_by_file": {f: int(n) for f, n in Counter(problems["file"]).most_common()},
        "ignored_columns": {k: v for k, v in tables.ignored.items() if v},
        "screening": {
            "failed_players": len(failed),
            "excluded_players": int(excluded["player_id"].nunique()),
            "excluded_rows": int(len(excluded)),
            "excluded_by_kind": {k: int((excluded["kind"] == k).sum()) for k in KINDS},
            "rows_without_player": int((frame["player_id"] == "").sum()),
        },
        "kept": {"rows": int(len(frame)), **{k: int((frame["kind"] == k).sum()) for k in KINDS}},
        "n_guesses": int(frame.loc[frame["kind"] != "resign", "guess_id"].nunique()),
        "n_players": int(frame.loc[frame["player_id"] != "", "player_id"].nunique()),
        "n_cluster_maps": int(len(clusters)),
        "n_cluster_maps_played": int(frame["cluster_id"].nunique()),
        "n_translations": int(len(translations)),
        "warnings": tables.warnings,
    }


def import_game(
    game_dir: str | Path,
    class_map: ClassMap,
    clusters: pd.DataFrame,
    cfg: ImportConfig | None = None,
) -> ImportResult:
    """Read, validate and screen a game export.

    Parameters
    ----------
    game_dir : str or Path
        Folder with the export files (:class:`~inviz.game.export.config.ImportFiles`).
    class_map : ClassMap
        From :func:`~inviz.game.export.classmap.load_class_map`.
    clusters : DataFrame
        One row per cluster map (:func:`cluster_table` of the masks manifest).
    cfg : ImportConfig, optional
        Import settings (default: :class:`~inviz.game.export.config.ImportConfig` defaults).

    Returns
    -------
    ImportResult

    Raises
    ------
    GameExportError
        Structural problems; with ``cfg.strict``, any row problem.
    """
    game_dir, cfg = Path(game_dir), cfg or ImportConfig()
    fmt = detect_format(game_dir, cfg)
    tables = _read_guess_tables(game_dir, fmt, cfg, class_map, clusters)
    problems: list[Problem] = [p for v in tables.validated for p in v.problems]
    dropped: Counter[str] = Counter()
    flags: dict[str, bool] = {}
    for v in tables.validated:
        dropped.update(v.dropped_rows)
        for pid, ok in v.flags.items():
            flags[pid] = flags.get(pid, True) and ok
    records = [r for v in tables.validated for r in v.records]
    read_columns = [c for c in OUTPUT_COLUMNS if c not in ("guessed_class", "correct")]
    frame = pd.DataFrame(records, columns=read_columns)
    frame = _inconsistent_guesses(frame, problems, dropped)
    frame, excluded, failed = _screen(frame, game_dir, cfg, flags, tables, problems, dropped)
    translations = _read_translations(game_dir / cfg.files.translations, cfg, problems, dropped)

    problem_table = problems_frame(problems).sort_values(["file", "row", "column"], kind="stable")
    problem_table = problem_table.reset_index(drop=True)
    if cfg.strict and len(problem_table):
        listed = "\n".join(
            f"  {p.file} row {p.row} column {p.column or '-'}: {p.reason}: {p.message} ({p.value!r})"
            for p in problem_table.head(cfg.max_listed_problems).itertuples()
        )
        raise GameExportError(
            f"{len(problem_table)} row problem(s) in {game_dir} (strict mode):\n{listed}", problem_table
        )
    frame = _canonical(frame, class_map)
    report = _report(fmt, tables, dropped, problem_table, failed, excluded, frame, clusters, translations)
    if len(problem_table):
        reasons = ", ".join(f"{k} {v}" for k, v in report["dropped_by_reason"].items())
        log.warning(
            "import: %d row problem(s) dropped %d row(s): %s",
            len(problem_table),
            report["rows_dropped"],
            reasons,
        )
    return ImportResult(frame, problem_table, report, translations, class_map.names_table())


#: dtypes of the text columns of the canonical table when read back.
GUESS_DTYPES = {
    "guess_id": str,
    "player_id": str,
    "image": str,
    "layer": str,
    "true_class": str,
    "kind": str,
    "guessed_class": str,
    "text": str,
    "text_en": str,
    "language": str,
    "source_file": str,
}


def read_guesses(path: str | Path) -> pd.DataFrame:
    """Read the canonical table written by the ``labels_import`` stage (dtypes restored).

    Parameters
    ----------
    path : str or Path
        The canonical guesses CSV.

    Returns
    -------
    DataFrame
        Columns :data:`~inviz.game.export.layouts.OUTPUT_COLUMNS`; ``correct`` bool, ``hints``
        float, ``guessed_label`` nullable integer.
    """
    path = require_file(path, "canonical guesses table", "labels_import", GameExportError)
    frame = pd.read_csv(
        path, dtype=GUESS_DTYPES, keep_default_na=False, na_values={"hints": [""], "guessed_label": [""]}
    )
    missing = [c for c in OUTPUT_COLUMNS if c not in frame.columns]
    if missing:
        raise GameExportError(
            f"{path}: not a canonical guesses table; missing column(s) {', '.join(missing)}"
        )
    frame["correct"] = frame["correct"].astype(str).str.lower().isin(["true", "1"])
    frame["hints"] = pd.to_numeric(frame["hints"], errors="coerce").astype(float)
    frame["guessed_label"] = pd.to_numeric(frame["guessed_label"], errors="coerce").astype("Int64")
    for col in ("cluster_id", "cluster", "true_label", "source_row"):
        frame[col] = frame[col].astype(int)
    return frame
