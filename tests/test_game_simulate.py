"""labels_simulate in http mode: the simulated players play the real web game (in-process ASGI),
its export goes through labels_import with zero dropped rows, and untrustworthy players are caught
by the game's screening rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from labels_world import build_world, write_params
from test_labels_stages import run_import, run_masks, run_simulate

from inviz.core.config import load_section
from inviz.game.web.config import GameConfig

ROOT = Path(__file__).resolve().parents[1]

GAME = {
    "n_choices": 4,
    "plays_per_map": 4,
    "min_features": 0,
    "screening": {"enabled": True, "positions": [2, 5], "level": 5, "max_failures": 0},
}


@pytest.mark.parametrize("path", ["params.yaml", "demo/params.yaml"])
def test_both_profiles_have_a_valid_game_section(path):
    cfg = load_section(ROOT / path, "game", GameConfig)
    assert cfg.n_choices >= 2 and cfg.screening.enabled
    demo = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())
    assert demo["labels_simulate"]["mode"] == "http" and demo["game"]["min_features"] == 0


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    w = build_world(root / "world")
    out = root / "out"
    params = write_params(root / "params.yaml", out / "game", out / "game" / "game_classes.csv")
    run_masks(w, params, out)
    params = write_params(
        root / "params.yaml",
        out / "game",
        out / "game" / "game_classes.csv",
        labels_simulate={"mode": "http", "n_players": 12, "untrustworthy_share": 0.3, "defect_rows": 0.2},
        game=GAME,
    )
    assert run_simulate(w, params, out) == 0
    return w, params, out


@pytest.mark.slow
def test_http_players_play_the_web_game_and_labels_import_drops_nothing(played):
    w, params, out = played
    game = out / "game"
    assert {
        "guesses.csv",
        "players.csv",
        "screening.csv",
        "translations.csv",
        "game_classes.csv",
        "truth.csv",
        "simulated_game.db",
    } <= {p.name for p in game.iterdir()}
    sim = json.loads((out / "simulate.json").read_text())
    manifest = pd.read_csv(out / "masks.csv").drop_duplicates("cluster_id")
    assert sim["mode"] == "http" and sim["n_games"] == 4 * len(manifest)  # every map, plays_per_map times
    req = sim["requests"]
    assert req["sign_up"] == 12 and req["guess"] + req["resign"] == req["next_round"] - 12  # 12 "no map left"
    assert req["image"] == req["next_round"] - 12  # every round's first image is fetched and recognised
    assert sum(sim["rejected_by_server"].values()) > 0  # bad answers were refused ...
    guesses = pd.read_csv(game / "guesses.csv", dtype=str, keep_default_na=False)
    assert (guesses["text"].str.len() <= 200).all() and (
        guesses.loc[guesses["kind"] == "feature", "text"] != ""
    ).all()
    plays = guesses.drop_duplicates("guess_id")["cluster_id"].astype(int).value_counts()
    assert plays.min() == plays.max() == 4  # the server's least-played-first dealing
    # the audit table is the export, row for row
    truth = pd.read_csv(game / "truth.csv", dtype=str, keep_default_na=False)
    assert sorted(zip(truth["guess_id"], truth["text"], strict=True)) == sorted(
        zip(guesses["guess_id"], guesses["text"], strict=True)
    )
    # untrustworthy players guess at random: the screening rounds catch most of them
    players = pd.read_csv(game / "players.csv")
    assert sim["n_failed_screening"] == int((players["passed_screening"] == False).sum()) > 0  # noqa: E712
    assert sim["n_untrustworthy_flagged"] >= 1
    # ... and labels_import reads the export without dropping a row
    assert run_import(w, params, out) == 0
    report = json.loads((out / "import.json").read_text())
    assert report["format"] == "canonical" and report["rows_dropped"] == 0
    assert report["rows_read"] == len(guesses)
    assert report["screening"]["excluded_players"] == sim["n_failed_screening"] - (
        # flagged players whose only plays were screening rounds have no rows to exclude
        sim["n_failed_screening"] - guesses.loc[guesses["passed_screening"] == "false", "player_id"].nunique()
    )


@pytest.mark.slow
def test_http_simulation_is_seeded(played, tmp_path):
    w, params, out = played
    first = (out / "game" / "guesses.csv").read_bytes()
    (tmp_path / "masks.csv").write_bytes((out / "masks.csv").read_bytes())
    assert run_simulate(w, params, tmp_path, masks=out / "masks") == 0
    assert (tmp_path / "game" / "guesses.csv").read_bytes() == first


@pytest.mark.slow
def test_http_simulation_database_in_the_loop_equals_database_threads(played, tmp_path, monkeypatch):
    """The simulated game runs its database work inline (one request at a time); a server runs it in
    database threads. Both give the same export, and inline really stays on the loop's thread."""
    import threading

    from inviz.game.web.db import Database

    w, params, out = played
    first = (out / "game" / "guesses.csv").read_bytes()
    threads: set[str] = set()
    call, run = Database._call, Database.run

    def recording_call(self, fn, write):
        threads.add(threading.current_thread().name)
        return call(self, fn, write)

    async def threaded_run(self, fn, write):
        self.inline = False  # as `inviz game serve`
        return await run(self, fn, write)

    monkeypatch.setattr(Database, "_call", recording_call)
    for out_dir in ("inline", "threaded"):
        (tmp_path / out_dir).mkdir()
        (tmp_path / out_dir / "masks.csv").write_bytes((out / "masks.csv").read_bytes())
    assert run_simulate(w, params, tmp_path / "inline", masks=out / "masks") == 0
    assert threads == {threading.main_thread().name}
    threads.clear()
    monkeypatch.setattr(Database, "run", threaded_run)
    assert run_simulate(w, params, tmp_path / "threaded", masks=out / "masks") == 0
    assert threads and all(t.startswith("game-db") for t in threads)
    for out_dir in ("inline", "threaded"):
        assert (tmp_path / out_dir / "game" / "guesses.csv").read_bytes() == first


def test_the_simulations_asgi_client_sends_what_httpx_sends():
    """The lean in-process client: same status, headers, body and request as httpx's ASGI transport."""
    import asyncio

    import httpx2 as httpx
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    from inviz.game.simulate.http import AsgiClient

    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request):
        body = await request.json()
        seen = {
            "body": body,
            "auth": request.headers.get("authorization"),
            "type": request.headers.get("content-type"),
            "query": dict(request.query_params),
            "path": request.url.path,
        }
        return JSONResponse(seen, status_code=201, headers={"X-Seen": "yes"})

    @app.get("/bytes")
    async def raw():
        return Response(bytes(range(256)), media_type="image/png")

    @app.get("/boom")
    async def boom():
        raise RuntimeError("app error")

    async def both():
        lean = AsgiClient(app)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://deep-reveal"
        ) as ref:
            for method, path, kw in [
                (
                    "POST",
                    "/echo?x=1&y=two",
                    {"json": {"a": [1, "é"]}, "headers": {"Authorization": "Bearer t"}},
                ),
                ("GET", "/bytes", {}),
                ("GET", "/missing", {}),
                ("POST", "/echo", {}),  # no body: the app's own error answer
            ]:
                a = await lean.request(method, path, **kw)
                b = await ref.request(method, path, **kw)
                assert (a.status_code, a.content) == (b.status_code, b.content), path
                assert a.headers == dict(b.headers), path
            with pytest.raises(RuntimeError, match="app error"):
                await lean.request("GET", "/boom")

    asyncio.run(both())
