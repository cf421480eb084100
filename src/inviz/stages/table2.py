"""``inviz table2``: Table 2 of the paper (the comparative survey) and its significance tests.

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

HELP = "Table 2 (survey ratings): mean ± sd, pairwise tests with multiple-comparison correction, paper's claims"
log = logging.getLogger(__name__)

#: every file the stage writes into --out (by-background and dropped files only for --responses)
OUTPUTS = {
    "table_csv": "table2.csv",
    "table_md": "table2.md",
    "table_tex": "table2.tex",
    "tests": "table2_tests.csv",
    "claims": "table2_claims.md",
    "ratings_fig": "table2_ratings.png",
    "pvalues_fig": "table2_pvalues.png",
    "by_background_csv": "table2_by_background.csv",
    "by_background_md": "table2_by_background.md",
    "by_background_tests": "table2_by_background_tests.csv",
    "dropped": "table2_dropped.csv",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--responses", help="raw survey responses CSV: participant, ai_background, method, aspect, rating")
    src.add_argument("--summary", help="summary CSV: method, aspect, mean, sd, n (default: the paper's Table 2)")
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
    from importlib import resources

    from inviz.core.config import flatten
    from inviz.core.io import save_figure, sha256_file, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import stage_run
    from inviz.survey import table2 as t2

    cfg, tracking = load_config(args.params)
    if args.responses:
        path = Path(args.responses)
        source, input_sha = path.name, sha256_file(path) if path.is_file() else ""
        result = t2.analyse_responses(t2.read_responses(path, cfg), cfg, source=source)
    else:
        if args.summary:
            path = Path(args.summary)
            source, input_sha = path.name, sha256_file(path) if path.is_file() else ""
            summary = t2.read_summary(path, cfg)
        else:
            with resources.as_file(t2.paper_table2_path()) as packaged:
                source, input_sha = "paper_table2.csv", sha256_file(packaged)
                summary = t2.read_summary(packaged, cfg, source=source)
        result = t2.analyse_summary(summary, cfg)

    out = Path(args.out)
    written = [
        write_csv(out / OUTPUTS["table_csv"], result.table),
        write_text(out / OUTPUTS["table_md"], t2.table_markdown(result.table, cfg)),
        write_text(out / OUTPUTS["table_tex"], t2.table_latex(result.table, cfg)),
        write_csv(out / OUTPUTS["tests"], result.tests),
        write_text(out / OUTPUTS["claims"], t2.claims_markdown(result, source)),
    ]
    fig = t2.ratings_figure(result.table, cfg)
    written += save_figure(fig, out / OUTPUTS["ratings_fig"], formats=("png", "pdf"))
    close(fig)
    fig = t2.pvalue_figure(result.tests, result.test_name, cfg)
    written += save_figure(fig, out / OUTPUTS["pvalues_fig"], formats=("png", "pdf"))
    close(fig)
    if result.kind == "responses":
        by = result.by_background_table
        md = "\n".join(
            t2.table_markdown(by[by["group"] == g], cfg, caption=f"## AI background: {g}",
                              csv_name=OUTPUTS["by_background_csv"])
            for g in t2.BACKGROUNDS if (by["group"] == g).any()
        )
        written += [
            write_csv(out / OUTPUTS["by_background_csv"], by),
            write_text(out / OUTPUTS["by_background_md"], md or "No participants.\n"),
            write_csv(out / OUTPUTS["by_background_tests"], result.by_background_tests),
            write_csv(out / OUTPUTS["dropped"], result.dropped),
        ]

    metrics = result.metrics()
    if args.metrics:
        write_json(args.metrics, metrics)
    tags = {"table2_input": result.kind, "table2_source": source, "input_sha256": input_sha}
    with stage_run("table2", tracking, {"table2": cfg}, tags=tags) as tr:
        flat = flatten({k: v for k, v in metrics.items() if k != "claims"})
        flat.update({f"claims.{k}": v for k, v in metrics["claims"].items() if v is not None})
        tr.log_metrics({_metric_key(k): v for k, v in flat.items()})
        for f in written:
            tr.log_artifact(f, artifact_path="table2")
    for c in result.claims:
        log.info("table2: %s — %s", c.claim.name, {True: "holds", False: "does NOT hold", None: "not testable"}[c.holds])
    log.info(
        "table2: %s input, %d/%d comparisons significant (%s, %s per %s); outputs in %s",
        result.kind, metrics["n_significant"], metrics["n_comparisons"], result.test_name, cfg.correction,
        cfg.family, out,
    )
    return metrics
