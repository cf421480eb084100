"""``game``: settings of the Deep Reveal web application (docs/method.md §2, §7).

The ``game`` section of ``params.yaml`` as frozen dataclasses; :mod:`inviz.game.web.settings`
joins it with the paths and the environment into the runtime settings of one server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from inviz.core.checks import check_at_least


@dataclass(frozen=True)
class ScreeningConfig:
    """``game.screening``: screening rounds that flag untrustworthy players (docs/method.md §7).

    enabled : play screening rounds.
    positions : round numbers (1-based, counting every round of a player) that are screening rounds.
    level : reveal level they are shown at (0 = first view … ``n_levels - 1`` = the last hint; paper
        game: "easy" maps at a high level). The player may still ask for the remaining hints.
    cluster_ids : the screening maps (``data/masks.csv`` cluster ids); empty: every image's heaviest
        kept map of ``layer``.
    layer : layer of the automatic screening maps (null: the deepest layer of the manifest).
    max_failures : screening rounds a player may fail (a wrong guess or a resign); one more and the
        player is flagged ``passed_screening = false`` (answers kept and exported with the flag).
    """

    enabled: bool = True
    positions: tuple[int, ...] = (3, 9, 16)
    level: int = 5
    cluster_ids: tuple[int, ...] = ()
    layer: str | None = None
    max_failures: int = 1

    def __post_init__(self) -> None:
        if any(p < 1 for p in self.positions) or len(set(self.positions)) != len(self.positions):
            raise ValueError(
                f"screening.positions: expected distinct round numbers >= 1, got {self.positions}"
            )
        check_at_least(self, {"level": 0, "max_failures": 0}, prefix="screening.")


@dataclass(frozen=True)
class DifficultyConfig:
    """``game.difficulty``: at which reveal level a round starts (docs/method.md §7, paper §5.3).

    mode : ``uniform`` (every map starts at the first view, the paper's game) or ``by_weight``
        (balanced difficulty: maps with a low weight start at a higher level).
    below : cluster-weight bounds in % of the layer's weight (``w_C``), in decreasing order.
    start_levels : start level of a map whose weight is below the matching bound (the last bound
        it is below wins); maps at or above every bound start at level 0.
    """

    mode: Literal["uniform", "by_weight"] = "uniform"
    below: tuple[float, ...] = (10.0, 5.0)
    start_levels: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        if len(self.below) != len(self.start_levels):
            raise ValueError("difficulty: below and start_levels need the same length")
        if list(self.below) != sorted(self.below, reverse=True):
            raise ValueError(f"difficulty.below: expected decreasing weights, got {list(self.below)}")
        if any(s < 0 for s in self.start_levels):
            raise ValueError(f"difficulty.start_levels: expected levels >= 0, got {list(self.start_levels)}")


@dataclass(frozen=True)
class GameRunConfig:
    """``game.run``: execution settings (not results): where and how the server runs.

    host, port : where ``inviz game serve`` listens (``--host``/``--port`` override).
    sqlite_synchronous : SQLite ``PRAGMA synchronous`` in WAL mode: ``normal`` keeps every committed
        answer through a crash or SIGKILL of the server; ``full`` also through a power cut.
    busy_timeout_ms : how long a write waits for the SQLite lock before failing.
    access_log : uvicorn's per-request log.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    busy_timeout_ms: int = 10000
    access_log: bool = False


@dataclass(frozen=True)
class GameConfig:
    """``game`` section: the Deep Reveal web application (``inviz game serve|export|report``).

    db_url : SQLAlchemy URL of the game database; a relative SQLite path is taken from the params
        file's folder (WAL mode). Any other URL (PostgreSQL …) for a public deployment.
    n_choices : classes offered per round, the true one included, drawn at random per round
        (never by model confidence; docs/method.md §7).
    plays_per_map : plays each cluster map should get; maps are handed out least-played first.
    stop_when_done : once every map has ``plays_per_map`` plays, stop handing out rounds (else keep
        handing out the least-played maps).
    points_max, points_per_hint, points_min : points of a right guess = ``max(points_min,
        points_max - points_per_hint * hints)``; a wrong guess or a resign scores 0.
    min_features, max_features : free-text features asked after a guess (paper: 1-3; with
        ``min_features: 0`` a player may skip, exported as a guess without text).
    languages : languages a player may choose at sign-up (ISO codes; the typed texts' language).
    leaderboard_size : players in the leaderboard's top list.
    questionnaire_after : finished rounds after which SUS and raw NASA-TLX are asked (0: never).
    round_ttl_minutes : an unanswered round expires after this; its map goes back to the pool.
    seed : seeds every draw of the server (map ties, offered classes), with the player and round.
    screening : screening rounds (:class:`ScreeningConfig`).
    difficulty : start levels (:class:`DifficultyConfig`).
    what_if : after a round, offer the "what if" panel (paint or erase regions, the model's
        prediction updates; needs the model checkpoint).
    what_if_max_edits : edits a player may submit per round.
    what_if_grid : cells per side of the editable mask (must divide ``masks.game_size``).
    admin_token_env : environment variable holding the admin token (never in a file).
    title : the game's name on its pages.
    run : execution settings (:class:`GameRunConfig`).
    """

    db_url: str = "sqlite:///game/game.db"
    n_choices: int = 4
    plays_per_map: int = 5
    stop_when_done: bool = False
    points_max: int = 100
    points_per_hint: int = 15
    points_min: int = 10
    min_features: int = 1
    max_features: int = 3
    languages: tuple[str, ...] = ("en", "it")
    leaderboard_size: int = 10
    questionnaire_after: int = 10
    round_ttl_minutes: float = 30.0
    seed: int = 432
    screening: ScreeningConfig = field(default_factory=ScreeningConfig)
    difficulty: DifficultyConfig = field(default_factory=DifficultyConfig)
    what_if: bool = False
    what_if_max_edits: int = 20
    what_if_grid: int = 64
    admin_token_env: str = "INVIZ_GAME_ADMIN_TOKEN"
    title: str = "Deep Reveal"
    run: GameRunConfig = field(default_factory=GameRunConfig)

    def __post_init__(self) -> None:
        check_at_least(
            self,
            {
                "n_choices": 2,
                "plays_per_map": 1,
                "points_min": 0,
                "points_per_hint": 0,
                "min_features": 0,
                "max_features": 1,
                "leaderboard_size": 1,
                "questionnaire_after": 0,
                "round_ttl_minutes": 0.1,
                "what_if_max_edits": 0,
                "what_if_grid": 4,
            },
        )
        if self.points_max < self.points_min:
            raise ValueError(f"points_max ({self.points_max}) must be >= points_min ({self.points_min})")
        if self.min_features > self.max_features:
            raise ValueError(f"min_features ({self.min_features}) > max_features ({self.max_features})")
        if not self.languages:
            raise ValueError("languages: expected at least one language")
