"""Rounds of Deep Reveal: hand out a map, reveal levels, take the guess or resign, then the features.

The course of a round (docs/method.md §7): the player sees a cluster map's masked image at its
start level and the offered classes; asks for hints (the next levels, up to the last); guesses,
or resigns once every hint is used; after a guess types 1-3 features; only then learns the true
class and the points. What reaches the client before that is the round's opaque token, the
level, the offered class names and the image bytes: never the image name, class, layer or
cluster id.

Every answer is one transaction, committed before the response; state changes are conditional
updates (``... WHERE status = 'open'``), so a replayed or concurrent request cannot answer twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from inviz.core.config import ParamsError
from inviz.game.export.tables import encoding_problem
from inviz.game.web.accounts import add_points
from inviz.game.web.config import GameConfig
from inviz.game.web.content import GameContent
from inviz.game.web.db import Feature, MapPlays, Player, Round, RoundRow, new_token, token_hash
from inviz.game.web.errors import GameRequestError, bad, conflict, not_found
from inviz.game.web.plays import PlaysMirror
from inviz.game.web.policy import (
    choose_map,
    is_screening_round,
    offered_classes,
    passed_screening,
    round_points,
    round_rng,
    screening_maps,
    start_level,
)
from inviz.game.web.schemas import ChoiceOut, ResultOut, RoundOut

# Statements built once (each request only binds its values), run on the session's connection:
# SQL rows and conditional updates, not the ORM's unit of work (a fraction of the cost per request).
_R, _F, _P = Round.__table__, Feature.__table__, Player.__table__
_ROUND_BY_TOKEN = select(_R).where(_R.c.token_hash == bindparam("h"))
_LAST_ROUND = select(_R).where(_R.c.player_id == bindparam("p")).order_by(_R.c.seq.desc()).limit(1)
_SEEN = select(Round.cluster_id).where(Round.player_id == bindparam("p"))
_INFLIGHT = (
    select(_R.c.cluster_id, func.count())
    .where(_R.c.status == "open", _R.c.screening.is_(False), _R.c.expires_at > bindparam("now"))
    .group_by(_R.c.cluster_id)
)
_TEXTS = select(_F.c.text).where(_F.c.round_id == bindparam("r")).order_by(_F.c.position)
_POINTS = select(_P.c.points).where(_P.c.id == bindparam("p"))
_NEW_ROUND = insert(_R)
_NEW_FEATURES = insert(_F)
_NEW_TOKEN = update(_R).where(_R.c.id == bindparam("r")).values(token_hash=bindparam("h"))
_HINT = (
    update(_R)
    .where(_R.c.id == bindparam("r"), _R.c.status == "open", _R.c.level == bindparam("lv"))
    .values(level=_R.c.level + 1)
)
_ANSWER = (
    update(_R)
    .where(_R.c.id == bindparam("r"), _R.c.status == "open")
    .values(
        status=bindparam("st"),
        guessed_id=bindparam("g"),
        correct=bindparam("ok"),
        points=bindparam("pts"),
        answered_at=bindparam("at"),
    )
)
_FINISH = update(_R).where(_R.c.id == bindparam("r"), _R.c.status == "guessed").values(status="done")
_PLAYED = (
    update(MapPlays.__table__)
    .where(MapPlays.__table__.c.cluster_id == bindparam("c"))
    .values(plays=MapPlays.__table__.c.plays + 1)
)
_SCREENING_FAILED = select(_P.c.screening_failed).where(_P.c.id == bindparam("p"))
_SCREENED = (
    update(_P)
    .where(_P.c.id == bindparam("p"))
    .values(
        screening_done=_P.c.screening_done + 1,
        screening_failed=bindparam("failed"),
        passed_screening=bindparam("passed"),
    )
)


def _candidates(exclude_image: bool, below: bool) -> Any:
    """Build the statement listing the tied least-played maps by cluster id (binds: now, p, img, target)."""
    inflight = (
        select(Round.cluster_id.label("cid"), func.count().label("n"))
        .where(Round.status == "open", Round.screening.is_(False), Round.expires_at > bindparam("now"))
        .group_by(Round.cluster_id)
        .subquery()
    )
    load = MapPlays.plays + func.coalesce(inflight.c.n, 0)
    q = (
        select(MapPlays.cluster_id.label("cluster_id"), load.label("load"))
        .outerjoin(inflight, inflight.c.cid == MapPlays.cluster_id)
        .where(MapPlays.cluster_id.not_in(_SEEN))
    )
    if exclude_image:
        q = q.where(MapPlays.image != bindparam("img"))
    if below:
        q = q.where(load < bindparam("target"))
    c = q.cte("candidates")
    tied = c.c.load == select(func.min(c.c.load)).scalar_subquery()
    return select(c.c.cluster_id).where(tied).order_by(c.c.cluster_id)


_CANDIDATES = {(e, b): _candidates(e, b) for e in (False, True) for b in (False, True)}


class RoundService:
    """The rules of a round over the game database.

    Parameters
    ----------
    cfg : GameConfig
        The ``game`` section.
    content : GameContent
        Maps, images and classes.
    max_text_length : int
        ``labels_import.max_text_length``: the longest feature text accepted.
    clock : callable
        Returns the time in epoch seconds (tests move it).
    plays : PlaysMirror, optional
        The answered plays per map kept in memory (SQLite's writer); without it the database
        picks the least-played maps (:meth:`least_played`).
    """

    def __init__(
        self,
        cfg: GameConfig,
        content: GameContent,
        max_text_length: int,
        clock: Callable[[], float],
        plays: PlaysMirror | None = None,
    ):
        self.cfg = cfg
        self.content = content
        self.max_text_length = max_text_length
        self.clock = clock
        self.plays = plays
        maps = content.maps
        self._ids = maps["cluster_id"].to_numpy(dtype=np.int64)
        self._images = maps["image"].to_numpy(dtype=object)
        self.starts = np.array([start_level(w, cfg.difficulty) for w in maps["weight"]], dtype=int)
        self.starts = np.minimum(self.starts, content.n_levels - 1)
        try:
            pool = screening_maps(maps, cfg.screening, content.layers) if cfg.screening.enabled else []
        except ValueError as err:
            raise ParamsError(str(err)) from err
        self.screening_pool = pool

    # -- lookups -------------------------------------------------------------------------------
    def own_round(self, s: Session, player: Player, token: str) -> RoundRow:
        """Return the player's round of a token (404 for an unknown token or another player's round)."""
        row = s.connection().execute(_ROUND_BY_TOKEN, {"h": token_hash(token)}).first()
        if row is None or row.player_id != player.id:
            raise not_found("round not found: unknown or outdated token, or not your round")
        return RoundRow(**row._mapping)

    def _check_open(self, r: RoundRow) -> None:
        if r.status != "open":
            raise conflict(f"round {r.seq} is answered already")
        if r.expires_at <= self.clock():
            raise GameRequestError(410, f"round {r.seq} has expired; start a new round")

    def least_played(
        self, s: Session, player_id: int, last_image: str | None, now: float, rng: np.random.Generator
    ) -> int | None:
        """Pick the player's next map: one of the least-played maps the player may get, at random.

        The rule of :func:`~inviz.game.web.policy.choose_map`: plays are answered plays plus open,
        unexpired rounds (outside screening); maps the player had and maps of the previous
        round's image are left out, and with ``stop_when_done`` maps that have
        ``plays_per_map`` plays. With :attr:`plays` (SQLite) the answered plays come from memory,
        the open rounds and the player's maps from the database, and ``choose_map`` itself
        decides; otherwise :meth:`least_played_sql` (the same draw from ``rng``).

        Returns
        -------
        int or None
            The cluster id; None when no map is left for the player.
        """
        if self.plays is None:
            return self.least_played_sql(s, player_id, last_image, now, rng)
        con = s.connection()
        load = self.plays.plays(con)
        position = self.content.position
        for cid, n in con.execute(_INFLIGHT, {"now": now}):
            load[position[int(cid)]] += int(n)
        seen = {position[int(c)] for c in con.execute(_SEEN, {"p": player_id}).scalars()}
        target = self.cfg.plays_per_map if self.cfg.stop_when_done else None
        pos = choose_map(load, self._images, seen, last_image, rng, target)
        return None if pos is None else int(self._ids[pos])

    def least_played_sql(
        self, s: Session, player_id: int, last_image: str | None, now: float, rng: np.random.Generator
    ) -> int | None:
        """:meth:`least_played` run by the database (one statement lists the tied maps by cluster id).

        Returns
        -------
        int or None
            The cluster id; None when no map is left for the player.
        """
        tied = _CANDIDATES[(last_image is not None, self.cfg.stop_when_done)]
        binds = {"now": now, "p": player_id, "img": last_image, "target": self.cfg.plays_per_map}
        ids = s.connection().execute(tied, binds).scalars().all()
        if not ids:
            return None
        return int(ids[int(rng.integers(len(ids)))])  # choose_map's draw among the tied maps

    def ensure_map_rows(self, s: Session) -> None:
        """Create the ``map_plays`` rows of maps that have none (committed here)."""
        have = set(s.scalars(select(MapPlays.cluster_id)))
        maps = self.content.maps
        s.add_all(
            MapPlays(cluster_id=int(c), image=str(im), plays=0)
            for c, im in zip(maps["cluster_id"], maps["image"], strict=True)
            if int(c) not in have
        )
        s.commit()

    # -- the round's course --------------------------------------------------------------------
    def next_round(self, s: Session, player: Player) -> RoundOut | None:
        """Continue the player's unfinished round, or hand out the next map.

        An open or guessed round that has not expired comes back with a fresh token (the old
        one stops working); a guessed round that has expired is finished without features.

        Returns
        -------
        RoundOut or None
            None when no map is left for this player.
        """
        now = self.clock()
        con = s.connection()
        row = con.execute(_LAST_ROUND, {"p": player.id}).first()
        cur = RoundRow(**row._mapping) if row is not None else None
        if cur is not None and cur.status in ("open", "guessed") and cur.expires_at > now:
            token, cur.token_hash = new_token()
            con.execute(_NEW_TOKEN, {"r": cur.id, "h": cur.token_hash})
            return self._commit(s, self.view(s, cur, token))
        if cur is not None and cur.status == "guessed":
            self._finish(s, cur, now)
        seq = cur.seq + 1 if cur is not None else 1
        rng = round_rng(self.cfg.seed, player.id, seq)
        last_image = cur.image if cur is not None else None
        cid, level, screening = self._pick(s, player.id, seq, last_image, rng, now)
        if cid is None:
            s.commit()
            return None
        offered = offered_classes(self.content.game_of[cid], self.content.class_ids, self.cfg.n_choices, rng)
        token, digest = new_token()
        r = RoundRow(
            id=None,
            token_hash=digest,
            player_id=player.id,
            seq=seq,
            cluster_id=int(cid),
            image=self.content.image_of[cid],
            screening=screening,
            start_level=level,
            level=level,
            offered=",".join(map(str, offered)),
            status="open",
            guessed_id=None,
            correct=None,
            points=0,
            created_at=now,
            expires_at=now + 60 * self.cfg.round_ttl_minutes,
            answered_at=None,
        )
        values = {k: getattr(r, k) for k in r.__slots__ if k != "id"}
        r.id = con.execute(_NEW_ROUND, values).inserted_primary_key[0]
        return self._commit(s, self.view(s, r, token))

    def _commit(self, s: Session, out: RoundOut) -> RoundOut:
        """Commit the request's transaction, then hand back its answer (built inside the transaction).

        The maps this transaction counted a play for are counted in :attr:`plays` once committed.
        """
        played = s.info.pop("played", ())
        try:
            s.commit()
        except BaseException:
            if self.plays is not None:
                self.plays.forget()
            raise
        if played and self.plays is not None:
            self.plays.played(played)
        return out

    def _pick(
        self,
        s: Session,
        player_id: int,
        seq: int,
        last_image: str | None,
        rng: np.random.Generator,
        now: float,
    ) -> tuple[int | None, int, bool]:
        """(cluster id, start level, screening) of the next round; cluster id None when nothing is left."""
        if is_screening_round(seq, self.cfg.screening):
            seen = set(s.connection().execute(_SEEN, {"p": player_id}).scalars())
            pool = [
                c for c in self.screening_pool if c not in seen and self.content.image_of[c] != last_image
            ]
            if pool:
                level = min(self.cfg.screening.level, self.content.n_levels - 1)
                return int(pool[int(rng.integers(len(pool)))]), level, True
        chosen = self.least_played(s, player_id, last_image, now, rng)
        if chosen is None:
            return None, 0, False
        return chosen, int(self.starts[self.content.position[chosen]]), False

    def hint(self, s: Session, player: Player, token: str) -> RoundOut:
        """Reveal the next level (409 when none is left)."""
        r = self.own_round(s, player, token)
        self._check_open(r)
        if r.level >= self.content.n_levels - 1:
            raise conflict("no hints left: guess or resign")
        done = s.connection().execute(_HINT, {"r": r.id, "lv": r.level})
        if done.rowcount != 1:
            raise conflict("this hint was asked already")
        r.level += 1
        return self._commit(s, self.view(s, r, token))

    def _answer(
        self, s: Session, r: RoundRow, status: str, guessed: int | None, correct: bool, now: float
    ) -> None:
        """Record a guess or a resign: the round, the map's plays, screening counts (no commit)."""
        points = round_points(correct, r.hints, self.cfg) if status == "guessed" else 0
        values = {
            "status": status,
            "guessed_id": guessed,
            "correct": correct,
            "points": points,
            "answered_at": now,
        }
        con = s.connection()
        done = con.execute(
            _ANSWER, {"r": r.id, "st": status, "g": guessed, "ok": correct, "pts": points, "at": now}
        )
        if done.rowcount != 1:
            raise conflict(f"round {r.seq} is answered already")
        for key, value in values.items():
            setattr(r, key, value)
        if r.screening:
            failed = con.execute(_SCREENING_FAILED, {"p": r.player_id}).scalar_one() + (0 if correct else 1)
            passed = passed_screening(failed, self.cfg.screening)
            con.execute(_SCREENED, {"p": r.player_id, "failed": failed, "passed": passed})
        else:
            con.execute(_PLAYED, {"c": r.cluster_id})
            s.info.setdefault("played", []).append(r.cluster_id)  # for the plays mirror, once committed

    def guess(self, s: Session, player: Player, token: str, choice: int) -> RoundOut:
        """Take the player's guess (one of the offered classes); features are asked next."""
        r = self.own_round(s, player, token)
        self._check_open(r)
        offered = [int(c) for c in r.offered.split(",")]
        if choice not in offered:
            raise bad(f"choice {choice} was not offered in this round (offered: {offered})")
        correct = choice == self.content.game_of[r.cluster_id]
        self._answer(s, r, "guessed", choice, correct, self.clock())
        return self._commit(s, self.view(s, r, token))

    def resign(self, s: Session, player: Player, token: str) -> RoundOut:
        """Give up (only once every hint is used); the true class is shown."""
        r = self.own_round(s, player, token)
        self._check_open(r)
        if r.level < self.content.n_levels - 1:
            raise conflict(
                f"resigning is possible after the last hint ({self.content.n_levels - 1 - r.level} left)"
            )
        now = self.clock()
        self._answer(s, r, "resigned", None, False, now)
        add_points(s, r.player_id, 0)
        return self._commit(s, self.view(s, r, token))

    def check_texts(self, texts: list[str]) -> list[str]:
        """Check the typed features: count, length, characters, repeats; return them stripped."""
        lo, hi = self.cfg.min_features, self.cfg.max_features
        clean = [re.sub(r"\s+", " ", str(t)).strip() for t in texts]
        if not lo <= len(clean) <= hi:
            raise bad(f"features: expected {lo} to {hi} texts, got {len(clean)}")
        for i, t in enumerate(clean, start=1):
            if not t:
                raise bad(f"feature {i}: empty text")
            if len(t) > self.max_text_length:
                raise bad(f"feature {i}: {len(t)} characters; at most {self.max_text_length}")
            why = encoding_problem(t)
            if why:
                raise bad(f"feature {i}: {why}")
        keys = [t.casefold() for t in clean]
        for i, k in enumerate(keys):
            if k in keys[:i]:
                raise bad(f"feature {i + 1} repeats feature {keys.index(k) + 1}")
        return clean

    def features(self, s: Session, player: Player, token: str, texts: list[str]) -> RoundOut:
        """Store the features typed after a guess and finish the round (its result is shown)."""
        r = self.own_round(s, player, token)
        if r.status == "open":
            raise conflict("guess first, then type the features")
        if r.status != "guessed":
            raise conflict(f"round {r.seq} is finished already")
        if r.expires_at <= self.clock():
            raise GameRequestError(410, f"round {r.seq} has expired; start a new round")
        clean = self.check_texts(texts)
        if clean:
            rows = [
                {"round_id": r.id, "position": i, "text": t, "language": player.language}
                for i, t in enumerate(clean, 1)
            ]
            s.connection().execute(_NEW_FEATURES, rows)
        self._finish(s, r, self.clock())
        return self._commit(s, self.view(s, r, token))

    def _finish(self, s: Session, r: RoundRow, now: float) -> None:
        """Close a guessed round and add its points to the player's total (no commit)."""
        done = s.connection().execute(_FINISH, {"r": r.id})
        if done.rowcount != 1:
            raise conflict(f"round {r.seq} is finished already")
        r.status = "done"
        add_points(s, r.player_id, r.points)

    def image(self, s: Session, player: Player, token: str, level: int) -> bytes:
        """Return the masked image of a round at a revealed level (403 for a level not revealed yet)."""
        r = self.own_round(s, player, token)
        if not 0 <= level < self.content.n_levels:
            raise not_found(f"level {level}: expected 0..{self.content.n_levels - 1}")
        if r.status == "open" and r.expires_at <= self.clock():
            raise GameRequestError(410, f"round {r.seq} has expired; start a new round")
        if level > r.level and not r.finished:
            raise GameRequestError(403, f"level {level} is not revealed yet (ask for a hint)")
        return self.content.image(r.cluster_id, level)

    # -- what the client sees ------------------------------------------------------------------
    def view(self, s: Session, r: RoundRow, token: str) -> RoundOut:
        """Describe a round for its player (the true class only once the round is finished).

        Nothing names the map: an opaque token, the level and its share, the hint counter, the
        offered classes (by name, sorted), the image's URL; once finished, the result.
        """
        n = self.content.n_levels
        choices = sorted(
            (ChoiceOut(id=c, name=self.content.game_class(c).name) for c in map(int, r.offered.split(","))),
            key=lambda c: c.name,
        )
        result = None
        if r.finished:
            con = s.connection()
            texts = list(con.execute(_TEXTS, {"r": r.id}).scalars())
            truth = self.content.game_class(self.content.game_of[r.cluster_id]).name
            result = ResultOut(
                correct=None if r.status == "resigned" else bool(r.correct),
                true_class=truth,
                guessed=self.content.game_class(r.guessed_id).name if r.guessed_id is not None else None,
                points=int(r.points),
                total_points=int(con.execute(_POINTS, {"p": r.player_id}).scalar() or 0),
                features=texts,
            )
        wanted = r.status == "guessed"
        return RoundOut(
            token=token,
            number=r.seq,
            status=r.status,
            level=r.level,
            n_levels=n,
            percent=float(self.content.levels[r.level]),
            hints_used=r.hints,
            hints_left=n - 1 - r.level,
            can_resign=r.status == "open" and r.level >= n - 1,
            image=f"/api/rounds/{token}/image/{r.level}",
            choices=choices,
            guessed=r.guessed_id,
            features_min=self.cfg.min_features if wanted else None,
            features_max=self.cfg.max_features if wanted else None,
            result=result,
        )
