"""How far the game is: plays per map, layer and class, outcomes, players, questionnaires.

One computation for the admin page (:func:`progress`) and the game report
(:mod:`inviz.game.web.report`). Plays are answered rounds outside screening (guesses and
resigns); a map is complete at ``game.plays_per_map`` plays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select

from inviz.game.web.content import GameContent
from inviz.game.web.db import Database, Player, Questionnaire
from inviz.game.web.export import answered_rounds, read_frame
from inviz.game.web.questionnaire import PAPER_SUS, PAPER_TLX

#: Outcome columns counted per map, layer and class.
OUTCOMES = ("wins", "losses", "resigns")


@dataclass(frozen=True)
class Progress:
    """The game's progress.

    maps : one row per cluster map (``cluster_id, image, layer, class, weight, plays, wins, losses,
        resigns, mean_hints, complete``). by_layer, by_class : the same summed (``maps, plays,
        complete, wins, losses, resigns, mean_hints``). players : one row per player
        (``player_id, nickname, ai_background, language, rounds, points, screening_rounds,
        screening_failures, passed_screening, questionnaire``). questionnaires : SUS and raw TLX
        scores of the answered questionnaires. summary : the headline counts.
    """

    maps: pd.DataFrame
    by_layer: pd.DataFrame
    by_class: pd.DataFrame
    players: pd.DataFrame
    questionnaires: pd.DataFrame
    summary: dict[str, Any]


def _mean_sd(values: pd.Series) -> dict[str, float | int | None]:
    v = values.dropna().astype(float)
    return {
        "mean": float(v.mean()) if len(v) else None,
        "sd": float(v.std(ddof=1)) if len(v) > 1 else None,
        "n": int(len(v)),
    }


def _group(maps: pd.DataFrame, key: str) -> pd.DataFrame:
    g = maps.groupby(key, sort=False)
    out = g.agg(
        maps=("cluster_id", "size"),
        plays=("plays", "sum"),
        complete=("complete", "sum"),
        wins=("wins", "sum"),
        losses=("losses", "sum"),
        resigns=("resigns", "sum"),
        hint_sum=("hint_sum", "sum"),
    ).reset_index()
    answered = out["wins"] + out["losses"]
    out["mean_hints"] = np.where(answered > 0, out["hint_sum"] / answered.where(answered > 0, 1), np.nan)
    return out.drop(columns="hint_sum")


def progress(db: Database, content: GameContent, plays_per_map: int) -> Progress:
    """Count the game's progress from its database.

    Parameters
    ----------
    db : Database
        The game database.
    content : GameContent
        The maps and classes.
    plays_per_map : int
        ``game.plays_per_map``.

    Returns
    -------
    Progress
    """
    rounds = answered_rounds(db)
    play = rounds[~rounds["screening"].astype(bool)].copy()
    play["win"] = (play["status"] != "resigned") & play["correct"].astype(bool)
    play["loss"] = (play["status"] != "resigned") & ~play["correct"].astype(bool)
    play["resign"] = play["status"] == "resigned"
    play["hints"] = np.where(play["resign"], np.nan, play["level"] - play["start_level"])
    per = play.groupby("cluster_id").agg(
        plays=("id", "size"),
        wins=("win", "sum"),
        losses=("loss", "sum"),
        resigns=("resign", "sum"),
        hint_sum=("hints", "sum"),
    )
    names = {c.game_id: c.name for c in content.classes}
    maps = content.maps[["cluster_id", "image", "layer", "weight"]].copy()
    maps["class"] = content.maps["game_id"].map(names)
    maps = maps.join(per, on="cluster_id")
    for col in ("plays", *OUTCOMES, "hint_sum"):
        maps[col] = maps[col].fillna(0).astype(float if col == "hint_sum" else int)
    answered = maps["wins"] + maps["losses"]
    maps["mean_hints"] = np.where(answered > 0, maps["hint_sum"] / answered.where(answered > 0, 1), np.nan)
    maps["complete"] = maps["plays"] >= plays_per_map
    players = read_frame(db, select(*Player.__table__.c).order_by(Player.id))
    qs = read_frame(db, select(*Questionnaire.__table__.c).order_by(Questionnaire.id))
    answered_q = qs[~qs["skipped"].astype(bool)] if len(qs) else qs
    players_t = pd.DataFrame(
        {
            "player_id": [f"p{i}" for i in players["id"]],
            "nickname": players["nickname"],
            "ai_background": players["ai_background"].astype(bool),
            "language": players["language"],
            "rounds": players["rounds_done"].astype(int),
            "points": players["points"].astype(int),
            "screening_rounds": players["screening_done"].astype(int),
            "screening_failures": players["screening_failed"].astype(int),
            "passed_screening": players["passed_screening"].astype(bool),
            "questionnaire": players["id"].isin(qs["player_id"] if len(qs) else []),
        }
    )
    scr = rounds[rounds["screening"].astype(bool)]
    summary = {
        "players": int(len(players_t)),
        "flagged_players": int((~players_t["passed_screening"]).sum()),
        "ai_background": int(players_t["ai_background"].sum()),
        "plays": int(len(play)),
        "wins": int(play["win"].sum()),
        "losses": int(play["loss"].sum()),
        "resigns": int(play["resign"].sum()),
        "screening_rounds": int(len(scr)),
        "screening_failed": int(((scr["status"] == "resigned") | ~scr["correct"].astype(bool)).sum()),
        "maps": int(len(maps)),
        "plays_per_map": plays_per_map,
        "complete_maps": int(maps["complete"].sum()),
        "plays_min": int(maps["plays"].min()),
        "plays_median": float(maps["plays"].median()),
        "plays_max": int(maps["plays"].max()),
        "questionnaires": int(len(answered_q)),
        "questionnaires_skipped": int(len(qs) - len(answered_q)),
        "sus": {**_mean_sd(answered_q.get("sus_score", pd.Series(dtype=float))), "paper": PAPER_SUS},
        "tlx": {**_mean_sd(answered_q.get("tlx_raw", pd.Series(dtype=float))), "paper": PAPER_TLX},
    }
    return Progress(
        maps=maps.drop(columns="hint_sum"),
        by_layer=_group(maps, "layer"),
        by_class=_group(maps, "class"),
        players=players_t,
        questionnaires=answered_q[["player_id", "sus_score", "tlx_raw"]] if len(answered_q) else answered_q,
        summary=summary,
    )
