"""``inviz compare``: ``reports/paper_comparison.md``, our Table 1 and Table 2 next to the paper's.

The report also gives the configuration the numbers came from and the paper-vs-code deviations
with the choice made for each (:mod:`inviz.comparison.paper`).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "paper comparison report: Table 1 / Table 2 vs the paper, configuration, deviations and choices"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--table1": "reports/table1.csv ('inviz extract')",
    "--table2": "folder of 'inviz table2' (table2.csv, table2_claims.md)",
    "--metrics-dir": "folder of the stages' metrics JSON files",
    "--out": "output: the report (Markdown)",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import pandas as pd

    from inviz.comparison.paper import deviations_table, paper_comparison, read_claims
    from inviz.core.config import from_dict, read_params
    from inviz.core.io import read_json, write_text
    from inviz.core.tracking import TrackingConfig, stage_run

    params = read_params(args.params)
    tracking = from_dict(TrackingConfig, params.get("mlflow"), "mlflow", str(args.params))
    t1 = Path(args.table1)
    table1 = pd.read_csv(t1) if t1.is_file() else None
    t2dir = Path(args.table2)
    table2 = pd.read_csv(t2dir / "table2.csv") if (t2dir / "table2.csv").is_file() else None
    claims = (
        read_claims((t2dir / "table2_claims.md").read_text(encoding="utf-8"))
        if (t2dir / "table2_claims.md").is_file()
        else []
    )
    metrics = {p.stem: read_json(p) for p in sorted(Path(args.metrics_dir).glob("*.json"))}
    t2m = metrics.get("table2", {})
    source = (
        "raw survey responses (paired t-tests)"
        if t2m.get("input") == "responses"
        else "the paper's published summaries (Welch's t from mean, sd, n)"
    )
    text = paper_comparison(params, table1, table2, claims, metrics, source)
    write_text(args.out, text)
    dev = deviations_table(params)
    out = {
        "n_deviations": int(len(dev)),
        "n_changed_from_default": int((~dev["is_default"]).sum()),
        "claims_hold": sum(1 for _, v in claims if v == "holds"),
    }
    with stage_run("compare", tracking, {}) as tr:
        tr.log_metrics(out)
        tr.log_artifact(args.out)
    log.info(
        "compare: %s (%d deviations listed, %d changed from their default)",
        args.out,
        out["n_deviations"],
        out["n_changed_from_default"],
    )
    return out
