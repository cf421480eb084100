"""Labelled cluster maps as channel-weight vectors: what a label model learns from (docs/method.md §9).

A cluster map is a set of channels of one layer with their normalised Grad-CAM weights (§1.2-§1.3);
the game gave it label scores (§3.7; a merged map: the weight-averaged scores of its members, §3.8).
:class:`LabelledMap` keeps exactly that, and :class:`LayerData` stacks the maps of one layer into
matrices (channel weights ``(M, C)``, label scores ``(M, L)``) for the estimators of
:mod:`inviz.transfer.model`.

:func:`labelled_maps` reads them from the pipeline's outputs (the extraction folder, the masks
manifest and the ``labels_analyze`` tables); :func:`cluster_vectors` gives the same vectors for the
cluster maps of a freshly explained image (:class:`inviz.fmaps.records.LayerExplanation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError
from inviz.fmaps.records import ClusterResult, LayerExplanation


class TransferDataError(InvizError, ValueError):
    """The pipeline outputs a label model learns from do not fit together."""


@dataclass(frozen=True, eq=False)
class LabelledMap:
    """One labelled cluster map (merged or single) as channels, weights and label scores.

    Parameters
    ----------
    key : str
        ``m<merged_id>`` (a merged map) or ``c<cluster_id>`` (a game cluster map).
    image : str
        The explained image's sample id.
    layer : str
        The layer.
    pred : int
        The image's predicted class.
    channels : ndarray of int, shape (n,)
        The member channels.
    weights : ndarray of float, shape (n,)
        Their normalised weights (% of the layer's weight).
    labels : tuple of (str, float)
        Every label with its score, best first.
    best : tuple of str
        The best labels (ties included).
    """

    key: str
    image: str
    layer: str
    pred: int
    channels: np.ndarray
    weights: np.ndarray
    labels: tuple[tuple[str, float], ...]
    best: tuple[str, ...]

    def vector(self, n_channels: int) -> np.ndarray:
        """Return the dense channel-weight vector, shape (n_channels,)."""
        v = np.zeros(n_channels)
        np.add.at(v, self.channels, self.weights)
        return v

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able dict (:meth:`from_json` reads it back)."""
        return {
            "key": self.key,
            "image": self.image,
            "pred": self.pred,
            "channels": self.channels.tolist(),
            "weights": [float(w) for w in self.weights],
            "labels": [[lab, float(s)] for lab, s in self.labels],
            "best": list(self.best),
        }

    @classmethod
    def from_json(cls, layer: str, d: dict[str, Any]) -> LabelledMap:
        """Rebuild a map of ``layer`` from :meth:`to_json`'s dict."""
        return cls(
            str(d["key"]),
            str(d["image"]),
            layer,
            int(d["pred"]),
            np.asarray(d["channels"], dtype=np.int64),
            np.asarray(d["weights"], dtype=float),
            tuple((str(lab), float(s)) for lab, s in d["labels"]),
            tuple(str(b) for b in d["best"]),
        )


@dataclass(frozen=True, eq=False)
class LayerData:
    """The labelled maps of one layer as matrices.

    Attributes
    ----------
    layer : str
    n_channels : int
        ``C``, the layer's channel count.
    labels : tuple of str
        The label vocabulary ``L`` (sorted).
    vectors : ndarray of shape (M, C)
        Channel-weight vectors of the ``M`` maps.
    scores : ndarray of shape (M, L)
        Their label scores (0 where a label was not given).
    classes : ndarray of int, shape (M,)
        The predicted class of each map's image.
    images : ndarray of str, shape (M,)
        Each map's image.
    best : list of frozenset of str
        Each map's best labels.
    """

    layer: str
    n_channels: int
    labels: tuple[str, ...]
    vectors: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    images: np.ndarray
    best: list[frozenset[str]]

    @classmethod
    def from_maps(cls, layer: str, n_channels: int, maps: Sequence[LabelledMap]) -> LayerData:
        """Stack ``maps`` (all of ``layer``, each with labels).

        Parameters
        ----------
        layer : str
        n_channels : int
        maps : sequence of LabelledMap

        Returns
        -------
        LayerData
        """
        vocab = tuple(sorted({lab for m in maps for lab, _ in m.labels}))
        col = {lab: j for j, lab in enumerate(vocab)}
        scores = np.zeros((len(maps), len(vocab)))
        for i, m in enumerate(maps):
            for lab, s in m.labels:
                scores[i, col[lab]] = s
        vectors = np.stack([m.vector(n_channels) for m in maps]) if maps else np.zeros((0, n_channels))
        return cls(
            layer,
            n_channels,
            vocab,
            vectors,
            scores,
            np.asarray([m.pred for m in maps], dtype=np.int64),
            np.asarray([m.image for m in maps], dtype=object),
            [frozenset(m.best) for m in maps],
        )

    def without_image(self, image: str) -> LayerData:
        """Return the maps of every other image (leave-one-image-out; the vocabulary is kept)."""
        keep = self.images != image
        return LayerData(
            self.layer,
            self.n_channels,
            self.labels,
            self.vectors[keep],
            self.scores[keep],
            self.classes[keep],
            self.images[keep],
            [b for b, k in zip(self.best, keep, strict=True) if k],
        )

    @property
    def present_labels(self) -> tuple[str, ...]:
        """The labels some map of this data carries (after :meth:`without_image`, the fold's)."""
        given = self.scores.sum(0) > 0 if len(self.scores) else np.zeros(len(self.labels), dtype=bool)
        return tuple(lab for lab, g in zip(self.labels, given, strict=True) if g)

    @property
    def seen(self) -> np.ndarray:
        """Channels with a positive weight in some labelled map, bool of shape (C,)."""
        return self.vectors.sum(0) > 0 if len(self.vectors) else np.zeros(self.n_channels, dtype=bool)


def cluster_vectors(layer: LayerExplanation, clusters: Iterable[ClusterResult]) -> np.ndarray:
    """Channel-weight vectors of a layer's cluster maps, shape (n_clusters, C).

    Parameters
    ----------
    layer : LayerExplanation
        The image's layer record (its kept channels and their normalised weights).
    clusters : iterable of ClusterResult
        Clusters of that layer.

    Returns
    -------
    ndarray of shape (n_clusters, layer.n_channels)
    """
    weight = dict(zip(layer.channels.tolist(), layer.weights.tolist(), strict=True))
    rows = []
    for c in clusters:
        v = np.zeros(layer.n_channels)
        v[c.channels] = [weight[int(ch)] for ch in c.channels]
        rows.append(v)
    return np.stack(rows) if rows else np.zeros((0, layer.n_channels))


# ----------------------------------------------------------------------------------------------
# reading the pipeline's outputs


def _channel_weights(layers: pd.DataFrame) -> dict[tuple[str, str], dict[int, float]]:
    """(sample id, layer) -> {kept channel: normalised weight} from ``layer_stats``."""
    return {
        (str(r.sample_id), str(r.layer)): dict(
            zip(np.asarray(r.channels, int).tolist(), np.asarray(r.weights, float).tolist(), strict=True)
        )
        for r in layers.itertuples()
    }


def labelled_maps(
    results: Any,
    manifest: pd.DataFrame,
    cluster_labels: pd.DataFrame,
    inv: pd.DataFrame | None = None,
    merged_scores: pd.DataFrame | None = None,
    kind: Literal["merged", "cluster"] = "merged",
) -> list[LabelledMap]:
    """Read the labelled maps (those with at least one label) from the pipeline's outputs.

    Parameters
    ----------
    results : :class:`inviz.fmaps.store.ExtractionResults`
        The extraction folder (member channels per cluster, channel weights per image and layer).
    manifest : DataFrame
        The masks manifest (``cluster_id, extract_id, pred``; one row per level is fine).
    cluster_labels : DataFrame
        ``cluster_labels.csv`` (``cluster_id, label, score, rank, is_best``).
    inv, merged_scores : DataFrame, optional
        ``inv.csv`` and ``merged_scores.csv`` (needed for ``kind="merged"``).
    kind : str
        ``merged`` (the merged cluster maps, §3.8) or ``cluster`` (the game's cluster maps).

    Returns
    -------
    list of LabelledMap
        In id order.
    """
    from inviz.views.records import ranked_labels

    man = manifest.drop_duplicates("cluster_id").set_index("cluster_id")
    clusters = results.clusters.set_index("cluster_id")
    weights = _channel_weights(results.layers)

    def members_of(cids: Sequence[int], source: str) -> tuple[str, str, int, np.ndarray, np.ndarray]:
        missing = [c for c in cids if c not in man.index or man.loc[c, "extract_id"] not in clusters.index]
        if missing:
            raise TransferDataError(
                f"{source}: cluster id(s) {', '.join(map(str, missing[:5]))} not found in the masks "
                "manifest / extraction folder (re-run 'masks' and 'labels_analyze')"
            )
        rows = clusters.loc[[man.loc[c, "extract_id"] for c in cids]]
        sample, layer = str(rows["sample_id"].iloc[0]), str(rows["layer"].iloc[0])
        chans = np.concatenate([np.asarray(ch, dtype=np.int64) for ch in rows["channels"]])
        w = weights.get((sample, layer), {})
        return sample, layer, int(man.loc[cids[0], "pred"]), chans, np.asarray([w[int(c)] for c in chans])

    out = []
    if kind == "cluster":
        for cid, (labels, best) in sorted(ranked_labels(cluster_labels, "cluster_id").items()):
            sample, layer, pred, chans, w = members_of([cid], "cluster_labels.csv")
            out.append(LabelledMap(f"c{cid}", sample, layer, pred, chans, w, labels, best))
        return out
    if inv is None or merged_scores is None:
        raise ValueError("kind='merged' needs the merged INV table and the merged scores")
    ranked = ranked_labels(merged_scores, "merged_id")
    for r in inv.sort_values("merged_id").itertuples():
        mid = int(r.merged_id)
        if mid not in ranked:
            continue
        cids = [int(m) for m in str(r.members).split(";") if m]
        sample, layer, pred, chans, w = members_of(cids, f"inv.csv (merged map {mid})")
        out.append(LabelledMap(f"m{mid}", sample, layer, pred, chans, w, *ranked[mid]))
    return out
