"""Ablation sweeps as DVC experiments, and their comparison report (see :mod:`inviz.comparison.ablations`).

Run from the project root; ``--profile demo`` (default) works offline on the synthetic data,
``--profile paper`` on the paper configuration. Every variant is one queued DVC experiment
``abl-<sweep>-<variant>`` that runs the pipeline up to ``--target`` (default ``labels_analyze,evaluate``:
Table 1, the label outcomes and the explanation quality; ``compare`` for everything)::

    .venv/bin/python experiments/ablations.py list
    .venv/bin/python experiments/ablations.py queue --sweep k_range --sweep prune   # dvc exp run --queue ...
    .venv/bin/python experiments/ablations.py run --sweep k_range                   # queue + dvc queue start + wait
    .venv/bin/python experiments/ablations.py report                                # -> reports/ablations/ + MLflow

The same by hand: ``cd demo && dvc exp run --queue -n abl-prune-off -S extract.prune=false
labels_analyze && dvc queue start``, then ``dvc exp show``. Queued experiments run in temporary
copies of the last commit (plus workspace changes): commit this machine's baseline first
(``make demo``, then ``git add demo/dvc.lock demo/metrics && git commit``; the demo's results are
not shipped, as CPU training differs across machines) so unchanged stages (data, train) are
restored from the DVC cache instead of re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
# dvc and inviz from this interpreter's environment (.venv/bin), also for the queue's workers
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{ROOT / 'mlflow.db'}")

from inviz.comparison.ablations import (  # noqa: E402
    SWEEPS,
    collect,
    exp_records,
    queue_commands,
    report_notes,
    write_report,
)
from inviz.comparison.staleness import cache_listing, read_locks  # noqa: E402


def folder(profile: str) -> Path:
    return ROOT / "demo" if profile == "demo" else ROOT


def sh(cmd: list[str], cwd: Path, capture: bool = False) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=cwd, check=True, text=True, capture_output=capture)


def wait_for_queue(cwd: Path, poll: float = 10.0) -> None:
    """Until ``dvc queue status`` shows nothing queued or running; prints the status as it changes."""
    last = ""
    while True:
        out = subprocess.run(["dvc", "queue", "status"], cwd=cwd, text=True, capture_output=True).stdout
        active = [ln for ln in out.splitlines() if " Queued " in f" {ln} " or " Running " in f" {ln} "]
        summary = f"{sum(' Running ' in f' {ln} ' for ln in active)} running, {sum(' Queued ' in f' {ln} ' for ln in active)} queued"
        if summary != last:
            print(f"[{time.strftime('%H:%M:%S')}] queue: {summary}", flush=True)
            last = summary
        if not active:
            print(out, flush=True)
            return
        time.sleep(poll)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["list", "queue", "run", "report"])
    p.add_argument("--profile", choices=["demo", "paper"], default="demo")
    p.add_argument("--sweep", action="append", help="sweep name (repeatable; default: every sweep)")
    p.add_argument(
        "--target",
        default="labels_analyze,evaluate",
        help="stage(s) each experiment runs up to, comma-separated ('' = whole pipeline)",
    )
    p.add_argument("--jobs", type=int, default=1, help="parallel queue workers (dvc queue start -j)")
    p.add_argument("--out", default=None, help="report folder (default: <profile folder>/reports/ablations)")
    p.add_argument(
        "--commits",
        type=int,
        default=10,
        help="report: commits from HEAD whose experiments are read (default 10)",
    )
    p.add_argument("--all-commits", action="store_true", help="report: read the experiments of every commit")
    p.add_argument(
        "--all-baselines",
        action="store_true",
        help="report: keep experiments of baselines whose results differ from the current one",
    )
    args = p.parse_args(argv)
    cwd = folder(args.profile)
    sweeps = args.sweep or list(SWEEPS)

    if args.command == "list":
        for name, (what, variants) in SWEEPS.items():
            print(f"{name:10s} {what}")
            for v in variants:
                print(f"{'':12s}{v.name:8s} {json.dumps(dict(v.overrides))}")
        return 0
    if args.command in ("queue", "run"):
        for cmd in queue_commands(sweeps, [t for t in args.target.split(",") if t] or None):
            sh(cmd, cwd)
        if args.command == "run":
            sh(["dvc", "queue", "start", "-j", str(args.jobs)], cwd)
            wait_for_queue(cwd)
        if args.command == "queue":
            print(
                "queued; start with: (cd",
                cwd.relative_to(ROOT) if cwd != ROOT else ".",
                "&& dvc queue start)",
            )
            return 0
    # report (also after run)
    scope = ["--all-commits"] if args.all_commits else ["--num", str(args.commits)]
    shown = json.loads(sh(["dvc", "exp", "show", "--json", *scope], cwd, capture=True).stdout or "[]")
    # demo/ is a DVC project of its own: its files are keyed from demo/
    frame = collect(
        shown,
        locks=read_locks((r["rev"] for r in exp_records(shown)), cwd),
        current_only=not args.all_baselines,
        listing=cache_listing(cwd),
    )
    if frame.empty:
        print("no experiments with results yet (dvc exp show lists none)")
        return 1
    for note in report_notes(frame):
        print("note:", note)
    out = Path(args.out) if args.out else cwd / "reports" / "ablations"
    files = write_report(frame, out)
    print(
        frame[
            [
                "name",
                "sweep",
                "variant",
                "leftover_clusters",
                "leftover_fmaps",
                "leftover_weight",
                "n_cluster_maps_kept",
                "closed_loop_accuracy",
                *[
                    c
                    for c in (
                        "concept_rho",
                        "beat_random_rate",
                        "completeness",
                        "deletion_auc",
                        "pointing_game",
                    )
                    if c in frame
                ],
            ]
        ].to_string(index=False)
    )
    try:  # the report in MLflow too (same store as the pipeline)
        from inviz.core.config import from_dict, read_params
        from inviz.core.tracking import TrackingConfig, stage_run

        tracking = from_dict(TrackingConfig, read_params(cwd / "params.yaml").get("mlflow"), "mlflow")
        os.chdir(cwd)
        with stage_run("ablations", tracking, {"sweeps": ",".join(sweeps)}) as tr:
            tr.log_metrics(
                {
                    "n_experiments": len(frame),
                    "n_with_stale_outcomes": int((frame["stale"] != "").sum()),
                    "n_left_out_baselines": len(frame.attrs.get("left_out", [])),
                }
            )
            tr.log_artifact(out, "ablations")
    except Exception as err:  # the files are written; MLflow is a mirror
        print(f"MLflow logging skipped: {err}")
    print("report:", *[str(f) for f in files], sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
