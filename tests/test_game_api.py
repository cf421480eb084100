"""The game's API through FastAPI's TestClient against a temporary SQLite database."""

from __future__ import annotations

import asyncio
import json
import zipfile

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from game_world import Clock, build_game_world, paths
from sqlalchemy import select, update

from inviz.game.web.app import create_app
from inviz.game.web.db import SCHEMA_VERSION, GameDatabaseError, Meta, Round, token_hash
from inviz.game.web.settings import Settings, open_game

ROUND_KEYS = {
    "token",
    "number",
    "status",
    "level",
    "n_levels",
    "percent",
    "hints_used",
    "hints_left",
    "can_resign",
    "image",
    "choices",
    "guessed",
    "features_min",
    "features_max",
    "result",
}


class Game:
    """A game world, its opened state and app, and helpers to play."""

    def __init__(self, root, env=None, **game):
        self.world = build_game_world(root, **game)
        self.clock = Clock()
        self.env = env or {}
        self.open()

    def open(self):
        self.settings = Settings.from_params(self.world["params"], paths(self.world), env=self.env)
        self.state = open_game(self.settings, clock=self.clock)
        self.app = create_app(self.state)

    def restart(self):
        self.state.close()
        self.open()

    def client(self, nickname=None, ai=False, language="en"):
        c = TestClient(self.app)
        if nickname:
            r = c.post("/api/players", json={"nickname": nickname, "ai_background": ai, "language": language})
            assert r.status_code == 201, r.text
            c.player_token = r.json()["token"]
        return c

    def truth(self, token):
        """(cluster id, true game id) of a round, read from the database."""
        with self.state.db.read() as s:
            r = s.scalar(select(Round).where(Round.token_hash == token_hash(token)))
        return r.cluster_id, int(self.state.content.map_row(r.cluster_id)["game_id"])

    def wrong(self, rnd):
        _, true = self.truth(rnd["token"])
        return next(c["id"] for c in rnd["choices"] if c["id"] != true)


def next_round(c):
    r = c.post("/api/rounds")
    assert r.status_code == 200, r.text
    return r.json()["round"]


def play(game, c, right=True, hints=0, texts=("red wheel",)):
    """Play one round to its end; return the final round JSON."""
    rnd = next_round(c)
    tok = rnd["token"]
    for _ in range(hints):
        rnd = c.post(f"/api/rounds/{tok}/hint").json()
    choice = game.truth(tok)[1] if right else game.wrong(rnd)
    g = c.post(f"/api/rounds/{tok}/guess", json={"choice": choice})
    assert g.status_code == 200, g.text
    f = c.post(f"/api/rounds/{tok}/features", json={"texts": list(texts)})
    assert f.status_code == 200, f.text
    return f.json()


@pytest.fixture
def game(tmp_path):
    g = Game(tmp_path / "w")
    yield g
    g.state.close()


def test_sign_up_validates_and_handles_nickname_collisions(game):
    c = game.client()
    assert c.get("/api/players/me").status_code == 401
    assert c.get("/api/session").json() == {"player": None}
    assert c.post("/api/rounds").status_code == 401
    r = c.post("/api/players", json={"nickname": "Ann Lee", "ai_background": True, "language": "it"})
    assert r.status_code == 201 and r.json()["player"]["nickname"] == "Ann Lee"
    assert "inviz_player" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert c.get("/api/players/me").json()["language"] == "it"  # the cookie signs the player in
    assert c.get("/api/session").json()["player"]["nickname"] == "Ann Lee"
    other = game.client()
    clash = other.post(
        "/api/players", json={"nickname": "ann  LEE", "ai_background": False, "language": "en"}
    )
    assert clash.status_code == 409 and "try 'ann LEE2'" in clash.json()["detail"]
    ok = other.post("/api/players", json={"nickname": "Ann Lee2", "ai_background": False, "language": "en"})
    assert ok.status_code == 201
    for body, word in [
        ({"nickname": "<b>x</b>", "ai_background": False, "language": "en"}, "nickname"),
        ({"nickname": "x", "ai_background": False, "language": "en"}, "nickname"),
        ({"nickname": "Bob", "ai_background": False, "language": "fr"}, "language"),
        ({"nickname": "Bob", "ai_background": False, "language": "en", "admin": True}, "admin"),
        ({"nickname": "Bob", "language": "en"}, "ai_background"),
    ]:
        r = game.client().post("/api/players", json=body)
        assert r.status_code == 422 and word in r.json()["detail"], r.text


def test_a_round_leaks_nothing_before_the_answer_and_serves_the_stored_bytes(game):
    c = game.client("Ann")
    rnd = next_round(c)
    assert set(rnd) == ROUND_KEYS and rnd["result"] is None
    tok = rnd["token"]
    assert rnd["image"] == f"/api/rounds/{tok}/image/0" and rnd["level"] == 0 and rnd["percent"] == 2.0
    cid, true = game.truth(tok)
    row = game.state.content.map_row(cid)
    text = json.dumps(rnd)
    for secret in (row["image"], row["layer"], "img", "block", "c0", "masks", ".png", "cluster"):
        assert secret not in text
    assert len(rnd["choices"]) == 3 and true in [ch["id"] for ch in rnd["choices"]]
    img = c.get(rnd["image"])
    assert img.status_code == 200 and img.headers["content-type"] == "image/png"
    with zipfile.ZipFile(game.world["masks"] / f"{row['layer']}.zip") as z:
        assert img.content == z.read(f"{cid:06d}/0.png")
    assert c.get(f"/api/rounds/{tok}/image/1").status_code == 403  # not revealed yet
    assert c.get(f"/api/rounds/{tok}/image/6").status_code == 404
    # a guess: features are asked, the truth still hidden
    g = c.post(f"/api/rounds/{tok}/guess", json={"choice": true}).json()
    assert (
        g["status"] == "guessed" and g["result"] is None and (g["features_min"], g["features_max"]) == (1, 3)
    )
    assert "true" not in json.dumps(g)
    done = c.post(f"/api/rounds/{tok}/features", json={"texts": ["red wheel", " two  spokes "]}).json()
    names = {x.game_id: x.name for x in game.state.content.classes}
    assert done["result"] == {
        "correct": True,
        "true_class": names[true],
        "guessed": names[true],
        "points": 100,
        "total_points": 100,
        "features": ["red wheel", "two spokes"],
    }
    assert c.get(f"/api/rounds/{tok}/image/5").status_code == 200  # every level once finished


def test_hints_resign_and_points(game):
    c = game.client("Ann")
    rnd = next_round(c)
    tok = rnd["token"]
    assert c.post(f"/api/rounds/{tok}/resign").status_code == 409  # hints left
    for k in range(1, 6):
        rnd = c.post(f"/api/rounds/{tok}/hint").json()
        assert (rnd["level"], rnd["hints_used"], rnd["hints_left"]) == (k, k, 5 - k)
        assert c.get(f"/api/rounds/{tok}/image/{k}").status_code == 200
    assert rnd["can_resign"] and rnd["percent"] == 30.0
    r = c.post(f"/api/rounds/{tok}/hint")
    assert r.status_code == 409 and "no hints left" in r.json()["detail"]
    res = c.post(f"/api/rounds/{tok}/resign").json()
    assert res["status"] == "resigned" and res["result"]["correct"] is None and res["result"]["points"] == 0
    assert res["result"]["true_class"] in {x.name for x in game.state.content.classes}
    assert c.post(f"/api/rounds/{tok}/features", json={"texts": ["x"]}).status_code == 409
    assert play(game, c, right=True, hints=2)["result"]["points"] == 70
    assert play(game, c, right=False, hints=1)["result"]["points"] == 0
    me = c.get("/api/players/me").json()
    assert (me["points"], me["rounds"]) == (70, 3)


def test_bad_answers_get_4xx_with_a_message(game):
    c = game.client("Ann")
    rnd = next_round(c)
    tok = rnd["token"]
    offered = {ch["id"] for ch in rnd["choices"]}
    outside = next(i for i in range(1, 5) if i not in offered)
    r = c.post(f"/api/rounds/{tok}/guess", json={"choice": outside})
    assert r.status_code == 422 and "not offered" in r.json()["detail"]
    assert c.post(f"/api/rounds/{tok}/guess", json={"choice": "two"}).status_code == 422
    assert c.post(f"/api/rounds/{tok}/features", json={"texts": ["x"]}).status_code == 409  # guess first
    assert c.post(f"/api/rounds/{tok}/guess", json={"choice": game.truth(tok)[1]}).status_code == 200
    again = c.post(f"/api/rounds/{tok}/guess", json={"choice": game.truth(tok)[1]})
    assert again.status_code == 409 and "answered already" in again.json()["detail"]
    for texts, word in [
        ([], "1 to 3"),
        (["a", "b", "c", "d"], "1 to 3"),
        (["x" * 41], "at most 40"),
        (["   "], "empty"),
        (["wheel", "Wheel"], "repeats"),
        (["bad\x07bell"], "control"),
    ]:
        r = c.post(f"/api/rounds/{tok}/features", json={"texts": texts})
        assert r.status_code == 422 and word in r.json()["detail"], (texts, r.text)
    assert c.post(f"/api/rounds/{tok}/features", json={"texts": ["x" * 40]}).status_code == 200
    replay = c.post(f"/api/rounds/{tok}/features", json={"texts": ["y"]})
    assert replay.status_code == 409 and "finished" in replay.json()["detail"]
    assert c.post(f"/api/rounds/{tok}/hint").status_code == 409
    assert c.post("/api/rounds/not-a-token/hint").status_code == 404


def test_a_player_cannot_read_or_change_another_players_round(game):
    a, b = game.client("Ann"), game.client("Bob")
    tok = next_round(a)["token"]
    for call in (
        lambda: b.get(f"/api/rounds/{tok}/image/0"),
        lambda: b.post(f"/api/rounds/{tok}/hint"),
        lambda: b.post(f"/api/rounds/{tok}/guess", json={"choice": 1}),
        lambda: b.post(f"/api/rounds/{tok}/resign"),
        lambda: b.post(f"/api/rounds/{tok}/features", json={"texts": ["x"]}),
    ):
        r = call()
        assert r.status_code == 404 and "not your round" in r.json()["detail"]
    # Bob's bearer token does not help either; Ann's round is untouched
    b.cookies.clear()
    h = {"Authorization": f"Bearer {b.player_token}"}
    assert b.post(f"/api/rounds/{tok}/hint", headers=h).status_code == 404
    assert a.post(f"/api/rounds/{tok}/hint").json()["level"] == 1


def test_expired_and_outdated_tokens(game):
    c = game.client("Ann")
    first = next_round(c)
    again = next_round(c)  # the unfinished round comes back with a fresh token
    assert again["number"] == first["number"] and again["token"] != first["token"]
    assert c.post(f"/api/rounds/{first['token']}/hint").status_code == 404
    cid = game.truth(again["token"])[0]
    game.clock.t += 31 * 60  # past round_ttl_minutes
    r = c.post(f"/api/rounds/{again['token']}/guess", json={"choice": game.truth(again["token"])[1]})
    assert r.status_code == 410 and "expired" in r.json()["detail"]
    assert c.get(f"/api/rounds/{again['token']}/image/0").status_code == 410
    fresh = next_round(c)
    assert fresh["number"] == first["number"] + 1 and game.truth(fresh["token"])[0] != cid


def test_maps_are_handed_out_least_played_first_without_repeats(game):
    content = game.state.content
    n_maps = len(content.maps)  # 8 images x 2 layers x 2 clusters = 32
    clients = [game.client(f"P{i}") for i in range(8)]
    seen = {i: [] for i in range(8)}
    for _ in range(8):
        for i, c in enumerate(clients):
            res = play(game, c)
            seen[i].append(res)
    with game.state.db.read() as s:
        rows = s.execute(
            select(Round.player_id, Round.seq, Round.cluster_id, Round.image).order_by(Round.id)
        ).all()
    frame = pd.DataFrame(rows, columns=["player", "seq", "cluster_id", "image"])
    assert len(frame) == 64
    assert not frame.duplicated(["player", "cluster_id"]).any()
    for _, g in frame.sort_values("seq").groupby("player"):
        images = g["image"].tolist()
        assert all(a != b for a, b in zip(images, images[1:], strict=False))
    plays = frame["cluster_id"].value_counts().reindex(content.maps["cluster_id"], fill_value=0)
    assert plays.sum() == 64 and plays.min() == 2 and plays.max() == 2  # 64 plays on 32 maps: two each
    assert int(content.maps.shape[0]) == n_maps


def test_stop_when_done_and_by_weight_difficulty(tmp_path):
    g = Game(
        tmp_path / "w",
        n_images=2,
        stop_when_done=True,
        plays_per_map=1,
        difficulty={"mode": "by_weight", "below": [30.0, 10.0], "start_levels": [1, 3]},
    )
    try:
        c = g.client("Ann")
        starts = {}
        for _ in range(8):  # 2 images x 4 maps, alternating images
            rnd = next_round(c)
            cid = g.truth(rnd["token"])[0]
            starts[cid] = rnd["level"]
            assert rnd["hints_used"] == 0 and rnd["hints_left"] == 5 - rnd["level"]
            c.post(f"/api/rounds/{rnd['token']}/guess", json={"choice": g.truth(rnd["token"])[1]})
            c.post(f"/api/rounds/{rnd['token']}/features", json={"texts": ["x"]})
        weights = g.state.content.maps.set_index("cluster_id")["weight"]
        assert len(starts) == 8 and {int(weights[k]): v for k, v in starts.items()} == {40: 0, 20: 1}
        r = c.post("/api/rounds").json()
        assert r["round"] is None and "No map is left" in r["message"]
        # every map has its one play: a new player gets nothing either (stop_when_done)
        assert g.client("Bob").post("/api/rounds").json()["round"] is None
    finally:
        g.state.close()


def test_screening_rounds_flag_players_and_stay_out_of_the_labels(tmp_path):
    g = Game(tmp_path / "w", screening={"enabled": True, "positions": [2, 3], "level": 5, "max_failures": 0})
    try:
        pool = set(g.state.rounds.screening_pool)
        honest, cheat = g.client("Honest"), g.client("Cheat")
        for c, right in ((honest, True), (cheat, False)):
            play(g, c, right=True)
            for _ in range(2):
                rnd = next_round(c)
                assert rnd["level"] == 5 and g.truth(rnd["token"])[0] in pool
                choice = g.truth(rnd["token"])[1] if right else g.wrong(rnd)
                c.post(f"/api/rounds/{rnd['token']}/guess", json={"choice": choice})
                c.post(f"/api/rounds/{rnd['token']}/features", json={"texts": ["x"]})
            assert next_round(c)["level"] == 0
        from inviz.game.web.export import export_tables

        ex = export_tables(g.state.db, g.state.content)
        flags = dict(zip(ex.players["player_id"], ex.players["passed_screening"], strict=True))
        assert flags == {"p1": "true", "p2": "false"}
        assert len(ex.screening) == 4 and set(ex.screening["cluster_id"]) <= pool
        assert len(ex.guesses) == 2 and set(ex.guesses["passed_screening"]) == {"true", "false"}
        assert ex.players["screening_failures"].tolist() == [0, 2]
    finally:
        g.state.close()


def test_leaderboard_ranks_ties_and_shows_the_players_own_rank(game):
    a, b, c = game.client("Ann"), game.client("Bob"), game.client("Cid")
    play(game, a, right=True)  # 100
    play(game, b, right=True)  # 100
    play(game, c, right=True, hints=1)  # 85
    board = c.get("/api/leaderboard").json()
    assert [(t["rank"], t["nickname"], t["points"]) for t in board["top"]] == [
        (1, "Ann", 100),
        (1, "Bob", 100),
        (3, "Cid", 85),
    ]
    assert board["me"] == {"rank": 3, "nickname": "Cid", "points": 85, "rounds": 1} and board["players"] == 3


def test_questionnaire_after_n_rounds_once(game):
    c = game.client("Ann")
    form = c.get("/api/questionnaire").json()
    assert len(form["sus"]) == 10 and [t["key"] for t in form["tlx"]][3] == "performance"
    for _ in range(2):
        play(game, c)
    assert not c.get("/api/players/me").json()["questionnaire_due"]
    play(game, c)
    assert c.post("/api/rounds").json()["questionnaire_due"]
    bad = c.post("/api/questionnaire", json={"sus": [3] * 9, "tlx": [50] * 6})
    assert bad.status_code == 422 and "SUS" in bad.json()["detail"]
    assert c.post("/api/questionnaire", json={"sus": [3] * 10}).status_code == 422
    r = c.post("/api/questionnaire", json={"sus": [4, 2] * 5, "tlx": [50, 10, 30, 70, 60, 20]})
    assert r.status_code == 201 and r.json() == {"sus_score": 75.0, "tlx_raw": 40.0}
    assert c.post("/api/questionnaire", json={"skip": True}).status_code == 409
    assert not c.get("/api/players/me").json()["questionnaire_due"]


def test_restart_loses_nothing_and_players_carry_on(game):
    c = game.client("Ann")
    play(game, c, texts=("stripes",))
    rnd = next_round(c)
    c.post(f"/api/rounds/{rnd['token']}/hint")
    game.restart()
    c2 = TestClient(game.app, cookies={"inviz_player": c.player_token})
    resumed = next_round(c2)
    assert resumed["number"] == rnd["number"] and resumed["level"] == 1
    assert c2.get("/api/players/me").json()["points"] == 100
    from inviz.game.web.export import export_tables

    ex = export_tables(game.state.db, game.state.content)
    assert ex.guesses["text"].tolist() == ["stripes"]


def test_admin_needs_the_token_from_the_environment(tmp_path):
    g = Game(tmp_path / "w", env={"INVIZ_GAME_ADMIN_TOKEN": "s3cret-token"})
    try:
        c = g.client("Ann")
        play(g, c)
        assert c.get("/api/admin/progress").status_code == 403
        assert c.get("/api/admin/progress", headers={"Authorization": "Bearer nope"}).status_code == 403
        h = {"Authorization": "Bearer s3cret-token"}
        p = c.get("/api/admin/progress", headers=h).json()
        assert p["summary"]["plays"] == 1 and p["summary"]["wins"] == 1 and p["summary"]["players"] == 1
        assert sum(r["plays"] for r in p["by_layer"]) == 1 and len(p["by_class"]) == 4
        z = c.get("/api/admin/export.zip", headers=h)
        assert z.status_code == 200 and z.headers["content-type"] == "application/zip"
        import io

        with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
            assert {"guesses.csv", "players.csv", "questionnaires.csv", "game_classes.csv"} <= set(
                zf.namelist()
            )
        assert "s3cret" not in c.get("/admin").text
    finally:
        g.state.close()
    off = Game(tmp_path / "off")
    try:
        r = off.client().get("/api/admin/progress", headers={"Authorization": "Bearer x"})
        assert r.status_code == 403 and "INVIZ_GAME_ADMIN_TOKEN" in r.json()["detail"]
    finally:
        off.state.close()


def test_pages_ship_their_scripts_and_security_headers(game):
    c = game.client()
    page = c.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert c.get("/static/game.js").status_code == 200
    assert c.get("/static/game.css").status_code == 200
    assert c.get("/admin").status_code == 200
    assert c.get("/api/docs").status_code == 404  # no Swagger UI from a CDN


def test_a_database_of_another_schema_version_or_other_masks_is_refused(game):
    with game.state.db.write() as s:
        s.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(SCHEMA_VERSION + 1)))
        s.commit()
    game.state.close()
    with pytest.raises(GameDatabaseError, match=f"schema version {SCHEMA_VERSION + 1}"):
        open_game(game.settings, clock=game.clock)
    with game.state.db.write() as s:
        s.execute(update(Meta).where(Meta.key == "schema_version").values(value=str(SCHEMA_VERSION)))
        s.execute(update(Meta).where(Meta.key == "content_fingerprint").values(value="0" * 16))
        s.commit()
    with pytest.raises(GameDatabaseError, match="other masked images"):
        open_game(game.settings, clock=game.clock)


def test_the_database_deals_maps_by_the_rule_of_choose_map(game):
    """Both ways of picking the least-played map (the SQL statement; the plays kept in memory with
    the open rounds from the database) agree with the pure rule on random committed states."""
    import numpy as np

    from inviz.game.web.db import MapPlays, Player
    from inviz.game.web.policy import choose_map

    content, rounds = game.state.content, game.state.rounds
    ids = content.maps["cluster_id"].to_numpy()
    images = content.maps["image"].tolist()
    now = game.clock()
    a, b = game.client("Ann"), game.client("Bob")
    rng = np.random.default_rng(5)
    with game.state.db.read() as s:
        ann, bob = s.scalars(select(Player).order_by(Player.id)).all()
    assert rounds.plays is not None  # SQLite: the writer keeps the plays in memory
    for trial in range(12):
        with game.state.db.write() as s:  # a new state, committed (outside a request)
            s.execute(update(MapPlays).values(plays=0))
            s.query(Round).delete()
            plays = rng.integers(0, 3, len(ids))
            for cid, n in zip(ids, plays, strict=True):
                s.execute(update(MapPlays).where(MapPlays.cluster_id == int(cid)).values(plays=int(n)))
            seen = rng.choice(len(ids), size=int(rng.integers(0, 20)), replace=False)
            inflight = rng.choice(len(ids), size=5, replace=False)
            for k, (pid, pos, status) in enumerate(
                [(ann.id, p, "done") for p in seen] + [(bob.id, p, "open") for p in inflight]
            ):
                expires = now - 1 if k % 4 == 3 else now + 600  # some of Bob's rounds have expired
                s.add(
                    Round(
                        token_hash=f"t{trial}-{k}",
                        player_id=pid,
                        seq=k + 1,
                        cluster_id=int(ids[pos]),
                        image=images[pos],
                        screening=False,
                        start_level=0,
                        level=0,
                        offered="1,2",
                        status=status,
                        points=0,
                        created_at=now,
                        expires_at=expires,
                    )
                )
            s.commit()
        load = plays.copy()
        for k, pos in enumerate(inflight, start=len(seen)):
            load[pos] += 1 if k % 4 != 3 else 0
        last = images[seen[-1]] if len(seen) else None
        expected = ids[choose_map(load, images, set(seen.tolist()), last, np.random.default_rng(trial))]
        with game.state.db.session(write=True) as s:  # as a request: the plays from memory
            assert rounds.least_played(s, ann.id, last, now, np.random.default_rng(trial)) == expected
            assert rounds.least_played_sql(s, ann.id, last, now, np.random.default_rng(trial)) == expected
    assert a and b


def test_the_plays_kept_in_memory_follow_answers_and_other_connections(game):
    """The writer's copy of the plays per map equals the database after answers (its own commits)
    and after another connection changed the table (SQLite's data_version), and deals alike."""
    import sqlite3

    import numpy as np
    from sqlalchemy.engine import make_url

    from inviz.game.web.db import MapPlays, Player

    content, rounds, db = game.state.content, game.state.rounds, game.state.db
    clients = [game.client(f"P{i}") for i in range(3)]
    for _ in range(3):
        for c in clients:
            play(game, c)

    def check():
        with db.session(write=True) as s:  # as a request does: no generation change
            con = s.connection()
            stored = dict(con.execute(select(MapPlays.cluster_id, MapPlays.plays)).all())
            want = np.array([stored[int(c)] for c in content.maps["cluster_id"]])
            assert (rounds.plays.plays(con) == want).all()
            for pid in s.scalars(select(Player.id)):
                for k in range(5):
                    got = rounds.least_played(s, pid, "val/x", game.clock(), np.random.default_rng(k))
                    sql = rounds.least_played_sql(s, pid, "val/x", game.clock(), np.random.default_rng(k))
                    assert got == sql
        return want

    assert check().sum() == 9  # nine answered rounds outside screening
    con = sqlite3.connect(make_url(db.url).database)  # another connection (another process, a shell)
    with con:
        con.execute("UPDATE map_plays SET plays = plays + 7 WHERE cluster_id IN (1, 5)")
    con.close()
    assert check().sum() == 9 + 14
    play(game, clients[0])
    assert check().sum() == 9 + 14 + 1


def test_more_concurrent_writers_than_worker_threads_neither_deadlock_nor_fail(game):
    """Writers queue for the one SQLite writer connection in its own thread, not in worker threads.

    With 2 worker threads and 12 players asking for a round at once, a request waiting for the
    connection inside a shared worker thread would starve the one holding it (a deadlock until
    the pool timeout, then 500s: what the load benchmark hit once).
    """
    import anyio
    import httpx2 as httpx

    async def main():
        anyio.to_thread.current_default_thread_limiter().total_tokens = 2
        transport = httpx.ASGITransport(app=game.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://game") as c:
            tokens = []
            for i in range(12):
                body = {"nickname": f"p{i}", "ai_background": False, "language": "en"}
                tokens.append((await c.post("/api/players", json=body)).json()["token"])
            with anyio.fail_after(20):
                rounds = await asyncio.gather(
                    *[c.post("/api/rounds", headers={"Authorization": f"Bearer {t}"}) for t in tokens]
                )
                images = await asyncio.gather(
                    *[
                        c.get(r.json()["round"]["image"], headers={"Authorization": f"Bearer {t}"})
                        for r, t in zip(rounds, tokens, strict=True)
                    ]
                )
        return rounds, images

    rounds, images = anyio.run(main)
    assert [r.status_code for r in rounds] == [200] * 12
    assert [r.status_code for r in images] == [200] * 12
    assert len({r.json()["round"]["token"] for r in rounds}) == 12
