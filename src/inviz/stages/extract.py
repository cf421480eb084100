"""``inviz extract``: INV feature-map analysis (docs/method.md §1) of the selected images, and Table 1.

Inputs: the selected images (``data/selected.csv`` from ``inviz select``: ``sample_id, path,
label, …``; ``path`` relative to ``--images``) and the model checkpoint. Parameters: the
``extract`` section (:class:`inviz.fmaps.explain.ExtractConfig`; run settings under ``extract.run``).

Outputs
-------
``--out`` (``data/extract/``), the extraction folder, resumable (declared ``persist`` in dvc.yaml):

- ``manifest.json`` — format, fingerprint of config, runtime (batch size, device type, t-SNE
  backend, torch) and model, config, runtime, model hash, layers;
- ``clusters.parquet`` — one row per cluster: ``cluster_id`` (``"<sample_id>|<layer>|<cluster>"``,
  cluster 0 = heaviest), ``sample_id, layer, module, cluster, weight, n_fmaps, channels, k,
  silhouette, pruned, target, height, width, map_file, map_index``;
- ``layer_stats.parquet`` — one row per image and layer: threshold, kept channels and their
  weights, t-SNE embedding, every k tried with its silhouette, chosen k, labels, Table 1 quantities;
- ``shards/<name>.{maps.npz,clusters.parquet,layers.parquet}`` — the shards the tables are merged
  from; ``maps.npz`` holds ``raw__<layer>`` (raw weighted maps ``A_C``) and, unless
  ``map_scaling: raw``, ``map__<layer>`` (maps as the authors displayed them), indexed by the
  cluster table's ``map_index``.

Read it with :func:`inviz.fmaps.store.load_results` (``.clusters``, ``.layers``,
``.cluster_map(cluster_id)``, ``.explanations()``).

``--table1-csv/--table1-md/--table1-tex``: Table 1 (docs/method.md §1.10) per layer (mean ± sd over
images); ``--comparison``: Markdown table beside the paper's values; ``--metrics``: JSON (DVC metrics).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = (
    "INV feature-map analysis (Grad-CAM weights, t-SNE, Ward clusters, pruning) of the selected images "
    "+ Table 1"
)
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--images": "dataset folder written by 'inviz data'",
    "--selected": "selected images CSV written by 'inviz select'",
    "--model": "model checkpoint written by 'inviz train'",
    "--out": "output: extraction folder (tables, cluster-map shards)",
    "--table1-csv": "output: Table 1 as CSV",
    "--table1-md": "output: Table 1 as Markdown",
    "--table1-tex": "output: Table 1 as LaTeX",
    "--comparison": "output: Markdown comparison with the paper's Table 1",
    "--metrics": "output: metrics JSON",
}


SELECTED_COLUMNS = ("sample_id", "path", "label")


def read_selected(path: str) -> Any:
    import pandas as pd

    from inviz.core.errors import InvizError

    try:
        frame = pd.read_csv(path, dtype={"sample_id": str, "path": str})
    except FileNotFoundError as err:
        raise InvizError(f"{path}: selected images file not found (run the 'select' stage first)") from err
    missing = [c for c in SELECTED_COLUMNS if c not in frame.columns]
    if missing:
        raise InvizError(
            f"{path}: missing column(s) {', '.join(missing)}; expected at least {', '.join(SELECTED_COLUMNS)}"
        )
    dup = frame["sample_id"].duplicated()
    if dup.any():
        raise InvizError(f"{path}: duplicate sample_id(s): {', '.join(frame.loc[dup, 'sample_id'].head(5))}")
    return frame


def run(args: argparse.Namespace) -> dict[str, Any]:
    from inviz.core.compute import resolve_device
    from inviz.core.tracking import stage_run
    from inviz.data.loading import IndexedImageDataset, eval_transform
    from inviz.fmaps.explain import ExtractConfig, set_threads
    from inviz.fmaps.layers import check_spatial, expand_layers
    from inviz.fmaps.lightning import run_extraction
    from inviz.fmaps.shards import runtime
    from inviz.models.checkpoint import load_checkpoint

    cfg, tracking = load_params(args.params, ("extract", ExtractConfig))
    set_threads(cfg.run.threads)
    device = resolve_device(cfg.run.device)
    loaded = load_checkpoint(args.model)
    mc = loaded.config
    # last_conv:N -> module names; unknown or non-spatial layers fail before any output is written
    cfg = cfg.replace(layers=expand_layers(loaded.model, cfg.layers, mc.input_size))
    shapes = check_spatial(loaded.model, cfg.layers, mc.input_size)
    log.info("extract: layers (C, H, W) %s", shapes)
    selected = read_selected(args.selected)
    dataset = IndexedImageDataset(selected, args.images, eval_transform(mc.input_size, mc.mean, mc.std))
    ids = selected["sample_id"].astype(str).tolist()

    result = run_extraction(loaded.model, dataset, ids, args.out, cfg, model_sha256=loaded.sha256)
    if not result.is_global_zero:  # another process of a distributed run: rank 0 reports and logs
        return {}
    # one MLflow run per stage execution, opened by rank 0 once the run is complete (timed from the
    # stage's start, see inviz.core.tracking.mark_stage_start)
    tags = {"model_sha256": loaded.sha256, **{f"runtime.{k}": str(v) for k, v in runtime(cfg).items()}}
    with stage_run("extract", tracking, {"extract": cfg}, tags=tags) as tr:
        metrics = _write_reports(args, cfg, result, len(ids), str(device), tr)
    log.info(
        "extract: %d images, %d cluster maps kept (paper: %d)",
        metrics["n_images"],
        metrics["n_cluster_maps_kept"],
        metrics["paper_n_cluster_maps"],
    )
    return metrics


def _write_reports(
    args: argparse.Namespace, cfg: Any, result: Any, n_requested: int, device: str, tr: Any
) -> dict[str, Any]:
    """Table 1 (CSV, Markdown, LaTeX), the comparison with the paper and the metrics; logged to MLflow."""
    from pathlib import Path

    from inviz.core.io import write_csv, write_json, write_text
    from inviz.fmaps.embedding import resolve_backend
    from inviz.fmaps.table1 import (
        PAPER_N_CLUSTER_MAPS,
        compare_with_paper,
        comparison_markdown,
        display_rows,
        table1,
        to_latex,
        to_markdown,
    )

    layers = result.layers
    table = table1(layers, cfg.layers, cfg.table1_weight_base)
    header, rows = display_rows(table)
    write_csv(args.table1_csv, table.reset_index())
    n_images = int(layers["sample_id"].nunique())
    caption = (
        f"INV analysis per layer, mean ± sd over {n_images} images (weights: {cfg.weights}, "
        f"threshold: {cfg.threshold.rule}, pruning: {'on' if cfg.prune else 'off'})."
    )
    write_text(args.table1_md, f"# Table 1\n\n{caption}\n\n" + to_markdown(header, rows))
    write_text(args.table1_tex, to_latex(header, rows, caption=caption))
    cmp = compare_with_paper(table)
    n_kept_maps = int((~result.clusters["pruned"].astype(bool)).sum())
    write_text(args.comparison, comparison_markdown(cmp, n_images, n_kept_maps))
    known = cmp.dropna(subset=["leftover_clusters_paper"])
    metrics: dict[str, Any] = {
        "n_images": n_images,
        "n_layers": len(cfg.layers),
        "n_clusters": int(len(result.clusters)),
        "n_cluster_maps_kept": n_kept_maps,
        "paper_n_cluster_maps": PAPER_N_CLUSTER_MAPS,
        "n_resumed": result.n_skipped,
        "n_missing": int(n_requested - n_images),
        "seconds": round(result.seconds, 3),
        "seconds_per_image": round(result.seconds / result.n_new, 4) if result.n_new else None,
        "n_processes": result.world_size,
        "tsne_backend": resolve_backend(cfg.tsne.backend, device),
        "device": device,
        "status_counts": {str(k): int(v) for k, v in layers["status"].value_counts().items()},
        "table1": {
            layer: {
                "fmaps_threshold": r["fmaps_threshold"],
                "leftover_clusters": r["leftover_clusters"],
                "leftover_fmaps": r["leftover_fmaps"],
                "leftover_weight": r["leftover_weight"],
            }
            for layer, r in table.iterrows()
        },
    }
    if len(known):
        metrics["vs_paper_mean_abs_diff"] = {
            col: float(known[f"{col}_diff"].abs().mean())
            for col in ("leftover_clusters", "leftover_fmaps", "leftover_weight")
        }
    write_json(args.metrics, metrics)
    tr.log_metrics({k: v for k, v in metrics.items() if k not in ("status_counts",)})
    tr.log_table(table.reset_index(), "table1.csv")
    for path in (args.table1_md, args.table1_tex, args.comparison, args.metrics):
        tr.log_artifact(path, "extract")
    tr.log_artifact(Path(args.out) / "layer_stats.parquet", "extract")
    tr.log_artifact(Path(args.out) / "clusters.parquet", "extract")
    return metrics
