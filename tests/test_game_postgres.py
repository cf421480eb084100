"""The Deep Reveal game on PostgreSQL (``game.db_url: postgresql+psycopg://…``), the storage of a public
deployment: a throwaway server (the OS's ``initdb``/``pg_ctl``) on a Unix socket, the game's API played
through it — sign-up and nickname collisions, rounds with hints, answers refused twice, least-played
dealing, a restart that loses nothing — and the export."""

from __future__ import annotations

import getpass
import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from game_world import Clock, build_game_world
from sqlalchemy import select
from test_game_api import Game, next_round, play

from inviz.game.web.db import Round


def _pg_bin() -> Path | None:
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))  # Debian's layout
    if versions:
        return Path(versions[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def pg_url():
    """A fresh PostgreSQL cluster for this module; its SQLAlchemy URL (database ``inviz``)."""
    pytest.importorskip("psycopg", reason="the PostgreSQL driver (dev extra psycopg[binary])")
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    # not under pytest's root-only tmp folder: the server's account must reach its data directory
    root = Path(tempfile.mkdtemp(prefix="inviz-pg-"))
    sock, data = root / "sock", root / "data"
    sock.mkdir()
    # initdb refuses root: run the server as the OS's postgres account then
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(sock, "postgres")
    user = "postgres" if as_user else getpass.getuser()

    def run(*cmd):
        subprocess.run([*as_user, *cmd], check=True, capture_output=True, timeout=120)

    port = 54329 + os.getpid() % 500
    run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", user)
    opts = f"-k {sock} -p {port} -c listen_addresses=''"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start")
    try:
        run(str(bindir / "createdb"), "-h", str(sock), "-p", str(port), "-U", user, "inviz")
        yield f"postgresql+psycopg://{user}@/inviz?host={sock}&port={port}"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _game(root: Path, url: str, **game) -> Game:
    g = Game.__new__(Game)
    g.world = build_game_world(root, **game)
    params = yaml.safe_load(g.world["params"].read_text())
    params["game"]["db_url"] = url
    g.world["params"].write_text(yaml.safe_dump(params))
    g.clock, g.env = Clock(), {}
    g.open()
    return g


def test_the_game_runs_on_postgresql(pg_url, tmp_path):
    from inviz.game.web.export import export_tables

    g = _game(tmp_path / "w", pg_url, plays_per_map=2)
    try:
        assert g.state.db.is_sqlite is False
        ann = g.client("Ann Lee")
        clash = g.client().post(
            "/api/players", json={"nickname": "ann  LEE", "ai_background": False, "language": "en"}
        )
        assert clash.status_code == 409
        bob = g.client("Bob", language="it")
        for _ in range(3):
            done = play(g, ann, right=True, hints=1, texts=("red wheel", "spokes"))
            assert done["result"]["correct"] and done["result"]["points"] == 85
        with g.state.db.read() as s:
            played = set(s.scalars(select(Round.cluster_id)))
        assert len(played) == 3  # Ann never sees a map twice
        rnd = next_round(bob)
        tok = rnd["token"]
        assert g.truth(tok)[0] not in played  # least-played first: Bob gets a map nobody played
        choice = g.truth(tok)[1]
        assert bob.post(f"/api/rounds/{tok}/guess", json={"choice": choice}).status_code == 200
        again = bob.post(f"/api/rounds/{tok}/guess", json={"choice": choice})
        assert again.status_code == 409 and "answered already" in again.json()["detail"]
        assert bob.post(f"/api/rounds/{tok}/features", json={"texts": ["ruota"]}).status_code == 200
        g.restart()  # a new server process on the same database: nothing is lost
        me = g.client()  # a new browser of Ann's: her token still signs her in
        me.headers["Authorization"] = f"Bearer {ann.player_token}"
        assert me.get("/api/players/me").json()["nickname"] == "Ann Lee"
        export = export_tables(g.state.db, g.state.content)
        guesses = export.files()["guesses.csv"]
        assert len(guesses) == 3 * 2 + 1 and set(guesses["text"]) == {"red wheel", "spokes", "ruota"}
        assert len(export.files()["players.csv"]) == 2
    finally:
        g.state.close()
