"""``/api/players``: sign up, who am I; ``/api/config``: what the page needs to know."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from inviz.game.web.accounts import questionnaire_due, sign_up
from inviz.game.web.db import Player, token_hash
from inviz.game.web.deps import COOKIE, ReadingPlayer, State, player_token
from inviz.game.web.schemas import ConfigOut, PlayerOut, SessionOut, SignUpIn, SignUpOut

router = APIRouter(prefix="/api", tags=["players"])

#: Lifetime of the player cookie (seconds): a player carries on for months on the same browser.
COOKIE_AGE = 180 * 24 * 3600


def player_out(s, player: Player, state) -> PlayerOut:
    """Describe a player for themself."""
    return PlayerOut(
        nickname=player.nickname,
        ai_background=player.ai_background,
        language=player.language,
        points=player.points,
        rounds=player.rounds_done,
        questionnaire_due=questionnaire_due(s, player, state.settings.game),
    )


@router.get("/config", response_model=ConfigOut)
def config(state: State) -> ConfigOut:
    """Tell the game's title, languages, levels, feature limits and whether the "what if" panel is on."""
    g = state.settings.game
    return ConfigOut(
        title=g.title,
        languages=list(g.languages),
        n_levels=state.content.n_levels,
        percents=[float(p) for p in state.content.levels],
        min_features=g.min_features,
        max_features=g.max_features,
        max_text_length=state.settings.max_text_length,
        what_if=state.what_if is not None,
    )


@router.post("/players", response_model=SignUpOut, status_code=201)
async def create_player(body: SignUpIn, request: Request, response: Response, state: State) -> SignUpOut:
    """Sign up: 409 when the nickname is taken (the message suggests a free one)."""

    def work(s) -> SignUpOut:
        g = state.settings.game
        player, token = sign_up(s, g, body.nickname, body.ai_background, body.language, state.clock())
        return SignUpOut(player=player_out(s, player, state), token=token)

    out = await state.db.run(work, write=True)
    response.set_cookie(
        COOKIE,
        out.token,
        max_age=COOKIE_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return out


@router.get("/players/me", response_model=PlayerOut)
async def me(tx: ReadingPlayer, state: State) -> PlayerOut:
    """Describe the signed-up player (401 when not signed up)."""
    return await tx(lambda s, player: player_out(s, player, state))


@router.get("/session", response_model=SessionOut)
async def session(request: Request, state: State) -> SessionOut:
    """Describe the player signed up on this browser, or null (the page's first call: no 401 to log)."""
    token = player_token(request)

    def work(s) -> SessionOut:
        player = s.scalar(select(Player).where(Player.token_hash == token_hash(token))) if token else None
        return SessionOut(player=player_out(s, player, state) if player is not None else None)

    return await state.db.run(work, write=False)


@router.post("/players/sign-out", status_code=204)
def sign_out(response: Response) -> Response:
    """Forget the player cookie on this browser (the player's answers stay)."""
    response.delete_cookie(COOKIE, path="/")
    response.status_code = 204
    return response
