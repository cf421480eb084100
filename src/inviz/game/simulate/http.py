"""Simulated players through the real game over HTTP (``labels_simulate.mode: http``; demo only).

The same players as the direct mode (:mod:`inviz.game.simulate.players`) sign up in the Deep
Reveal application (:mod:`inviz.game.web`, in-process ASGI transport) and play it like people:
the server hands out the maps (least-played first, screening rounds, start levels), draws the
offered classes, counts hints, takes guesses, resigns and features, and flags the players who
fail its screening rounds. A player *sees* what the browser would show: the PNG bytes of the
round's image, which it recognises by their SHA-1 among the masks stage's images (the player
model then reads that map's part coverage at that level, as in the direct mode). Now and then
a player first sends a bad answer (``defect_rows``: an over-long, empty or repeated text) that
the server must refuse. The game's own export (:mod:`inviz.game.web.export`) is the result;
``labels_import`` reads it like any real one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import hashlib
import json
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError
from inviz.game.simulate.config import SimulateConfig
from inviz.game.simulate.players import (
    GAME_COLUMNS,
    GameMap,
    Player,
    decide,
    game_base,
    game_rows,
    make_players,
)
from inviz.game.simulate.texts import Phrases

#: File name of the simulated game's database, kept next to the export (``inviz game report --db-url``).
DB_FILE = "simulated_game.db"


@dataclass(frozen=True)
class HttpGame:
    """What :func:`play_http` produced.

    games : one row per typed text / guess without text / resign outside screening (:data:`GAME_COLUMNS`),
        ``guess_id`` as in the game's export. players : the pool (ids as in the export, screening
        as the game decided). export : the game's export (:class:`~inviz.game.web.export.GameExport`).
    requests : requests per endpoint. rejected : bad answers the server refused, by kind.
    db : the game database file. seconds : wall time of the play.
    """

    games: pd.DataFrame
    players: list[Player]
    export: Any
    requests: dict[str, int]
    rejected: dict[str, int]
    db: Path
    seconds: float


@dataclass(frozen=True)
class AsgiResponse:
    """What the application answered: status, headers (lower-case names) and body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        """The body as UTF-8 text."""
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        """Parse the body as JSON."""
        return json.loads(self.content)


class AsgiClient:
    """A minimal HTTP/1.1 client that calls an ASGI application in process (ASGI 3 ``http`` scope).

    The simulation sends tens of thousands of small requests, one at a time. A general client
    (httpx's ``ASGITransport`` behind an ``AsyncClient``: URL and header models, cookie jar, auth
    and redirect handling, response streams) cost about as much CPU per request as the game
    itself; the application sees the same scope, headers and body either way. Errors raised by
    the application propagate (as with ``ASGITransport(raise_app_exceptions=True)``).

    Parameters
    ----------
    app : ASGI application
    host : str
        The ``Host`` header and ``server`` name.
    """

    def __init__(self, app: Any, host: str = "deep-reveal"):
        self.app = app
        self.host = host

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, json: Any = None
    ) -> AsgiResponse:
        """Send one request; ``json``: a body to send as ``application/json``."""
        import json as json_module

        body = b"" if json is None else json_module.dumps(json).encode("utf-8")
        raw = [(b"host", self.host.encode()), (b"accept", b"*/*"), (b"user-agent", b"inviz-simulation")]
        if json is not None:
            raw += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        target, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": target,
            "raw_path": target.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 123),
            "server": (self.host, 80),
            "state": {},
        }
        sent_body = False
        done = asyncio.Event()
        status, out_headers, chunks = 0, {}, []

        async def receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await done.wait()  # a disconnect only once the response is complete
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                out_headers.update((k.decode("latin-1"), v.decode("latin-1")) for k, v in message["headers"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        await self.app(scope, receive, send)
        if not status:
            raise InvizError(f"simulated game: {method} {path}: the application sent no response")
        return AsgiResponse(status, out_headers, b"".join(chunks))


class _Client:
    """An HTTP client of one app that counts requests per endpoint and fails on unexpected statuses."""

    def __init__(self, client: AsgiClient):
        self.client = client
        self.requests: Counter[str] = Counter()

    async def call(
        self, method: str, path: str, name: str, token: str, ok: tuple[int, ...] = (200, 201), **kw: Any
    ) -> AsgiResponse:
        self.requests[name] += 1
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self.client.request(method, path, headers=headers, **kw)
        if r.status_code not in ok:
            raise InvizError(f"simulated game: {method} {name} answered {r.status_code}: {r.text[:300]}")
        return r


def _texts(rows: list[dict[str, Any]], max_length: int) -> tuple[list[dict[str, Any]], list[str]]:
    """Keep the feature rows a player sends: stripped, clipped to ``max_length`` (a text box), no repeats."""
    kept, seen = [], set()
    for row in rows:
        text = " ".join(str(row["text"]).split())[:max_length].strip()
        if row["kind"] != "feature" or not text or text.casefold() in seen:
            continue
        seen.add(text.casefold())
        kept.append({**row, "text": text})
    return kept, [r["text"] for r in kept]


class _Session:
    """The simulation's state while it plays (one event loop, players one round at a time)."""

    def __init__(self, http: _Client, ctx: dict[str, Any]):
        self.http = http
        self.ctx = ctx
        self.rounds = 0
        self.rows: list[dict[str, Any]] = []
        self.rejected: Counter[str] = Counter()

    async def see(self, path: str, token: str) -> tuple[int, int]:
        """Fetch a round's image and recognise it: (cluster id, level)."""
        r = await self.http.call("GET", path, "image", token)
        return self.ctx["by_hash"][hashlib.sha1(r.content).digest()]

    async def bad_answer(self, url: str, token: str, texts: list[str], rng: np.random.Generator) -> None:
        """Send one answer the server must refuse (422): over-long, empty or repeated text."""
        kind = ("text_too_long", "empty_text", "repeated_text")[int(rng.integers(3))]
        if kind == "text_too_long":
            bad = ["I think it was " * (self.ctx["max_text_length"] // 10)]
        elif kind == "empty_text":
            bad = [" "]
        else:
            bad = [texts[0], texts[0].upper()] if texts else [" "]
        await self.http.call("POST", url, "features", token, ok=(422,), json={"texts": bad})
        self.rejected[kind] += 1

    async def play_round(self, p: Player, token: str, rng: np.random.Generator) -> bool:
        """Play the player's next round; False when the game has no map left for them."""
        ctx, cfg = self.ctx, self.ctx["cfg"]
        out = (await self.http.call("POST", "/api/rounds", "next_round", token)).json()
        if out["questionnaire_due"]:  # simulated players never invent usability scores
            await self.http.call("POST", "/api/questionnaire", "questionnaire", token, json={"skip": True})
        rnd = out["round"]
        if rnd is None:
            return False
        self.rounds += 1
        base_url = f"/api/rounds/{rnd['token']}"
        cid, level = await self.see(rnd["image"], token)
        if level != rnd["level"]:
            raise InvizError(
                f"simulated game: round {rnd['number']} shows level {level}, the server says {rnd['level']}"
            )
        m: GameMap = ctx["maps"][cid]
        offered = [ctx["label_of"][c["id"]] for c in rnd["choices"]]
        decision = decide(
            m, p, offered, ctx["class_parts"], ctx["n_levels"], cfg, ctx["vocabulary"], rng, start=level
        )
        guessed, target, _ = decision
        while rnd["level"] < target:  # what it sees at the next levels: the map's part coverage
            rnd = (await self.http.call("POST", f"{base_url}/hint", "hint", token)).json()
        base = game_base(f"r{self.rounds}", p, m)
        rows = game_rows(
            base,
            m,
            p,
            decision,
            ctx["n_levels"],
            ctx["class_parts"],
            ctx["class_names"],
            cfg,
            rng,
            ctx["phrases"],
            ctx["colour_words"],
        )
        hints = rnd["level"] - level if guessed is not None else ctx["n_levels"] - 1 - level
        if guessed is None:
            await self.http.call("POST", f"{base_url}/resign", "resign", token)
        else:
            choice = ctx["game_of"][guessed]
            await self.http.call("POST", f"{base_url}/guess", "guess", token, json={"choice": choice})
            rows, texts = _texts(rows, ctx["max_text_length"])
            if not rows:
                rows = [
                    {
                        **base,
                        "kind": "guess",
                        "guessed_label": guessed,
                        "text": "",
                        "text_en_clean": "",
                        "language": p.language,
                    }
                ]
            if rng.random() < cfg.defect_rows:
                await self.bad_answer(f"{base_url}/features", token, texts, rng)
            await self.http.call("POST", f"{base_url}/features", "features", token, json={"texts": texts})
        if rnd["number"] not in ctx["screening_positions"]:
            self.rows += [{**r, "hints": hints} for r in rows]
        return True


async def _play(app: Any, players: list[Player], rng: np.random.Generator, ctx: dict[str, Any]) -> _Session:
    from tqdm.auto import tqdm

    session = _Session(_Client(AsgiClient(app)), ctx)
    tokens = []
    for p in players:
        body = {
            "nickname": f"sim {p.player_id}",
            "ai_background": bool(rng.random() < 0.5),
            "language": p.language,
        }
        r = await session.http.call("POST", "/api/players", "sign_up", "", json=body)
        tokens.append(r.json()["token"])  # players authenticate with their bearer tokens (no cookies)
    active = list(range(len(players)))
    with tqdm(total=ctx["expected_rounds"], desc="simulated rounds (http)", unit="round") as bar:
        while active:
            i = active[int(rng.integers(len(active)))]
            if await session.play_round(players[i], tokens[i], rng):
                bar.update(1)
            else:
                active.remove(i)
    return session


def _settings(game: Any, db: Path, workdir: Path, max_text_length: int) -> Any:
    """Build the simulated game's settings: its own SQLite database; the content is given, not read."""
    from inviz.game.web.settings import Settings

    return Settings(
        game=game,
        db_url=f"sqlite:///{db}",
        manifest=workdir,
        masks_dir=workdir,
        class_map=workdir,
        classes=workdir,
        model=workdir,
        max_text_length=max_text_length,
        export_dir=workdir,
    )


def play_http(
    maps: Sequence[GameMap],
    content: Any,
    class_parts: Sequence[Sequence[str]],
    class_names: Sequence[str],
    cfg: SimulateConfig,
    game_cfg: Any,
    phrases: Phrases,
    colour_words: Phrases,
    vocabulary: Sequence[str],
    max_text_length: int,
    workdir: str | Path | None = None,
) -> HttpGame:
    """Let the simulated players play every map through the game's web application.

    Parameters
    ----------
    maps : sequence of GameMap
        The cluster maps with their part coverage (what the players can see).
    content : GameContent
        The game's content (:class:`inviz.game.web.content.GameContent`): maps, images, classes.
    class_parts, class_names : sequence, length K
        Parts and readable name of each class (index = dataset label).
    cfg : SimulateConfig
        The ``labels_simulate`` section (players; ``plays_per_map`` and ``n_choices`` are the game's).
    game_cfg : GameConfig
        The ``game`` section: the rules the server plays by (it stops once every map has
        ``plays_per_map`` plays).
    phrases, colour_words : mapping
        The players' words (:mod:`inviz.game.simulate.vocabulary`).
    vocabulary : sequence of str
        Every part name.
    max_text_length : int
        ``labels_import.max_text_length`` (the server's limit).
    workdir : str or Path, optional
        Folder of the game database (default: a new temporary folder).

    Returns
    -------
    HttpGame
    """
    from inviz.game.web.app import create_app
    from inviz.game.web.export import export_tables
    from inviz.game.web.settings import open_game

    if game_cfg.min_features > 0 and cfg.no_text_rate > 0:
        raise InvizError(
            "labels_simulate.mode http: players skip the features now and then (no_text_rate > 0); "
            "set game.min_features: 0 so the game lets them"
        )
    workdir = Path(workdir or tempfile.mkdtemp(prefix="inviz-sim-"))
    db = workdir / DB_FILE
    db.unlink(missing_ok=True)
    game = dataclasses.replace(game_cfg, stop_when_done=True, what_if=False)
    state = open_game(_settings(game, db, workdir, max_text_length), content=content)
    state.db.inline = True  # one request at a time: the database work runs in the loop (no thread hop)
    rng = np.random.default_rng(cfg.seed)
    players = [
        dataclasses.replace(p, player_id=f"p{i}") for i, p in enumerate(make_players(cfg, rng), start=1)
    ]
    by_hash = {
        hashlib.sha1(content.image(cid, lv)).digest(): (int(cid), lv)
        for cid in content.maps["cluster_id"]
        for lv in range(content.n_levels)
    }
    ctx = {
        "cfg": cfg,
        "maps": {m.cluster_id: m for m in maps},
        "by_hash": by_hash,
        "label_of": {c.game_id: c.label for c in content.classes},
        "game_of": {c.label: c.game_id for c in content.classes},
        "class_parts": class_parts,
        "class_names": class_names,
        "n_levels": content.n_levels,
        "vocabulary": vocabulary,
        "phrases": phrases,
        "colour_words": colour_words,
        "max_text_length": max_text_length,
        "screening_positions": set(game.screening.positions) if game.screening.enabled else set(),
        "expected_rounds": len(content.maps) * game.plays_per_map,
    }
    t0 = time.perf_counter()
    # what exists now lives until the end of the play: out of the collector's way (as `inviz game
    # serve` does), else every full collection re-scans the stage's imports and tables
    gc.collect()
    gc.freeze()
    try:
        session = asyncio.run(_play(create_app(state), players, rng, ctx))
        export = export_tables(state.db, content)
    finally:
        gc.unfreeze()
        state.db.dispose()
    seconds = time.perf_counter() - t0
    flags = dict(zip(export.players["player_id"], export.players["passed_screening"] == "true", strict=True))
    players = [dataclasses.replace(p, passed_screening=flags[p.player_id]) for p in players]
    games = pd.DataFrame(session.rows, columns=GAME_COLUMNS)
    return HttpGame(games, players, export, dict(session.http.requests), dict(session.rejected), db, seconds)


def write_http_export(out: str | Path, game: HttpGame, translations: pd.DataFrame, truth_file: str) -> Path:
    """Write the game's export, the manual translations, the audit table and the game database.

    Parameters
    ----------
    out : str or Path
        The game folder (replaced atomically).
    game : HttpGame
        From :func:`play_http`.
    translations : DataFrame
        ``text, language, translation`` (``translations.csv``).
    truth_file : str
        File name of the audit table (what each player really saw and typed).

    Returns
    -------
    Path
    """
    import shutil

    from inviz.core.io import atomic_path
    from inviz.game.web.export import readme

    with atomic_path(out, directory=True) as tmp:
        for name, frame in game.export.files().items():
            frame.to_csv(tmp / name, index=False)
        (tmp / "README.md").write_text(readme(game.export), encoding="utf-8")
        translations.to_csv(tmp / "translations.csv", index=False)
        game.games.to_csv(tmp / truth_file, index=False)
        shutil.copyfile(game.db, tmp / DB_FILE)
    return Path(out)


def http_summary(game: HttpGame, translations: pd.DataFrame) -> dict[str, Any]:
    """Count what happened (metrics of ``labels_simulate`` in http mode; the direct mode's keys and more)."""
    games = game.games
    answered = games[games["kind"] != "resign"].drop_duplicates("guess_id")
    texts = games.loc[games["kind"] == "feature", "language"]
    n_requests = int(sum(game.requests.values()))
    return {
        "mode": "http",
        "n_players": len(game.players),
        "n_untrustworthy": sum(not p.trustworthy for p in game.players),
        "n_failed_screening": sum(not p.passed_screening for p in game.players),
        "n_untrustworthy_flagged": sum(not p.trustworthy and not p.passed_screening for p in game.players),
        "n_games": int(games["guess_id"].nunique()),
        "n_guesses": int(len(answered)),
        "n_resigns": int((games["kind"] == "resign").sum()),
        "n_texts": int((games["kind"] == "feature").sum()),
        "n_guesses_without_text": int((games["kind"] == "guess").sum()),
        "n_screening_rounds": int(len(game.export.screening)),
        "guess_accuracy": float((answered["guessed_label"] == answered["label"]).mean())
        if len(answered)
        else float("nan"),
        "mean_hints": float(answered["hints"].mean()) if len(answered) else float("nan"),
        "share_italian_texts": float((texts != "en").mean()) if len(texts) else 0.0,
        "n_manual_translations": int(len(translations)),
        "requests": {**game.requests, "total": n_requests},
        "rejected_by_server": game.rejected,
        "seconds": round(game.seconds, 2),
        "requests_per_second": round(n_requests / game.seconds, 1) if game.seconds else 0.0,
    }
