"""The extraction folder and its reader: layout, tables, :func:`load_results` (docs/method.md §1).

Extraction folder (``data/extract/``)
-------------------------------------
``manifest.json``
    ``{"format": "inviz-extract/2", "fingerprint", "config", "runtime", "model_sha256", "layers"}``.
    A run on a folder whose fingerprint (:func:`inviz.fmaps.shards.fingerprint`: method config,
    ``runtime`` = batch size, device type, resolved t-SNE backend and torch version, and the model)
    differs starts afresh: the merged tables, then the shards are deleted before the new manifest
    is written.
``shards/<name>.maps.npz``, ``shards/<name>.clusters.parquet``, ``shards/<name>.layers.parquet``
    One shard per ``run.shard_size`` images and writer (rank). The layers file is written last: a
    shard without it is incomplete and removed on resume. ``maps.npz`` holds per layer one array
    ``raw__<layer>`` of shape (n_clusters_in_shard, H, W) (the raw weighted maps ``A_C``) and, when
    ``map_scaling`` is not ``raw``, ``map__<layer>`` (the scaled maps) with the same rows.
``clusters.parquet`` (consolidated, one row per cluster)
    ``cluster_id, sample_id, layer, module, cluster, weight, n_fmaps, channels (list[int]), k,
    silhouette, pruned, target, height, width, map_file, map_index`` — the map is row
    ``map_index`` of ``raw__<layer>`` / ``map__<layer>`` in ``map_file`` (relative to the folder).
    A cluster's stable id is ``"<sample_id>|<layer>|<cluster>"`` (:func:`cluster_id`). Both merged
    tables carry ``attrs["inviz"] = {"fingerprint", "merge"}`` (Parquet metadata): :func:`load_results`
    refuses tables of another manifest or of two different merges (:class:`StaleResultsError`).
``layer_stats.parquet`` (consolidated, one row per image and layer)
    ``sample_id, layer, module, target, pred, logit, n_channels, height, width, threshold,
    total_weight, scale, n_positive, n_kept, status, k, silhouette, ks, silhouettes (lists),
    n_clusters, n_clusters_kept, fmaps_kept, leftover_fmaps_pct, leftover_weight_pct,
    leftover_weight_of_kept_pct, embedding_method, perplexity, kl, tsne_iter, channels, weights,
    labels, embedding_x, embedding_y (lists, one entry per kept channel)``.

:func:`load_results` reads a folder back (:class:`ExtractionResults`: tables, cluster maps, records);
without merged tables it reads the shards, one copy per image and layer (:func:`one_copy`).
Writing it (shards as images are explained, resume, consolidation) is :mod:`inviz.fmaps.shards`.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from inviz.core.errors import InvizError
from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

#: ``format`` of ``manifest.json``
FORMAT = "inviz-extract/2"

#: the merged tables of a folder (written by :func:`inviz.fmaps.shards.consolidate`)
MERGED_TABLES = ("clusters.parquet", "layer_stats.parquet")
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


class StaleResultsError(InvizError):
    """The merged tables of an extraction folder do not belong to its manifest."""


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
# complete shards


def complete_shards(out_dir: str | Path) -> list[str]:
    """List the complete shards in ``out_dir/shards``, sorted.

    Parameters
    ----------
    out_dir : the extraction folder (its ``shards`` subfolder is read).

    Returns
    -------
    list of str, shard names without suffixes (empty when there is no ``shards`` folder).
    """
    shards = Path(out_dir) / "shards"
    if not shards.is_dir():
        return []
    return sorted(p.name[: -len(".layers.parquet")] for p in shards.glob("*.layers.parquet"))


def read_shards(out: Path, with_shard: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the complete shards' clusters and layers tables, concatenated in shard-name order.

    Parameters
    ----------
    out : Path
        The extraction folder.
    with_shard : bool
        Add a column ``shard`` (the shard's name) to both tables.

    Returns
    -------
    clusters, layer_stats : DataFrame, DataFrame
        With :data:`CLUSTER_COLUMNS` and :data:`LAYER_COLUMNS` (empty tables when no shard is complete).
    """
    import pandas as pd

    names = complete_shards(out)
    extra = ["shard"] if with_shard else []
    if not names:
        return pd.DataFrame(columns=CLUSTER_COLUMNS + extra), pd.DataFrame(columns=LAYER_COLUMNS + extra)
    shards = out / "shards"
    frames: dict[str, list[pd.DataFrame]] = {"clusters": [], "layers": []}
    for n in names:
        for kind in frames:
            frame = pd.read_parquet(shards / f"{n}.{kind}.parquet")
            frames[kind].append(frame.assign(shard=n) if with_shard else frame)
    return (
        pd.concat(frames["clusters"], ignore_index=True),
        pd.concat(frames["layers"], ignore_index=True),
    )


def one_copy(clusters: pd.DataFrame, layers: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep one copy of every image and layer: the rows of the first shard holding it, its clusters only.

    An image is in two shards after a re-run or when two ranks explained it; taking the layer row
    of one shard and cluster rows of another could mix two analyses (a ``k`` that does not match
    the clusters), so the winner (the first shard in name order) gives both.

    Parameters
    ----------
    clusters, layers : the tables of :func:`read_shards` with ``with_shard=True``, in shard order.

    Returns
    -------
    clusters, layers : the kept rows, without the ``shard`` column.
    """
    import pandas as pd

    keys = ["sample_id", "layer"]
    winners = layers.drop_duplicates(keys, keep="first")
    if len(winners) < len(layers):
        log.info(
            "%d duplicate image-layer row(s) in the shards: the first shard's copy is kept",
            len(layers) - len(winners),
        )
    if len(clusters):
        chosen = pd.MultiIndex.from_frame(winners[[*keys, "shard"]])
        clusters = clusters[pd.MultiIndex.from_frame(clusters[[*keys, "shard"]]).isin(chosen)]
    return clusters.drop(columns="shard"), winners.drop(columns="shard")


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
        _check_merged(out, clusters, layers, manifest)
    else:
        clusters, layers = one_copy(*read_shards(out, with_shard=True))
    return ExtractionResults(out, clusters, layers, manifest)


def _check_merged(out: Path, clusters: pd.DataFrame, layers: pd.DataFrame, manifest: dict[str, Any]) -> None:
    """Refuse merged tables that were not merged together, or under another manifest."""
    a, b = clusters.attrs.get("inviz", {}), layers.attrs.get("inviz", {})
    if a.get("merge") != b.get("merge"):
        raise StaleResultsError(
            f"{out}: clusters.parquet and layer_stats.parquet come from different merges "
            "(an interrupted run?); run the 'extract' stage again"
        )
    fp = manifest.get("fingerprint")
    if fp and a.get("fingerprint") and a["fingerprint"] != fp:
        raise StaleResultsError(
            f"{out}: the merged tables belong to another configuration or model (fingerprint "
            f"{a['fingerprint']}, manifest.json: {fp}); run the 'extract' stage again"
        )
