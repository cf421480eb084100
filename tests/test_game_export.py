"""The game export: canonical tables that labels_import reads with zero dropped rows, the
``inviz game export|report`` commands, and a real server that survives a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from game_world import build_game_world
from test_game_api import Game, next_round, play

from inviz.cli import main
from inviz.core.io import read_json
from inviz.game.export import ImportConfig, cluster_table, import_game, load_class_map
from inviz.game.manifest import read_manifest
from inviz.game.web.export import GUESS_COLUMNS, export_tables, write_export


def mixed_game(root: Path) -> Game:
    """Three players: features, guesses without text, resigns, a failed screening."""
    g = Game(
        root, min_features=0, screening={"enabled": True, "positions": [3], "level": 5, "max_failures": 0}
    )
    ann, bob, cid = g.client("Ann", language="it"), g.client("Bob"), g.client("Cid")
    play(g, ann, texts=("ruota", "raggi"))
    play(g, ann, right=False, hints=2, texts=())
    play(g, ann, texts=("strisce",))  # screening (right)
    play(g, bob, hints=1, texts=("wheel", "spokes", "red"))
    rnd = next_round(bob)  # a resign
    for _ in range(5):
        bob.post(f"/api/rounds/{rnd['token']}/hint")
    assert bob.post(f"/api/rounds/{rnd['token']}/resign").status_code == 200
    play(g, bob, right=False, texts=())  # screening (wrong): Bob is flagged
    play(g, cid, texts=("grid",))
    rnd = next_round(cid)  # a guess whose features never come: a guess without text
    cid.post(f"/api/rounds/{rnd['token']}/guess", json={"choice": g.truth(rnd["token"])[1]})
    return g


def import_export(g: Game, folder: Path, cfg: ImportConfig | None = None):
    w = g.world
    class_map = load_class_map(w["class_map"], read_json(w["classes"]))
    return import_game(
        folder,
        class_map,
        cluster_table(read_manifest(w["manifest"])),
        cfg or ImportConfig(max_text_length=40),
    )


def test_export_round_trips_through_labels_import_with_no_dropped_rows(tmp_path):
    g = mixed_game(tmp_path / "w")
    try:
        ex = export_tables(g.state.db, g.state.content)
        write_export(tmp_path / "export", ex)
    finally:
        g.state.close()
    guesses = pd.read_csv(tmp_path / "export" / "guesses.csv", dtype=str, keep_default_na=False)
    assert list(guesses.columns) == GUESS_COLUMNS
    assert guesses["kind"].value_counts().to_dict() == {"feature": 6, "guess": 2, "resign": 1}
    assert sorted(guesses.loc[guesses["kind"] == "feature", "text"]) == [
        "grid",
        "raggi",
        "red",
        "ruota",
        "spokes",
        "wheel",
    ]
    assert set(guesses.loc[guesses["text"] == "ruota", "language"]) == {"it"}
    assert guesses.loc[guesses["kind"] == "resign", "hints"].tolist() == ["5"]
    assert set(guesses.loc[guesses["player_id"] == "p2", "passed_screening"]) == {"false"}
    for name in ("players", "screening", "questionnaires", "game_classes", "what_if"):
        assert (tmp_path / "export" / f"{name}.csv").is_file()
    # everything kept when screening is not applied ...
    kept = import_export(g, tmp_path / "export", ImportConfig(max_text_length=40, use_export_screening=False))
    assert kept.report["rows_dropped"] == 0 and kept.report["rows_read"] == 9 and len(kept.guesses) == 9
    assert kept.report["format"] == "canonical" and kept.report["ignored_columns"] == {}
    # ... and the flagged player's rows excluded (counted, not dropped) when it is
    screened = import_export(g, tmp_path / "export")
    r = screened.report
    assert r["rows_dropped"] == 0 and len(screened.problems) == 0
    assert r["screening"]["excluded_rows"] == int((guesses["player_id"] == "p2").sum()) == 4
    assert r["kept"]["rows"] == 5 and r["n_players"] == 2
    t = screened.guesses.set_index("text")
    assert t.loc["ruota", "correct"] and t.loc["ruota", "true_class"] == t.loc["ruota", "guessed_class"]


def test_export_is_the_same_file_every_time(tmp_path):
    g = mixed_game(tmp_path / "w")
    try:
        write_export(tmp_path / "a", export_tables(g.state.db, g.state.content))
        write_export(tmp_path / "b", export_tables(g.state.db, g.state.content))
    finally:
        g.state.close()
    for f in sorted((tmp_path / "a").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes(), f.name


def cli_args(w, *extra):
    return [
        "--params",
        str(w["params"]),
        "--manifest",
        str(w["manifest"]),
        "--masks",
        str(w["masks"]),
        "--classes",
        str(w["classes"]),
        *extra,
    ]


@pytest.mark.slow
def test_game_export_and_report_commands(tmp_path, tracking_uri, capsys):
    g = mixed_game(tmp_path / "w")
    dee = g.client("Dee")
    for _ in range(3):
        play(g, dee)
    assert (
        dee.post("/api/questionnaire", json={"sus": [4, 2] * 5, "tlx": [50, 10, 30, 70, 60, 20]}).status_code
        == 201
    )
    g.state.close()
    w = g.world
    assert main(["game", "export", *cli_args(w)]) == 0
    assert (w["root"] / "export" / "guesses.csv").is_file()  # labels_import.source_dir by default
    out = tmp_path / "labels"
    code = main(
        [
            "labels_import",
            "--params",
            str(w["params"]),
            "--game-dir",
            str(w["root"] / "export"),
            "--class-map",
            str(w["class_map"]),
            "--manifest",
            str(w["manifest"]),
            "--classes",
            str(w["classes"]),
            "--out",
            str(out / "g.csv"),
            "--classes-out",
            str(out / "c.csv"),
            "--translations-out",
            str(out / "t.csv"),
            "--problems",
            str(out / "p.csv"),
            "--report",
            str(out / "r.json"),
        ]
    )
    assert code == 0 and json.loads((out / "r.json").read_text())["rows_dropped"] == 0
    assert main(["game", "report", *cli_args(w, "--out", str(tmp_path / "report"))]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| SUS (0-100, higher is better) | 75.0 (n = 1) | 80.9 |" in md
    assert "| raw NASA-TLX (0-100, lower is less workload) | 40.0 (n = 1) | 38.1 |" in md
    assert "1 flagged by the screening rounds" in md and "| p2 | 1 | 1 |" in md
    assert (tmp_path / "report" / "report.png").stat().st_size > 10_000
    by_layer = pd.read_csv(tmp_path / "report" / "by_layer.csv")
    assert by_layer["plays"].sum() == 8 and by_layer["resigns"].sum() == 1
    # no database: a clear error, nothing created
    capsys.readouterr()
    assert main(["game", "export", *cli_args(w, "--db-url", f"sqlite:///{tmp_path / 'none.db'}")]) == 2
    assert "no game database yet" in capsys.readouterr().err and not (tmp_path / "none.db").exists()


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@pytest.fixture
def loopback(monkeypatch):
    """Allow connections to 127.0.0.1 only (the test suite blocks the network)."""
    original = socket.socket.__mro__[1].connect  # _socket.socket.connect, under the suite's guard

    def connect(self, address):
        if isinstance(address, tuple) and address[0] not in LOOPBACK:
            raise OSError("network access is disabled in tests")
        return original(self, address)

    def create_connection(address, timeout=None, source_address=None, **kwargs):
        if address[0] not in LOOPBACK:
            raise OSError("network access is disabled in tests")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if timeout is not None:
            sock.settimeout(timeout)
        connect(sock, (address[0], address[1]))
        return sock

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)


def start_server(w, port, env):
    cmd = [
        sys.executable,
        "-c",
        "import sys; from inviz.cli import main; sys.exit(main())",
        "game",
        "serve",
        *cli_args(w, "--port", str(port)),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return proc


@pytest.mark.slow
def test_a_killed_server_loses_no_acknowledged_answer(tmp_path, loopback):
    """Play against a real `inviz game serve`, SIGKILL it mid-game, restart it, carry on."""
    import httpx2 as httpx

    w = build_game_world(tmp_path / "w", plays_per_map=3)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    base = f"http://127.0.0.1:{port}"

    def wait_up(proc):
        deadline = time.time() + 120
        while time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            try:
                if httpx.get(base + "/api/config", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("server did not come up")

    acked: list[tuple[str, str]] = []  # (player, text) of every acknowledged feature
    proc = start_server(w, port, env)
    try:
        wait_up(proc)
        with httpx.Client(base_url=base, timeout=10) as c:
            tokens = []
            for i in range(3):
                r = c.post(
                    "/api/players", json={"nickname": f"P{i}", "ai_background": False, "language": "en"}
                )
                tokens.append(r.json()["token"])

            def one_round(i, k):
                h = {"Authorization": f"Bearer {tokens[i]}"}
                rnd = c.post("/api/rounds", headers=h).json()["round"]
                c.post(
                    f"/api/rounds/{rnd['token']}/guess", headers=h, json={"choice": rnd["choices"][0]["id"]}
                )
                text = f"feature {i}-{k}"
                r = c.post(f"/api/rounds/{rnd['token']}/features", headers=h, json={"texts": [text]})
                if r.status_code == 200:
                    acked.append((f"p{i + 1}", text))

            for k in range(3):
                for i in range(3):
                    one_round(i, k)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc = start_server(w, port, env)
            wait_up(proc)
            for k in range(3, 5):
                for i in range(3):
                    one_round(i, k)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert main(["game", "export", *cli_args(w, "--out", str(tmp_path / "export"))]) == 0
    guesses = pd.read_csv(tmp_path / "export" / "guesses.csv", dtype=str, keep_default_na=False)
    assert len(acked) == 15
    assert sorted(zip(guesses["player_id"], guesses["text"], strict=True)) == sorted(acked)
