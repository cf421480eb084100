"""The game database: SQLAlchemy 2 models, engines, sessions and the schema version.

One SQLite file by default (WAL mode, ``game.db_url``), any SQLAlchemy URL (PostgreSQL …) for a
public deployment. Every answer is committed in one transaction before the server responds.

A request's database work runs as one call in a worker thread (:meth:`Database.run`): open a
session, find the player, apply the rules, commit, build the answer, close; the event loop waits
once and is never blocked by the database. SQLite: writes go through one connection per process
(a pool of one) used by one writer thread, so writers queue in that thread (first come, first
served) instead of polling SQLite's lock; its transactions start with ``BEGIN IMMEDIATE``, so a
read-then-write never fails half-way with ``database is locked``. Reads use their own pool and
threads and never wait for writers (WAL). Several server processes on one file still work
through ``busy_timeout``. Other databases: a pool of threads no larger than the pool of
connections, for writes and reads alike.

Schema version. The ``game_meta`` table records the schema version and the fingerprint of the
masked images the database was made for; :meth:`Database.init` refuses a database of another
version or other images with a message saying what to do.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    select,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from inviz.core.errors import InvizError
from inviz.game.web.config import GameRunConfig

#: Version of the schema below; a database of another version is refused.
SCHEMA_VERSION = 1
#: Longest nickname.
NICKNAME_LENGTH = 24
#: Threads reading a SQLite database; its read pool keeps as many connections, and as many more
#: for other readers (export, progress).
SQLITE_READERS = 4

T = TypeVar("T")


class GameDatabaseError(InvizError, RuntimeError):
    """The game database cannot be used (other schema version, other masked images, bad URL)."""


class Base(DeclarativeBase):
    """Declarative base of the game's tables."""


class Meta(Base):
    """``game_meta``: key-value facts about the database (schema version, content fingerprint)."""

    __tablename__ = "game_meta"
    key: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))


class Player(Base):
    """A player: nickname (unique, case-insensitive), sign-up answers, score and screening counts."""

    __tablename__ = "players"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nickname: Mapped[str] = mapped_column(String(NICKNAME_LENGTH))
    nickname_key: Mapped[str] = mapped_column(String(NICKNAME_LENGTH), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    ai_background: Mapped[bool] = mapped_column(Boolean)
    language: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[float] = mapped_column(Float)
    points: Mapped[int] = mapped_column(Integer, default=0)
    rounds_done: Mapped[int] = mapped_column(Integer, default=0)
    screening_done: Mapped[int] = mapped_column(Integer, default=0)
    screening_failed: Mapped[int] = mapped_column(Integer, default=0)
    passed_screening: Mapped[bool] = mapped_column(Boolean, default=True)
    __table_args__ = (Index("ix_players_points", "points"),)


class MapPlays(Base):
    """``map_plays``: answered plays (guesses, resigns) of each cluster map outside screening; its image."""

    __tablename__ = "map_plays"
    cluster_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    image: Mapped[str] = mapped_column(String(200))
    plays: Mapped[int] = mapped_column(Integer, default=0)


class RoundFacts:
    """What a round's columns tell (for :class:`Round` and :class:`RoundRow` alike)."""

    __slots__ = ()

    @property
    def hints(self) -> int:
        """Hints used so far (levels revealed after the start level)."""
        return self.level - self.start_level

    @property
    def finished(self) -> bool:
        """Whether the round is over (features sent or resigned)."""
        return self.status in ("done", "resigned")


class Round(RoundFacts, Base):
    """One round: a player, a map, the offered classes, the levels revealed and the answer.

    status : ``open`` (playing) → ``guessed`` (features pending) → ``done``; or ``open`` →
    ``resigned``. An open round past ``expires_at`` no longer counts and cannot be answered.
    """

    __tablename__ = "rounds"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"))
    seq: Mapped[int] = mapped_column(Integer)
    cluster_id: Mapped[int] = mapped_column(Integer)
    image: Mapped[str] = mapped_column(String(200))
    screening: Mapped[bool] = mapped_column(Boolean)
    start_level: Mapped[int] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    offered: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="open")
    guessed_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    correct: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    points: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    answered_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (
        UniqueConstraint("player_id", "seq"),
        Index("ix_rounds_status", "status", "expires_at"),
    )


@dataclass(slots=True)
class RoundRow(RoundFacts):
    """A row of ``rounds`` as a plain object.

    The request paths read and write rounds with SQL statements, not through the ORM's unit of
    work (a fraction of the cost per request), and keep this copy up to date as they write.
    """

    id: int | None
    token_hash: str
    player_id: int
    seq: int
    cluster_id: int
    image: str
    screening: bool
    start_level: int
    level: int
    offered: str
    status: str
    guessed_id: int | None
    correct: bool | None
    points: int
    created_at: float
    expires_at: float
    answered_at: float | None


class Feature(Base):
    """A free-text feature typed after a guess (1..``max_features`` per round)."""

    __tablename__ = "features"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    __table_args__ = (UniqueConstraint("round_id", "position"),)


class Questionnaire(Base):
    """A player's SUS (10 items, 1-5) and raw NASA-TLX (6 subscales, 0-100) answers, or a skip."""

    __tablename__ = "questionnaires"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"), unique=True)
    sus: Mapped[str] = mapped_column(String(40), default="")
    tlx: Mapped[str] = mapped_column(String(40), default="")
    sus_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    tlx_raw: Mapped[float | None] = mapped_column(Float, nullable=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class WhatIfEdit(Base):
    """A "what if" edit: the mask a player painted on a finished round and the model's predictions."""

    __tablename__ = "what_if_edits"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    player_id: Mapped[int] = mapped_column(ForeignKey("players.id"))
    mask: Mapped[str] = mapped_column(Text)
    shown_share: Mapped[float] = mapped_column(Float)
    pred_before: Mapped[int] = mapped_column(Integer)
    prob_before: Mapped[float] = mapped_column(Float)
    true_prob_before: Mapped[float] = mapped_column(Float)
    pred_after: Mapped[int] = mapped_column(Integer)
    prob_after: Mapped[float] = mapped_column(Float)
    true_prob_after: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)


def new_token() -> tuple[str, str]:
    """Return a fresh opaque token (URL-safe, 192 random bits) and its SHA-256 (what the database keeps)."""
    token = secrets.token_urlsafe(24)
    return token, token_hash(token)


def token_hash(token: str) -> str:
    """Return the SHA-256 hex digest of a token (tokens are stored hashed)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def resolve_url(url: str, base: str | Path) -> str:
    """Make a relative SQLite path absolute against ``base`` (the params file's folder).

    Parameters
    ----------
    url : str
        A SQLAlchemy URL (``sqlite:///game/game.db``: relative path).
    base : str or Path
        Folder relative SQLite paths start from.

    Returns
    -------
    str
    """
    try:
        parsed = make_url(url)
    except Exception as err:  # sqlalchemy.exc.ArgumentError and friends
        raise GameDatabaseError(f"game.db_url: not a database URL: {url!r} ({err})") from err
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return url
    path = Path(parsed.database)
    if not path.is_absolute():
        path = (Path(base) / path).resolve()
    return parsed.set(database=str(path)).render_as_string(hide_password=False)


def _sqlite_events(engine: Engine, begin: str, run: GameRunConfig) -> None:
    """Set the SQLite pragmas on every connection and open transactions with ``begin``."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's BEGIN below, not pysqlite's
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={run.sqlite_synchronous.upper()}")
        cur.execute(f"PRAGMA busy_timeout={int(run.busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql(begin)


class Database:
    """Engines and sessions of one game database.

    Parameters
    ----------
    url : str
        SQLAlchemy URL (relative SQLite paths already resolved: :func:`resolve_url`).
    run : GameRunConfig
        SQLite durability and lock waiting.
    """

    def __init__(self, url: str, run: GameRunConfig | None = None):
        run = run or GameRunConfig()
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database in (None, "", ":memory:"):
                raise GameDatabaseError(
                    "game.db_url: an in-memory SQLite database cannot be shared; use a file"
                )
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            timeout = run.busy_timeout_ms / 1000
            self.writer = create_engine(url, pool_size=1, max_overflow=0, pool_timeout=max(timeout, 30))
            self.reader = create_engine(url, pool_size=SQLITE_READERS, max_overflow=SQLITE_READERS)
            self._threads = (SQLITE_READERS, 1)  # (read, write): never more than the pool's connections
            _sqlite_events(self.writer, "BEGIN IMMEDIATE", run)
            _sqlite_events(self.reader, "BEGIN", run)
        else:
            self.writer = self.reader = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
            self._threads = (10 + 20, 0)  # writes share the readers' threads
        self._write = sessionmaker(self.writer, expire_on_commit=False)
        self._read = sessionmaker(self.reader, expire_on_commit=False)
        self._executors: dict[bool, ThreadPoolExecutor] = {}
        self._executors_lock = threading.Lock()
        #: Advances when a write session opens or closes outside a request (:meth:`write`).
        self.generation = 0
        #: Run each request's database work on the event loop's own thread instead of a database
        #: thread. Only for a client that sends one request at a time and waits for the answer (the
        #: in-process simulated game of ``labels_simulate``): there is nothing to overlap the work
        #: with, and the thread hand-off is most of a small request's latency. A server keeps False.
        self.inline = False

    def _executor(self, write: bool) -> ThreadPoolExecutor:
        """Return the threads that run reads (``write`` False) or writes (lazily started)."""
        write = write and self._threads[1] > 0
        pool = self._executors.get(write)
        if pool is None:
            with self._executors_lock:
                pool = self._executors.get(write)
                if pool is None:
                    n = self._threads[write]
                    name = "game-db-writer" if write else "game-db"
                    pool = self._executors[write] = ThreadPoolExecutor(n, thread_name_prefix=name)
        return pool

    def _call(self, fn: Callable[[Session], T], write: bool) -> T:
        with self.session(write) as s:
            return fn(s)

    async def run(self, fn: Callable[[Session], T], write: bool) -> T:
        """Run ``fn(session)`` in a database thread, with a session of its own closed there.

        The request's whole database work (and the answer it builds) is one call: the event loop
        waits once and is never blocked. There are never more threads than connections, so a
        thread never waits for a connection held by a request that needs a thread to finish.
        SQLite writes run in one writer thread, in arrival order.

        Parameters
        ----------
        fn : callable
            Takes the session; commits what it writes before returning.
        write : bool
            A write transaction (SQLite: ``BEGIN IMMEDIATE``, one writer at a time) or a read.

        Returns
        -------
        What ``fn`` returns; what it raises is raised here.
        """
        if self.inline:
            return self._call(fn, write)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(write), self._call, fn, write)

    def session(self, write: bool) -> Session:
        """Return a new session on the writer (``BEGIN IMMEDIATE`` on SQLite) or the reader pool."""
        return (self._write if write else self._read)()

    def init(self, fingerprint: str) -> None:
        """Create the tables of a new database, or check an existing one's version and content.

        Parameters
        ----------
        fingerprint : str
            The masked images' fingerprint (:attr:`inviz.game.web.content.GameContent.fingerprint`).

        Raises
        ------
        GameDatabaseError
            Another schema version, or a database made for other masked images.
        """
        Base.metadata.create_all(self.writer, tables=[Meta.__table__])
        with self.write() as s:
            meta = {m.key: m.value for m in s.scalars(select(Meta))}
            if not meta:
                Base.metadata.create_all(s.connection())
                s.add_all(
                    [
                        Meta(key="schema_version", value=str(SCHEMA_VERSION)),
                        Meta(key="content_fingerprint", value=fingerprint),
                    ]
                )
                s.commit()
                return
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise GameDatabaseError(
                f"{self.safe_url}: game database schema version {version}, this inviz reads version "
                f"{SCHEMA_VERSION}; export it with the inviz that wrote it, or start a new database "
                "(game.db_url)"
            )
        if meta.get("content_fingerprint") != fingerprint:
            raise GameDatabaseError(
                f"{self.safe_url}: this game database was made for other masked images (fingerprint "
                f"{meta.get('content_fingerprint')}, now {fingerprint}): cluster ids would not match. "
                "Export its answers with the masks they were played on, then start a new database "
                "(game.db_url)"
            )

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden (for messages)."""
        return make_url(self.url).render_as_string(hide_password=True)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """Open a session for a write transaction (SQLite: ``BEGIN IMMEDIATE``, one writer at a time).

        For work outside a request (set-up, maintenance, tests): it advances :attr:`generation`,
        so what the server keeps in memory about the database is read again
        (:mod:`inviz.game.web.plays`). Requests write through :meth:`run`.
        """
        self.generation += 1
        try:
            with self._write() as s:
                yield s
        finally:
            self.generation += 1

    @contextmanager
    def read(self) -> Iterator[Session]:
        """Open a session for reading (never waits for writers in WAL mode)."""
        with self._read() as s:
            yield s

    def dispose(self) -> None:
        """Stop the database threads (after their work) and close every pooled connection."""
        with self._executors_lock:
            pools, self._executors = list(self._executors.values()), {}
        for pool in pools:
            pool.shutdown(wait=True)
        self.writer.dispose()
        if self.reader is not self.writer:
            self.reader.dispose()
