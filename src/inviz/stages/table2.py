"""``inviz table2``: Table 2 of the paper (the comparative survey, docs/method.md §5) and its tests.

``--responses FILE`` (raw ratings → paired t-test + Wilcoxon, split by AI background) or
``--summary FILE`` (published mean/sd/n → Welch's t from summaries); with neither, the paper's own
Table 2 packaged with inviz, so the pipeline checks the paper's claims from its published numbers.
The ``table2`` section of the params file configures the analysis; without a params file (or
without the section) the defaults apply, so the command also works outside a DVC project.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

HELP = (
    "Table 2 (survey ratings): mean ± sd, pairwise tests with multiple-comparison correction, paper's claims"
)
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--responses", help="raw survey responses CSV: participant, ai_background, method, aspect, rating"
    )
    src.add_argument(
        "--summary", help="summary CSV: method, aspect, mean, sd, n (default: the paper's Table 2)"
    )
    p.add_argument("--out", required=True, help="output folder for tables, tests, claims text and figures")
    p.add_argument("--metrics", help="output: metrics JSON (optional)")
    # None = "not given": use ./params.yaml when it exists, else the defaults (an explicit
    # --params that does not exist is still an error)
    p.set_defaults(params=None)


def load_config(params: str | Path | None) -> tuple[Any, Any]:
    """``table2`` and ``mlflow`` sections of ``params``; defaults for a missing file or section."""
    from inviz.core.config import from_dict, read_params
    from inviz.core.tracking import TrackingConfig
    from inviz.survey.table2 import Table2Config

    if params is None:
        if not Path("params.yaml").is_file():
            log.info("table2: no params.yaml here; using the default configuration")
            return Table2Config(), TrackingConfig()
        params = "params.yaml"
    data = read_params(params)
    if "table2" not in data:
        log.info("table2: %s has no table2 section; using the default configuration", params)
    cfg = from_dict(Table2Config, data.get("table2"), "table2", str(params))
    tracking = from_dict(TrackingConfig, data.get("mlflow"), "mlflow", str(params))
    return cfg, tracking


def _metric_key(key: str) -> str:
    """MLflow metric names allow letters, digits, ``_ - . /`` and spaces only."""
    return re.sub(r"[^\w\-./ ]", "_", key)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from inviz.core.config import flatten
    from inviz.core.io import save_figure, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import stage_run
    from inviz.survey.table2 import table2_report

    cfg, tracking = load_config(args.params)
    report = table2_report(cfg, responses=args.responses, summary=args.summary)
    result = report.result
    out = Path(args.out)
    written = [write_csv(out / name, frame) for name, frame in report.tables.items()]
    written += [write_text(out / name, text) for name, text in report.texts.items()]
    for name, fig in report.figures():
        written += save_figure(fig, out / name, formats=("png", "pdf"))
        close(fig)

    metrics = result.metrics()
    if args.metrics:
        write_json(args.metrics, metrics)
    tags = {"table2_input": result.kind, "table2_source": report.source, "input_sha256": report.input_sha256}
    with stage_run("table2", tracking, {"table2": cfg}, tags=tags) as tr:
        tr.log_metrics({_metric_key(k): v for k, v in flatten(metrics).items()})
        for f in written:
            tr.log_artifact(f, artifact_path="table2")
    for c in result.claims:
        verdict = {True: "holds", False: "does NOT hold", None: "not testable"}[c.holds]
        log.info("table2: %s — %s", c.claim.name, verdict)
    log.info(
        "table2: %s input, %d/%d comparisons significant (%s, %s per %s); outputs in %s",
        result.kind,
        metrics["n_significant"],
        metrics["n_comparisons"],
        result.test_name,
        cfg.correction,
        cfg.family,
        out,
    )
    return metrics
