"""The game database as a game export that ``labels_import`` reads (README "Label game data").

:func:`export_tables` turns the answers into the canonical long format (``guesses.csv``: one row
per typed feature, per guess without text and per resign, with each player's screening flag)
and ``players.csv`` (``player_id, passed_screening`` and the sign-up answers), plus what the
label stages do not read: ``questionnaires.csv`` (SUS, raw TLX), ``screening.csv`` (the
screening rounds, kept out of the labels), ``what_if.csv`` (the "what if" edits) and the game's
class list. Players appear under pseudonymous ids (``p<n>``), never by nickname. Rows are in
database order, so an export is the same file every time for the same answers.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from inviz.game.export.layouts import CANONICAL, PLAYERS
from inviz.game.web.content import GameContent
from inviz.game.web.db import Database, Feature, Player, Questionnaire, Round, WhatIfEdit
from inviz.game.web.questionnaire import TLX_KEYS

#: Columns of ``guesses.csv``: the canonical layout and its optional screening flag and levels.
GUESS_COLUMNS = [*CANONICAL.required_columns, "passed_screening", "start_level", "level"]
#: Columns of ``players.csv``.
PLAYER_COLUMNS = [*PLAYERS.required_columns, *PLAYERS.optional_columns]
#: Columns of ``questionnaires.csv``.
QUESTIONNAIRE_COLUMNS = [
    "player_id",
    "skipped",
    *[f"sus_{i}" for i in range(1, 11)],
    *[f"tlx_{k}" for k in TLX_KEYS],
    "sus_score",
    "tlx_raw",
]
#: Columns of ``screening.csv``.
SCREENING_COLUMNS = [
    "guess_id",
    "player_id",
    "cluster_id",
    "true_class",
    "kind",
    "guessed_class",
    "correct",
    "level",
]
#: Columns of ``what_if.csv``.
WHAT_IF_COLUMNS = [
    "edit_id",
    "guess_id",
    "player_id",
    "cluster_id",
    "true_class",
    "shown_share",
    "pred_before",
    "prob_before",
    "true_prob_before",
    "pred_after",
    "prob_after",
    "true_prob_after",
    "mask",
]


@dataclass(frozen=True)
class GameExport:
    """The export tables (file name = field name + ``.csv``)."""

    guesses: pd.DataFrame
    players: pd.DataFrame
    questionnaires: pd.DataFrame
    screening: pd.DataFrame
    what_if: pd.DataFrame
    game_classes: pd.DataFrame

    def files(self) -> dict[str, pd.DataFrame]:
        """File name -> table."""
        return {f"{f.name}.csv": getattr(self, f.name) for f in fields(self)}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _guess_rows(
    rounds: pd.DataFrame, feats: pd.DataFrame, names: dict[int, str], truth: dict[int, int], n_levels: int
):
    """Canonical rows of the answered rounds (outside screening)."""
    texts = {rid: g for rid, g in feats.groupby("round_id", sort=False)} if len(feats) else {}
    rows = []
    for r in rounds.itertuples(index=False):
        resign = r.status == "resigned"
        base = {
            "guess_id": f"r{r.id}",
            "player_id": f"p{r.player_id}",
            "cluster_id": int(r.cluster_id),
            "true_class": names[truth[int(r.cluster_id)]],
            "guessed_class": "" if resign else names[int(r.guessed_id)],
            "hints": (n_levels - 1 if resign else int(r.level)) - int(r.start_level),
            "passed_screening": _flag(bool(r.passed_screening)),
            "start_level": int(r.start_level),
            "level": int(r.level),
        }
        if resign:
            rows.append({**base, "kind": "resign", "text": "", "language": r.language})
        elif r.id in texts:
            for f in texts[r.id].itertuples(index=False):
                rows.append({**base, "kind": "feature", "text": f.text, "language": f.language})
        else:
            rows.append({**base, "kind": "guess", "text": "", "language": r.language})
    return pd.DataFrame(rows, columns=GUESS_COLUMNS)


def _questionnaires(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for q in frame.itertuples(index=False):
        sus = [int(v) for v in q.sus.split(",")] if q.sus else [None] * 10
        tlx = [int(v) for v in q.tlx.split(",")] if q.tlx else [None] * len(TLX_KEYS)
        rows.append(
            {
                "player_id": f"p{q.player_id}",
                "skipped": _flag(bool(q.skipped)),
                **{f"sus_{i}": v for i, v in enumerate(sus, start=1)},
                **{f"tlx_{k}": v for k, v in zip(TLX_KEYS, tlx, strict=True)},
                "sus_score": q.sus_score,
                "tlx_raw": q.tlx_raw,
            }
        )
    return pd.DataFrame(rows, columns=QUESTIONNAIRE_COLUMNS)


def read_frame(db: Database, stmt: Any) -> pd.DataFrame:
    """Run a query and return its rows as a DataFrame (columns named as selected)."""
    with db.read() as s:
        result = s.execute(stmt)
        return pd.DataFrame(result.all(), columns=list(result.keys()))


def answered_rounds(db: Database) -> pd.DataFrame:
    """Every answered round (guessed, done or resigned) with its player's sign-up answers and flag."""
    stmt = (
        select(
            Round.id,
            Round.player_id,
            Round.seq,
            Round.cluster_id,
            Round.screening,
            Round.start_level,
            Round.level,
            Round.status,
            Round.guessed_id,
            Round.correct,
            Round.points,
            Player.language,
            Player.passed_screening,
            Player.ai_background,
        )
        .join(Player, Player.id == Round.player_id)
        .where(Round.status.in_(("guessed", "done", "resigned")))
        .order_by(Round.id)
    )
    return read_frame(db, stmt)


def export_tables(db: Database, content: GameContent) -> GameExport:
    """Read the game database as export tables.

    Parameters
    ----------
    db : Database
        The game database.
    content : GameContent
        The maps (true classes) and the class list.

    Returns
    -------
    GameExport
    """
    names = {c.game_id: c.name for c in content.classes}
    truth = dict(
        zip(content.maps["cluster_id"].astype(int), content.maps["game_id"].astype(int), strict=True)
    )
    rounds = answered_rounds(db)
    feats = read_frame(
        db, select(Feature.round_id, Feature.position, Feature.text, Feature.language).order_by(Feature.id)
    )
    play = rounds[~rounds["screening"].astype(bool)]
    guesses = _guess_rows(play, feats, names, truth, content.n_levels)
    players = read_frame(db, select(*Player.__table__.c).order_by(Player.id))
    players_t = pd.DataFrame(
        {
            "player_id": [f"p{i}" for i in players["id"]],
            "passed_screening": [_flag(bool(v)) for v in players["passed_screening"]],
            "ai_background": [_flag(bool(v)) for v in players["ai_background"]],
            "language": players["language"],
            "rounds": players["rounds_done"],
            "points": players["points"],
            "screening_rounds": players["screening_done"],
            "screening_failures": players["screening_failed"],
        },
        columns=PLAYER_COLUMNS,
    )
    scr = rounds[rounds["screening"].astype(bool)]
    screening = pd.DataFrame(
        {
            "guess_id": [f"r{i}" for i in scr["id"]],
            "player_id": [f"p{i}" for i in scr["player_id"]],
            "cluster_id": scr["cluster_id"].astype(int),
            "true_class": [names[truth[int(c)]] for c in scr["cluster_id"]],
            "kind": np.where(scr["status"] == "resigned", "resign", "guess"),
            "guessed_class": [names[int(g)] if pd.notna(g) else "" for g in scr["guessed_id"]],
            "correct": [_flag(bool(c)) for c in scr["correct"]],
            "level": scr["level"].astype(int),
        },
        columns=SCREENING_COLUMNS,
    )
    qs = read_frame(db, select(*Questionnaire.__table__.c).order_by(Questionnaire.id))
    return GameExport(
        guesses=guesses,
        players=players_t,
        questionnaires=_questionnaires(qs),
        screening=screening,
        what_if=_what_if(db, names, truth, content),
        game_classes=pd.DataFrame(
            {
                "game_id": [c.game_id for c in content.classes],
                "game_name": [c.name for c in content.classes],
                "class_folder": [c.folder for c in content.classes],
                "class_name": [c.class_name for c in content.classes],
            }
        ),
    )


def _what_if(
    db: Database, names: dict[int, str], truth: dict[int, int], content: GameContent
) -> pd.DataFrame:
    stmt = (
        select(WhatIfEdit, Round.cluster_id)
        .join(Round, Round.id == WhatIfEdit.round_id)
        .order_by(WhatIfEdit.id)
    )
    with db.read() as s:
        rows = s.execute(stmt).all()
    label_name = {c.label: c.name for c in content.classes}
    out = [
        {
            "edit_id": e.id,
            "guess_id": f"r{e.round_id}",
            "player_id": f"p{e.player_id}",
            "cluster_id": int(cid),
            "true_class": names[truth[int(cid)]],
            "shown_share": e.shown_share,
            "pred_before": label_name.get(e.pred_before, str(e.pred_before)),
            "prob_before": e.prob_before,
            "true_prob_before": e.true_prob_before,
            "pred_after": label_name.get(e.pred_after, str(e.pred_after)),
            "prob_after": e.prob_after,
            "true_prob_after": e.true_prob_after,
            "mask": e.mask,
        }
        for e, cid in rows
    ]
    return pd.DataFrame(out, columns=WHAT_IF_COLUMNS)


#: The README written into every export folder.
EXPORT_README = """# Deep Reveal game export

Written by `inviz game export` from the game's database; read by `inviz labels_import`
(`labels_import.source_dir`, README "Label game data").

- `guesses.csv`: the canonical long format, one row per typed feature, per guess without text and
  per resign (screening rounds excluded); `passed_screening` is the player's flag, `start_level` and
  `level` the reveal levels at the start and at the answer ({guesses} rows, {rounds} answers).
- `players.csv`: `player_id, passed_screening` and the sign-up answers ({players} players, pseudonymous).
- `screening.csv`: the screening rounds ({screening} rounds).
- `questionnaires.csv`: SUS (items 1-10, 1-5) and raw NASA-TLX (0-100) answers and scores ({questionnaires}).
- `what_if.csv`: the "what if" edits and the model's predictions before/after ({what_if}).
- `game_classes.csv`: the game's class list.
"""


def write_export(out_dir: str | Path, export: GameExport) -> Path:
    """Write the export tables into ``out_dir`` (replaced atomically: a reader never sees half of it).

    Parameters
    ----------
    out_dir : str or Path
        The game folder (``labels_import.source_dir``).
    export : GameExport
        From :func:`export_tables`.

    Returns
    -------
    Path
    """
    from inviz.core.io import atomic_path

    with atomic_path(out_dir, directory=True) as tmp:
        for name, frame in export.files().items():
            frame.to_csv(tmp / name, index=False)
        (tmp / "README.md").write_text(readme(export), encoding="utf-8")
    return Path(out_dir)


def readme(export: GameExport) -> str:
    """Write the export folder's README (what each file holds, with counts)."""
    return EXPORT_README.format(
        guesses=len(export.guesses),
        rounds=export.guesses["guess_id"].nunique(),
        players=len(export.players),
        screening=len(export.screening),
        questionnaires=len(export.questionnaires),
        what_if=len(export.what_if),
    )


def export_zip(export: GameExport) -> bytes:
    """Pack the export tables into one zip (the admin's download)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, frame in export.files().items():
            z.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), frame.to_csv(index=False))
    return buf.getvalue()
