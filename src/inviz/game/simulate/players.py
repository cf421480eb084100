"""The simulated player pool and its games (docs/method.md §2; demo only).

:func:`make_players` draws the pool; :func:`play` plays every cluster map a few times, each game
following steps 1-5 of :mod:`inviz.game.simulate`: what a player recognises at each reveal level
comes from the map's part coverage (:class:`GameMap`), the guess from the offered classes' parts,
the texts from :func:`inviz.game.simulate.texts.feature_text`. One random generator, seeded by
``labels_simulate.seed``, drives every draw in a fixed order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from inviz.game.simulate.config import SimulateConfig
from inviz.game.simulate.texts import Phrases, feature_text

#: Columns of the games table returned by :func:`play`.
GAME_COLUMNS = [
    "guess_id",
    "player_id",
    "cluster_id",
    "image",
    "image_file",
    "layer",
    "cluster",
    "label",
    "kind",
    "guessed_label",
    "hints",
    "text",
    "text_en_clean",
    "language",
]


@dataclass(frozen=True)
class Player:
    """A simulated player: id, skill, boldness, language, trustworthiness, screening result."""

    player_id: str
    skill: float
    boldness: float
    language: str
    trustworthy: bool
    passed_screening: bool


def make_players(cfg: SimulateConfig, rng: np.random.Generator) -> list[Player]:
    """Draw the player pool (``p001`` …) from ``rng``.

    Parameters
    ----------
    cfg : SimulateConfig
        Pool size and the ranges of the players' traits.
    rng : numpy.random.Generator
        The simulation's random generator.

    Returns
    -------
    list of Player, length ``cfg.n_players``
    """
    out = []
    for i in range(cfg.n_players):
        trustworthy = bool(rng.random() >= cfg.untrustworthy_share)
        fail = rng.random() < (cfg.honest_fail_rate if trustworthy else cfg.screening_catch_rate)
        out.append(
            Player(
                player_id=f"p{i + 1:03d}",
                skill=float(rng.uniform(*cfg.skill)),
                boldness=float(rng.uniform(*cfg.boldness)),
                language="it" if rng.random() < cfg.italian_share else "en",
                trustworthy=trustworthy,
                passed_screening=not fail,
            )
        )
    return out


def part_colour(image: np.ndarray, mask: np.ndarray, palette: Mapping[str, Sequence[int]]) -> str | None:
    """Palette colour nearest to the median RGB of a part.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The image.
    mask : ndarray of bool, shape (H, W)
        The part's pixels.
    palette : mapping of str to (r, g, b)
        Colour name -> RGB (0-255).

    Returns
    -------
    str or None
        The nearest colour's name; None for an empty mask or palette.
    """
    if not mask.any() or not palette:
        return None
    rgb = np.median(image[mask].reshape(-1, 3).astype(float), axis=0)
    names = list(palette)
    d = [np.sum((rgb - np.asarray(palette[n], dtype=float)) ** 2) for n in names]
    return names[int(np.argmin(d))]


@dataclass(frozen=True)
class GameMap:
    """One cluster map to play.

    cluster_id, image, layer, cluster : the map (masks manifest). image_file : the image's file name.
    label : the true class. parts : the parts of the image. coverage : ndarray of shape (L, P), each
    part's coverage per reveal level (:func:`inviz.game.coverage.part_coverage`). colours : part ->
    colour name (:func:`part_colour`).
    """

    cluster_id: int
    image: str
    image_file: str
    layer: str
    cluster: int
    label: int
    parts: tuple[str, ...]
    coverage: np.ndarray
    colours: Mapping[str, str | None]


def game_base(guess_id: str, p: Player, m: GameMap) -> dict[str, Any]:
    """Return the columns of :data:`GAME_COLUMNS` that one game's rows share: guess, player, map."""
    return {
        "player_id": p.player_id,
        "cluster_id": m.cluster_id,
        "image": m.image,
        "image_file": m.image_file,
        "layer": m.layer,
        "cluster": m.cluster,
        "label": m.label,
        "guess_id": guess_id,
    }


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decide(
    m: GameMap,
    p: Player,
    offered: list[int],
    class_parts: Sequence[Sequence[str]],
    n_levels: int,
    cfg: SimulateConfig,
    vocabulary: Sequence[str],
    rng: np.random.Generator,
    start: int = 0,
) -> tuple[int | None, int, set[str]]:
    """One game's course (steps 2-3, 5): the guessed class (None: resign), the level, the parts seen.

    ``start`` is the level the game opens at (0: the first view; the web game may start higher).
    """
    u = rng.random(len(m.parts))
    halluc = str(rng.choice(vocabulary)) if rng.random() < cfg.hallucination else None
    guessed, level, seen = None, start, set()
    if not p.trustworthy:
        level = int(rng.integers(start, n_levels))
        guessed = int(rng.choice(offered))
        seen = {str(rng.choice(vocabulary))}
        return guessed, level, seen
    for level in range(start, n_levels):
        prob = p.skill * _sigmoid(cfg.see_sharpness * (m.coverage[level] - cfg.see_threshold))
        seen = {part for part, ui, pr in zip(m.parts, u, prob, strict=False) if ui < pr}
        if halluc:
            seen.add(halluc)
        match = {k: len(seen & set(class_parts[k])) for k in offered}
        best = max(match.values())
        tops = [k for k, v in match.items() if v == best]
        last = level == n_levels - 1
        if best > 0 and len(tops) == 1:
            k = tops[0]
            if match[k] == len(class_parts[k]) or rng.random() < p.boldness or last:
                guessed = k
                break
        elif last:
            if rng.random() < (cfg.resign_rate if best == 0 else cfg.resign_rate / 2):  # best >= 0
                guessed = None
            else:
                guessed = int(rng.choice(tops))
            break
    return guessed, level, seen


def game_rows(
    base: dict[str, Any],
    m: GameMap,
    p: Player,
    decision: tuple[int | None, int, set[str]],
    n_levels: int,
    class_parts: Sequence[Sequence[str]],
    class_names: Sequence[str],
    cfg: SimulateConfig,
    rng: np.random.Generator,
    phrases: Phrases,
    colour_words: Phrases,
) -> list[dict[str, Any]]:
    """Write down one game (step 4): a resign, a guess without text, or one row per typed text."""
    guessed, level, seen = decision
    if guessed is None:
        return [
            {
                **base,
                "kind": "resign",
                "guessed_label": None,
                "hints": n_levels - 1,
                "text": "",
                "text_en_clean": "",
                "language": p.language,
            }
        ]
    hints = level
    if rng.random() < cfg.no_text_rate or not seen:
        return [
            {
                **base,
                "kind": "guess",
                "guessed_label": guessed,
                "hints": hints,
                "text": "",
                "text_en_clean": "",
                "language": p.language,
            }
        ]
    ordered = sorted(seen, key=lambda s: (s not in class_parts[guessed], s))
    n_text = int(rng.integers(cfg.features_per_guess[0], cfg.features_per_guess[1] + 1))
    n_text = min(n_text, len(ordered)) if p.trustworthy else 1
    rows = []
    for part in ordered[:n_text]:
        text, english, lang = feature_text(
            part, p.language, m.colours.get(part), class_names[guessed], cfg, rng, phrases, colour_words
        )
        rows.append(
            {
                **base,
                "kind": "feature",
                "guessed_label": guessed,
                "hints": hints,
                "text": text,
                "text_en_clean": english,
                "language": lang,
            }
        )
    return rows


def play(
    maps: Sequence[GameMap],
    class_parts: Sequence[Sequence[str]],
    class_names: Sequence[str],
    cfg: SimulateConfig,
    phrases: Phrases,
    colour_words: Phrases,
    vocabulary: Sequence[str],
) -> tuple[pd.DataFrame, list[Player]]:
    """Play every map ``cfg.plays_per_map`` times.

    Parameters
    ----------
    maps : sequence of GameMap
        The cluster maps with their part coverage.
    class_parts, class_names : sequence, length K
        Parts and readable name of each class (index = label).
    cfg : SimulateConfig
        The ``labels_simulate`` section.
    phrases, colour_words : mapping
        Part / colour -> language -> words (``PART_PHRASES``, ``COLOUR_PHRASES`` of
        :mod:`inviz.game.simulate.vocabulary`).
    vocabulary : sequence of str
        Every part name (for hallucinations and untrustworthy players).

    Returns
    -------
    games : DataFrame
        One row per typed text / guess without text / resign (:data:`GAME_COLUMNS`):
        ``guess_id, player_id, cluster_id, kind, guessed_label, hints, text, text_en_clean,
        language`` plus the map's ``image, image_file, layer, cluster, label``.
    players : list of Player
        The player pool.
    """
    rng = np.random.default_rng(cfg.seed)
    players = make_players(cfg, rng)
    n_classes = len(class_parts)
    n_levels = maps[0].coverage.shape[0] if maps else 0
    rows: list[dict[str, Any]] = []
    guess_no = 0
    for m in maps:
        chosen = rng.choice(len(players), size=min(cfg.plays_per_map, len(players)), replace=False)
        for pi in sorted(int(i) for i in chosen):
            p = players[pi]
            others = [k for k in range(n_classes) if k != m.label]
            drawn = rng.choice(others, size=min(cfg.n_choices - 1, len(others)), replace=False)
            offered = sorted([m.label, *drawn.tolist()])
            guess_no += 1
            base = game_base(f"g{guess_no:06d}", p, m)
            decision = decide(m, p, offered, class_parts, n_levels, cfg, vocabulary, rng)
            rows += game_rows(
                base, m, p, decision, n_levels, class_parts, class_names, cfg, rng, phrases, colour_words
            )
    return pd.DataFrame(rows, columns=GAME_COLUMNS), players
