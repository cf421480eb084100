"""Runtime settings of one game server, and the objects it runs on (content, database, rules).

:class:`Settings` (pydantic) joins the ``game`` params section with the paths of a finished
``masks`` stage, ``labels_import`` (class list, text limit, export folder) and the environment
(the admin token). Paths default to the pipeline's (``data/masks.csv``, ``data/masks``,
``data/classes.json``, ``models/model.safetensors``) relative to the params file's folder.
:func:`open_game` opens everything a server needs as one :class:`GameState`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

from inviz.game.web.config import GameConfig

#: Default paths of the pipeline's outputs, relative to the params file's folder.
DEFAULT_PATHS = {
    "manifest": "data/masks.csv",
    "masks_dir": "data/masks",
    "classes": "data/classes.json",
    "model": "models/model.safetensors",
    "selected": "data/selected.csv",
    "images": "data/images",
}


class Settings(BaseModel):
    """Everything one game server is configured with.

    game : the ``game`` section. db_url : resolved SQLAlchemy URL. manifest, masks_dir : the
    ``masks`` outputs. class_map, classes : the game's class list and ``data/classes.json``.
    model, selected, images : the checkpoint, the selected images and the dataset folder (the "what
    if" panel). max_text_length : ``labels_import.max_text_length``.
    export_dir : ``labels_import.source_dir`` (where ``inviz game export`` writes by default).
    admin_token : from the environment variable ``game.admin_token_env`` (None: admin disabled).
    params : the params file.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    game: GameConfig
    db_url: str
    manifest: Path
    masks_dir: Path
    class_map: Path
    classes: Path
    model: Path
    selected: Path | None = None
    images: Path | None = None
    max_text_length: int
    export_dir: Path
    admin_token: SecretStr | None = None
    params: Path | None = None

    @classmethod
    def from_params(
        cls,
        params: str | Path,
        paths: Mapping[str, str | Path | None] | None = None,
        db_url: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> Settings:
        """Read the settings from a params file.

        Parameters
        ----------
        params : str or Path
            The params file (``game`` and ``labels_import`` sections).
        paths : mapping, optional
            Overrides of :data:`DEFAULT_PATHS` (``manifest``, ``masks_dir``, ``classes``,
            ``model``); None values keep the default.
        db_url : str, optional
            Overrides ``game.db_url``.
        env : mapping, optional
            The environment (default ``os.environ``).

        Returns
        -------
        Settings
        """
        from inviz.core.config import load_section
        from inviz.game.export import ImportConfig
        from inviz.game.web.db import resolve_url

        params = Path(params)
        base = params.resolve().parent
        game = load_section(params, "game", GameConfig)
        imp = load_section(params, "labels_import", ImportConfig)
        given = {k: v for k, v in (paths or {}).items() if v is not None}
        resolved = {k: _under(base, given.get(k, default)) for k, default in DEFAULT_PATHS.items()}
        env = os.environ if env is None else env
        token = env.get(game.admin_token_env) or None
        return cls(
            game=game,
            db_url=resolve_url(db_url or game.db_url, base),
            class_map=_under(base, imp.class_map),
            max_text_length=imp.max_text_length,
            export_dir=_under(base, imp.source_dir),
            admin_token=SecretStr(token) if token else None,
            params=params,
            **resolved,
        )


def _under(base: Path, path: str | Path) -> Path:
    p = Path(path)
    return p if p.is_absolute() else base / p


@dataclass
class GameState:
    """The objects a running game works with (one per server process).

    settings : the settings. content : maps, images, classes. db : the database. rounds : the
    rules (:class:`~inviz.game.web.rounds.RoundService`). clock : epoch seconds (tests move it).
    what_if : the model for the "what if" panel (None when off).
    """

    settings: Settings
    content: Any
    db: Any
    rounds: Any
    clock: Callable[[], float] = time.time
    what_if: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        """Close the zips and the database connections."""
        self.content.close()
        self.db.dispose()


def open_game(settings: Settings, clock: Callable[[], float] | None = None, content: Any = None) -> GameState:
    """Open the content, the database (created or checked) and the rules of a game.

    Parameters
    ----------
    settings : Settings
        From :meth:`Settings.from_params`.
    clock : callable, optional
        Epoch seconds (default :func:`time.time`).
    content : GameContent, optional
        Content opened already (default: read from ``settings``).

    Returns
    -------
    GameState
    """
    from inviz.core.io import read_json
    from inviz.game.export import load_class_map
    from inviz.game.web.content import GameContent
    from inviz.game.web.db import Database
    from inviz.game.web.plays import PlaysMirror
    from inviz.game.web.rounds import RoundService

    clock = clock or time.time
    if content is None:
        class_map = load_class_map(settings.class_map, read_json(settings.classes))
        content = GameContent.load(settings.manifest, settings.masks_dir, class_map)
    db = Database(settings.db_url, settings.game.run)
    try:
        db.init(content.fingerprint)
        plays = PlaysMirror(content.maps["cluster_id"], lambda: db.generation) if db.is_sqlite else None
        rounds = RoundService(settings.game, content, settings.max_text_length, lambda: clock(), plays)
        with db.write() as s:
            rounds.ensure_map_rows(s)
        what_if = None
        if settings.game.what_if:
            from inviz.game.web.whatif import WhatIfModel

            what_if = WhatIfModel.load(settings, content)
    except BaseException:
        db.dispose()
        raise
    return GameState(settings, content, db, rounds, clock, what_if)
