"""INV feature-map analysis of METHOD.md §1, orchestrated: images in, cluster maps out.

Library entry points
--------------------
- :class:`ExtractConfig` — every number of §1 (``extract`` section of ``params.yaml``); defaults
  are the authors' code.
- :func:`explain` — ``explain(model, images, layers, cfg, targets=None) -> list[ImageExplanation]``:
  per batch one forward and one backward pass serve all layers (:mod:`inviz.fmaps.gradients`), then for
  every image and layer: channel weights and threshold (:mod:`inviz.fmaps.weighting`), min-max scaling,
  PCA and t-SNE of the kept maps (:mod:`inviz.fmaps.embedding`, all problems of a batch at once), Ward +
  silhouette (:mod:`inviz.fmaps.clustering`), cluster weights, maps and pruning (:mod:`inviz.fmaps.cluster_maps`).
- :func:`run_extraction` — many images through Lightning ``Trainer.predict`` (``inference_mode=
  False``: gradients are needed) with :class:`ShardWriter` writing shards as it goes; several
  devices/nodes (DDP) work unchanged; an interrupted run resumes and skips finished images.
- :func:`load_results` — read an extraction folder back (tables, cluster maps, records).

Results are plain records (:class:`ImageExplanation` > :class:`LayerExplanation` >
:class:`ClusterResult`). Clusters are numbered by decreasing weight (cluster 0 is the heaviest);
their stable id is ``"<sample_id>|<layer>|<cluster>"``.

Extraction folder (``data/extract/``)
-------------------------------------
``manifest.json``
    ``{"format": "inviz-extract/1", "fingerprint", "config", "model_sha256", "layers"}``. A run on
    a folder whose fingerprint (config + model) differs starts afresh.
``shards/<name>.maps.npz``, ``shards/<name>.clusters.parquet``, ``shards/<name>.layers.parquet``
    One shard per ``shard_size`` images and writer (rank). The layers file is written last: a
    shard without it is incomplete and removed on resume. ``maps.npz`` holds per layer one array
    ``raw__<layer>`` of shape (n_clusters_in_shard, H, W) (the raw weighted maps ``A_C``) and, when
    ``map_scaling`` is not ``raw``, ``map__<layer>`` (the scaled maps) with the same rows.
``clusters.parquet`` (consolidated, one row per cluster)
    ``cluster_id, sample_id, layer, module, cluster, weight, n_fmaps, channels (list[int]), k,
    silhouette, pruned, target, height, width, map_file, map_index`` — the map is row
    ``map_index`` of ``raw__<layer>`` / ``map__<layer>`` in ``map_file`` (relative to the folder).
``layer_stats.parquet`` (consolidated, one row per image and layer)
    ``sample_id, layer, module, target, pred, logit, n_channels, height, width, threshold,
    total_weight, scale, n_positive, n_kept, status, k, silhouette, ks, silhouettes (lists),
    n_clusters, n_clusters_kept, fmaps_kept, leftover_fmaps_pct, leftover_weight_pct,
    leftover_weight_of_kept_pct, embedding_method, perplexity, kl, tsne_iter, channels, weights,
    labels, embedding_x, embedding_y (lists, one entry per kept channel)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from inviz.fmaps.embedding import TSNEConfig, timed
from inviz.fmaps.weighting import ThresholdConfig

log = logging.getLogger(__name__)

#: the paper's nine layers (Keras names of VGG-16's last nine convolutions)
PAPER_LAYERS: tuple[str, ...] = (
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
)

FORMAT = "inviz-extract/1"


@dataclass(frozen=True)
class ExtractConfig:
    """``extract`` section of ``params.yaml``: every number of METHOD.md §1 (defaults: the authors' code).

    layers : layer names (module names or Keras-style aliases for VGG); paper: block3_conv1 … block5_conv3.
    target : class whose pre-softmax logit is differentiated: ``predicted`` (paper) or ``label``
        (the true class; only where labels are known, e.g. the stage's selected images).
    weights : channel-weight scheme (:data:`inviz.fmaps.weighting.WEIGHTINGS`): ``guided`` (code) | ``gradcam`` (paper text).
    normalisation : ``percent`` (code, weights sum to 100) | ``unit`` (paper text, sum to 1) | ``none``.
    threshold : map threshold (:class:`inviz.fmaps.weighting.ThresholdConfig`).
    minmax : min-max scale each kept map over its pixels before PCA (§1.5).
    pca_components : PCA dimensions before t-SNE (50).
    embedding : ``tsne`` (the method: Ward on the 2-D t-SNE points) or ``pca`` (ablation: Ward
        directly on the ``pca_components`` PCA scores, no t-SNE).
    tsne : t-SNE settings and backend (:class:`inviz.fmaps.embedding.TSNEConfig`).
    k_min, k_max : cluster counts tried (3..8).
    few_points : clustering outcome when no k can be scored (``singletons`` | ``one_cluster``).
    prune : drop clusters below ``max(max(w_C) / prune_max_divisor, mean(w_C) / prune_mean_divisor)``.
    prune_max_divisor, prune_mean_divisor : 3 and 2 (code).
    map_scaling : cluster maps as stored for later stages: ``code`` (upsample to the input, min-max,
        resize back: the authors' code) or ``raw`` (weighted mean of raw maps). Raw maps are always kept.
    map_dtype : storage dtype of cluster maps in shards (``float32`` | ``float16``).
    table1_weight_base : Table 1 "leftover weight" as % of the layer's total positive weight
        (``layer``) or of the thresholded maps' weight (``kept``); see :mod:`inviz.fmaps.table1`.
    seed : seed of every random step (scikit-learn PCA/t-SNE of the ``reference`` backend).
    device : ``auto`` (CUDA when available) | ``cpu`` | ``cuda`` | ``cuda:1`` …
    devices, num_nodes, strategy : Lightning ``Trainer`` settings for :func:`run_extraction` (DDP).
    batch_size : images per forward/backward pass; num_workers : data-loader workers.
    shard_size : images per output shard.
    threads : CPU threads for torch and numba in the stage (0: the libraries' defaults).
    """

    layers: tuple[str, ...] = PAPER_LAYERS
    target: Literal["predicted", "label"] = "predicted"
    weights: str = "guided"
    normalisation: str = "percent"
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    minmax: bool = True
    pca_components: int = 50
    embedding: Literal["tsne", "pca"] = "tsne"
    tsne: TSNEConfig = field(default_factory=TSNEConfig)
    k_min: int = 3
    k_max: int = 8
    few_points: Literal["singletons", "one_cluster"] = "singletons"
    prune: bool = True
    prune_max_divisor: float = 3.0
    prune_mean_divisor: float = 2.0
    map_scaling: str = "code"
    map_dtype: Literal["float32", "float16"] = "float32"
    table1_weight_base: Literal["layer", "kept"] = "layer"
    seed: int = 432
    device: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    batch_size: int = 8
    num_workers: int = 0
    shard_size: int = 64
    threads: int = 0

    def __post_init__(self) -> None:
        from inviz.core.config import from_dict
        from inviz.fmaps.cluster_maps import MAP_SCALINGS
        from inviz.fmaps.weighting import NORMALISATIONS, WEIGHTINGS

        # conveniences for library use: nested sections as dicts, layers as any sequence
        if isinstance(self.threshold, dict):
            object.__setattr__(self, "threshold", from_dict(ThresholdConfig, self.threshold, "threshold"))
        if isinstance(self.tsne, dict):
            object.__setattr__(self, "tsne", from_dict(TSNEConfig, self.tsne, "tsne"))
        if isinstance(self.layers, str) or not isinstance(self.layers, tuple):
            object.__setattr__(self, "layers", (self.layers,) if isinstance(self.layers, str) else tuple(self.layers))

        if not self.layers:
            raise ValueError("layers: expected at least one layer name")
        if self.weights not in WEIGHTINGS:
            raise ValueError(f"weights: expected one of {', '.join(WEIGHTINGS)}, got {self.weights!r}")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(f"normalisation: expected one of {', '.join(NORMALISATIONS)}, got {self.normalisation!r}")
        if self.map_scaling not in MAP_SCALINGS:
            raise ValueError(f"map_scaling: expected one of {', '.join(MAP_SCALINGS)}, got {self.map_scaling!r}")
        if self.k_min < 2 or self.k_max < self.k_min:
            raise ValueError(f"expected 2 <= k_min <= k_max, got {self.k_min}, {self.k_max}")
        if self.pca_components < 2:
            raise ValueError(f"pca_components: expected >= 2, got {self.pca_components}")
        if self.prune_max_divisor <= 0 or self.prune_mean_divisor <= 0:
            raise ValueError("prune divisors must be > 0")
        if self.batch_size < 1 or self.shard_size < 1:
            raise ValueError("batch_size and shard_size must be >= 1")

    def replace(self, **changes: Any) -> ExtractConfig:
        """A copy with some fields changed; ``tsne`` / ``threshold`` dicts update only the given fields."""
        import dataclasses

        for key in ("tsne", "threshold"):
            if isinstance(changes.get(key), dict):
                changes[key] = dataclasses.replace(getattr(self, key), **changes[key])
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, eq=False)
class ClusterResult:
    """One cluster of one image and layer.

    cluster : index, 0 = heaviest. weight : ``w_C`` (sum of the members' normalised weights).
    channels : ndarray (n_fmaps,) of channel ids. raw_map : ndarray (H, W), ``A_C`` (float32).
    map : ndarray (H, W), ``raw_map`` after ``map_scaling``. pruned : dropped by the pruning rule.
    """

    cluster: int
    weight: float
    channels: np.ndarray
    raw_map: np.ndarray
    map: np.ndarray
    pruned: bool

    @property
    def n_fmaps(self) -> int:
        return int(len(self.channels))


@dataclass(frozen=True, eq=False)
class LayerExplanation:
    """INV analysis of one image and one layer.

    layer : requested name; module : captured module (``features.29`` for ``block5_conv3``).
    n_channels, height, width : layer geometry. threshold : percent share (None: no threshold).
    total_weight : ``T``, sum of the positive raw weights; scale : normalised = scale * raw.
    n_positive : channels with a positive weight.
    channels : ndarray (n,) kept channel ids; weights : ndarray (n,) their normalised weights.
    embedding : ndarray (n, 2); embedding_method : ``tsne`` | ``pca`` | ``none``; perplexity, kl, tsne_iter.
    ks, silhouettes : every k tried and its silhouette; k : chosen number of clusters; silhouette : its score.
    labels : ndarray (n,), cluster of each kept channel (cluster numbers as in ``clusters``).
    clusters : the clusters, heaviest first. status : clustering status (see :mod:`inviz.fmaps.clustering`),
        or ``no_positive`` when no channel has a positive weight.
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
        return tuple(c for c in self.clusters if not c.pruned)

    @property
    def n_kept(self) -> int:
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
    """INV analysis of one image: target class, its logit, prediction and one record per layer."""

    sample_id: str
    target: int
    pred: int
    logit: float
    layers: dict[str, LayerExplanation]


# ----------------------------------------------------------------------------------------------
# explain


def resolve_device(device: str) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


@dataclass(eq=False)
class _Problem:
    b: int
    layer: Any
    acts: torch.Tensor  # (C, H, W) for this image
    w_raw: torch.Tensor  # (C,)
    w_norm: torch.Tensor  # (C,)
    total: float
    scale: float
    threshold: float | None
    kept: torch.Tensor  # (n,) channel ids


def explain(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str] | None = None,
    cfg: ExtractConfig | None = None,
    targets: torch.Tensor | Sequence[int] | None = None,
    sample_ids: Sequence[str] | None = None,
    progress: bool = False,
    timings: dict[str, float] | None = None,
) -> list[ImageExplanation]:
    """INV feature-map analysis of a set of images (METHOD.md §1).

    Parameters
    ----------
    model : a CNN returning logits (N, K); used as it is (put it in eval mode), never modified.
    images : Tensor of shape (N, 3, H, W), normalised for the model; moved to the model's device.
    layers : layer names; default ``cfg.layers``.
    cfg : settings; default :class:`ExtractConfig()`.
    targets : (N,) class per image; default the predicted class.
    sample_ids : (N,) ids for the records; default ``"0", "1", …``.
    progress : show a tqdm bar over images.
    timings : optional dict receiving seconds per step (``forward_backward``, ``weights``,
        ``pca``, ``tsne``, ``clustering``, ``maps``).

    Returns
    -------
    One :class:`ImageExplanation` per image, in input order.

    Notes
    -----
    Results are deterministic for a given configuration (seed) and batch size. A different batch
    size can change the network's activations by float rounding (batched convolutions), which
    t-SNE may amplify into a different embedding; kept maps and weights agree to rounding.
    """
    from tqdm.auto import tqdm

    cfg = cfg or ExtractConfig()
    layers = tuple(layers) if layers is not None else cfg.layers
    n = images.shape[0]
    ids = [str(s) for s in sample_ids] if sample_ids is not None else [str(i) for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"sample_ids: expected {n} ids, got {len(ids)}")
    tgt = None if targets is None else torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if tgt is not None and tgt.numel() != n:
        raise ValueError(f"targets: expected {n} class indices, got {tgt.numel()}")
    out: list[ImageExplanation] = []
    from inviz.fmaps.gradients import LayerCapture

    device = _model_device(model)
    with LayerCapture(model, layers) as cap, tqdm(total=n, desc="INV extract", unit="img", disable=not progress) as bar:
        for start in range(0, n, cfg.batch_size):
            stop = min(start + cfg.batch_size, n)
            x = images[start:stop].to(device)
            with timed(timings, "forward_backward"):
                captured = cap.run(x, None if tgt is None else tgt[start:stop].to(device))
            out.extend(_analyse_batch(captured, cfg, ids[start:stop], tuple(x.shape[-2:]), timings))
            bar.update(stop - start)
    return out


def _analyse_batch(captured: Any, cfg: ExtractConfig, ids: Sequence[str], input_size: tuple[int, int],
                   timings: dict[str, float] | None) -> list[ImageExplanation]:
    from inviz.fmaps.cluster_maps import MAP_SCALINGS, cluster_maps, prune_mask
    from inviz.fmaps.clustering import WardSilhouette
    from inviz.fmaps.embedding import embed, embed_pca, minmax_rows, resolve_backend
    from inviz.fmaps.weighting import NORMALISATIONS, WEIGHTINGS, keep_mask, layer_threshold, layer_total

    nb = captured.logits.shape[0]
    problems: list[_Problem] = []
    with timed(timings, "weights"):
        for layer in captured.layers:
            acts = captured.activations[layer.name].float()
            grads = captured.gradients[layer.name].float()
            w = WEIGHTINGS[cfg.weights](acts, grads)  # (B, C)
            total = layer_total(w)  # (B,)
            w_norm = NORMALISATIONS[cfg.normalisation](w, total)
            thr = layer_threshold(layer.name, acts.shape[1], cfg.threshold)
            keep = keep_mask(w, thr, cfg.threshold.keep_nonpositive)
            totals = total.tolist()
            for b in range(nb):
                t = totals[b]
                scale = _scale(cfg.normalisation, t)
                problems.append(_Problem(b, layer, acts[b], w[b], w_norm[b], t, scale, thr, keep[b].nonzero().flatten()))
        xs = []
        for pr in problems:
            flat = pr.acts[pr.kept].flatten(1)
            xs.append(minmax_rows(flat) if cfg.minmax else flat)
    backend = resolve_backend(cfg.tsne.backend, captured.logits.device)
    if cfg.embedding == "pca":
        embeddings = embed_pca(xs, cfg.tsne, cfg.pca_components, cfg.seed, timings)
    else:
        embeddings = embed(xs, cfg.tsne, cfg.pca_components, cfg.seed, backend=backend, timings=timings)
    method = "reference" if backend == "reference" else "tree"
    scaling = MAP_SCALINGS[cfg.map_scaling]
    map_dtype = np.float16 if cfg.map_dtype == "float16" else np.float32

    per_image: list[dict[str, LayerExplanation]] = [{} for _ in range(nb)]
    for pr, emb in zip(problems, embeddings, strict=True):
        with timed(timings, "clustering"):
            est = WardSilhouette(cfg.k_min, cfg.k_max, cfg.few_points, method).fit(emb.points)
        with timed(timings, "maps"):
            rec = _layer_record(pr, emb, est, cfg, input_size, scaling, map_dtype, cluster_maps, prune_mask)
        per_image[pr.b][pr.layer.name] = rec
    logits = captured.logits.float().cpu()
    targets = captured.targets.cpu()
    preds = logits.argmax(1)
    return [
        ImageExplanation(ids[b], int(targets[b]), int(preds[b]), float(logits[b, targets[b]]), per_image[b])
        for b in range(nb)
    ]


def _scale(normalisation: str, total: float) -> float:
    """Factor with normalised = factor * raw weight."""
    if normalisation == "none":
        return 1.0
    safe = total if total > 0 else 1.0
    return (100.0 if normalisation == "percent" else 1.0) / safe


def _layer_record(pr: _Problem, emb: Any, est: Any, cfg: ExtractConfig, input_size: tuple[int, int], scaling: Any,
                  map_dtype: Any, cluster_maps: Any, prune_mask: Any) -> LayerExplanation:
    c, h, w = pr.acts.shape
    n = int(pr.kept.numel())
    kept_np = pr.kept.cpu().numpy().astype(np.int64)
    weights = pr.w_norm[pr.kept]
    status = est.status_
    if n == 0 and int((pr.w_raw > 0).sum()) == 0:
        status = "no_positive"
    k = int(est.n_clusters_)
    clusters: list[ClusterResult] = []
    labels_np = np.zeros(n, dtype=np.int64)
    if n and k:
        labels = torch.as_tensor(est.labels_, dtype=torch.long, device=pr.acts.device)
        w_c, a_c = cluster_maps(pr.acts[pr.kept], weights, labels, k)
        # clusters numbered by decreasing weight (stable for ties)
        order = torch.as_tensor(np.argsort(-w_c.double().cpu().numpy(), kind="stable"), device=w_c.device)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(k, device=w_c.device)
        w_c, a_c = w_c[order], a_c[order]
        labels = rank[labels]
        kept_mask = prune_mask(w_c, cfg.prune_max_divisor, cfg.prune_mean_divisor) if cfg.prune else torch.ones(k, dtype=torch.bool)
        shown = scaling(a_c, input_size)
        labels_np = labels.cpu().numpy().astype(np.int64)
        a_np = a_c.float().cpu().numpy().astype(map_dtype)
        s_np = shown.float().cpu().numpy().astype(map_dtype)
        w_np = w_c.double().cpu().numpy()
        kept_np_mask = kept_mask.cpu().numpy()
        for j in range(k):
            clusters.append(ClusterResult(j, float(w_np[j]), kept_np[labels_np == j], a_np[j], s_np[j], not bool(kept_np_mask[j])))
    return LayerExplanation(
        layer=pr.layer.name, module=pr.layer.module, n_channels=c, height=h, width=w, threshold=pr.threshold,
        total_weight=float(pr.total), scale=float(pr.scale), n_positive=int((pr.w_raw > 0).sum()),
        channels=kept_np, weights=weights.double().cpu().numpy(), embedding=emb.points,
        embedding_method=emb.method, perplexity=float(emb.perplexity), kl=float(emb.kl), tsne_iter=int(emb.n_iter),
        ks=tuple(int(v) for v in est.ks_), silhouettes=tuple(float(v) for v in est.silhouette_scores_), k=k,
        silhouette=float(est.silhouette_), labels=labels_np, clusters=tuple(clusters), status=status,
    )


# ----------------------------------------------------------------------------------------------
# tables and shards


def cluster_id(sample_id: str, layer: str, cluster: int) -> str:
    """Stable id of a cluster map: ``"<sample_id>|<layer>|<cluster>"``."""
    return f"{sample_id}|{layer}|{cluster}"


def to_tables(explanations: Sequence[ImageExplanation], map_file: str = "") -> tuple[Any, Any, dict[str, np.ndarray]]:
    """Records -> (clusters DataFrame, layer_stats DataFrame, maps dict for one npz shard)."""
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
                crow.append({
                    "cluster_id": cluster_id(ex.sample_id, name, cl.cluster), "sample_id": ex.sample_id, "layer": name,
                    "module": le.module, "cluster": cl.cluster, "weight": cl.weight, "n_fmaps": cl.n_fmaps,
                    "channels": [int(v) for v in cl.channels], "k": le.k, "silhouette": le.silhouette,
                    "pruned": cl.pruned, "target": ex.target, "height": le.height, "width": le.width,
                    "map_file": map_file, "map_index": index,
                })
            lrow.append({
                "sample_id": ex.sample_id, "layer": name, "module": le.module, "target": ex.target, "pred": ex.pred,
                "logit": ex.logit, "n_channels": le.n_channels, "height": le.height, "width": le.width,
                "threshold": math.nan if le.threshold is None else le.threshold, "total_weight": le.total_weight,
                "scale": le.scale, "n_positive": le.n_positive, "n_kept": le.n_kept, "status": le.status, "k": le.k,
                "silhouette": le.silhouette, "ks": list(le.ks), "silhouettes": list(le.silhouettes),
                "n_clusters": len(le.clusters), "n_clusters_kept": len(le.kept_clusters), "fmaps_kept": le.fmaps_kept,
                "leftover_fmaps_pct": le.leftover_fmaps_pct, "leftover_weight_pct": le.leftover_weight_pct,
                "leftover_weight_of_kept_pct": le.leftover_weight_of_kept_pct,
                "embedding_method": le.embedding_method, "perplexity": le.perplexity, "kl": le.kl,
                "tsne_iter": le.tsne_iter, "channels": [int(v) for v in le.channels],
                "weights": [float(v) for v in le.weights], "labels": [int(v) for v in le.labels],
                "embedding_x": [float(v) for v in le.embedding[:, 0]] if le.n_kept else [],
                "embedding_y": [float(v) for v in le.embedding[:, 1]] if le.n_kept else [],
            })
    maps: dict[str, np.ndarray] = {}
    for name, arrs in raw.items():
        maps[f"raw__{name}"] = np.stack(arrs)
        if any(not np.array_equal(a, b) for a, b in zip(arrs, shown[name], strict=True)):
            maps[f"map__{name}"] = np.stack(shown[name])
    return pd.DataFrame(crow, columns=CLUSTER_COLUMNS), pd.DataFrame(lrow, columns=LAYER_COLUMNS), maps


CLUSTER_COLUMNS = [
    "cluster_id", "sample_id", "layer", "module", "cluster", "weight", "n_fmaps", "channels", "k", "silhouette",
    "pruned", "target", "height", "width", "map_file", "map_index",
]
LAYER_COLUMNS = [
    "sample_id", "layer", "module", "target", "pred", "logit", "n_channels", "height", "width", "threshold",
    "total_weight", "scale", "n_positive", "n_kept", "status", "k", "silhouette", "ks", "silhouettes", "n_clusters",
    "n_clusters_kept", "fmaps_kept", "leftover_fmaps_pct", "leftover_weight_pct", "leftover_weight_of_kept_pct",
    "embedding_method", "perplexity", "kl", "tsne_iter", "channels", "weights", "labels", "embedding_x", "embedding_y",
]


def write_shard(out_dir: str | Path, name: str, explanations: Sequence[ImageExplanation]) -> Path:
    """Write one shard (maps, then clusters, then — marking it complete — layers) into ``out_dir/shards``."""
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
    """Names of the complete shards in ``out_dir/shards`` (sorted)."""
    shards = Path(out_dir) / "shards"
    if not shards.is_dir():
        return []
    return sorted(p.name[: -len(".layers.parquet")] for p in shards.glob("*.layers.parquet"))


def remove_incomplete_shards(out_dir: str | Path) -> int:
    """Delete files of shards whose layers file is missing (an interrupted write); returns the count."""
    shards = Path(out_dir) / "shards"
    if not shards.is_dir():
        return 0
    done = set(complete_shards(out_dir))
    removed = 0
    for p in shards.iterdir():
        if p.name.startswith("."):  # temporaries of atomic writes
            p.unlink(missing_ok=True)
            removed += 1
            continue
        stem = p.name.split(".", 1)[0]
        if stem not in done:
            p.unlink(missing_ok=True)
            removed += 1
    return removed


def finished_ids(out_dir: str | Path) -> set[str]:
    """Sample ids with results in complete shards."""
    import pandas as pd

    ids: set[str] = set()
    for name in complete_shards(out_dir):
        frame = pd.read_parquet(Path(out_dir) / "shards" / f"{name}.layers.parquet", columns=["sample_id"])
        ids.update(frame["sample_id"].astype(str))
    return ids


def fingerprint(cfg: ExtractConfig, model_sha256: str | None) -> str:
    """Hash of everything that changes results: the config (minus execution settings) and the model."""
    from inviz.core.config import to_dict

    d = to_dict(cfg)
    for k in ("device", "devices", "num_nodes", "strategy", "batch_size", "num_workers", "shard_size", "threads"):
        d.pop(k, None)
    blob = json.dumps({"format": FORMAT, "config": d, "model": model_sha256}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _is_rank_zero() -> bool:
    """True outside distributed runs and in the process of global rank 0 (Lightning's env variables)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "NODE_RANK"))


def prepare_output(out_dir: str | Path, cfg: ExtractConfig, model_sha256: str | None) -> set[str]:
    """Create/validate ``out_dir`` for a (possibly resumed) run; returns the ids already finished.

    A folder written with another config or model (different fingerprint) is emptied first.
    """
    from inviz.core.config import to_dict
    from inviz.core.io import read_json, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if not _is_rank_zero():  # DDP workers only read: rank 0 owns the folder (and is launched first)
        return finished_ids(out)
    fp = fingerprint(cfg, model_sha256)
    manifest = out / "manifest.json"
    if manifest.is_file():
        try:
            old = read_json(manifest).get("fingerprint")
        except ValueError:
            old = None
        if old != fp:
            log.warning("%s: results of another configuration or model; starting afresh", out)
            import shutil

            shutil.rmtree(out / "shards", ignore_errors=True)
    elif (out / "shards").exists():
        import shutil

        shutil.rmtree(out / "shards", ignore_errors=True)
    write_json(manifest, {"format": FORMAT, "fingerprint": fp, "config": to_dict(cfg), "model_sha256": model_sha256,
                          "layers": list(cfg.layers)})
    removed = remove_incomplete_shards(out)
    if removed:
        log.info("removed %d file(s) of incomplete shards", removed)
    return finished_ids(out)


def consolidate(out_dir: str | Path, sample_ids: Iterable[str] | None = None) -> tuple[Any, Any]:
    """Merge the complete shards into ``clusters.parquet`` and ``layer_stats.parquet``.

    Only ``sample_ids`` are kept when given (in that order; results of other images are counted
    and left out); duplicates (DDP padding repeats images) keep their first copy.

    Returns
    -------
    (clusters, layer_stats) DataFrames.
    """
    import pandas as pd

    from inviz.core.io import write_parquet

    out = Path(out_dir)
    names = complete_shards(out)
    cl = [pd.read_parquet(out / "shards" / f"{n}.clusters.parquet") for n in names]
    ly = [pd.read_parquet(out / "shards" / f"{n}.layers.parquet") for n in names]
    clusters = pd.concat(cl, ignore_index=True) if cl else pd.DataFrame(columns=CLUSTER_COLUMNS)
    layers = pd.concat(ly, ignore_index=True) if ly else pd.DataFrame(columns=LAYER_COLUMNS)
    # first copy of each (sample, layer): drop DDP duplicates consistently in both tables
    layers = layers.drop_duplicates(["sample_id", "layer"], keep="first")
    clusters = clusters.drop_duplicates("cluster_id", keep="first")
    if sample_ids is not None:
        wanted = [str(s) for s in sample_ids]
        order = {s: i for i, s in enumerate(wanted)}
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
    layers = layers.reset_index(drop=True)
    clusters = clusters.reset_index(drop=True)
    write_parquet(out / "clusters.parquet", clusters)
    write_parquet(out / "layer_stats.parquet", layers)
    return clusters, layers


# ----------------------------------------------------------------------------------------------
# loading


class ExtractionResults:
    """An extraction folder read back: ``clusters`` and ``layers`` tables, maps on demand.

    Attributes
    ----------
    clusters : DataFrame, one row per cluster (see the module docstring).
    layers : DataFrame, one row per image and layer.
    manifest : dict from ``manifest.json``.
    """

    def __init__(self, root: str | Path, clusters: Any, layers: Any, manifest: dict[str, Any]):
        self.root = Path(root)
        self.clusters = clusters
        self.layers = layers
        self.manifest = manifest
        self._npz: dict[str, Any] = {}
        self._by_id = {cid: i for i, cid in enumerate(clusters["cluster_id"])}

    def _array(self, map_file: str, key: str) -> np.ndarray:
        if map_file not in self._npz:
            self._npz[map_file] = dict(np.load(self.root / map_file))
        arrays = self._npz[map_file]
        return arrays[key]

    def cluster_map(self, cluster: str | int, kind: Literal["map", "raw"] = "map") -> np.ndarray:
        """The (H, W) map of a cluster, by ``cluster_id`` or row number of :attr:`clusters`.

        ``kind="map"`` gives the stored scaled map (``map_scaling``; the raw map when it is ``raw``).
        """
        row = self.clusters.iloc[self._by_id[cluster] if isinstance(cluster, str) else int(cluster)]
        arrays_key = f"{kind}__{row['layer']}"
        if row["map_file"] not in self._npz:
            self._array(row["map_file"], f"raw__{row['layer']}")
        arrays = self._npz[row["map_file"]]
        if arrays_key not in arrays:
            arrays_key = f"raw__{row['layer']}"
        return arrays[arrays_key][int(row["map_index"])]

    def explanations(self) -> list[ImageExplanation]:
        """Rebuild the :class:`ImageExplanation` records (maps included)."""
        by_layer = {(r.sample_id, r.layer): [] for r in self.layers.itertuples()}
        for i, r in enumerate(self.clusters.itertuples()):
            by_layer.setdefault((r.sample_id, r.layer), []).append(
                ClusterResult(int(r.cluster), float(r.weight), np.asarray(r.channels, dtype=np.int64),
                              self.cluster_map(i, "raw"), self.cluster_map(i, "map"), bool(r.pruned))
            )
        out: dict[str, ImageExplanation] = {}
        for r in self.layers.itertuples():
            emb = np.stack([np.asarray(r.embedding_x, dtype=float), np.asarray(r.embedding_y, dtype=float)], 1) \
                if len(r.embedding_x) else np.zeros((0, 2))
            le = LayerExplanation(
                layer=r.layer, module=r.module, n_channels=int(r.n_channels), height=int(r.height), width=int(r.width),
                threshold=None if pd_isna(r.threshold) else float(r.threshold), total_weight=float(r.total_weight),
                scale=float(r.scale), n_positive=int(r.n_positive), channels=np.asarray(r.channels, dtype=np.int64),
                weights=np.asarray(r.weights, dtype=float), embedding=emb, embedding_method=r.embedding_method,
                perplexity=float(r.perplexity), kl=float(r.kl), tsne_iter=int(r.tsne_iter),
                ks=tuple(int(v) for v in r.ks), silhouettes=tuple(float(v) for v in r.silhouettes), k=int(r.k),
                silhouette=float(r.silhouette), labels=np.asarray(r.labels, dtype=np.int64),
                clusters=tuple(sorted(by_layer[(r.sample_id, r.layer)], key=lambda c: c.cluster)), status=r.status,
            )
            if r.sample_id not in out:
                out[r.sample_id] = ImageExplanation(r.sample_id, int(r.target), int(r.pred), float(r.logit), {})
            out[r.sample_id].layers[r.layer] = le
        return list(out.values())


def pd_isna(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def load_results(out_dir: str | Path) -> ExtractionResults:
    """Read an extraction folder written by :func:`run_extraction` / the ``extract`` stage.

    Uses the consolidated ``clusters.parquet`` / ``layer_stats.parquet`` when present, else the shards.
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
        names = complete_shards(out)
        clusters = pd.concat([pd.read_parquet(out / "shards" / f"{n}.clusters.parquet") for n in names], ignore_index=True) \
            if names else pd.DataFrame(columns=CLUSTER_COLUMNS)
        layers = pd.concat([pd.read_parquet(out / "shards" / f"{n}.layers.parquet") for n in names], ignore_index=True) \
            if names else pd.DataFrame(columns=LAYER_COLUMNS)
    return ExtractionResults(out, clusters, layers, manifest)


# ----------------------------------------------------------------------------------------------
# Lightning: many images, several devices, resumable


_LIGHTNING_CLASSES: dict[str, type] = {}


def _lightning_classes() -> dict[str, type]:
    """Build :class:`ExplainModule` and :class:`ShardWriter` on first use (keeps ``import inviz.fmaps.extraction``
    free of Lightning); they are module attributes (PEP 562 ``__getattr__``), so spawned DDP
    workers can unpickle them."""
    if _LIGHTNING_CLASSES:
        return _LIGHTNING_CLASSES
    import lightning as L
    from lightning.pytorch.callbacks import BasePredictionWriter

    class ExplainModule(L.LightningModule):
        """``predict_step`` returns the batch's :class:`ImageExplanation` records.

        Batches are dicts ``{"image", "label", "sample_id"}`` (:class:`inviz.data.datamodule.IndexedImageDataset`).
        """

        def __init__(self, model: nn.Module, cfg: ExtractConfig) -> None:
            super().__init__()
            self.model = model
            self.cfg = cfg
            self.timings: dict[str, float] = {}

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model(x)

        def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> list[ImageExplanation]:
            images = batch["image"]
            if images.numel() == 0:
                return []
            targets = batch["label"] if self.cfg.target == "label" else None
            with torch.enable_grad():  # Trainer.predict runs under no_grad (inference_mode=False)
                return explain(self.model, images, self.cfg.layers, self.cfg, targets=targets,
                               sample_ids=list(batch["sample_id"]), timings=self.timings)

    class ShardWriter(BasePredictionWriter):
        """Writes a shard (:func:`write_shard`) every ``shard_size`` images and at the end; names carry
        the global rank and a per-run token, so ranks and resumed runs never collide."""

        def __init__(self, out_dir: str | Path, shard_size: int) -> None:
            super().__init__(write_interval="batch")
            self.out_dir = Path(out_dir)
            self.shard_size = shard_size
            self.buffer: list[ImageExplanation] = []
            self.token = f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"
            self.count = 0

        def _flush(self, rank: int) -> None:
            if not self.buffer:
                return
            write_shard(self.out_dir, f"r{rank:03d}-{self.token}-{self.count:05d}", self.buffer)
            self.count += 1
            self.buffer = []

        def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Any, batch: Any,
                               batch_idx: int, dataloader_idx: int = 0) -> None:
            self.buffer.extend(prediction or [])
            if len(self.buffer) >= self.shard_size:
                self._flush(trainer.global_rank)

        def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
            self._flush(trainer.global_rank)

    for cls in (ExplainModule, ShardWriter):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        _LIGHTNING_CLASSES[cls.__name__] = cls
    return _LIGHTNING_CLASSES


def __getattr__(name: str) -> Any:
    if name in ("ExplainModule", "ShardWriter"):
        return _lightning_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_explain_module(model: nn.Module, cfg: ExtractConfig) -> Any:
    """A LightningModule (``ExplainModule``) whose ``predict_step`` returns :class:`ImageExplanation` records."""
    return _lightning_classes()["ExplainModule"](model, cfg)


def make_shard_writer(out_dir: str | Path, shard_size: int) -> Any:
    """A ``BasePredictionWriter`` (``ShardWriter``) writing a shard every ``shard_size`` images (and at the end)."""
    return _lightning_classes()["ShardWriter"](out_dir, shard_size)


@dataclass(frozen=True)
class ExtractionRun:
    """Summary of :func:`run_extraction`: images done now / skipped (resumed) / total, seconds, step timings."""

    n_new: int
    n_skipped: int
    n_total: int
    seconds: float
    timings: dict[str, float]
    clusters: Any
    layers: Any


def run_extraction(
    model: nn.Module,
    dataset: Any,
    sample_ids: Sequence[str],
    out_dir: str | Path,
    cfg: ExtractConfig,
    model_sha256: str | None = None,
    progress: bool = True,
) -> ExtractionRun:
    """Explain every image of ``dataset`` with Lightning ``Trainer.predict``, writing shards; resumable.

    Parameters
    ----------
    model : the CNN (moved to the configured device by Lightning; put in eval mode).
    dataset : map-style dataset of dicts ``{"image", "label", "sample_id"}`` (e.g.
        :class:`inviz.data.datamodule.IndexedImageDataset`); ``sample_ids[i]`` is item ``i``'s id.
    out_dir : extraction folder (see the module docstring).
    cfg : settings (``device``, ``devices``, ``num_nodes``, ``strategy``, ``batch_size``, ``shard_size`` …).
    model_sha256 : identifies the model in the fingerprint (resume only reuses matching results).

    Returns
    -------
    :class:`ExtractionRun` with the consolidated tables.
    """
    import lightning as L
    from torch.utils.data import DataLoader, Subset

    from inviz.data.datamodule import collate_skip_none

    sample_ids = [str(s) for s in sample_ids]
    done = prepare_output(out_dir, cfg, model_sha256)
    todo = [i for i, s in enumerate(sample_ids) if s not in done]
    skipped = len(sample_ids) - len(todo)
    if skipped:
        log.info("resuming: %d of %d image(s) already done", skipped, len(sample_ids))
    start = time.perf_counter()
    timings: dict[str, float] = {}
    if todo:
        device = resolve_device(cfg.device)
        model.eval()
        module = make_explain_module(model, cfg)
        writer = make_shard_writer(out_dir, cfg.shard_size)
        loader = DataLoader(Subset(dataset, todo), batch_size=cfg.batch_size, shuffle=False,
                            num_workers=cfg.num_workers, collate_fn=collate_skip_none)
        trainer = L.Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index] if device.type == "cuda" and device.index is not None else cfg.devices,
            num_nodes=cfg.num_nodes, strategy=cfg.strategy, inference_mode=False, logger=False,
            enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
            callbacks=[writer],
        )
        trainer.predict(module, dataloaders=loader, return_predictions=False)
        timings = dict(module.timings)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            trainer.strategy.barrier()  # every rank has flushed its shards before rank 0 merges them
        if not trainer.is_global_zero:
            return ExtractionRun(len(todo), skipped, len(sample_ids), time.perf_counter() - start, timings, None, None)
    seconds = time.perf_counter() - start
    clusters, layers = consolidate(out_dir, sample_ids)
    missing = set(sample_ids) - set(layers["sample_id"])
    if missing:
        log.warning("%d image(s) have no results (unreadable files are dropped by the loader): %s",
                    len(missing), ", ".join(sorted(missing)[:5]))
    return ExtractionRun(len(todo), skipped, len(sample_ids), seconds, timings, clusters, layers)
