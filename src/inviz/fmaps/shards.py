"""Writing the extraction folder: shards as images are explained, resume, merged tables (docs/method.md §1).

The folder's layout and its reader are :mod:`inviz.fmaps.store`. :func:`write_shard` turns records
into one shard (maps, clusters, then layers, which marks it complete); :func:`prepare_output`
starts or resumes a folder (keyed by :func:`fingerprint`), on resume
:func:`remove_incomplete_shards` drops interrupted shards and :func:`finished_ids` lists the images
already done; :func:`consolidate` merges the complete shards into ``clusters.parquet`` and
``layer_stats.parquet``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation
from inviz.fmaps.store import (
    CLUSTER_COLUMNS,
    FORMAT,
    LAYER_COLUMNS,
    MERGED_TABLES,
    cluster_id,
    complete_shards,
    one_copy,
    read_shards,
)

if TYPE_CHECKING:
    import pandas as pd

    from inviz.fmaps.explain import ExtractConfig

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# tables


def _cluster_row(
    ex: ImageExplanation, name: str, le: LayerExplanation, cl: ClusterResult, map_file: str, index: int
) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id(ex.sample_id, name, cl.cluster),
        "sample_id": ex.sample_id,
        "layer": name,
        "module": le.module,
        "cluster": cl.cluster,
        "weight": cl.weight,
        "n_fmaps": cl.n_fmaps,
        "channels": [int(v) for v in cl.channels],
        "k": le.k,
        "silhouette": le.silhouette,
        "pruned": cl.pruned,
        "target": ex.target,
        "height": le.height,
        "width": le.width,
        "map_file": map_file,
        "map_index": index,
    }


def _layer_row(ex: ImageExplanation, name: str, le: LayerExplanation) -> dict[str, Any]:
    return {
        "sample_id": ex.sample_id,
        "layer": name,
        "module": le.module,
        "target": ex.target,
        "pred": ex.pred,
        "logit": ex.logit,
        "n_channels": le.n_channels,
        "height": le.height,
        "width": le.width,
        "threshold": math.nan if le.threshold is None else le.threshold,
        "total_weight": le.total_weight,
        "scale": le.scale,
        "n_positive": le.n_positive,
        "n_kept": le.n_kept,
        "status": le.status,
        "k": le.k,
        "silhouette": le.silhouette,
        "ks": list(le.ks),
        "silhouettes": list(le.silhouettes),
        "n_clusters": len(le.clusters),
        "n_clusters_kept": len(le.kept_clusters),
        "fmaps_kept": le.fmaps_kept,
        "leftover_fmaps_pct": le.leftover_fmaps_pct,
        "leftover_weight_pct": le.leftover_weight_pct,
        "leftover_weight_of_kept_pct": le.leftover_weight_of_kept_pct,
        "embedding_method": le.embedding_method,
        "perplexity": le.perplexity,
        "kl": le.kl,
        "tsne_iter": le.tsne_iter,
        "channels": [int(v) for v in le.channels],
        "weights": [float(v) for v in le.weights],
        "labels": [int(v) for v in le.labels],
        "embedding_x": [float(v) for v in le.embedding[:, 0]] if le.n_kept else [],
        "embedding_y": [float(v) for v in le.embedding[:, 1]] if le.n_kept else [],
    }


def to_tables(
    explanations: Sequence[ImageExplanation], map_file: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Turn records into the two tables and the maps of one shard.

    Parameters
    ----------
    explanations : the records of the shard's images.
    map_file : the shard's ``maps.npz`` path (relative to the folder), stored in every cluster row.

    Returns
    -------
    clusters : DataFrame with :data:`CLUSTER_COLUMNS`, one row per cluster.
    layer_stats : DataFrame with :data:`LAYER_COLUMNS`, one row per image and layer.
    maps : dict ``raw__<layer>`` (and ``map__<layer>`` when scaled maps differ) -> ndarray of shape
        (n_clusters_of_layer, H, W), row ``map_index`` of each cluster.
    """
    import pandas as pd

    crow: list[dict[str, Any]] = []
    lrow: list[dict[str, Any]] = []
    raw: dict[str, list[np.ndarray]] = {}
    shown: dict[str, list[np.ndarray]] = {}
    for ex in explanations:
        for name, le in ex.layers.items():
            for cl in le.clusters:
                index = len(raw.setdefault(name, []))
                raw[name].append(cl.raw_map)
                shown.setdefault(name, []).append(cl.map)
                crow.append(_cluster_row(ex, name, le, cl, map_file, index))
            lrow.append(_layer_row(ex, name, le))
    maps: dict[str, np.ndarray] = {}
    for name, arrs in raw.items():
        maps[f"raw__{name}"] = np.stack(arrs)
        if any(not np.array_equal(a, b) for a, b in zip(arrs, shown[name], strict=True)):
            maps[f"map__{name}"] = np.stack(shown[name])
    return pd.DataFrame(crow, columns=CLUSTER_COLUMNS), pd.DataFrame(lrow, columns=LAYER_COLUMNS), maps


# ----------------------------------------------------------------------------------------------
# shards and resume


def write_shard(out_dir: str | Path, name: str, explanations: Sequence[ImageExplanation]) -> Path:
    """Write one shard into ``out_dir/shards``: maps, then clusters, then (marking it complete) layers.

    Parameters
    ----------
    out_dir : the extraction folder.
    name : the shard's name (unique per writer and run).
    explanations : the records of the shard's images.

    Returns
    -------
    Path of the shard's layers file.
    """
    from inviz.core.io import save_npz, write_parquet

    shards = Path(out_dir) / "shards"
    shards.mkdir(parents=True, exist_ok=True)
    map_file = f"shards/{name}.maps.npz"
    clusters, layers, maps = to_tables(explanations, map_file)
    save_npz(Path(out_dir) / map_file, **maps)
    write_parquet(shards / f"{name}.clusters.parquet", clusters)
    write_parquet(shards / f"{name}.layers.parquet", layers)  # last: marks the shard complete
    return shards / f"{name}.layers.parquet"


def remove_incomplete_shards(out_dir: str | Path) -> int:
    """Delete the files of shards whose layers file is missing (an interrupted write).

    Parameters
    ----------
    out_dir : the extraction folder being resumed.

    Returns
    -------
    int, the number of files removed (left-over temporaries of atomic writes included).
    """
    shards = Path(out_dir) / "shards"
    if not shards.is_dir():
        return 0
    done = set(complete_shards(out_dir))
    removed = 0
    for p in shards.iterdir():
        # temporaries of atomic writes start with "."; other files belong to their shard's stem
        if p.name.startswith(".") or p.name.split(".", 1)[0] not in done:
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def finished_ids(out_dir: str | Path) -> set[str]:
    """Return the sample ids with results in complete shards (the images a resumed run skips).

    Parameters
    ----------
    out_dir : str or Path
        The extraction folder.

    Returns
    -------
    set of str
    """
    import pandas as pd

    ids: set[str] = set()
    for name in complete_shards(out_dir):
        frame = pd.read_parquet(Path(out_dir) / "shards" / f"{name}.layers.parquet", columns=["sample_id"])
        ids.update(frame["sample_id"].astype(str))
    return ids


def _in_order(
    clusters: pd.DataFrame, layers: pd.DataFrame, sample_ids: Iterable[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Only the rows of ``sample_ids``, in that order (layers in order of first appearance)."""
    order = {s: i for i, s in enumerate(str(s) for s in sample_ids)}
    extra = set(layers["sample_id"]) - set(order)
    if extra:
        log.info("%d image(s) in the shards are not requested and are left out", len(extra))
    layers = layers[layers["sample_id"].isin(order)]
    clusters = clusters[clusters["sample_id"].isin(order)]
    layer_order = {name: i for i, name in enumerate(dict.fromkeys(layers["layer"]))}
    layers = layers.assign(_o=layers["sample_id"].map(order), _l=layers["layer"].map(layer_order))
    layers = layers.sort_values(["_o", "_l"], kind="stable").drop(columns=["_o", "_l"])
    clusters = clusters.assign(_o=clusters["sample_id"].map(order), _l=clusters["layer"].map(layer_order))
    clusters = clusters.sort_values(["_o", "_l", "cluster"], kind="stable").drop(columns=["_o", "_l"])
    return clusters, layers


def consolidate(
    out_dir: str | Path, sample_ids: Iterable[str] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Merge the complete shards into ``clusters.parquet`` and ``layer_stats.parquet``.

    Parameters
    ----------
    out_dir : the extraction folder.
    sample_ids : when given, only these images are kept, in this order (results of other images
        are counted and left out). An image found in several shards keeps one copy, layer rows
        and clusters from the same shard (:func:`inviz.fmaps.store.one_copy`).

    Returns
    -------
    clusters : DataFrame, one row per cluster.
    layer_stats : DataFrame, one row per image and layer.

    Notes
    -----
    Both tables carry ``attrs["inviz"] = {"fingerprint": <manifest's>, "merge": <token>}``, so that
    :func:`inviz.fmaps.store.load_results` can tell tables of another run or merge.
    """
    from inviz.core.io import read_json, write_parquet

    out = Path(out_dir)
    clusters, layers = one_copy(*read_shards(out, with_shard=True))
    if sample_ids is not None:
        clusters, layers = _in_order(clusters, layers, sample_ids)
    layers = layers.reset_index(drop=True)
    clusters = clusters.reset_index(drop=True)
    manifest = out / "manifest.json"
    tag = {
        "fingerprint": read_json(manifest).get("fingerprint") if manifest.is_file() else None,
        "merge": uuid.uuid4().hex,
    }
    clusters.attrs["inviz"] = layers.attrs["inviz"] = tag
    write_parquet(out / "clusters.parquet", clusters)
    write_parquet(out / "layer_stats.parquet", layers)
    return clusters, layers


# ----------------------------------------------------------------------------------------------
# the folder of a run: fingerprint, manifest, resume


def runtime(cfg: ExtractConfig) -> dict[str, Any]:
    """Return the run settings that can change results: batch size, device type, t-SNE backend, torch.

    An image's results do not depend on its batch companions, its process or a resume (see
    :class:`inviz.fmaps.explain.Explainer`), but the network's rounding depends on the batch size
    and the device, and the t-SNE backends compute different embeddings.

    Parameters
    ----------
    cfg : the extraction settings (``tsne.backend: auto`` is resolved on ``run.device``).

    Returns
    -------
    dict with ``batch_size`` (and any other :data:`inviz.fmaps.explain.RunConfig.RESULT_KEYS`),
    ``device_type``, ``tsne_backend``, ``torch``.
    """
    import torch

    from inviz.core.compute import resolve_device
    from inviz.core.config import to_dict
    from inviz.fmaps.embedding import resolve_backend

    device = resolve_device(cfg.run.device)
    run = to_dict(cfg.run)
    return {
        **{k: run[k] for k in cfg.run.RESULT_KEYS},
        "device_type": device.type,
        "tsne_backend": resolve_backend(cfg.tsne.backend, device),
        "torch": torch.__version__,
    }


def fingerprint(cfg: ExtractConfig, model_sha256: str | None) -> str:
    """Hash everything that changes results: the method config, the :func:`runtime` and the model.

    Parameters
    ----------
    cfg : the extraction settings.
    model_sha256 : the model's hash (None: unknown).

    Returns
    -------
    str, 16 hex digits.
    """
    from inviz.core.config import to_dict

    d = to_dict(cfg)
    d.pop("run")
    rt = runtime(cfg)
    d["tsne"]["backend"] = rt["tsne_backend"]  # ``auto`` counts as what it resolves to
    blob = {"format": FORMAT, "config": d, "runtime": rt, "model": model_sha256}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]


def prepare_output(out_dir: str | Path, cfg: ExtractConfig, model_sha256: str | None) -> set[str]:
    """Create or validate ``out_dir`` for a (possibly resumed) run; call it in one process only.

    A folder written with another config, runtime or model (different :func:`fingerprint`) is
    emptied first, in an order that never shows a reader tables of another manifest: the merged
    tables, then the shards, then the new ``manifest.json`` (written atomically). Files of
    incomplete shards are removed.

    Parameters
    ----------
    out_dir : the extraction folder.
    cfg : the extraction settings.
    model_sha256 : the model's hash.

    Returns
    -------
    set of str, the ids already finished.
    """
    from inviz.core.config import to_dict
    from inviz.core.io import read_json, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fp = fingerprint(cfg, model_sha256)
    manifest = out / "manifest.json"
    old = None
    if manifest.is_file():
        try:
            old = read_json(manifest).get("fingerprint")
        except ValueError:
            old = None
    if old != fp:
        if manifest.is_file():
            log.warning("%s: results of another configuration, runtime or model; starting afresh", out)
        for name in MERGED_TABLES:
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / "shards", ignore_errors=True)
        write_json(
            manifest,
            {
                "format": FORMAT,
                "fingerprint": fp,
                "config": to_dict(cfg),
                "runtime": runtime(cfg),
                "model_sha256": model_sha256,
                "layers": list(cfg.layers),
            },
        )
    removed = remove_incomplete_shards(out)
    if removed:
        log.info("removed %d file(s) of incomplete shards", removed)
    return finished_ids(out)
