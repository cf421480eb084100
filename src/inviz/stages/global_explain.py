"""``inviz global``: class-level explanations (METHOD.md §4, paper Figure 4) validated with TCAV.

Per class and layer the top labels by importance (:func:`inviz.concepts.importance.global_explanations`);
per class and TCAV layer a TCAV test of each top label (:mod:`inviz.concepts.tcav`) on concept examples made
of the revealed regions of the maps that carry it, against masked random counter-sets; Figure 4
per class for ``global.figure_layers``. The CAV cache (``--cav-cache``) is keyed by the model
checkpoint's sha256: a re-trained model never reuses stale CAVs.

Outputs: ``global.csv`` (every class, layer, ranked label, importance, map count, examples, and
the TCAV columns where tested), ``global.md``, ``tcav.csv`` (the full TCAV table),
``tcav_runs.csv`` (per-run scores), ``figures/<class>__<layer>.png/.pdf``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "global explanations per class and layer (paper Figure 4) with TCAV validation of the top labels"
log = logging.getLogger(__name__)

TCAV_COLUMNS = ["tcav_status", "n_examples", "n_candidates", "tcav_score", "tcav_std", "random_score_mean", "p_value",
                "p_adjusted", "significant", "direction"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    from inviz.stages._inv_args import add_inv_arguments

    add_inv_arguments(p)
    p.add_argument("--model", required=True, help="model checkpoint ('inviz train')")
    p.add_argument("--index", required=True, help="dataset index CSV ('inviz data'): random pool and class images")
    p.add_argument("--cav-cache", required=True, help="CAV cache folder (persistent; keyed by the model's hash)")
    p.add_argument("--out", required=True, help="output folder (tables, figures)")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses
    from pathlib import Path

    import pandas as pd
    import torch
    from tqdm.auto import tqdm

    from inviz.concepts.importance import (
        GlobalConfig,
        concept_examples,
        draw,
        global_explanations,
        random_examples,
        to_input,
        validate_class,
    )
    from inviz.concepts.tcav import run_tcav
    from inviz.core.config import ParamsError, load_section
    from inviz.core.io import atomic_path, save_figure, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.data.datamodule import read_index
    from inviz.game.reveal import RevealConfig
    from inviz.models.checkpoint import load_checkpoint
    from inviz.views.figures import FigureConfig, global_figure
    from inviz.views.overlays import overlay
    from inviz.views.records import INVPaths, load_images, load_inv, safe_name

    cfg = load_section(args.params, "global", GlobalConfig)
    reveal_cfg = load_section(args.params, "masks", RevealConfig)
    fig_cfg = load_section(args.params, "figures", FigureConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    loaded = load_checkpoint(args.model)
    size = loaded.config.input_size
    mean, std = loaded.config.mean, loaded.config.std
    invs = load_inv(INVPaths.from_args(args), size, reveal_cfg.map_kind)
    layers = list(invs[0].layers) if invs else []
    for key, chosen in (("global.layers", cfg.layers), ("global.figure_layers", cfg.figure_layers),
                        ("global.tcav.layers", cfg.tcav.layers if cfg.tcav_enabled else ())):
        bad = sorted(set(chosen or ()) - set(layers))
        if bad:
            raise ParamsError(f"{args.params}: {key}: {', '.join(bad)} not among the explained layers ({', '.join(layers)})")
    table = global_explanations(invs, cfg)
    Path(args.cav_cache).mkdir(parents=True, exist_ok=True)  # a DVC output even when nothing gets tested

    # ---- TCAV ---------------------------------------------------------------------------------
    tcav_tables: list[Any] = []
    runs: list[Any] = []
    counts = {"trained": 0, "cached": 0}
    if cfg.tcav_enabled and len(table):
        c = cfg.concepts
        index = read_index(args.index)
        explained = {inv.sample_id for inv in invs}
        pool_rows = draw(index[(index["split"] == c.random_split) & ~index["sample_id"].isin(explained)], c.random_pool, c.seed)
        if len(pool_rows) < 2 * cfg.tcav.min_examples:
            log.warning("random pool: only %d images in split '%s' (TCAV wants two sets of %d)", len(pool_rows),
                        c.random_split, cfg.tcav.random_set_size)
        all_cards = [card for inv in invs for cards in inv.cards(cfg.merged).values() for card in cards]
        images_dir = Path(args.images)
        random_x = random_examples(load_images(pool_rows, images_dir, size), all_cards, cfg, reveal_cfg, mean, std)

        def make_examples(pairs: Any) -> torch.Tensor:
            return concept_examples(pairs, cfg, reveal_cfg, mean, std, size)

        jobs = [(int(cl), ly) for cl in table["class_label"].unique() for ly in cfg.tcav.layers]
        for class_label, layer in tqdm(jobs, desc="TCAV", unit="class"):
            rows = draw(index[(index["split"] == c.class_split) & (index["label"] == class_label)], c.class_images, c.seed)
            if rows.empty:
                log.warning("TCAV: no '%s' images of class %d: skipped", c.class_split, class_label)
                continue
            class_x = torch.stack([to_input(im, mean, std) for im in load_images(rows, images_dir, size)])
            layer_cfg = dataclasses.replace(cfg.tcav, layers=(layer,))

            def run_one(concepts: Any, _x: torch.Tensor = class_x, _cl: int = class_label, _cfg: Any = layer_cfg) -> Any:
                res = run_tcav(loaded.model, _cl, concepts, random_x, _x, _cfg, args.cav_cache, loaded.sha256)
                counts["trained"] += res.n_trained
                counts["cached"] += res.n_cached
                runs.append(res.runs.assign(class_label=_cl))
                return res.table

            res = validate_class(run_one, table, invs, class_label, layer, cfg, make_examples)
            if len(res):
                res["layer_name"] = layer
                tcav_tables.append(res)
    tcav = pd.concat(tcav_tables, ignore_index=True) if tcav_tables else pd.DataFrame()
    if len(tcav):
        merged = tcav.rename(columns={"concept": "label", "status": "tcav_status"})
        merged = merged[["class_label", "layer_name", "label", *[c for c in TCAV_COLUMNS if c in merged.columns]]]
        table = table.merge(merged.rename(columns={"layer_name": "layer"}), on=["class_label", "layer", "label"], how="left")
    else:
        for col in TCAV_COLUMNS:
            table[col] = None

    # ---- figures and tables -------------------------------------------------------------------
    by_key = {card.key: (inv, card) for inv in invs for cards in inv.cards(cfg.merged).values() for card in cards}
    figure_layers = list(cfg.figure_layers or layers[-1:])
    out = Path(args.out)
    figs = []
    with atomic_path(out, directory=True) as tmp:
        (tmp / "figures").mkdir()
        for (cl, cname, layer), grp in table[table["layer"].isin(figure_layers)].groupby(["class_label", "class_name", "layer"],
                                                                                          sort=False):
            keys = [k for ex in grp["examples"].dropna() for k in str(ex).split(";") if k]
            tiles = {k: overlay(by_key[k][0].image, by_key[k][1].map, fig_cfg.overlay, reveal_cfg) for k in keys if k in by_key}
            fig = global_figure(grp, tiles, cname, layer, cfg.n_examples, fig_cfg.font_size + 1)
            name = f"{int(cl):02d}_{safe_name(cname)}__{layer}"
            save_figure(fig, tmp / "figures" / f"{name}.{fig_cfg.formats[0]}", formats=fig_cfg.formats, dpi=fig_cfg.dpi)
            figs.append((fig, name))
        write_csv(tmp / "global.csv", table)
        write_csv(tmp / "tcav.csv", tcav)
        write_csv(tmp / "tcav_runs.csv", pd.concat(runs, ignore_index=True) if runs else pd.DataFrame())
        write_text(tmp / "global.md", _markdown(table, figure_layers))
    tested = table[table["tcav_status"].notna()] if "tcav_status" in table else table.iloc[:0]
    ok = tested[tested["tcav_status"] == "ok"]
    metrics = {
        "n_classes": int(table["class_label"].nunique()) if len(table) else 0,
        "n_layers": int(table["layer"].nunique()) if len(table) else 0,
        "n_labels": int(len(table)),
        "mean_labels_per_class_layer": float(table.groupby(["class_label", "layer"]).size().mean()) if len(table) else 0.0,
        "tcav": {
            "n_tested": int(len(tested)),
            "n_scored": int(len(ok)),
            "n_significant": int(ok["significant"].astype(bool).sum()) if len(ok) else 0,
            "n_too_few_examples": int((tested["tcav_status"] == "too_few_examples").sum()),
            "share_significant": float(ok["significant"].astype(bool).mean()) if len(ok) else None,
            "mean_score": float(ok["tcav_score"].mean()) if len(ok) else None,
            "cavs_trained": counts["trained"],
            "cavs_cached": counts["cached"],
        },
    }
    write_json(args.metrics, metrics)
    with stage_run("global", tracking, {"global": cfg}) as tr:
        tr.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        tr.log_metrics({k: v for k, v in metrics["tcav"].items() if v is not None}, prefix="tcav")
        for fig, name in figs:
            tr.log_figure(fig, f"global/{name}.png")
        for f in ("global.csv", "tcav.csv", "global.md"):
            tr.log_artifact(out / f, "global")
    for fig, _ in figs:
        close(fig)
    log.info("global: %d labels over %d classes; TCAV %d tested, %d significant", metrics["n_labels"], metrics["n_classes"],
             metrics["tcav"]["n_tested"], metrics["tcav"]["n_significant"])
    return metrics


def _markdown(table: Any, layers: list[str]) -> str:
    """Global explanations of ``layers`` as Markdown: one table per class."""
    lines = ["# Global explanations (METHOD.md §4)", "",
             "Importance = mean weight (% of the layer) of the merged cluster maps a label tops; TCAV: score "
             "(sign count), corrected p-value, significance.", ""]
    for (cname, layer), grp in table[table["layer"].isin(layers)].groupby(["class_name", "layer"], sort=False):
        lines += [f"## {cname} — {layer}", "", "| rank | label | importance % | maps | TCAV | p (adj.) | significant |",
                  "|---|---|---|---|---|---|---|"]
        for r in grp.itertuples():
            status = getattr(r, "tcav_status", None)
            if status == "ok":
                tc = f"{r.tcav_score:.2f}"
                p = f"{r.p_adjusted:.3g}"
                sig = "yes" if bool(r.significant) else "no"
            else:
                tc, p, sig = (str(status).replace("_", " ") if isinstance(status, str) else "—"), "—", "—"
            lines.append(f"| {r.rank} | {r.label} | {r.importance:.1f} | {r.n_maps} | {tc} | {p} | {sig} |")
        lines.append("")
    return "\n".join(lines)
