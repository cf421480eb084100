"""``/api/rounds/{token}/whatif``: the "what if" panel of a finished round (on with ``game.what_if``)."""

from __future__ import annotations

import io
import time

import numpy as np
from fastapi import APIRouter, Response

from inviz.game.web import whatif
from inviz.game.web.deps import ReadingPlayer, State, WritingPlayer
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
async def open_panel(token: str, tx: ReadingPlayer, state: State) -> WhatIfOut:
    """Open the panel: the starting mask (what the game showed) and the model's prediction on it."""

    def work(s, player) -> WhatIfOut:
        t0 = time.perf_counter()
        view = whatif.start(state, s, player, token)
        out = _out(state, view, 1000 * (time.perf_counter() - t0))
        out.image = f"/api/rounds/{token}/whatif/image"
        return out

    return await tx(work)


@router.get("/{token}/whatif/image", response_class=Response)
async def full_image(token: str, tx: ReadingPlayer, state: State) -> Response:
    """Send the whole game image of a finished round (PNG)."""

    def work(s, player) -> bytes:
        from PIL import Image

        r = whatif.finished_round(state, s, player, token)
        buf = io.BytesIO()
        full = np.asarray(state.what_if.full_image(r.image))
        Image.fromarray(full).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    data = await tx(work)
    return Response(data, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


@router.post("/{token}/whatif", response_model=WhatIfOut)
async def edit(token: str, body: WhatIfEditIn, tx: WritingPlayer, state: State) -> WhatIfOut:
    """Predict on the edited image (mask: base64 of grid x grid opacities 0-255) and store the edit."""

    def work(s, player) -> WhatIfOut:
        t0 = time.perf_counter()
        view = whatif.edit(state, s, player, token, body.mask, state.clock())
        return _out(state, view, 1000 * (time.perf_counter() - t0))

    return await tx(work)
