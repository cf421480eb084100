"""The extraction folder: shards written as images are explained, resume, merged tables (docs/method.md §1).

Extraction folder (``data/extract/``)
-------------------------------------
``manifest.json``
    ``{"format": "inviz-extract/1", "fingerprint", "config", "model_sha256", "layers"}``. A run on
    a folder whose fingerprint (:func:`inviz.fmaps.lightning.fingerprint`: method config +
    ``run.batch_size`` + model) differs starts afresh.
``shards/<name>.maps.npz``, ``shards/<name>.clusters.parquet``, ``shards/<name>.layers.parquet``
    One shard per ``run.shard_size`` images and writer (rank). The layers file is written last: a
    shard without it is incomplete and removed on resume. ``maps.npz`` holds per layer one array
    ``raw__<layer>`` of shape (n_clusters_in_shard, H, W) (the raw weighted maps ``A_C``) and, when
    ``map_scaling`` is not ``raw``, ``map__<layer>`` (the scaled maps) with the same rows.
``clusters.parquet`` (consolidated, one row per cluster)
    ``cluster_id, sample_id, layer, module, cluster, weight, n_fmaps, channels (list[int]), k,
    silhouette, pruned, target, height, width, map_file, map_index`` — the map is row
    ``map_index`` of ``raw__<layer>`` / ``map__<layer>`` in ``map_file`` (relative to the folder).
    A cluster's stable id is ``"<sample_id>|<layer>|<cluster>"`` (:func:`cluster_id`).
``layer_stats.parquet`` (consolidated, one row per image and layer)
    ``sample_id, layer, module, target, pred, logit, n_channels, height, width, threshold,
    total_weight, scale, n_positive, n_kept, status, k, silhouette, ks, silhouettes (lists),
    n_clusters, n_clusters_kept, fmaps_kept, leftover_fmaps_pct, leftover_weight_pct,
    leftover_weight_of_kept_pct, embedding_method, perplexity, kl, tsne_iter, channels, weights,
    labels, embedding_x, embedding_y (lists, one entry per kept channel)``.

:func:`load_results` reads a folder back (:class:`ExtractionResults`: tables, cluster maps, records).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: ``format`` of ``manifest.json``
FORMAT = "inviz-extract/1"

#: columns of ``clusters.parquet`` (one row per cluster)
CLUSTER_COLUMNS = [
    "cluster_id",
    "sample_id",
    "layer",
    "module",
    "cluster",
    "weight",
    "n_fmaps",
    "channels",
    "k",
    "silhouette",
    "pruned",
    "target",
    "height",
    "width",
    "map_file",
    "map_index",
]
#: columns of ``layer_stats.parquet`` (one row per image and layer)
LAYER_COLUMNS = [
    "sample_id",
    "layer",
    "module",
    "target",
    "pred",
    "logit",
    "n_channels",
    "height",
    "width",
    "threshold",
    "total_weight",
    "scale",
    "n_positive",
    "n_kept",
    "status",
    "k",
    "silhouette",
    "ks",
    "silhouettes",
    "n_clusters",
    "n_clusters_kept",
    "fmaps_kept",
    "leftover_fmaps_pct",
    "leftover_weight_pct",
    "leftover_weight_of_kept_pct",
    "embedding_method",
    "perplexity",
    "kl",
    "tsne_iter",
    "channels",
    "weights",
    "labels",
    "embedding_x",
    "embedding_y",
]


def cluster_id(sample_id: str, layer: str, cluster: int) -> str:
    """Stable id of a cluster map: ``"<sample_id>|<layer>|<cluster>"``.

    Parameters
    ----------
    sample_id : the image's id.
    layer : the layer name.
    cluster : the cluster number (0 = heaviest).

    Returns
    -------
    str
    """
    return f"{sample_id}|{layer}|{cluster}"


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


def complete_shards(out_dir: str | Path) -> list[str]:
    """Names of the complete shards in ``out_dir/shards``, sorted.

    Parameters
    ----------
    out_dir : the extraction folder.

    Returns
    -------
    list of str
    """
    shards = Path(out_dir) / "shards"
    if not shards.is_dir():
        return []
    return sorted(p.name[: -len(".layers.parquet")] for p in shards.glob("*.layers.parquet"))


def remove_incomplete_shards(out_dir: str | Path) -> int:
    """Delete the files of shards whose layers file is missing (an interrupted write).

    Parameters
    ----------
    out_dir : the extraction folder.

    Returns
    -------
    int, the number of files removed.
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
    """Sample ids with results in complete shards.

    Parameters
    ----------
    out_dir : the extraction folder.

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


def _read_shards(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the complete shards' clusters and layers tables, concatenated (empty tables when none)."""
    import pandas as pd

    names = complete_shards(out)
    if not names:
        return pd.DataFrame(columns=CLUSTER_COLUMNS), pd.DataFrame(columns=LAYER_COLUMNS)
    shards = out / "shards"
    clusters = pd.concat(
        [pd.read_parquet(shards / f"{n}.clusters.parquet") for n in names], ignore_index=True
    )
    layers = pd.concat([pd.read_parquet(shards / f"{n}.layers.parquet") for n in names], ignore_index=True)
    return clusters, layers


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
        are counted and left out). Duplicates (DDP padding repeats images) keep their first copy.

    Returns
    -------
    clusters : DataFrame, one row per cluster.
    layer_stats : DataFrame, one row per image and layer.
    """
    from inviz.core.io import write_parquet

    out = Path(out_dir)
    clusters, layers = _read_shards(out)
    # first copy of each (sample, layer): drop DDP duplicates consistently in both tables
    layers = layers.drop_duplicates(["sample_id", "layer"], keep="first")
    clusters = clusters.drop_duplicates("cluster_id", keep="first")
    if sample_ids is not None:
        clusters, layers = _in_order(clusters, layers, sample_ids)
    layers = layers.reset_index(drop=True)
    clusters = clusters.reset_index(drop=True)
    write_parquet(out / "clusters.parquet", clusters)
    write_parquet(out / "layer_stats.parquet", layers)
    return clusters, layers


# ----------------------------------------------------------------------------------------------
# loading


def _isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


class ExtractionResults:
    """An extraction folder read back: the two tables, maps on demand, the records.

    Parameters
    ----------
    root : the extraction folder.
    clusters : DataFrame, one row per cluster (see the module docstring).
    layers : DataFrame, one row per image and layer.
    manifest : dict from ``manifest.json``.
    """

    def __init__(
        self, root: str | Path, clusters: pd.DataFrame, layers: pd.DataFrame, manifest: dict[str, Any]
    ) -> None:
        self.root = Path(root)
        self.clusters = clusters
        self.layers = layers
        self.manifest = manifest
        self._npz: dict[str, dict[str, np.ndarray]] = {}
        self._by_id = {cid: i for i, cid in enumerate(clusters["cluster_id"])}

    def _arrays(self, map_file: str) -> dict[str, np.ndarray]:
        if map_file not in self._npz:
            self._npz[map_file] = dict(np.load(self.root / map_file))
        return self._npz[map_file]

    def cluster_map(self, cluster: str | int, kind: Literal["map", "raw"] = "map") -> np.ndarray:
        """Return the map of one cluster.

        Parameters
        ----------
        cluster : its ``cluster_id`` or its row number in :attr:`clusters`.
        kind : ``map`` (the stored scaled map, ``map_scaling``; the raw map when that is ``raw``)
            or ``raw`` (``A_C``).

        Returns
        -------
        ndarray of shape (H, W).
        """
        row = self.clusters.iloc[self._by_id[cluster] if isinstance(cluster, str) else int(cluster)]
        arrays = self._arrays(row["map_file"])
        key = f"{kind}__{row['layer']}"
        if key not in arrays:
            key = f"raw__{row['layer']}"
        return arrays[key][int(row["map_index"])]

    def _layer(self, r: Any, clusters: list[ClusterResult]) -> LayerExplanation:
        """One ``layer_stats`` row (a namedtuple) and its clusters -> the record."""
        emb = (
            np.stack([np.asarray(r.embedding_x, dtype=float), np.asarray(r.embedding_y, dtype=float)], 1)
            if len(r.embedding_x)
            else np.zeros((0, 2))
        )
        return LayerExplanation(
            layer=r.layer,
            module=r.module,
            n_channels=int(r.n_channels),
            height=int(r.height),
            width=int(r.width),
            threshold=None if _isna(r.threshold) else float(r.threshold),
            total_weight=float(r.total_weight),
            scale=float(r.scale),
            n_positive=int(r.n_positive),
            channels=np.asarray(r.channels, dtype=np.int64),
            weights=np.asarray(r.weights, dtype=float),
            embedding=emb,
            embedding_method=r.embedding_method,
            perplexity=float(r.perplexity),
            kl=float(r.kl),
            tsne_iter=int(r.tsne_iter),
            ks=tuple(int(v) for v in r.ks),
            silhouettes=tuple(float(v) for v in r.silhouettes),
            k=int(r.k),
            silhouette=float(r.silhouette),
            labels=np.asarray(r.labels, dtype=np.int64),
            clusters=tuple(sorted(clusters, key=lambda c: c.cluster)),
            status=r.status,
        )

    def explanations(self) -> list[ImageExplanation]:
        """Rebuild the records, maps included.

        Returns
        -------
        list of :class:`ImageExplanation`, in the order of :attr:`layers`.
        """
        by_layer: dict[tuple[str, str], list[ClusterResult]] = {
            (r.sample_id, r.layer): [] for r in self.layers.itertuples()
        }
        for i, r in enumerate(self.clusters.itertuples()):
            by_layer.setdefault((r.sample_id, r.layer), []).append(
                ClusterResult(
                    int(r.cluster),
                    float(r.weight),
                    np.asarray(r.channels, dtype=np.int64),
                    self.cluster_map(i, "raw"),
                    self.cluster_map(i, "map"),
                    bool(r.pruned),
                )
            )
        out: dict[str, ImageExplanation] = {}
        for r in self.layers.itertuples():
            if r.sample_id not in out:
                out[r.sample_id] = ImageExplanation(
                    r.sample_id, int(r.target), int(r.pred), float(r.logit), {}
                )
            out[r.sample_id].layers[r.layer] = self._layer(r, by_layer[(r.sample_id, r.layer)])
        return list(out.values())


def load_results(out_dir: str | Path) -> ExtractionResults:
    """Read an extraction folder (from :func:`inviz.fmaps.lightning.run_extraction`, the ``extract`` stage).

    Parameters
    ----------
    out_dir : the extraction folder.

    Returns
    -------
    :class:`ExtractionResults`, from the consolidated ``clusters.parquet`` / ``layer_stats.parquet``
    when present, else from the shards.
    """
    import pandas as pd

    from inviz.core.io import read_json

    out = Path(out_dir)
    if not out.is_dir():
        raise FileNotFoundError(f"{out}: extraction folder not found (run the 'extract' stage first)")
    manifest = read_json(out / "manifest.json") if (out / "manifest.json").is_file() else {}
    if (out / "clusters.parquet").is_file() and (out / "layer_stats.parquet").is_file():
        clusters = pd.read_parquet(out / "clusters.parquet")
        layers = pd.read_parquet(out / "layer_stats.parquet")
    else:
        clusters, layers = _read_shards(out)
    return ExtractionResults(out, clusters, layers, manifest)
