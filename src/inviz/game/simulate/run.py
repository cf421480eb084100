"""Simulated players on the demo's masked images, in one call (docs/method.md §2; demo only).

:func:`simulate_game` is what the ``labels_simulate`` stage runs: it measures what the game shows
of each ground-truth part (:func:`inviz.game.coverage.maps_part_coverage`), reads each part's
colour from its image and lets the players play: in ``direct`` mode the simulator deals the maps
(:func:`~inviz.game.simulate.players.play`) and lays the games out as the authors' export
(:func:`~inviz.game.simulate.tables.to_export`); in ``http`` mode they play the Deep Reveal web
application (:func:`~inviz.game.simulate.http.play_http`), whose own export is the result.
:func:`write_simulation` writes either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError
from inviz.data.parts import PartMasks
from inviz.game.coverage import Coverage, maps_part_coverage
from inviz.game.export import ImportFiles, cluster_table, game_classes_frame
from inviz.game.reveal import RevealConfig
from inviz.game.simulate.config import SimulateConfig
from inviz.game.simulate.http import HttpGame, http_summary, play_http, write_http_export
from inviz.game.simulate.players import GameMap, Player, part_colour, play
from inviz.game.simulate.tables import (
    TRUTH_FILE,
    Export,
    manual_translations,
    summary,
    to_export,
    write_export,
)
from inviz.game.simulate.vocabulary import COLOUR_PHRASES, PART_PHRASES


@dataclass(frozen=True)
class Simulation:
    """What :func:`simulate_game` produced.

    games : one row per typed text / guess without text / resign (the audit ``truth.csv``).
    players : the player pool. export : the authors' export tables (``direct``) or the game that
    was played (``http``: :class:`~inviz.game.simulate.http.HttpGame`). translations : manual
    translations (``http``; ``direct`` keeps them in ``export``). metrics : what happened.
    """

    games: pd.DataFrame
    players: list[Player]
    export: Export | HttpGame
    metrics: dict[str, Any]
    translations: pd.DataFrame | None = None


@dataclass(frozen=True)
class WebGame:
    """What ``http`` mode needs: the masks' zips, the ``game`` section, a folder for the database."""

    masks_dir: Path
    game: Any
    workdir: Path | None = None


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _game_maps(
    clusters: pd.DataFrame,
    coverage: Mapping[int, Coverage],
    parts: PartMasks,
    images_dir: Path,
    paths: Mapping[str, str],
    palette: Mapping[str, Sequence[int]],
) -> list[GameMap]:
    """One :class:`GameMap` per cluster map: its part coverage and its parts' colours."""
    images: dict[str, np.ndarray] = {}
    maps = []
    for r in clusters.itertuples(index=False):
        if r.image not in images:
            images[r.image] = _read_rgb(images_dir / paths[r.image])
        names, cov = coverage[int(r.cluster_id)]
        colours = {p: part_colour(images[r.image], parts.mask(r.image, p), palette) for p in names}
        maps.append(
            GameMap(
                int(r.cluster_id),
                r.image,
                Path(paths[r.image]).name,
                r.layer,
                int(r.cluster),
                int(r.label),
                tuple(names),
                cov,
                colours,
            )
        )
    return maps


def simulate_game(
    manifest: pd.DataFrame,
    maps: Mapping[int, np.ndarray],
    selected: pd.DataFrame,
    images_dir: str | Path,
    parts: PartMasks,
    classes: Sequence[Mapping[str, Any]],
    palette: Mapping[str, Sequence[int]],
    cfg: SimulateConfig,
    reveal_cfg: RevealConfig,
    max_text_length: int,
    web: WebGame | None = None,
) -> Simulation:
    """Let the simulated players play every cluster map of the masks manifest.

    Parameters
    ----------
    manifest : DataFrame
        The ``masks`` manifest (:func:`inviz.game.manifest.read_manifest`).
    maps : mapping of int to ndarray of shape (h, h)
        Cluster id -> the cluster map the game masked (:func:`inviz.game.assets.load_cluster_maps`).
    selected : DataFrame
        ``selected.csv`` (``sample_id, path``).
    images_dir : str or Path
        The dataset folder (``path`` is relative to it).
    parts : PartMasks
        Ground-truth part masks of the images (not empty: real data has none).
    classes : sequence of mapping
        ``data/classes.json`` records (``label, class_folder, class_name``).
    palette : mapping of str to (r, g, b)
        The synthetic data's palette (``data.synthetic.palette``); colours without player words
        in :data:`~inviz.game.simulate.vocabulary.COLOUR_PHRASES` are never named.
    cfg : SimulateConfig
        The ``labels_simulate`` section.
    reveal_cfg : RevealConfig
        The ``masks`` section (reveal levels and blur).
    max_text_length : int
        ``labels_import.max_text_length`` (over-long defect texts exceed it).
    web : WebGame, optional
        The web game to play (``cfg.mode == "http"``).

    Returns
    -------
    Simulation
    """
    ordered = sorted(classes, key=lambda c: c["label"])
    names = [c["class_name"] for c in ordered]
    folders = [c["class_folder"] for c in ordered]
    class_parts = [parts.class_parts[parts.class_folders.index(f)] for f in folders]
    game_classes = game_classes_frame(names, folders)
    game_classes["label"] = [folders.index(f) for f in game_classes["class_folder"]]

    clusters = cluster_table(manifest)
    images = dict(zip(clusters["cluster_id"].astype(int), clusters["image"], strict=True))
    coverage = maps_part_coverage(maps, images, parts, reveal_cfg, progress=True)
    colours = {k: v for k, v in palette.items() if k in COLOUR_PHRASES}
    paths = dict(zip(selected["sample_id"], selected["path"], strict=False))
    game_maps = _game_maps(clusters, coverage, parts, Path(images_dir), paths, colours)
    if cfg.mode == "http":
        return _simulate_http(
            manifest, game_maps, class_parts, names, game_classes, parts.vocabulary, cfg, max_text_length, web
        )
    games, players = play(game_maps, class_parts, names, cfg, PART_PHRASES, COLOUR_PHRASES, parts.vocabulary)
    export = to_export(games, players, game_classes, cfg, max_text_length)
    return Simulation(games, players, export, summary(games, players, export))


def _simulate_http(
    manifest: pd.DataFrame,
    game_maps: list[GameMap],
    class_parts: list[Any],
    names: list[str],
    game_classes: pd.DataFrame,
    vocabulary: Sequence[str],
    cfg: SimulateConfig,
    max_text_length: int,
    web: WebGame | None,
) -> Simulation:
    """Play through the web game (``http`` mode)."""
    from inviz.game.export import ClassMap
    from inviz.game.web.content import GameContent

    if web is None:
        raise InvizError("labels_simulate.mode http needs the masks' zips and the game section")
    content = GameContent(manifest, web.masks_dir, ClassMap(game_classes))
    try:
        game = play_http(
            game_maps,
            content,
            class_parts,
            names,
            cfg,
            web.game,
            PART_PHRASES,
            COLOUR_PHRASES,
            vocabulary,
            max_text_length,
            web.workdir,
        )
    finally:
        content.close()
    feats = game.games[game.games["kind"] == "feature"]
    translations = manual_translations(feats, cfg, np.random.default_rng([cfg.seed, 1]))
    return Simulation(game.games, game.players, game, http_summary(game, translations), translations)


def write_simulation(out: str | Path, sim: Simulation, files: ImportFiles) -> Path:
    """Write a simulation's export into folder ``out`` (replaced atomically), whichever its mode.

    Parameters
    ----------
    out : str or Path
        The game folder (``labels_import.source_dir`` of the demo).
    sim : Simulation
        From :func:`simulate_game`.
    files : ImportFiles
        ``labels_import.files`` (the authors' layout's file names).

    Returns
    -------
    Path
    """
    if isinstance(sim.export, HttpGame):
        return write_http_export(out, sim.export, sim.translations, TRUTH_FILE)
    return write_export(out, sim.export, sim.games, files)
