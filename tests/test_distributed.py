"""Distributed extraction on CPU processes: torchrun, separately launched "nodes", Lightning's ddp_spawn.

Each test launches real processes (gloo) with a timeout: a hang fails the test instead of blocking it.
Checked: a folder left by another model is cleaned by rank 0 before any rank reads it; a rank 0
started 8 s late causes no race and no hang; every image is explained exactly once; the tables
and maps equal those of one process (also after a resume with a partial last batch); a process
with nothing left to do still finishes; one MLflow run per stage execution.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_stage_extract import CLASSES, LAYERS, dataset, make_inputs, stage_args, write_params

from inviz.cli import main
from inviz.fmaps.explain import ExtractConfig
from inviz.fmaps.lightning import run_extraction
from inviz.fmaps.shards import write_shard
from inviz.fmaps.store import complete_shards, load_results
from inviz.models.checkpoint import load_checkpoint, save_checkpoint
from inviz.models.vgg import ModelConfig, build_vgg16

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("distributed_worker.py")
#: seconds a launched process may take before the test calls it a hang
TIMEOUT = 600


def _env(**extra: str) -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(procs: list[subprocess.Popen]) -> list[str]:
    """Wait for every process (killing all of them after :data:`TIMEOUT`); return their stderr."""
    deadline = time.monotonic() + TIMEOUT
    errs = []
    try:
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            errs.append(err)
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"distributed extraction did not finish within {TIMEOUT} s (hang)")
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err[-4000:]
    return errs


def assert_same_results(a: Path, b: Path) -> None:
    """Two extraction folders hold bit-identical tables and cluster maps (shard layout aside)."""
    ra, rb = load_results(a), load_results(b)
    keys = ["sample_id", "layer"]
    la = ra.layers.sort_values(keys).reset_index(drop=True)
    lb = rb.layers.sort_values(keys).reset_index(drop=True)
    # t-SNE's final KL (a diagnostic, not a result) is summed in an order the CPU's thread count can
    # change (seen in a fresh CI clone): equal to 1e-9 relative; every other column bit for bit
    np.testing.assert_allclose(la["kl"], lb["kl"], rtol=1e-9)
    pd.testing.assert_frame_equal(la.drop(columns=["kl"]), lb.drop(columns=["kl"]), check_exact=True)
    ca = ra.clusters.drop(columns=["map_file", "map_index"]).sort_values("cluster_id").reset_index(drop=True)
    cb = rb.clusters.drop(columns=["map_file", "map_index"]).sort_values("cluster_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(ca, cb, check_exact=True)
    for cid in ca["cluster_id"]:
        for kind in ("raw", "map"):
            np.testing.assert_array_equal(ra.cluster_map(cid, kind), rb.cluster_map(cid, kind))


def _extract_runs(tracking_uri: str) -> list[tuple[str, str, int]]:
    """(run id, status, number of metrics) of every MLflow run named ``extract``."""
    with sqlite3.connect(tracking_uri.removeprefix("sqlite:///")) as con:
        rows = con.execute("select run_uuid, status from runs where name = 'extract'").fetchall()
        return [
            (
                rid,
                status,
                con.execute("select count(*) from metrics where run_uuid = ?", (rid,)).fetchone()[0],
            )
            for rid, status in rows
        ]


def _run_params(path: Path, **run: object) -> Path:
    base = {"shard_size": 1, "device": "cpu", "num_workers": 0}
    return write_params(path, run={**base, **run})


@pytest.mark.slow
def test_torchrun_cleans_a_stale_folder_before_any_rank_reads_it_and_logs_one_run(tmp_path, tracking_uri):
    """torchrun, 2 processes, rank 0 8 s late, a folder left by another model: no race, no hang."""
    images, selected, ckpt, _ = make_inputs(tmp_path, n=5)
    torch.manual_seed(7)
    other = build_vgg16(3, ModelConfig(weights="none", width=0.125, input_size=64)).eval()
    other_ckpt = save_checkpoint(tmp_path / "other.pt", other, CLASSES)
    one = _run_params(tmp_path / "one.yaml", batch_size=2)
    assert main(stage_args(tmp_path, images, selected, other_ckpt, one)) == 0  # the stale folder
    out = tmp_path / "data" / "extract"
    stale = set(complete_shards(out))
    assert stale and len(_extract_runs(tracking_uri)) == 1

    two = _run_params(tmp_path / "two.yaml", batch_size=2, devices=2, strategy="ddp")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += [str(WORKER), "--delay-rank0", "8", *stage_args(tmp_path, images, selected, ckpt, two)]
    _wait([subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)])

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model_sha256"] == load_checkpoint(ckpt).sha256
    shards = set(complete_shards(out))
    assert not shards & stale  # the other model's shards were removed before any rank read them
    assert {name.split("-")[0] for name in shards} == {"r000", "r001"}
    layers = load_results(out).layers
    assert not layers.duplicated(["sample_id", "layer"]).any()  # every image exactly once
    assert sorted(layers["sample_id"].unique()) == sorted(pd.read_csv(selected)["sample_id"])
    metrics = json.loads((tmp_path / "metrics" / "extract.json").read_text())
    assert (metrics["n_images"], metrics["n_resumed"], metrics["n_processes"]) == (5, 0, 2)
    runs = _extract_runs(tracking_uri)  # one run for the first stage execution, one for this one
    assert len(runs) == 2 and all(status == "FINISHED" and n > 0 for _, status, n in runs)

    # one process, same batch size: the same tables, bit for bit
    assert main(stage_args(tmp_path / "single", images, selected, ckpt, one)) == 0
    assert_same_results(out, tmp_path / "single" / "data" / "extract")


@pytest.mark.slow
def test_two_nodes_started_apart_resume_a_partial_folder_like_one_process(tmp_path, tracking_uri):
    """Two single-process "nodes" (Lightning's NODE_RANK launch), rank 0 started 8 s after rank 1,
    resuming a folder where 4 of 7 images are done: the remaining 3 split 2 + 1 (padded batches)."""
    images, selected, ckpt, _ = make_inputs(tmp_path, n=7)
    frame = pd.read_csv(selected)
    first = tmp_path / "first4.csv"
    frame.head(4).to_csv(first, index=False)
    one = _run_params(tmp_path / "one.yaml", batch_size=3)
    assert main(stage_args(tmp_path, images, first, ckpt, one)) == 0  # 4 images done (3 + 1)

    nodes = _run_params(tmp_path / "nodes.yaml", batch_size=3, devices=1, num_nodes=2, strategy="ddp")
    args = [sys.executable, "-m", "inviz", *stage_args(tmp_path, images, selected, ckpt, nodes)]
    port = str(_free_port())

    def launch(node: int) -> subprocess.Popen:
        env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=str(node), LOCAL_RANK="0")
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    node1 = launch(1)
    time.sleep(8)
    node0 = launch(0)
    _wait([node1, node0])

    out = tmp_path / "data" / "extract"
    metrics = json.loads((tmp_path / "metrics" / "extract.json").read_text())
    assert (metrics["n_images"], metrics["n_resumed"], metrics["n_processes"]) == (7, 4, 2)
    layers = load_results(out).layers
    assert not layers.duplicated(["sample_id", "layer"]).any()
    assert layers["sample_id"].drop_duplicates().tolist() == frame["sample_id"].tolist()
    assert len(_extract_runs(tracking_uri)) == 2  # the partial run and the two-node run
    assert main(stage_args(tmp_path / "single", images, selected, ckpt, one)) == 0
    assert_same_results(out, tmp_path / "single" / "data" / "extract")


@pytest.mark.slow
def test_ddp_spawn_with_a_rank_that_has_nothing_to_do(tmp_path):
    """Lightning's ddp_spawn: a resume with one image left gives rank 1 nothing to do; no hang, same tables."""
    images, selected, _, model = make_inputs(tmp_path, n=5)
    ds, ids = dataset(images, selected)
    run = {"batch_size": 2, "shard_size": 5, "device": "cpu", "devices": 2, "strategy": "ddp_spawn"}
    cfg = ExtractConfig(layers=LAYERS, run=run)
    out = tmp_path / "out"
    first = run_extraction(model, ds, ids, out, cfg, model_sha256="m", progress=False)
    assert {name.split("-")[0] for name in complete_shards(out)} == {"r000", "r001"}
    assert first.n_new == 5  # counted by the spawned rank 0, handed back to this process
    assert first.layers["sample_id"].drop_duplicates().tolist() == ids
    r1 = next(n for n in complete_shards(out) if n.startswith("r001"))
    lost = pd.read_parquet(out / "shards" / f"{r1}.layers.parquet")["sample_id"].unique()
    assert len(lost) == 2
    (out / "shards" / f"{r1}.layers.parquet").unlink()  # rank 1's shard was interrupted
    # one of its two images is done after all: exactly one image is left for two ranks
    done = [ex for ex in load_results(out).explanations() if ex.sample_id == lost[0]]
    write_shard(out, "r001-kept-00000", done)
    second = run_extraction(model, ds, ids, out, cfg, model_sha256="m", progress=False)
    assert (second.n_new, second.n_skipped) == (1, 4)
    pd.testing.assert_frame_equal(
        first.layers.sort_values(["sample_id", "layer"]).reset_index(drop=True),
        second.layers.sort_values(["sample_id", "layer"]).reset_index(drop=True),
        check_exact=True,
    )
