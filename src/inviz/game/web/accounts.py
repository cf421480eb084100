"""Players: sign-up, sign-in by token, the leaderboard and the usability questionnaires.

Players are identified by an opaque token (kept hashed in the database) sent as an HttpOnly
cookie by the browser or as ``Authorization: Bearer <token>`` by other clients. Nicknames are
unique regardless of case and spacing; a taken nickname gets a 409 with a free suggestion.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from inviz.game.web.config import GameConfig
from inviz.game.web.db import NICKNAME_LENGTH, Player, Questionnaire, new_token, token_hash
from inviz.game.web.errors import GameRequestError, bad, conflict
from inviz.game.web.questionnaire import check_sus, check_tlx, sus_score, tlx_raw

_P = Player.__table__
_PLAYER_BY_TOKEN = select(_P).where(_P.c.token_hash == bindparam("h"))
_ADD_POINTS = (
    update(_P)
    .where(_P.c.id == bindparam("p"))
    .values(points=_P.c.points + bindparam("pts"), rounds_done=_P.c.rounds_done + 1)
)
#: Answer to a request without a known player token.
NOT_SIGNED_UP = "not signed up: sign up first (or your player token is unknown)"
_NICKNAME = re.compile(rf"^\w[\w .'\-]{{1,{NICKNAME_LENGTH - 1}}}$")


def clean_nickname(raw: str) -> tuple[str, str]:
    """Check a nickname and return it as shown and as compared (case- and space-insensitive).

    Parameters
    ----------
    raw : str
        What the player typed.

    Returns
    -------
    shown, key : str
        The nickname with spaces collapsed (NFC), and its case-folded key.

    Raises
    ------
    GameRequestError
        422: not 2-24 letters, digits, spaces, ``. ' - _``, starting with a letter or digit.
    """
    shown = re.sub(r"\s+", " ", unicodedata.normalize("NFC", str(raw))).strip()
    if not _NICKNAME.fullmatch(shown):
        raise bad(
            f"nickname: 2-{NICKNAME_LENGTH} letters, digits, spaces or . ' - _, starting with a letter "
            "or digit"
        )
    return shown, shown.casefold().replace(" ", "")


def _suggest(s: Session, shown: str) -> str:
    """Suggest a free nickname like ``shown``: the first of ``shown2``, ``shown3``, … not taken."""
    stem = shown[: NICKNAME_LENGTH - 3]
    taken = set(
        s.scalars(
            select(Player.nickname_key).where(
                Player.nickname_key.like(f"{stem.casefold().replace(' ', '')}%")
            )
        )
    )
    n = 2
    while f"{stem}{n}".casefold().replace(" ", "") in taken:
        n += 1
    return f"{stem}{n}"


def sign_up(
    s: Session, cfg: GameConfig, nickname: str, ai_background: bool, language: str, now: float
) -> tuple[Player, str]:
    """Create a player; return it and its token (shown once, stored hashed).

    Parameters
    ----------
    s : Session
        A write session (committed here).
    cfg : GameConfig
        ``languages``.
    nickname : str
        The wanted nickname.
    ai_background : bool
        The sign-up question "do you have a background in AI?".
    language : str
        The language the player types in (one of ``cfg.languages``).
    now : float
        Epoch seconds.

    Returns
    -------
    Player, str

    Raises
    ------
    GameRequestError
        422 bad nickname or language; 409 nickname taken (the message suggests a free one).
    """
    shown, key = clean_nickname(nickname)
    if language not in cfg.languages:
        raise bad(f"language: expected one of {', '.join(cfg.languages)}, got {language!r}")
    taken = s.scalar(select(func.count()).select_from(Player).where(Player.nickname_key == key))
    if taken:
        raise conflict(f"nickname {shown!r} is taken; try {_suggest(s, shown)!r}")
    token, digest = new_token()
    player = Player(
        nickname=shown,
        nickname_key=key,
        token_hash=digest,
        ai_background=bool(ai_background),
        language=language,
        created_at=now,
        points=0,
        rounds_done=0,
        screening_done=0,
        screening_failed=0,
        passed_screening=True,
    )
    s.add(player)
    try:
        s.commit()
    except IntegrityError as err:  # the same nickname signed up in between
        s.rollback()
        raise conflict(f"nickname {shown!r} is taken; try {_suggest(s, shown)!r}") from err
    return player, token


def player_for_token(s: Session, token: str | None) -> Player:
    """Return the player of a token: its row of ``players`` (read-only; the columns as attributes).

    Raises
    ------
    GameRequestError
        401 when the token is missing or unknown.
    """
    player = s.connection().execute(_PLAYER_BY_TOKEN, {"h": token_hash(token)}).first() if token else None
    if player is None:
        raise GameRequestError(401, NOT_SIGNED_UP)
    return player


@dataclass(frozen=True)
class Standing:
    """One leaderboard line: rank (ties share it), nickname, points, finished rounds."""

    rank: int
    nickname: str
    points: int
    rounds: int


def rank_of(s: Session, points: int) -> int:
    """Rank of a score: 1 + the players with more points (ties share a rank: 1, 2, 2, 4)."""
    return 1 + int(s.scalar(select(func.count()).select_from(Player).where(Player.points > points)) or 0)


def leaderboard(s: Session, player: Player, size: int) -> tuple[list[Standing], Standing, int]:
    """List the top ``size`` players and the player's own standing.

    Parameters
    ----------
    s : Session
        Any session.
    player : Player
        Who asks.
    size : int
        ``game.leaderboard_size``.

    Returns
    -------
    top : list of Standing
        By points (then sign-up order).
    me : Standing
    n_players : int
    """
    rows = s.execute(
        select(Player.nickname, Player.points, Player.rounds_done)
        .order_by(Player.points.desc(), Player.id)
        .limit(size)
    ).all()
    top, rank, prev = [], 0, None
    for i, (nick, pts, n) in enumerate(rows, start=1):
        rank = rank if pts == prev else i
        prev = pts
        top.append(Standing(rank, nick, int(pts), int(n)))
    me = Standing(rank_of(s, player.points), player.nickname, int(player.points), int(player.rounds_done))
    n_players = int(s.scalar(select(func.count()).select_from(Player)) or 0)
    return top, me, n_players


def questionnaire_due(s: Session, player: Player, cfg: GameConfig) -> bool:
    """Whether the player should now answer SUS + TLX (after ``questionnaire_after`` rounds, once)."""
    if cfg.questionnaire_after <= 0 or player.rounds_done < cfg.questionnaire_after:
        return False
    return not s.scalar(
        select(func.count()).select_from(Questionnaire).where(Questionnaire.player_id == player.id)
    )


def save_questionnaire(
    s: Session, player: Player, sus: list[int] | None, tlx: list[int] | None, now: float
) -> Questionnaire:
    """Store a player's SUS and raw TLX answers (both None: skipped); committed here.

    Raises
    ------
    GameRequestError
        422 invalid answers; 409 answered already.
    """
    skipped = sus is None and tlx is None
    if not skipped:
        if sus is None or tlx is None:
            raise bad("questionnaire: answer both SUS and TLX, or skip")
        try:
            check_sus(sus)
            check_tlx(tlx)
        except ValueError as err:
            raise bad(str(err)) from err
    q = Questionnaire(
        player_id=player.id,
        sus="" if skipped else ",".join(map(str, sus)),
        tlx="" if skipped else ",".join(map(str, tlx)),
        sus_score=None if skipped else sus_score(sus),
        tlx_raw=None if skipped else tlx_raw(tlx),
        skipped=skipped,
        created_at=now,
    )
    s.add(q)
    try:
        s.commit()
    except IntegrityError as err:
        s.rollback()
        raise conflict("questionnaire: answered already") from err
    return q


def add_points(s: Session, player_id: int, points: int) -> None:
    """Add a finished round's points to a player's total (in the caller's transaction)."""
    s.connection().execute(_ADD_POINTS, {"p": player_id, "pts": points})
