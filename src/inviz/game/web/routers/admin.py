"""``/api/admin``: progress and the export download, behind the admin token (``Authorization: Bearer``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from inviz.game.web.deps import Admin, State
from inviz.game.web.export import export_tables, export_zip
from inviz.game.web.progress import progress

router = APIRouter(prefix="/api/admin", tags=["admin"], dependencies=[Admin])


def _records(frame: Any) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


@router.get("/progress")
def get_progress(state: State) -> dict[str, Any]:
    """Plays per map (histogram), layer and class; outcomes; players; questionnaire scores."""
    p = progress(state.db, state.content, state.settings.game.plays_per_map)
    hist = p.maps["plays"].value_counts().sort_index()
    return {
        "summary": p.summary,
        "plays_histogram": [{"plays": int(k), "maps": int(v)} for k, v in hist.items()],
        "by_layer": _records(p.by_layer),
        "by_class": _records(p.by_class),
        "players": _records(p.players),
    }


@router.get("/export.zip", response_class=Response)
def download_export(state: State) -> Response:
    """Download the game export (``guesses.csv``, ``players.csv``, …) as a zip for ``labels_import``."""
    data = export_zip(export_tables(state.db, state.content))
    return Response(
        data,
        media_type="application/zip",
        headers={
            "Content-Disposition": 'attachment; filename="game_export.zip"',
            "Cache-Control": "no-store",
        },
    )
