"""The game's rules as pure functions: which map next, which classes, start level, points, screening.

Everything here is deterministic given its inputs and a :class:`numpy.random.Generator`; the
server draws one generator per round from ``(game.seed, player, round number)``
(:func:`round_rng`), so a replayed session makes the same draws (docs/method.md §7).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from inviz.game.web.config import DifficultyConfig, GameConfig, ScreeningConfig


def round_rng(seed: int, player: int, seq: int) -> np.random.Generator:
    """Return the generator of one round: seeded by the game's seed, the player and the round number.

    Parameters
    ----------
    seed : int
        ``game.seed``.
    player : int
        The player's database id.
    seq : int
        The player's round number (1-based).

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng([seed, player, seq])


def choose_map(
    plays: np.ndarray,
    images: Sequence[str],
    seen: Collection[int],
    last_image: str | None,
    rng: np.random.Generator,
    target: int | None = None,
) -> int | None:
    """Pick the next map of a player: least-played first, ties at random.

    A player never gets a map twice, nor two maps of the same image in a row.

    Parameters
    ----------
    plays : ndarray of int, shape (N,)
        Plays of every map so far (answered rounds plus rounds in flight).
    images : sequence of str, length N
        The image of every map.
    seen : collection of int
        Positions (0..N-1) of the maps the player has had already.
    last_image : str or None
        The image of the player's previous round.
    rng : numpy.random.Generator
        Breaks ties.
    target : int, optional
        ``plays_per_map`` when the game stops at it (``stop_when_done``): maps with ``target``
        plays are no longer handed out.

    Returns
    -------
    int or None
        The position of the chosen map; None when no map is left for this player.
    """
    plays = np.asarray(plays)
    ok = np.ones(len(plays), dtype=bool)
    if len(seen):
        ok[np.fromiter(seen, dtype=int)] = False
    if last_image is not None:
        ok &= np.asarray(images, dtype=object) != last_image
    if target is not None:
        ok &= plays < target
    candidates = np.flatnonzero(ok)
    if not len(candidates):
        return None
    least = candidates[plays[candidates] == plays[candidates].min()]
    return int(least[rng.integers(len(least))])


def offered_classes(
    true_id: int, class_ids: Sequence[int], n_choices: int, rng: np.random.Generator
) -> list[int]:
    """Draw the classes offered in a round: the true one plus ``n_choices - 1`` others at random.

    Never by model confidence (that would leak what the model sees; docs/method.md §7).

    Parameters
    ----------
    true_id : int
        The true class (game id).
    class_ids : sequence of int
        Every game class id.
    n_choices : int
        How many to offer (capped at the number of classes).
    rng : numpy.random.Generator

    Returns
    -------
    list of int
        The offered game ids, sorted (their order tells nothing).
    """
    others = [c for c in class_ids if c != true_id]
    k = min(n_choices - 1, len(others))
    drawn = rng.choice(others, size=k, replace=False).tolist() if k else []
    return sorted([int(true_id), *map(int, drawn)])


def start_level(weight: float, cfg: DifficultyConfig) -> int:
    """Return the reveal level a map starts at (``by_weight``: low weights start higher).

    Parameters
    ----------
    weight : float
        The cluster weight ``w_C`` in % of the layer's weight.
    cfg : DifficultyConfig
        ``game.difficulty``.

    Returns
    -------
    int
        0 in ``uniform`` mode; else the start level of the smallest bound the weight is below.
    """
    if cfg.mode == "uniform":
        return 0
    level = 0
    for bound, start in zip(cfg.below, cfg.start_levels, strict=True):
        if weight < bound:
            level = start
    return level


def round_points(correct: bool, hints: int, cfg: GameConfig) -> int:
    """Points of an answer: ``max(points_min, points_max - points_per_hint * hints)`` if right, else 0.

    Parameters
    ----------
    correct : bool
        Whether the guess was right (a resign is not).
    hints : int
        Hints used.
    cfg : GameConfig
        ``points_max``, ``points_per_hint``, ``points_min``.

    Returns
    -------
    int
    """
    if not correct:
        return 0
    return max(cfg.points_min, cfg.points_max - cfg.points_per_hint * hints)


def is_screening_round(seq: int, cfg: ScreeningConfig) -> bool:
    """Tell whether a player's round number ``seq`` (1-based) is a screening round."""
    return cfg.enabled and seq in cfg.positions


def passed_screening(failures: int, cfg: ScreeningConfig) -> bool:
    """Tell whether a player who failed ``failures`` screening rounds passes (at most ``max_failures``)."""
    return failures <= cfg.max_failures


def screening_maps(maps: pd.DataFrame, cfg: ScreeningConfig, layers: Sequence[str]) -> list[int]:
    """List the screening maps: ``cfg.cluster_ids``, or every image's heaviest map of one layer.

    Parameters
    ----------
    maps : DataFrame
        One row per cluster map: ``cluster_id, image, layer, weight``.
    cfg : ScreeningConfig
        ``cluster_ids`` and ``layer``.
    layers : sequence of str
        The layers in extraction order (the default layer is the last one).

    Returns
    -------
    list of int
        Cluster ids, sorted.

    Raises
    ------
    ValueError
        An unknown cluster id or layer.
    """
    known = set(maps["cluster_id"].astype(int))
    if cfg.cluster_ids:
        unknown = sorted(set(cfg.cluster_ids) - known)
        if unknown:
            raise ValueError(f"game.screening.cluster_ids: unknown cluster id(s) {unknown[:5]}")
        return sorted(set(map(int, cfg.cluster_ids)))
    layer = cfg.layer or (layers[-1] if len(layers) else None)
    pool = maps[maps["layer"] == layer]
    if pool.empty:
        raise ValueError(f"game.screening.layer: no cluster maps on layer {layer!r} (layers: {list(layers)})")
    best = pool.sort_values(["weight", "cluster_id"], ascending=[False, True]).drop_duplicates("image")
    return sorted(best["cluster_id"].astype(int).tolist())


def competition_rank(points: int, others: Sequence[int]) -> int:
    """Rank of a score among all players' scores (1 = best; ties share a rank, "1224" ranking).

    Parameters
    ----------
    points : int
        The player's points.
    others : sequence of int
        Every player's points (the player included or not: only higher scores count).

    Returns
    -------
    int
    """
    return 1 + sum(1 for p in others if p > points)
