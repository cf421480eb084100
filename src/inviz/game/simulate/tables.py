"""The simulated games laid out as a game export in the authors' layout (docs/method.md §2; demo only).

:func:`to_export` turns the games of :func:`inviz.game.simulate.players.play` into the authors'
tables (``features``, ``guesses_without_text``, ``resigns``) plus ``players`` (screening flags),
``translations`` (manual translations of a share of the Italian texts) and the game's class list,
and injects a few export defects (duplicated rows, empty and over-long texts) so the import's
validation (:mod:`inviz.game.export`) has something to report. :func:`write_export` writes them
with the file names the import reads; :func:`summary` counts what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.game.export import ImportFiles
from inviz.game.simulate.config import SimulateConfig
from inviz.game.simulate.players import Player

#: File name of the game's class list written next to the export (``labels_import.class_map``).
GAME_CLASSES_FILE = "game_classes.csv"
#: File name of the audit table: what each simulated player really saw and typed.
TRUTH_FILE = "truth.csv"


@dataclass(frozen=True)
class Export:
    """The authors' export layout as DataFrames (written by :func:`write_export`).

    features, no_text, resigns : the authors' three tables. players : ``player_id,
    passed_screening``. translations : ``text, language, translation``. game_classes : ``game_id,
    game_name, class_folder, class_name``. defects : injected defects per kind.
    """

    features: pd.DataFrame
    no_text: pd.DataFrame
    resigns: pd.DataFrame
    players: pd.DataFrame
    translations: pd.DataFrame
    game_classes: pd.DataFrame
    defects: dict[str, int]


def _features(feats: pd.DataFrame, gid_of: dict[Any, Any], name_of: dict[Any, Any]) -> pd.DataFrame:
    """Lay the feature rows out as the authors' ``features.csv``."""
    return pd.DataFrame(
        {
            "characteristic": feats["text"],
            "guess_id": feats["guess_id"],
            "percentile": feats["hints"].astype(int),
            "guessed_label_id": feats["guessed_label"].map(gid_of).astype(int),
            "layer": feats["layer"],
            "cluster": feats["cluster"].astype(int),
            "cluster_id": feats["cluster_id"].astype(int),
            "image": feats["image_file"],
            "label_en": feats["label"].map(name_of),
            "language_en": feats["language"]
            .map({"en": "English", "it": "Italian"})
            .fillna(feats["language"]),
            "player_id": feats["player_id"],
        }
    ).reset_index(drop=True)


def _inject_defects(
    features: pd.DataFrame, cfg: SimulateConfig, rng: np.random.Generator, max_text_length: int
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Duplicate, empty or over-long texts in a ``cfg.defect_rows`` share of the feature rows."""
    n_def = int(round(cfg.defect_rows * len(features)))
    defects = {"duplicate_row": 0, "empty_text": 0, "text_too_long": 0}
    if n_def and len(features):
        idx = rng.choice(len(features), size=min(n_def, len(features)), replace=False)
        kinds = rng.integers(3, size=len(idx))
        extra = []
        for i, k in zip(idx, kinds, strict=False):
            if k == 0:
                extra.append(features.iloc[[i]])
                defects["duplicate_row"] += 1
            elif k == 1:
                features.loc[i, "characteristic"] = " "
                defects["empty_text"] += 1
            else:
                text = "I think it was " + features.loc[i, "characteristic"] + " "
                features.loc[i, "characteristic"] = text * (max_text_length // 10)
                defects["text_too_long"] += 1
        if extra:
            features = pd.concat([features, *extra], ignore_index=True)
    return features, defects


def manual_translations(feats: pd.DataFrame, cfg: SimulateConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Manual translations of a ``cfg.translation_coverage`` share of the distinct non-English texts."""
    it = feats[feats["language"] != "en"][["text", "language", "text_en_clean"]].drop_duplicates("text")
    it = it[it["text"].str.strip() != ""].sort_values("text")
    keep = rng.random(len(it)) < cfg.translation_coverage
    return pd.DataFrame(
        {
            "text": it["text"].str.strip().to_numpy()[keep],
            "language": it["language"].to_numpy()[keep],
            "translation": it["text_en_clean"].to_numpy()[keep],
        }
    )


def to_export(
    games: pd.DataFrame,
    players: Sequence[Player],
    game_classes: pd.DataFrame,
    cfg: SimulateConfig,
    max_text_length: int = 200,
) -> Export:
    """Lay the simulated games out like the authors' export (+ players, translations, classes).

    Parameters
    ----------
    games : DataFrame
        From :func:`inviz.game.simulate.players.play`.
    players : sequence of Player
        The player pool.
    game_classes : DataFrame
        ``game_id, game_name, class_folder, class_name, label``.
    cfg : SimulateConfig
        ``seed`` (defects and translations draw from ``default_rng([seed, 1])``), ``defect_rows``,
        ``translation_coverage``.
    max_text_length : int
        The import's ``max_text_length``: over-long defect texts exceed it.

    Returns
    -------
    Export
    """
    rng = np.random.default_rng([cfg.seed, 1])
    gid_of = dict(zip(game_classes["label"], game_classes["game_id"], strict=False))
    name_of = dict(zip(game_classes["label"], game_classes["game_name"], strict=False))
    feats = games[games["kind"] == "feature"]
    features, defects = _inject_defects(_features(feats, gid_of, name_of), cfg, rng, max_text_length)
    nt = games[games["kind"] == "guess"]
    no_text = pd.DataFrame(
        {
            "cluster_id": nt["cluster_id"].astype(int),
            "label": nt["label"].map(gid_of).astype(int),
            "guessed_label_id": nt["guessed_label"].map(gid_of).astype(int),
            "percentile": nt["hints"].astype(int),
            "player_id": nt["player_id"],
            "guess_id": nt["guess_id"],
        }
    )
    rs = games[games["kind"] == "resign"]
    resigns = (
        rs.groupby(["cluster_id", "player_id"])
        .size()
        .rename("number_of_resigns")
        .reset_index()[["cluster_id", "number_of_resigns", "player_id"]]
    )
    players_t = pd.DataFrame(
        {
            "player_id": [p.player_id for p in players],
            "passed_screening": [str(p.passed_screening).lower() for p in players],
        }
    )
    translations = manual_translations(feats, cfg, rng)
    classes = game_classes[["game_id", "game_name", "class_folder", "class_name"]]
    return Export(
        features, no_text.reset_index(drop=True), resigns, players_t, translations, classes, defects
    )


def write_export(out: str | Path, export: Export, games: pd.DataFrame, files: ImportFiles) -> Path:
    """Write the export into folder ``out`` (replaced atomically) with the import's file names.

    Parameters
    ----------
    out : str or Path
        The game folder.
    export : Export
        From :func:`to_export`.
    games : DataFrame
        The games (written as :data:`TRUTH_FILE`, what each player really saw and typed).
    files : ImportFiles
        ``labels_import.files``: names of the export files.

    Returns
    -------
    Path
        ``out``.
    """
    from inviz.core.io import atomic_path

    with atomic_path(out, directory=True) as tmp:
        export.features.to_csv(tmp / files.features, index=False)
        export.no_text.to_csv(tmp / files.no_text, index=False)
        export.resigns.to_csv(tmp / files.resigns, index=False)
        export.players.to_csv(tmp / files.players, index=False)
        export.translations.to_csv(tmp / files.translations, index=False)
        export.game_classes.to_csv(tmp / GAME_CLASSES_FILE, index=False)
        games.to_csv(tmp / TRUTH_FILE, index=False)
    return Path(out)


def summary(games: pd.DataFrame, players: Sequence[Player], export: Export) -> dict[str, Any]:
    """Count what happened in a simulation (metrics of the ``labels_simulate`` stage).

    Parameters
    ----------
    games : DataFrame
        The played games, one row per text, guess or resign (:func:`inviz.game.simulate.players.play`).
    players : sequence of Player
        The player pool (counted, with the untrustworthy and screened-out players).
    export : Export
        From :func:`to_export` (its translations and defects).

    Returns
    -------
    dict
        Players, games, guesses, resigns, texts, accuracy, mean hints, share of Italian texts,
        manual translations and injected defects.
    """
    answered = games[games["kind"] != "resign"].drop_duplicates("guess_id")
    texts = games.loc[games["kind"] == "feature", "language"]
    return {
        "n_players": len(players),
        "n_untrustworthy": sum(not p.trustworthy for p in players),
        "n_failed_screening": sum(not p.passed_screening for p in players),
        "n_games": int(games["guess_id"].nunique()),
        "n_guesses": int(len(answered)),
        "n_resigns": int((games["kind"] == "resign").sum()),
        "n_texts": int((games["kind"] == "feature").sum()),
        "n_guesses_without_text": int((games["kind"] == "guess").sum()),
        "guess_accuracy": float((answered["guessed_label"] == answered["label"]).mean())
        if len(answered)
        else float("nan"),
        "mean_hints": float(answered["hints"].mean()) if len(answered) else float("nan"),
        "share_italian_texts": float((texts != "en").mean()) if len(games) else 0.0,
        "n_manual_translations": int(len(export.translations)),
        "defects": export.defects,
    }
