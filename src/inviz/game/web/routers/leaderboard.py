"""``/api/leaderboard``: the top players and the player's own rank."""

from __future__ import annotations

from fastapi import APIRouter

from inviz.game.web.accounts import leaderboard
from inviz.game.web.deps import ReadingPlayer, State
from inviz.game.web.schemas import LeaderboardOut, StandingOut

router = APIRouter(prefix="/api", tags=["leaderboard"])


@router.get("/leaderboard", response_model=LeaderboardOut)
async def get_leaderboard(tx: ReadingPlayer, state: State) -> LeaderboardOut:
    """Top ``game.leaderboard_size`` players by points (ties share a rank) and the player's own standing."""

    def work(s, player) -> LeaderboardOut:
        top, me, n = leaderboard(s, player, state.settings.game.leaderboard_size)
        return LeaderboardOut(
            top=[StandingOut(**vars(t)) for t in top], me=StandingOut(**vars(me)), players=n
        )

    return await tx(work)
