"""The results of the feature-map analysis as plain records (docs/method.md §1.7-§1.10).

:class:`ImageExplanation` > :class:`LayerExplanation` > :class:`ClusterResult`: one image, its
layers, their clusters. Clusters are numbered by decreasing weight (cluster 0 is the heaviest).
The Table 1 quantities of a layer (docs/method.md §1.10) are properties of its record.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """One cluster of one image and layer.

    Parameters
    ----------
    cluster : index, 0 = heaviest.
    weight : ``w_C``, the sum of the members' normalised weights.
    channels : ndarray of shape (n_fmaps,), the member channel ids.
    raw_map : ndarray of shape (H, W), ``A_C`` (the weighted mean of the members' raw maps).
    map : ndarray of shape (H, W), ``raw_map`` after ``map_scaling``.
    pruned : dropped by the pruning rule.
    """

    cluster: int
    weight: float
    channels: np.ndarray
    raw_map: np.ndarray
    map: np.ndarray
    pruned: bool

    @property
    def n_fmaps(self) -> int:
        """Number of member channels."""
        return int(len(self.channels))


@dataclass(frozen=True, eq=False)
class LayerExplanation:
    """INV analysis of one image and one layer.

    Parameters
    ----------
    layer : requested name.
    module : captured module (``features.29`` for ``block5_conv3``).
    n_channels, height, width : layer geometry ``C, H, W``.
    threshold : percent share (None: no threshold).
    total_weight : ``T``, the sum of the positive raw weights.
    scale : normalised weight = ``scale`` * raw weight.
    n_positive : channels with a positive weight.
    channels : ndarray of shape (n,), the kept channel ids.
    weights : ndarray of shape (n,), their normalised weights.
    embedding : ndarray of shape (n, 2) (or (n, d) for ``embedding: pca``), the points clustered.
    embedding_method : ``tsne`` | ``pca`` | ``tsne_diverged`` (t-SNE left non-finite points; first two
        PCA scores used) | ``none``.
    perplexity, kl, tsne_iter : t-SNE perplexity used, final KL divergence, iterations.
    ks, silhouettes : every k tried and its silhouette.
    k : chosen number of clusters.
    silhouette : its score.
    labels : ndarray of shape (n,), the cluster of each kept channel (numbered as ``clusters``).
    clusters : the clusters, heaviest first.
    status : clustering status (see :mod:`inviz.fmaps.clustering`), or ``no_positive`` when no
        channel has a positive weight.
    """

    layer: str
    module: str
    n_channels: int
    height: int
    width: int
    threshold: float | None
    total_weight: float
    scale: float
    n_positive: int
    channels: np.ndarray
    weights: np.ndarray
    embedding: np.ndarray
    embedding_method: str
    perplexity: float
    kl: float
    tsne_iter: int
    ks: tuple[int, ...]
    silhouettes: tuple[float, ...]
    k: int
    silhouette: float
    labels: np.ndarray
    clusters: tuple[ClusterResult, ...]
    status: str

    @property
    def kept_clusters(self) -> tuple[ClusterResult, ...]:
        """The clusters that survive pruning."""
        return tuple(c for c in self.clusters if not c.pruned)

    @property
    def n_kept(self) -> int:
        """Number of channels kept by the threshold."""
        return int(len(self.channels))

    @property
    def fmaps_kept(self) -> int:
        """Channels that end in a kept (unpruned) cluster."""
        return int(sum(c.n_fmaps for c in self.kept_clusters))

    @property
    def leftover_fmaps_pct(self) -> float:
        """% of the layer's channels that end in a kept cluster (Table 1)."""
        return 100.0 * self.fmaps_kept / self.n_channels if self.n_channels else 0.0

    @property
    def leftover_weight_pct(self) -> float:
        """% of the layer's total positive weight ``T`` in kept clusters (Table 1)."""
        if self.total_weight <= 0 or self.scale == 0:
            return 0.0
        kept = sum(c.weight for c in self.kept_clusters) / self.scale
        return 100.0 * kept / self.total_weight

    @property
    def leftover_weight_of_kept_pct(self) -> float:
        """% of the weight of the thresholded (kept) maps that is in kept clusters."""
        total = sum(c.weight for c in self.clusters)
        return 100.0 * sum(c.weight for c in self.kept_clusters) / total if total else 0.0


@dataclass(frozen=True, eq=False)
class ImageExplanation:
    """INV analysis of one image.

    Parameters
    ----------
    sample_id : the image's id.
    target : the class whose logit was differentiated.
    pred : the predicted class.
    logit : the target's pre-softmax logit.
    layers : layer name -> its :class:`LayerExplanation`.
    confidence : softmax probability of the predicted class (NaN when read back from a store,
        which keeps the logits in ``selected.csv`` instead).
    """

    sample_id: str
    target: int
    pred: int
    logit: float
    layers: dict[str, LayerExplanation]
    confidence: float = float("nan")
