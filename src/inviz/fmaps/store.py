"""The extraction folder and its reader: layout, tables, :func:`load_results` (docs/method.md §1).

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
Writing it (shards as images are explained, resume, consolidation) is :mod:`inviz.fmaps.shards`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation

if TYPE_CHECKING:
    import pandas as pd

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


def read_shards(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the complete shards' clusters and layers tables, concatenated.

    Parameters
    ----------
    out : Path
        The extraction folder.

    Returns
    -------
    clusters, layer_stats : DataFrame, DataFrame
        With :data:`CLUSTER_COLUMNS` and :data:`LAYER_COLUMNS` (empty tables when no shard is complete).
    """
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
        clusters, layers = read_shards(out)
    return ExtractionResults(out, clusters, layers, manifest)
