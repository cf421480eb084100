"""``inviz global``: class-level explanations (docs/method.md §4, paper Figure 4) validated with TCAV.

The work is :func:`inviz.concepts.explain.explain_classes`; this stage reads the INV, the model
and the params, writes the result and logs it to MLflow. The CAV cache (``--cav-cache``) is keyed
by the model checkpoint's sha256: a re-trained model never reuses stale CAVs.

Outputs: ``global.csv`` (every class, layer, ranked label, importance, map count, examples, and
the TCAV columns where tested), ``global.md`` (tables and narratives), ``tcav.csv`` (the full TCAV
table), ``tcav_runs.csv`` (per-run scores), ``figures/<class>__<layer>.png/.pdf`` (captioned with
their narratives). With ``global.transfer.enabled`` the maps of the ``transfer`` stage's extra images
(``--transfer``) whose transferred labels reach ``global.transfer.min_confidence`` are added to the
TCAV concept examples, flagged (``n_transferred``); the metrics count the labels with too few
examples with and without them.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params
from inviz.stages._inv_args import INV_PATHS, load_stage_inv

HELP = "global explanations per class and layer (paper Figure 4) with TCAV validation of the top labels"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    **INV_PATHS,
    "--model": "model checkpoint ('inviz train')",
    "--index": "dataset index CSV ('inviz data'): random pool and class images",
    "--cav-cache": "CAV cache folder (persistent; keyed by the model's hash)",
    "--transfer": "transfer folder ('inviz transfer'): extra images with transferred labels",
    "--out": "output folder (tables, figures)",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from inviz.concepts.explain import explain_classes
    from inviz.concepts.importance import GlobalConfig
    from inviz.concepts.report import global_figures, global_markdown
    from inviz.core.io import atomic_path, save_figure, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import stage_run
    from inviz.game.reveal import RevealConfig
    from inviz.views.figures import FigureConfig
    from inviz.views.narratives import NarrativeConfig

    cfg, reveal_cfg, fig_cfg, narrative_cfg, tracking = load_params(
        args.params,
        ("global", GlobalConfig),
        ("masks", RevealConfig),
        ("figures", FigureConfig),
        ("narratives", NarrativeConfig),
    )
    loaded, invs = load_stage_inv(args, reveal_cfg.map_kind)
    extra = []
    if cfg.transfer.enabled:
        from inviz.transfer.store import load_transferred_invs

        extra = load_transferred_invs(
            args.transfer,
            args.images,
            loaded.config.input_size,
            reveal_cfg.map_kind,
            cfg.transfer.min_confidence,
            list(invs[0].layers) if invs else None,
        )
        log.info("global: %d extra images with transferred labels for TCAV", len(extra))
    result = explain_classes(
        invs,
        cfg,
        reveal_cfg,
        loaded,
        args.index,
        args.images,
        args.cav_cache,
        source=args.params,
        extra=extra,
    )

    out = Path(args.out)
    figs = []
    with atomic_path(out, directory=True) as tmp:
        (tmp / "figures").mkdir()
        for name, fig in global_figures(result, cfg.n_examples, fig_cfg, reveal_cfg, narrative_cfg):
            path = tmp / "figures" / f"{name}.{fig_cfg.formats[0]}"
            save_figure(fig, path, formats=fig_cfg.formats, dpi=fig_cfg.dpi)
            figs.append((fig, name))
        write_csv(tmp / "global.csv", result.table)
        write_csv(tmp / "tcav.csv", result.tcav)
        write_csv(tmp / "tcav_runs.csv", result.runs)
        write_text(tmp / "global.md", global_markdown(result, narrative_cfg))
    metrics = {**result.metrics, "transfer": {"enabled": cfg.transfer.enabled, "extra_images": len(extra)}}
    write_json(args.metrics, metrics)
    with stage_run("global", tracking, {"global": cfg}) as tr:
        tr.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        tr.log_metrics({k: v for k, v in metrics["tcav"].items() if v is not None}, prefix="tcav")
        for fig, name in figs:
            tr.log_figure(fig, f"global/{name}.png", saved=out / "figures" / f"{name}.png")
        for f in ("global.csv", "tcav.csv", "global.md"):
            tr.log_artifact(out / f, "global")
    for fig, _ in figs:
        close(fig)
    t = metrics["tcav"]
    log.info(
        "global: %d labels over %d classes; TCAV: %d of %d candidate labels tested, %d significant%s%s",
        metrics["n_labels"],
        metrics["n_classes"],
        t["n_tested"],
        t["n_candidates"],
        t["n_significant"],
        f"; {t['n_too_few_examples']} not tested (fewer than global.tcav.min_examples examples)"
        if t["n_too_few_examples"]
        else "",
        f"; {t['n_too_few_examples_without_transfer']} would lack examples without transferred labels"
        if t["n_with_transferred_examples"]
        else "",
    )
    return metrics
