"""``/api/questionnaire``: the SUS and raw NASA-TLX items, and the player's answers."""

from __future__ import annotations

from fastapi import APIRouter

from inviz.game.web.accounts import save_questionnaire
from inviz.game.web.deps import State, WritingPlayer
from inviz.game.web.errors import bad
from inviz.game.web.questionnaire import SUS_ITEMS, TLX_ITEMS, TLX_STEP
from inviz.game.web.schemas import QuestionnaireFormOut, QuestionnaireIn, QuestionnaireOut

router = APIRouter(prefix="/api/questionnaire", tags=["questionnaire"])


@router.get("", response_model=QuestionnaireFormOut)
def form() -> QuestionnaireFormOut:
    """List the ten SUS statements and the six TLX subscales (with their anchors)."""
    tlx = [{"key": k, "name": n, "question": q, "low": lo, "high": hi} for k, n, q, lo, hi in TLX_ITEMS]
    return QuestionnaireFormOut(sus=list(SUS_ITEMS), tlx=tlx, tlx_step=TLX_STEP)


@router.post("", response_model=QuestionnaireOut, status_code=201)
async def answer(body: QuestionnaireIn, tx: WritingPlayer, state: State) -> QuestionnaireOut:
    """Store the answers once (409 the second time); ``skip`` stores a skip."""
    if body.skip and (body.sus is not None or body.tlx is not None):
        raise bad("questionnaire: skip, or answer; not both")
    if not body.skip and (body.sus is None or body.tlx is None):
        raise bad("questionnaire: answer both SUS and TLX, or skip")
    sus, tlx = (None, None) if body.skip else (body.sus, body.tlx)

    def work(s, player) -> QuestionnaireOut:
        q = save_questionnaire(s, player, sus, tlx, state.clock())
        return QuestionnaireOut(sus_score=q.sus_score, tlx_raw=q.tlx_raw)

    return await tx(work)
