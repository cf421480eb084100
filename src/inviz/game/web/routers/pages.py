"""The game's pages: ``/`` (the game) and ``/admin`` (progress and export; its data needs the admin token)."""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from inviz.game.web.deps import State

#: The templates and static files shipped in the package.
RESOURCES = files("inviz") / "resources" / "game"
templates = Jinja2Templates(directory=str(RESOURCES / "templates"))
router = APIRouter(tags=["pages"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def index(request: Request, state: State) -> HTMLResponse:
    """Serve the game page (one page: sign-up, rounds, features, results, leaderboard, questionnaire)."""
    return templates.TemplateResponse(request, "index.html", {"title": state.settings.game.title})


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin(request: Request, state: State) -> HTMLResponse:
    """Serve the admin page (it asks for the admin token; the data comes from ``/api/admin``)."""
    return templates.TemplateResponse(request, "admin.html", {"title": state.settings.game.title})
