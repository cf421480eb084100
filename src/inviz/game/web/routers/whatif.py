"""``/api/rounds/{token}/whatif``: the "what if" panel of a finished round (on with ``game.what_if``)."""

from __future__ import annotations

import io
import time

import numpy as np
from fastapi import APIRouter, Response

from inviz.game.web import whatif
from inviz.game.web.deps import ReadingPlayer, ReadSession, State, WriteSession, WritingPlayer
from inviz.game.web.schemas import PredictionOut, WhatIfEditIn, WhatIfOut

router = APIRouter(prefix="/api/rounds", tags=["what if"])


def _out(state, view: whatif.WhatIfView, ms: float) -> WhatIfOut:
    names = {c.label: c.name for c in state.content.classes}
    p = view.prediction
    return WhatIfOut(
        grid=view.grid,
        mask=view.mask,
        image=None,
        prediction=PredictionOut(
            label=names[p.label],
            top=[{"name": names[i], "p": round(q, 4)} for i, q in p.top(3)],
            true_class=names[view.true_label],
            true_prob=round(float(p.probs[view.true_label]), 4),
        ),
        edits_left=view.edits_left,
        ms=round(ms, 1),
    )


@router.get("/{token}/whatif", response_model=WhatIfOut)
def open_panel(token: str, player: ReadingPlayer, s: ReadSession, state: State) -> WhatIfOut:
    """Open the panel: the starting mask (what the game showed) and the model's prediction on it."""
    t0 = time.perf_counter()
    view = whatif.start(state, s, player, token)
    out = _out(state, view, 1000 * (time.perf_counter() - t0))
    out.image = f"/api/rounds/{token}/whatif/image"
    return out


@router.get("/{token}/whatif/image", response_class=Response)
def full_image(token: str, player: ReadingPlayer, s: ReadSession, state: State) -> Response:
    """Send the whole game image of a finished round (PNG)."""
    from PIL import Image

    r = whatif.finished_round(state, s, player, token)
    buf = io.BytesIO()
    Image.fromarray(np.asarray(state.what_if.full_image(r.image))).save(buf, format="PNG", compress_level=1)
    return Response(
        buf.getvalue(), media_type="image/png", headers={"Cache-Control": "private, max-age=3600"}
    )


@router.post("/{token}/whatif", response_model=WhatIfOut)
def edit(token: str, body: WhatIfEditIn, player: WritingPlayer, s: WriteSession, state: State) -> WhatIfOut:
    """Predict on the edited image (mask: base64 of grid x grid opacities 0-255) and store the edit."""
    t0 = time.perf_counter()
    view = whatif.edit(state, s, player, token, body.mask, state.clock())
    return _out(state, view, 1000 * (time.perf_counter() - t0))
