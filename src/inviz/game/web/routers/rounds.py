"""``/api/rounds``: the next round, hints, the guess or resign, the features, the masked images."""

from __future__ import annotations

from fastapi import APIRouter, Response

from inviz.game.web.accounts import questionnaire_due
from inviz.game.web.deps import ReadingPlayer, State, WritingPlayer
from inviz.game.web.schemas import FeaturesIn, GuessIn, NextRoundOut, RoundOut

router = APIRouter(prefix="/api/rounds", tags=["rounds"])

#: Message when no map is left for a player.
NO_MAPS = "No map is left for you to play: thank you for playing!"


@router.post("", response_model=NextRoundOut)
async def next_round(tx: WritingPlayer, state: State) -> NextRoundOut:
    """Continue the player's unfinished round (with a fresh token), else deal the next map."""

    def work(s, player) -> NextRoundOut:
        view = state.rounds.next_round(s, player)
        due = questionnaire_due(s, player, state.settings.game)
        if view is None:
            return NextRoundOut(round=None, message=NO_MAPS, questionnaire_due=due)
        return NextRoundOut(round=view, questionnaire_due=due)

    return await tx(work)


@router.post("/{token}/hint", response_model=RoundOut)
async def hint(token: str, tx: WritingPlayer, state: State) -> RoundOut:
    """Reveal the next level (409 when no hint is left)."""
    return await tx(lambda s, player: state.rounds.hint(s, player, token))


@router.post("/{token}/guess", response_model=RoundOut)
async def guess(token: str, body: GuessIn, tx: WritingPlayer, state: State) -> RoundOut:
    """Guess one of the offered classes; the features are asked next (the result comes after them)."""
    return await tx(lambda s, player: state.rounds.guess(s, player, token, body.choice))


@router.post("/{token}/resign", response_model=RoundOut)
async def resign(token: str, tx: WritingPlayer, state: State) -> RoundOut:
    """Resign after the last hint; the result (the true class) comes back."""
    return await tx(lambda s, player: state.rounds.resign(s, player, token))


@router.post("/{token}/features", response_model=RoundOut)
async def features(token: str, body: FeaturesIn, tx: WritingPlayer, state: State) -> RoundOut:
    """Take the features that made the player decide; the round's result comes back."""
    return await tx(lambda s, player: state.rounds.features(s, player, token, body.texts))


@router.get("/{token}/image/{level}", response_class=Response)
async def image(token: str, level: int, tx: ReadingPlayer, state: State) -> Response:
    """Send the masked image of a revealed level, as stored in the masks zips."""
    data = await tx(lambda s, player: state.rounds.image(s, player, token, level))
    return Response(
        data, media_type=state.content.media_type, headers={"Cache-Control": "private, max-age=3600"}
    )
