"""FastAPI dependencies: the game's state, one database session per request, the player, the admin."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from inviz.game.web.accounts import player_for_token
from inviz.game.web.db import Player
from inviz.game.web.errors import GameRequestError
from inviz.game.web.settings import GameState

#: Name of the player cookie (HttpOnly, SameSite=Strict).
COOKIE = "inviz_player"


async def get_state(request: Request) -> GameState:
    """Return the running game (``app.state.game``; async: no worker thread for a lookup)."""
    return request.app.state.game


State = Annotated[GameState, Depends(get_state)]


@asynccontextmanager
async def _session(state: GameState, write: bool) -> AsyncIterator[Session]:
    """Hold a pool slot (waiting in the event loop, not in a worker thread), then a session."""
    async with state.db.slots(write):
        s = state.db.session(write)
        try:
            yield s
        finally:
            await run_in_threadpool(s.close)


async def write_session(state: State) -> AsyncIterator[Session]:
    """Open a session for a request that changes the game (the service commits before the response)."""
    async with _session(state, write=True) as s:
        yield s


async def read_session(state: State) -> AsyncIterator[Session]:
    """Open a session for a request that only reads."""
    async with _session(state, write=False) as s:
        yield s


WriteSession = Annotated[Session, Depends(write_session)]
ReadSession = Annotated[Session, Depends(read_session)]


def bearer(request: Request) -> str | None:
    """Return the token of ``Authorization: Bearer <token>``, else None."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def player_token(request: Request) -> str | None:
    """Return the player's token: the ``Authorization: Bearer`` header, else the player cookie."""
    return bearer(request) or request.cookies.get(COOKIE)


def writing_player(request: Request, s: WriteSession) -> Player:
    """Return the signed-up player of a request that writes (401 otherwise)."""
    return player_for_token(s, player_token(request))


def reading_player(request: Request, s: ReadSession) -> Player:
    """Return the signed-up player of a request that only reads (401 otherwise)."""
    return player_for_token(s, player_token(request))


WritingPlayer = Annotated[Player, Depends(writing_player)]
ReadingPlayer = Annotated[Player, Depends(reading_player)]


def require_admin(request: Request, state: State) -> None:
    """Allow the request only with ``Authorization: Bearer <admin token>`` (403 otherwise).

    The token comes from the environment variable ``game.admin_token_env``; without it the admin
    API is off.
    """
    expected = state.settings.admin_token
    if expected is None:
        raise GameRequestError(
            403,
            f"admin is off: set the environment variable {state.settings.game.admin_token_env} and restart",
        )
    given = bearer(request) or ""
    if not secrets.compare_digest(given.encode(), expected.get_secret_value().encode()):
        raise GameRequestError(403, "admin: wrong or missing token (Authorization: Bearer <token>)")


Admin = Depends(require_admin)
