"""Load benchmark of the Deep Reveal server (`inviz game serve`): concurrent players over HTTP.

Starts a real uvicorn process (`inviz game serve`) on a fresh SQLite database, signs up N simulated
players (httpx2, async; one client per player, as each player has a browser) who play R rounds
each (next round, image, 0-5 hints with their images, a guess or a resign, 1-3 features), and
prints p50/p95/p99 latency per endpoint, rounds per second, 5xx and connection errors, and the CPU
time per request of the server and of this load generator (both on the same cores); then checks
that the database holds exactly the answers the players sent. With --kill (default: a second run)
the server is SIGKILLed when half the rounds are done, restarted, and the players carry on; every
acknowledged answer must be in the database (answers in flight at the kill may or may not be,
never twice).

Players arrive over --ramp-up seconds (default 5: one every 0.1 s, like a load tester's spawn
rate); --ramp-up 0 signs all of them up in the same millisecond (a burst no real class or crowd
produces: the first requests then queue behind 50 sign-ups).

Content: a finished masks stage (default: the demo's, demo/data/masks.csv + demo/data/masks/), or
--synthetic: generated maps of the demo's size (256 px PNGs, 6 levels).

    python experiments/bench_game.py                       # demo masks, 50 players x 20 rounds
    python experiments/bench_game.py --synthetic --think 0  # no think time: the saturated server

Timings depend on the machine's load (reported); the targets are p95 < 50 ms for the JSON endpoints
and < 100 ms for images, on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
JSON_ENDPOINTS = ("sign_up", "next_round", "hint", "guess", "resign", "features", "leaderboard")


def synthetic_masks(
    root: Path, n_images: int = 50, maps_per_image: int = 30, side: int = 256, seed: int = 0
) -> dict:
    """Write a masks stage of the demo's size: smooth 256-px PNGs (about the demo's bytes per image)."""
    from PIL import Image, ImageFilter

    from inviz.game.manifest import MANIFEST_COLUMNS

    rng = np.random.default_rng(seed)
    classes = [{"label": i, "class_folder": f"c{i:02d}_k{i}", "class_name": f"k{i}"} for i in range(10)]
    (root / "masks").mkdir(parents=True, exist_ok=True)
    (root / "classes.json").write_text(json.dumps(classes))
    pd.DataFrame(
        {
            "game_id": range(1, 11),
            "game_name": [f"Class {i}" for i in range(10)],
            "class_folder": [c["class_folder"] for c in classes],
            "class_name": [c["class_name"] for c in classes],
        }
    ).to_csv(root / "game_classes.csv", index=False)
    layers = [f"block{b}_conv{c}" for b in (3, 4, 5) for c in (1, 2, 3)]
    zips = {
        layer: zipfile.ZipFile(root / "masks" / f"{layer}.zip", "w", zipfile.ZIP_STORED) for layer in layers
    }
    levels = [2, 4.5, 8, 13, 20, 30]
    rows, cid = [], 0
    for i in range(n_images):
        base = Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).resize(
            (side, side), Image.BICUBIC
        )
        noisy = np.clip(np.asarray(base, float) + rng.normal(0, 6, (side, side, 3)), 0, 255).astype(np.uint8)
        for k in range(maps_per_image):
            cid += 1
            layer = layers[k % len(layers)]
            heat = np.asarray(
                Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).resize((side, side)), float
            )
            for level, q in enumerate(levels):
                mask = (heat >= np.percentile(heat, 100 - q)).astype(np.uint8) * 255
                soft = np.asarray(Image.fromarray(mask).filter(ImageFilter.GaussianBlur(12)), float) / 255
                buf = io.BytesIO()
                Image.fromarray((noisy * soft[..., None]).astype(np.uint8)).save(buf, "PNG", compress_level=1)
                member = f"{cid:06d}/{level}.png"
                zips[layer].writestr(member, buf.getvalue())
                rows.append((cid, i, layer, k, level, q, member))
    for z in zips.values():
        z.close()
    t = pd.DataFrame(rows, columns=["cluster_id", "i", "layer", "k", "level", "percent", "member"])
    m = t.assign(
        extract_id="e" + t["cluster_id"].astype(str),
        image="img" + t["i"].astype(str),
        layer_index=t["layer"].map(layers.index),
        cluster=t["k"] // len(layers),
        label=t["i"] % 10,
        weight=10.0,
        revealed_share=t["percent"] / 100,
        factor=8.0,
        sigma=12.0,
        shard=t["layer"] + ".zip",
    )
    m["true_class"] = m["pred_name"] = "k" + m["label"].astype(str)
    m["pred"] = m["label"]
    m["file"] = m["shard"] + "/" + m["member"]
    m[MANIFEST_COLUMNS].to_csv(root / "masks.csv", index=False)
    return {
        "manifest": root / "masks.csv",
        "masks": root / "masks",
        "classes": root / "classes.json",
        "class_map": root / "game_classes.csv",
    }


def write_params(work: Path, content: dict, plays_per_map: int) -> Path:
    """A params file for the benchmark's game (no screening positions beyond the rounds played, no questionnaire)."""
    params = {
        "mlflow": {"enabled": False},
        "labels_import": {"source_dir": str(work / "export"), "class_map": str(content["class_map"])},
        "game": {
            "plays_per_map": plays_per_map,
            "questionnaire_after": 0,
            "screening": {"positions": [3, 9, 16]},
        },
    }
    path = work / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


class Server:
    """`inviz game serve` in a subprocess."""

    def __init__(self, params: Path, content: dict, db: Path, port: int, log: Path):
        self.cmd = [
            sys.executable,
            "-c",
            "import sys; from inviz.cli import main; sys.exit(main())",
            "game",
            "serve",
            "--params",
            str(params),
            "--manifest",
            str(content["manifest"]),
            "--masks",
            str(content["masks"]),
            "--classes",
            str(content["classes"]),
            "--db-url",
            f"sqlite:///{db}",
            "--port",
            str(port),
        ]
        self.port, self.log, self.proc = port, log, None
        self.cpu_of_killed = 0.0

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system, all threads) the server processes used so far (Linux /proc)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            now = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, AttributeError):
            now = 0.0
        return self.cpu_of_killed + now

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.proc = subprocess.Popen(self.cmd, env=env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT)

    def wait_up(self, timeout: float = 180) -> float:
        import httpx2 as httpx

        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited: see {self.log}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/config", timeout=2).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("server did not start")

    def kill(self) -> None:
        self.cpu_of_killed = self.cpu_seconds()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)


class Stats:
    """Latencies per endpoint, errors, and what each player sent and had acknowledged."""

    def __init__(self):
        self.lat = defaultdict(list)
        self.status = defaultdict(int)
        self.conn_errors = 0
        self.acked: set[tuple] = set()  # (player, kind, text) of acknowledged answers
        self.doubt: set[tuple] = set()  # sent, no answer (the server died in between)
        self.rounds_done = 0


async def request(
    client, stats: Stats, name: str, method: str, url: str, token: str, server_down: asyncio.Event, **kw
):
    """One request; on a connection error wait for the server to come back and return None."""
    import httpx2 as httpx

    t0 = time.perf_counter()
    try:
        r = await client.request(
            method, url, headers={"Authorization": f"Bearer {token}"} if token else {}, **kw
        )
    except httpx.TransportError:
        stats.conn_errors += 1
        while server_down.is_set():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.05)
        return None
    if not server_down.is_set():
        stats.lat[name].append(1000 * (time.perf_counter() - t0))
    stats.status[r.status_code // 100] += 1
    return r


async def player(
    client,
    i: int,
    rounds: int,
    think: float,
    stats: Stats,
    rng: np.random.Generator,
    down: asyncio.Event,
    arrive: float = 0.0,
):
    async def call(name, method, url, token, **kw):
        while True:
            r = await request(client, stats, name, method, url, token, down, **kw)
            if r is not None and r.status_code < 500:
                return r
            if r is not None:  # counted as a 5xx (the run then fails); try again
                await asyncio.sleep(0.5)

    async def pause():
        if think > 0:
            await asyncio.sleep(float(rng.exponential(think)))

    await asyncio.sleep(arrive)  # the ramp-up: players arrive one after another
    r = await call(
        "sign_up",
        "POST",
        "/api/players",
        "",
        json={"nickname": f"bench {i}", "ai_background": bool(i % 2), "language": "en"},
    )
    token = r.json()["token"]
    done = 0
    while done < rounds:
        r = await call("next_round", "POST", "/api/rounds", token)
        rnd = r.json()["round"]
        if rnd is None:
            break
        tok = rnd["token"]
        if rnd["status"] == "open":
            await call("image", "GET", rnd["image"], token)
            for _ in range(int(rng.integers(0, rnd["hints_left"] + 1))):
                await pause()
                h = await call("hint", "POST", f"/api/rounds/{tok}/hint", token)
                if h.status_code != 200:
                    break
                rnd = h.json()
                await call("image", "GET", rnd["image"], token)
            await pause()
            if rnd["can_resign"] and rng.random() < 0.3:
                key = (i, "resign", rnd["number"])
                stats.doubt.add(key)
                g = await request(client, stats, "resign", "POST", f"/api/rounds/{tok}/resign", token, down)
                if g is not None and g.status_code == 200:
                    stats.acked.add(key)
                    stats.doubt.discard(key)
                    done += 1
                continue  # any failure: next_round resumes the round where the server left it
            choice = rnd["choices"][int(rng.integers(len(rnd["choices"])))]["id"]
            g = await request(
                client,
                stats,
                "guess",
                "POST",
                f"/api/rounds/{tok}/guess",
                token,
                down,
                json={"choice": choice},
            )
            if g is None or g.status_code != 200:
                continue
        await pause()
        texts = [f"b{i} r{rnd['number']} f{k}" for k in range(int(rng.integers(1, 4)))]
        keys = {(i, "feature", t) for t in texts}
        stats.doubt |= keys
        f = await request(
            client,
            stats,
            "features",
            "POST",
            f"/api/rounds/{tok}/features",
            token,
            down,
            json={"texts": texts},
        )
        if f is not None and f.status_code == 200:
            stats.acked |= keys
            stats.doubt -= keys
            done += 1
            stats.rounds_done += 1
        if done % 10 == 0:
            await call("leaderboard", "GET", "/api/leaderboard", token)


async def run_players(
    base: str,
    n: int,
    rounds: int,
    think: float,
    server: Server,
    kill_at: float | None,
    seed: int,
    ramp_up: float = 0.0,
):
    import httpx2 as httpx

    stats = Stats()
    down = asyncio.Event()
    # one client per player, as each player has a browser: its own connection and cookie (one
    # shared client would check all n pooled connections on every request: client CPU, not server)
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base, timeout=60, limits=limits))
            for _ in range(n)
        ]
        tasks = [
            asyncio.create_task(
                player(
                    client, i, rounds, think, stats, np.random.default_rng([seed, i]), down, i * ramp_up / n
                )
            )
            for i, client in enumerate(clients)
        ]
        t0 = time.perf_counter()
        kill_info = None
        if kill_at is not None:
            while stats.rounds_done < kill_at * n * rounds:
                await asyncio.sleep(0.02)
            down.set()
            server.kill()
            killed_after = stats.rounds_done
            await asyncio.sleep(1.0)
            server.start()
            restart = await asyncio.to_thread(server.wait_up)
            down.clear()
            kill_info = {"killed_after_rounds": killed_after, "restart_seconds": restart}
        await asyncio.gather(*tasks)
        seconds = time.perf_counter() - t0
    return stats, seconds, kill_info


def db_answers(db: Path) -> tuple[set, set]:
    """(player, 'feature', text) and (player, 'resign', round number) of everything in the database."""
    import sqlite3

    con = sqlite3.connect(db)
    feats = {
        (int(n.split()[1]), "feature", t)
        for n, t in con.execute(
            "select p.nickname, f.text from features f join rounds r on r.id = f.round_id join players p on p.id = r.player_id"
        )
    }
    resigns = {
        (int(n.split()[1]), "resign", seq)
        for n, seq in con.execute(
            "select p.nickname, r.seq from rounds r join players p on p.id = r.player_id where r.status = 'resigned'"
        )
    }
    con.close()
    return feats, resigns


def report(
    title: str, stats: Stats, seconds: float, n: int, rounds: int, load: tuple, ramp_up: float
) -> dict:
    rows = []
    for name, values in sorted(stats.lat.items()):
        v = np.asarray(values)
        rows.append(
            {
                "endpoint": name,
                "n": len(v),
                "p50_ms": np.percentile(v, 50),
                "p95_ms": np.percentile(v, 95),
                "p99_ms": np.percentile(v, 99),
                "max_ms": v.max(),
            }
        )
    table = pd.DataFrame(rows)
    print(
        f"\n== {title}: {n} players x {rounds} rounds in {seconds:.1f} s "
        f"({stats.rounds_done / seconds:.1f} rounds/s, {sum(len(v) for v in stats.lat.values()) / seconds:.0f} requests/s)"
    )
    print(
        f"players arrive over {ramp_up:g} s (--ramp-up); load average before/after: {load[0]:.1f} / "
        f"{os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)"
    )
    print(table.to_string(index=False, float_format=lambda x: f"{x:.1f}"))
    print(f"HTTP status classes: {dict(stats.status)}; connection errors: {stats.conn_errors}")
    json_p95 = table[table["endpoint"].isin(JSON_ENDPOINTS)]["p95_ms"].max()
    img_p95 = table.loc[table["endpoint"] == "image", "p95_ms"].max()
    print(
        f"p95 JSON endpoints (worst): {json_p95:.1f} ms (target < 50); images: {img_p95:.1f} ms (target < 100)"
    )
    return {
        "rounds_per_second": stats.rounds_done / seconds,
        "json_p95_ms": float(json_p95),
        "image_p95_ms": float(img_p95),
        "http_5xx": stats.status.get(5, 0),
        "load_average_before_after": [load[0], os.getloadavg()[0]],
        "table": table.to_dict("records"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--players", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument(
        "--think", type=float, default=0.5, help="mean think time between actions, seconds (exponential)"
    )
    ap.add_argument(
        "--ramp-up",
        type=float,
        default=5.0,
        help="seconds over which the players arrive, one every ramp-up/players seconds (like a load "
        "tester's spawn rate; 0: all sign up at once)",
    )
    ap.add_argument("--synthetic", action="store_true", help="generated maps instead of the demo's masks")
    ap.add_argument(
        "--synthetic-images", type=int, default=50, help="images of the generated content (30 maps each)"
    )
    ap.add_argument("--no-kill", action="store_true", help="skip the SIGKILL run")
    ap.add_argument(
        "--kill-at", type=float, default=0.5, help="share of the rounds done when the server is killed"
    )
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-game-"))
    work.mkdir(parents=True, exist_ok=True)
    demo = ROOT / "demo" / "data"
    if args.synthetic or not (demo / "masks.csv").is_file():
        print(
            "content: synthetic maps (demo size)"
            if args.synthetic
            else "content: demo masks missing -> synthetic"
        )
        reuse = work / "content" / "masks.csv"
        if reuse.is_file():  # a previous run in this --workdir
            print(f"reusing {reuse.parent}")
            content = {
                k: work / "content" / v
                for k, v in {
                    "manifest": "masks.csv",
                    "masks": "masks",
                    "classes": "classes.json",
                    "class_map": "game_classes.csv",
                }.items()
            }
        else:
            content = synthetic_masks(work / "content", n_images=args.synthetic_images)
    else:
        content = {
            "manifest": demo / "masks.csv",
            "masks": demo / "masks",
            "classes": demo / "classes.json",
            "class_map": demo / "game" / "game_classes.csv",
        }
        if not content["class_map"].is_file():
            from inviz.core.io import read_json
            from inviz.game.export import game_classes_frame

            cls = sorted(read_json(content["classes"]), key=lambda c: c["label"])
            content["class_map"] = work / "game_classes.csv"
            game_classes_frame([c["class_name"] for c in cls], [c["class_folder"] for c in cls]).to_csv(
                content["class_map"], index=False
            )
        print(f"content: {content['manifest']}")
    params = write_params(work, content, plays_per_map=5)
    # the load generator's own full garbage collections (pandas, numpy … loaded) would stall every
    # request in flight and be counted as server latency: keep what is loaded out of their reach
    gc.collect()
    gc.freeze()
    results = {}
    for run, kill in (("latency", None), ("sigkill", args.kill_at)):
        if run == "sigkill" and args.no_kill:
            continue
        db = work / f"{run}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        server = Server(params, content, db, port, work / f"{run}.log")
        server.start()
        print(f"\n[{run}] server up in {server.wait_up():.1f} s (port {port}, db {db})")
        load = os.getloadavg()
        cpu0, client0 = server.cpu_seconds(), time.process_time()
        try:
            stats, seconds, kill = asyncio.run(
                run_players(
                    f"http://127.0.0.1:{port}",
                    args.players,
                    args.rounds,
                    args.think,
                    server,
                    kill,
                    args.seed,
                    args.ramp_up,
                )
            )
            cpu, client_cpu = server.cpu_seconds() - cpu0, time.process_time() - client0
        finally:
            server.stop()
        res = report(
            run
            if kill is None
            else f"{run} (server SIGKILLed after {kill['killed_after_rounds']} rounds, "
            f"back in {kill['restart_seconds']:.1f} s)",
            stats,
            seconds,
            args.players,
            args.rounds,
            load,
            args.ramp_up,
        )
        n_requests = sum(len(v) for v in stats.lat.values())
        print(
            f"server CPU: {cpu:.1f} s = {1000 * cpu / max(n_requests, 1):.1f} ms per request "
            f"({100 * cpu / seconds:.0f} % of one core over the run; load-independent, unlike latencies"
            + ("; includes the restarted server's start-up" if kill else "")
            + ")"
        )
        print(
            f"client CPU (this process, on the same cores): {client_cpu:.1f} s = "
            f"{1000 * client_cpu / max(n_requests, 1):.1f} ms per request ({100 * client_cpu / seconds:.0f} % "
            "of one core)"
        )
        res["server_cpu_ms_per_request"] = 1000 * cpu / max(n_requests, 1)
        res["client_cpu_ms_per_request"] = 1000 * client_cpu / max(n_requests, 1)
        res["ramp_up_seconds"] = args.ramp_up
        feats, resigns = db_answers(db)
        in_db = feats | resigns
        missing = stats.acked - in_db
        extra = in_db - stats.acked - stats.doubt
        print(
            f"database: {len(feats)} features, {len(resigns)} resigns; acknowledged: {len(stats.acked)}; "
            f"in doubt at the kill: {len(stats.doubt)}; acknowledged but missing: {len(missing)}; "
            f"in the database but never sent: {len(extra)}"
        )
        res.update(
            {
                "acknowledged": len(stats.acked),
                "missing": len(missing),
                "unexpected": len(extra),
                "kill": kill,
            }
        )
        results[run] = res
        assert not missing and not extra and res["http_5xx"] == 0, (
            "FAILED: lost or unexpected answers, or 5xx"
        )
    (work / "results.json").write_text(json.dumps(results, indent=2, default=float))
    print(f"\nresults: {work / 'results.json'}")


if __name__ == "__main__":
    main()
