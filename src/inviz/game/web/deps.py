"""FastAPI dependencies: the game's state, the request's player and its database work, the admin.

A request's database work is one call in a database thread (:meth:`inviz.game.web.db.Database.run`):
``await tx(fn)`` opens a session, finds the request's player, runs ``fn(session, player)`` (the
rules, the commit, the answer) and closes the session, all in that thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from inviz.game.web.accounts import NOT_SIGNED_UP, player_for_token
from inviz.game.web.db import Player
from inviz.game.web.errors import GameRequestError
from inviz.game.web.settings import GameState

#: Name of the player cookie (HttpOnly, SameSite=Strict).
COOKIE = "inviz_player"

T = TypeVar("T")


async def get_state(request: Request) -> GameState:
    """Return the running game (``app.state.game``; async: no worker thread for a lookup)."""
    return request.app.state.game


State = Annotated[GameState, Depends(get_state)]


def bearer(request: Request) -> str | None:
    """Return the token of ``Authorization: Bearer <token>``, else None."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def player_token(request: Request) -> str | None:
    """Return the player's token: the ``Authorization: Bearer`` header, else the player cookie."""
    return bearer(request) or request.cookies.get(COOKIE)


class PlayerTx:
    """The database work of a request made by a player: ``await tx(fn)``.

    Parameters
    ----------
    state : GameState
        The running game.
    token : str
        The player's token (a missing one was refused already).
    write : bool
        A write transaction (committed by ``fn``) or a read.
    """

    __slots__ = ("state", "token", "write")

    def __init__(self, state: GameState, token: str, write: bool):
        self.state, self.token, self.write = state, token, write

    async def __call__(self, fn: Callable[[Session, Player], T]) -> T:
        """Run ``fn(session, player)`` in a database thread (401 when the token is unknown)."""
        token = self.token

        def work(s: Session) -> T:
            return fn(s, player_for_token(s, token))

        return await self.state.db.run(work, self.write)


def _player_tx(request: Request, state: GameState, write: bool) -> PlayerTx:
    token = player_token(request)
    if not token:
        raise GameRequestError(401, NOT_SIGNED_UP)
    return PlayerTx(state, token, write)


async def writing_player(request: Request, state: State) -> PlayerTx:
    """Return the database work of a signed-up player's request that writes (401 without a token)."""
    return _player_tx(request, state, write=True)


async def reading_player(request: Request, state: State) -> PlayerTx:
    """Return the database work of a signed-up player's request that only reads (401 without a token)."""
    return _player_tx(request, state, write=False)


WritingPlayer = Annotated[PlayerTx, Depends(writing_player)]
ReadingPlayer = Annotated[PlayerTx, Depends(reading_player)]


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
