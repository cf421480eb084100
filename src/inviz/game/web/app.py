"""The FastAPI application of Deep Reveal: routers, error handlers, static files, security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from inviz.game.web.errors import GameRequestError
from inviz.game.web.settings import GameState

#: Security headers of every response: no inline script, no framing, no sniffing, no referrer.
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    """ASGI middleware adding :data:`SECURITY_HEADERS` (and ``no-store`` to JSON answers)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        """Pass the request on; add the headers to the response's start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _validation_message(err: RequestValidationError) -> str:
    parts = []
    for e in err.errors():
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def create_app(state: GameState) -> FastAPI:
    """Build the game's application around an opened game.

    Parameters
    ----------
    state : GameState
        From :func:`inviz.game.web.settings.open_game` (closed when the application shuts down).

    Returns
    -------
    FastAPI
    """
    from inviz.game.web.routers import admin, leaderboard, pages, players, questionnaire, rounds
    from inviz.game.web.routers.pages import RESOURCES

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    # no Swagger UI: it loads from a CDN (the game runs offline); the schema is at /openapi.json
    app = FastAPI(title=state.settings.game.title, lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.game = state

    @app.exception_handler(GameRequestError)
    async def _game_error(request: Request, exc: GameRequestError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc)}, status_code=422)

    for module in (players, rounds, leaderboard, questionnaire, admin, pages):
        app.include_router(module.router)
    if state.what_if is not None:
        from inviz.game.web.routers import whatif

        app.include_router(whatif.router)
    app.mount("/static", StaticFiles(directory=str(RESOURCES / "static")), name="static")
    app.add_middleware(SecurityHeaders)
    return app
