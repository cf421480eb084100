"""Latency of the "what if" panel: the model's prediction on an edited image, on CPU.

Opens the game on a finished masks stage and its checkpoint (default: the demo's; run `dvc repro
labels_simulate` in demo/ first: masks and class list) with `game.what_if` on, plays rounds, then
sends edits (random brush strokes on the mask grid) and prints p50/p95 of the whole request (in-process ASGI: FastAPI,
database write, mask upsampling, model forward) and of the server's work alone.

    python experiments/bench_whatif.py                  # demo profile, 200 edits
    python experiments/bench_whatif.py --params params.yaml --edits 50   # the paper's VGG-16

Target: < 300 ms per edit at the demo size on this 2-core machine. The load average is printed:
shared CPUs make the figures pessimistic.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", type=Path, default=ROOT / "demo" / "params.yaml")
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the server shares its CPU)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    from fastapi.testclient import TestClient

    from inviz.game.web.app import create_app
    from inviz.game.web.settings import Settings, open_game
    from inviz.game.web.whatif import encode_mask

    torch.set_num_threads(args.threads)
    base = args.params.resolve().parent
    work = Path(tempfile.mkdtemp(prefix="bench-whatif-"))
    settings = Settings.from_params(args.params, db_url=f"sqlite:///{work / 'game.db'}")
    settings = settings.model_copy(
        update={"game": dataclasses.replace(settings.game, what_if=True, what_if_max_edits=10**6)}
    )
    if not (base / "data" / "masks.csv").is_file() and settings.manifest == base / "data" / "masks.csv":
        raise SystemExit(f"{settings.manifest}: run 'dvc repro labels_simulate' in {base} first")
    t0 = time.perf_counter()
    state = open_game(settings)
    print(
        f"opened the game and the model in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f}"
    )
    c = TestClient(create_app(state))
    c.post("/api/players", json={"nickname": "bench", "ai_background": True, "language": "en"})
    rng = np.random.default_rng(args.seed)
    tokens = []
    for _ in range(args.rounds):
        rnd = c.post("/api/rounds").json()["round"]
        c.post(f"/api/rounds/{rnd['token']}/guess", json={"choice": rnd["choices"][0]["id"]})
        c.post(f"/api/rounds/{rnd['token']}/features", json={"texts": ["x"]})
        tokens.append(rnd["token"])
    grid = settings.game.what_if_grid
    opened, total, server = [], [], []
    for tok in tokens:
        t = time.perf_counter()
        panel = c.get(f"/api/rounds/{tok}/whatif").json()
        opened.append(1000 * (time.perf_counter() - t))
    mask = np.zeros((grid, grid), np.uint8)
    for i in range(args.edits):
        y, x = rng.integers(0, grid, 2)
        r = max(1, grid // 16)
        mask[max(0, y - r) : y + r, max(0, x - r) : x + r] = 255 if rng.random() < 0.7 else 0
        t = time.perf_counter()
        out = c.post(f"/api/rounds/{tokens[i % len(tokens)]}/whatif", json={"mask": encode_mask(mask)}).json()
        total.append(1000 * (time.perf_counter() - t))
        server.append(out["ms"])
    state.close()
    for name, v in (
        ("open the panel", opened),
        ("edit: whole request", total),
        ("edit: server work", server),
    ):
        a = np.asarray(v)
        print(
            f"{name:22s} n={len(a):4d}  p50 {np.percentile(a, 50):7.1f} ms  p95 {np.percentile(a, 95):7.1f} ms  max {a.max():7.1f} ms"
        )
    print(
        f"load average after: {os.getloadavg()[0]:.1f} (2 cores); last prediction: {panel['prediction']['label']}"
    )


if __name__ == "__main__":
    main()
