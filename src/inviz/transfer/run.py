"""Label transfer in one call (docs/method.md §9): what the ``transfer`` stage runs.

:func:`run_transfer` builds the :class:`inviz.transfer.model.LabelModel` from the labelled
(merged) cluster maps, evaluates every variant leave-one-image-out against the baselines (with
the closed loop where part masks exist), and labels the extra test-pool images
(:mod:`inviz.transfer.more_images`). It returns everything the stage writes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from inviz.transfer.config import TransferConfig
from inviz.transfer.evaluate import calibration, closed_loop_accuracy, leave_one_image_out, summarise
from inviz.transfer.maps import LabelledMap, TransferDataError, labelled_maps
from inviz.transfer.model import LabelModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TransferInputs:
    """The pipeline outputs a label model is built from.

    results : :class:`inviz.fmaps.store.ExtractionResults` of the played images.
    manifest : the masks manifest. cluster_labels, inv, merged_scores : ``labels_analyze``'s tables.
    parts : :class:`inviz.data.parts.PartMasks` (empty for real data: no closed loop).
    index : the dataset index. images_dir : its folder. selected : the played images (``selected.csv``).
    """

    results: Any
    manifest: pd.DataFrame
    cluster_labels: pd.DataFrame
    inv: pd.DataFrame
    merged_scores: pd.DataFrame
    parts: Any
    index: pd.DataFrame
    images_dir: Path
    selected: pd.DataFrame


@dataclass(frozen=True, eq=False)
class TransferRun:
    """What :func:`run_transfer` produced.

    model : the label model. rows : leave-one-image-out rows (one per held-out map and method).
    table : their summary per method and layer. calibration : agreement by confidence bin.
    closed_loop : method -> accuracy (None without part masks). images : the extra images explained.
    transferred : their transferred labels (:class:`inviz.transfer.apply.Transferred`, None when
    ``more_images.enabled`` is false).
    metrics : the stage's metrics.
    """

    model: LabelModel
    rows: pd.DataFrame
    table: pd.DataFrame
    calibration: pd.DataFrame
    closed_loop: dict[str, float] | None
    images: pd.DataFrame
    transferred: Any
    metrics: dict[str, Any]


def build_label_model(inputs: TransferInputs, cfg: TransferConfig, loaded: Any) -> LabelModel:
    """Build the label model from the labelled maps of ``cfg.train_on`` kind.

    Parameters
    ----------
    inputs : TransferInputs
    cfg : TransferConfig
    loaded : LoadedModel
        The CNN; its sha256 must be the extraction's (the maps are its maps).

    Returns
    -------
    LabelModel
    """
    res = inputs.results
    extracted_by = res.manifest.get("model_sha256")
    if extracted_by and extracted_by != loaded.sha256:
        raise TransferDataError(
            f"{res.root}: extracted with model {str(extracted_by)[:12]}…, not the given checkpoint "
            f"({loaded.sha256[:12]}…): re-run 'extract'"
        )
    maps = labelled_maps(
        res, inputs.manifest, inputs.cluster_labels, inputs.inv, inputs.merged_scores, cfg.train_on
    )
    layers = list(res.manifest.get("layers") or dict.fromkeys(res.layers["layer"]))
    n_channels = res.layers.drop_duplicates("layer").set_index("layer")["n_channels"].astype(int)
    by_layer: dict[str, list[LabelledMap]] = {ly: [] for ly in layers}
    for m in maps:
        by_layer[m.layer].append(m)
    return LabelModel(
        cfg,
        loaded.sha256,
        dict(res.manifest.get("config") or {}),
        list(loaded.class_names),
        {ly: int(n_channels[ly]) for ly in layers if ly in n_channels.index},
        by_layer,
    )


def _closed_loop(inputs: TransferInputs, rows: pd.DataFrame, reveal_cfg: Any, loop_cfg: Any) -> dict | None:
    """Closed-loop accuracy of each method on the held-out game cluster maps (None without part masks)."""
    import numpy as np

    from inviz.game.coverage import maps_part_coverage
    from inviz.labels.closed_loop import demo_lexicon

    if not len(inputs.parts) or rows.empty:
        return None
    man = inputs.manifest.drop_duplicates("cluster_id").set_index("cluster_id")
    ids = sorted({int(k[1:]) for k in rows["key"]})
    maps = {
        c: np.asarray(inputs.results.cluster_map(str(man.loc[c, "extract_id"]), reveal_cfg.map_kind), float)
        for c in ids
    }
    coverage = maps_part_coverage(maps, {c: str(man.loc[c, "image"]) for c in ids}, inputs.parts, reveal_cfg)
    return closed_loop_accuracy(rows, coverage, demo_lexicon(loop_cfg), loop_cfg)


def run_transfer(
    inputs: TransferInputs,
    cfg: TransferConfig,
    extract_cfg: Any,
    reveal_cfg: Any,
    loop_cfg: Any,
    loaded: Any,
    extra_dir: str | Path,
    progress: bool = True,
) -> TransferRun:
    """Build the label model, evaluate it leave-one-image-out, label the extra images.

    Parameters
    ----------
    inputs : TransferInputs
    cfg : TransferConfig
        The ``transfer`` section.
    extract_cfg : ExtractConfig
        The ``extract`` section (extra images are explained with it).
    reveal_cfg : RevealConfig
        The ``masks`` section (closed loop: the game's masks and ``map_kind``).
    loop_cfg : ClosedLoopConfig
        ``labels_analyze.closed_loop``.
    loaded : LoadedModel
        The CNN.
    extra_dir : str or Path
        Extraction folder of the extra images (resumable).
    progress : bool
        Progress bars.

    Returns
    -------
    TransferRun
    """
    from inviz.transfer.more_images import IMAGE_COLUMNS, label_more_images

    t0 = time.perf_counter()
    model = build_label_model(inputs, cfg, loaded)
    layers = list(model.layers)
    targets = labelled_maps(inputs.results, inputs.manifest, inputs.cluster_labels, kind="cluster")
    rows, table, calib, loop = pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), None
    if cfg.evaluation.enabled:
        train = {ly: model.data(ly) for ly in layers}
        rows = leave_one_image_out(train, targets, cfg, progress)
        table = summarise(rows, layers)
        calib = calibration(rows, cfg.evaluation.confidence_bins)
        loop = _closed_loop(inputs, rows, reveal_cfg, loop_cfg)
    t1 = time.perf_counter()
    images, transferred, stats = pd.DataFrame(columns=IMAGE_COLUMNS), None, {}
    if cfg.more_images.enabled:
        exclude = inputs.selected["sample_id"].astype(str).tolist()
        images, transferred, stats = label_more_images(
            loaded,
            inputs.index,
            inputs.images_dir,
            exclude,
            model,
            extract_cfg,
            cfg.more_images,
            extra_dir,
            cfg.run.batch_size,
        )
    metrics = _metrics(model, table, loop, transferred, stats, cfg)
    metrics["seconds"] = {"evaluation": round(t1 - t0, 3), "more_images": round(time.perf_counter() - t1, 3)}
    return TransferRun(model, rows, table, calib, loop, images, transferred, metrics)


def _metrics(
    model: LabelModel,
    table: pd.DataFrame,
    loop: dict[str, float] | None,
    transferred: Any,
    stats: dict[str, Any],
    cfg: TransferConfig,
) -> dict[str, Any]:
    """Collect the stage's metrics: training maps, the ``all``-layer agreement, the extra images."""
    overall = table[table["layer"] == "all"].set_index("method") if len(table) else pd.DataFrame()
    out: dict[str, Any] = {
        "variant": cfg.variant,
        "train_on": cfg.train_on,
        "n_labelled_maps": sum(len(v) for v in model.maps.values()),
        "loio": {
            m: {
                "top1": float(r["top1"]),
                f"top{cfg.evaluation.top}": float(r["topk"]),
                "answered": float(r["answered"]),
                **({"coverage": float(r["coverage"])} if pd.notna(r["coverage"]) else {}),
            }
            for m, r in overall.iterrows()
        },
        "closed_loop": loop,
        "more_images": stats,
    }
    if transferred is not None and len(transferred.maps):
        m = transferred.maps
        out["more_images"] = {
            **stats,
            "n_maps": int(len(m)),
            "share_labelled": float((m["best_labels"] != "").mean()),
            "confidence_quartiles": [float(q) for q in m["confidence"].quantile([0.25, 0.5, 0.75])],
            "mean_confidence": float(m["confidence"].mean()),
            "mean_coverage": float(m["coverage"].mean()),
            "n_merged_maps": int(len(transferred.inv)),
        }
    return out
