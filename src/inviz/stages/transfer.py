"""``inviz transfer``: labels for new images from the labelled cluster maps (docs/method.md §9).

Builds the label model (:mod:`inviz.transfer`) from the merged, labelled cluster maps of
``labels_analyze``, evaluates both variants leave-one-image-out against the baselines (and the
closed loop on the demo), prints the table, and labels the extra correctly classified test-pool
images (``transfer.more_images``) for the global explanations; see :func:`inviz.transfer.run.run_transfer`.

Outputs: ``--out`` (``data/transfer/``: ``label_model.json``, ``images.csv``, ``labels/``,
``extract/``; :mod:`inviz.transfer.store`), ``--reports`` (``loio.md``, ``loio.csv`` (per
method and layer), ``loio_maps.csv`` (per held-out map and method), ``loio_calibration.csv``
(agreement by confidence bin), ``loio.png/.pdf``), ``--metrics``.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = (
    "label transfer: label model from the labelled cluster maps, leave-one-image-out evaluation, "
    "labels for more test-pool images"
)
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--selected": "selected (played) images CSV ('inviz select')",
    "--images": "image folder ('inviz data')",
    "--index": "dataset index CSV ('inviz data'): the test pool",
    "--parts": "ground-truth part masks ('inviz data'; empty for real data: no closed loop)",
    "--model": "model checkpoint ('inviz train')",
    "--extract": "extraction folder of the played images ('inviz extract')",
    "--manifest": "masks manifest CSV ('inviz masks')",
    "--cluster-labels": "ranked labels per cluster map CSV ('inviz labels_analyze')",
    "--inv": "merged INV table CSV ('inviz labels_analyze')",
    "--merged-scores": "label scores per merged map CSV ('inviz labels_analyze')",
    "--out": "output: transfer folder (label model, extra images, their extraction and labels)",
    "--reports": "output: report folder (leave-one-image-out table and figure)",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import pandas as pd
    from rich.console import Console
    from rich.markdown import Markdown

    from inviz.core.io import atomic_path, save_figure, write_csv, write_json, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import stage_run
    from inviz.data.loading import read_index
    from inviz.data.parts import PartMasks
    from inviz.fmaps.explain import ExtractConfig
    from inviz.fmaps.store import load_results
    from inviz.game.manifest import read_manifest
    from inviz.game.reveal import RevealConfig
    from inviz.labels.closed_loop import ClosedLoopConfig
    from inviz.models.checkpoint import load_checkpoint
    from inviz.stages.extract import read_selected
    from inviz.transfer.config import TransferConfig
    from inviz.transfer.report import loio_figure, loio_markdown
    from inviz.transfer.run import TransferInputs, run_transfer
    from inviz.transfer.store import write_labels
    from inviz.views.records import read_table

    cfg, extract_cfg, reveal_cfg, loop_cfg, tracking = load_params(
        args.params,
        ("transfer", TransferConfig),
        ("extract", ExtractConfig),
        ("masks", RevealConfig),
        ("labels_analyze.closed_loop", ClosedLoopConfig),
    )
    loaded = load_checkpoint(args.model)
    inputs = TransferInputs(
        results=load_results(args.extract),
        manifest=read_manifest(args.manifest),
        cluster_labels=read_table(
            Path(args.cluster_labels), "cluster labels", ["cluster_id", "label", "score"]
        ),
        inv=read_table(Path(args.inv), "merged INV table", ["merged_id", "members"]),
        merged_scores=read_table(Path(args.merged_scores), "merged label scores", ["merged_id", "label"]),
        parts=PartMasks.load(args.parts),
        index=read_index(args.index),
        images_dir=Path(args.images),
        selected=read_selected(args.selected),
    )
    out = Path(args.out)
    result = run_transfer(inputs, cfg, extract_cfg, reveal_cfg, loop_cfg, loaded, out / "extract")
    result.model.save(out / "label_model.json")
    write_csv(out / "images.csv", result.images)
    if result.transferred is not None:
        write_labels(out / "labels", result.transferred)
    else:
        from inviz.transfer.apply import transfer_labels

        write_labels(out / "labels", transfer_labels([], result.model))

    k = cfg.evaluation.top
    metrics = result.metrics
    extra = _extra_lines(metrics)
    text = (
        loio_markdown(result.table, result.closed_loop, k, cfg.variant, extra, result.calibration)
        if len(result.table)
        else ""
    )
    with atomic_path(args.reports, directory=True) as tmp:
        write_csv(tmp / "loio.csv", result.table)
        write_csv(tmp / "loio_maps.csv", result.rows)
        write_csv(tmp / "loio_calibration.csv", result.calibration)
        write_text(
            tmp / "loio.md",
            text or "# Leave-one-image-out evaluation\n\nDisabled (transfer.evaluation.enabled).\n",
        )
        fig = loio_figure(result.table, k) if len(result.table) else None
        if fig is not None:
            save_figure(fig, tmp / "loio.png", formats=("png", "pdf"))
    write_json(args.metrics, metrics)
    with stage_run("transfer", tracking, {"transfer": cfg}, tags={"model_sha256": loaded.sha256}) as tr:
        tr.log_metrics(
            {
                k2: v
                for k2, v in pd.json_normalize(metrics, sep=".").iloc[0].items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        )
        if fig is not None:
            tr.log_figure(fig, "transfer/loio.png", saved=Path(args.reports) / "loio.png")
        tr.log_artifact(Path(args.reports) / "loio.md", "transfer")
        tr.log_artifact(out / "label_model.json", "transfer")
    if fig is not None:
        close(fig)
    if text:
        Console(width=200).print(Markdown(text))
    log.info(
        "transfer: label model of %d labelled maps (%s); %d extra images labelled",
        metrics["n_labelled_maps"],
        cfg.variant,
        len(result.images),
    )
    return metrics


def _extra_lines(metrics: dict[str, Any]) -> list[str]:
    """Lines about the extra images under the evaluation table."""
    more = metrics.get("more_images") or {}
    if not more:
        return []
    return [
        "## More images for the global explanations",
        "",
        f"{more.get('chosen', 0)} correctly classified test-pool images (of {more.get('pool', 0)} unplayed) "
        f"explained with the same extract settings in {more.get('seconds_extract', 0):.1f} s "
        f"({more.get('seconds_per_image') or 0:.3f} s per image); {more.get('n_maps', 0)} cluster maps, "
        f"{100 * more.get('share_labelled', 0):.1f} % labelled; confidence quartiles "
        f"{', '.join(f'{q:.2f}' for q in more.get('confidence_quartiles', []))}, mean coverage "
        f"{more.get('mean_coverage', 0):.3f}.",
    ]
