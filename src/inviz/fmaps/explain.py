"""The INV feature-map analysis of a set of images: images in, cluster maps out (docs/method.md §1).

Per batch one forward and one backward pass serve all layers (§1.1, :mod:`inviz.fmaps.gradients`);
then for every image and layer: channel weights (§1.2-§1.3, :mod:`inviz.fmaps.weighting`), the map
threshold (§1.4, :mod:`inviz.fmaps.threshold`), min-max scaling (§1.5) and PCA (§1.6) of the kept
maps (:mod:`inviz.fmaps.pca`), t-SNE (§1.6, :mod:`inviz.fmaps.embedding`; all problems of a batch at
once), Ward + silhouette (§1.7, :mod:`inviz.fmaps.clustering`), cluster weights, maps and pruning
(§1.8-§1.9, :mod:`inviz.fmaps.cluster_maps`). The results are records (:mod:`inviz.fmaps.records`).

:class:`ExtractConfig` holds every number of §1 (the ``extract`` section of ``params.yaml``;
defaults are the authors' code); how the analysis runs (device, batch and shard size, threads …)
is the nested :class:`RunConfig` (``extract.run``), which the stage's DVC params leave out.
Storing results is :mod:`inviz.fmaps.shards` (read back by :mod:`inviz.fmaps.store`); many images
on several devices is :mod:`inviz.fmaps.lightning`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from inviz.core.config import from_dict
from inviz.fmaps.cluster_maps import MAP_SCALINGS, cluster_maps, prune_mask
from inviz.fmaps.clustering import CLUSTERINGS, WardSilhouette
from inviz.fmaps.embedding import Embedding, TSNEConfig, embed, embed_pca, resolve_backend, timed
from inviz.fmaps.gradients import Captured, LayerCapture
from inviz.fmaps.layers import LayerError, expand_layers, spatial_problem
from inviz.fmaps.pca import minmax_rows
from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation
from inviz.fmaps.threshold import ThresholdConfig, keep_mask, layer_threshold
from inviz.fmaps.weighting import NORMALISATIONS, WEIGHTINGS, layer_total, normalisation_scale

#: the paper's nine layers (Keras names of VGG-16's last nine convolutions)
PAPER_LAYERS: tuple[str, ...] = (
    "block3_conv1",
    "block3_conv2",
    "block3_conv3",
    "block4_conv1",
    "block4_conv2",
    "block4_conv3",
    "block5_conv1",
    "block5_conv2",
    "block5_conv3",
)


@dataclass(frozen=True)
class RunConfig:
    """``extract.run``: how the extraction runs, not what it computes.

    These settings are left out of the ``extract`` stage's DVC params, so changing them does not
    re-run the stage. ``batch_size`` alone can change results (by float rounding of batched
    convolutions, see :func:`explain`); it stays in the resume fingerprint (:data:`RESULT_KEYS`).

    Parameters
    ----------
    device : ``auto`` (CUDA when available) | ``cpu`` | ``cuda`` | ``cuda:1`` …
    devices, num_nodes, strategy : Lightning ``Trainer`` settings for
        :func:`inviz.fmaps.lightning.run_extraction` (DDP).
    batch_size : images per forward/backward pass.
    num_workers : data-loader workers.
    shard_size : images per output shard.
    threads : CPU threads for torch and numba in the stage (0: the libraries' defaults).
    """

    #: run settings that can change results: part of the resume fingerprint
    RESULT_KEYS: ClassVar[tuple[str, ...]] = ("batch_size",)

    device: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    batch_size: int = 8
    num_workers: int = 0
    shard_size: int = 64
    threads: int = 0

    def __post_init__(self) -> None:
        """Check the sizes."""
        if self.batch_size < 1 or self.shard_size < 1:
            raise ValueError("run.batch_size and run.shard_size must be >= 1")


@dataclass(frozen=True)
class ExtractConfig:
    """``extract`` section of ``params.yaml``: every number of docs/method.md §1 (defaults: authors' code).

    Parameters
    ----------
    layers : layer names (module names or Keras-style aliases for VGG); paper: block3_conv1 … block5_conv3.
    target : class whose pre-softmax logit is differentiated: ``predicted`` (paper) or ``label``
        (the true class; only where labels are known, e.g. the stage's selected images).
    weights : channel-weight scheme (:data:`inviz.fmaps.weighting.WEIGHTINGS`): ``guided`` (code) |
        ``gradcam`` (paper text).
    normalisation : ``percent`` (code, weights sum to 100) | ``unit`` (paper text, sum to 1) | ``none``.
    threshold : map threshold (:class:`inviz.fmaps.threshold.ThresholdConfig`).
    minmax : min-max scale each kept map over its pixels before PCA (docs/method.md §1.5).
    pca_components : PCA dimensions before t-SNE (50).
    embedding : ``tsne`` (the method: Ward on the 2-D t-SNE points) or ``pca`` (ablation: Ward
        directly on the ``pca_components`` PCA scores, no t-SNE).
    tsne : t-SNE settings and backend (:class:`inviz.fmaps.embedding.TSNEConfig`).
    clustering : Ward + silhouette implementation (:data:`inviz.fmaps.clustering.CLUSTERINGS`):
        ``scipy`` (one tree for every k) | ``sklearn`` (the authors' recipe, refitted per k).
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
    run : how the analysis runs (:class:`RunConfig`); the old top-level keys (``threads``,
        ``batch_size`` …) are accepted with a warning (:attr:`MOVED_KEYS`).
    """

    #: keys that moved under ``run`` (old params files keep working)
    MOVED_KEYS: ClassVar[dict[str, str]] = {
        name: f"run.{name}" for name in (f.name for f in dataclasses.fields(RunConfig))
    }

    layers: tuple[str, ...] = PAPER_LAYERS
    target: Literal["predicted", "label"] = "predicted"
    weights: str = "guided"
    normalisation: str = "percent"
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    minmax: bool = True
    pca_components: int = 50
    embedding: Literal["tsne", "pca"] = "tsne"
    tsne: TSNEConfig = field(default_factory=TSNEConfig)
    clustering: str = "scipy"
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
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self) -> None:
        """Accept nested sections as dicts and layers as any sequence; check names and ranges."""
        # conveniences for library use: nested sections as dicts, layers as any sequence
        for key, cls in (("threshold", ThresholdConfig), ("tsne", TSNEConfig), ("run", RunConfig)):
            if isinstance(getattr(self, key), dict):
                object.__setattr__(self, key, from_dict(cls, getattr(self, key), key))
        if not isinstance(self.layers, tuple):
            layers = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
            object.__setattr__(self, "layers", layers)
        if not self.layers:
            raise ValueError("layers: expected at least one layer name")
        for key, registry in (
            ("weights", WEIGHTINGS),
            ("normalisation", NORMALISATIONS),
            ("clustering", CLUSTERINGS),
            ("map_scaling", MAP_SCALINGS),
        ):
            if getattr(self, key) not in registry:
                raise ValueError(f"{key}: expected one of {', '.join(registry)}, got {getattr(self, key)!r}")
        if self.k_min < 2 or self.k_max < self.k_min:
            raise ValueError(f"expected 2 <= k_min <= k_max, got {self.k_min}, {self.k_max}")
        if self.pca_components < 2:
            raise ValueError(f"pca_components: expected >= 2, got {self.pca_components}")
        if self.prune_max_divisor <= 0 or self.prune_mean_divisor <= 0:
            raise ValueError("prune divisors must be > 0")

    def replace(self, **changes: Any) -> ExtractConfig:
        """Return a copy with some fields changed.

        Parameters
        ----------
        **changes : new field values; ``tsne`` / ``threshold`` / ``run`` dicts update only the given fields.

        Returns
        -------
        ExtractConfig
        """
        for key in ("tsne", "threshold", "run"):
            if isinstance(changes.get(key), dict):
                changes[key] = dataclasses.replace(getattr(self, key), **changes[key])
        return dataclasses.replace(self, **changes)


def resolve_device(device: str) -> torch.device:
    """Resolve a ``run.device`` setting to a torch device.

    Parameters
    ----------
    device : ``auto`` (``cuda`` when available, else ``cpu``) or a torch device string.

    Returns
    -------
    torch.device
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


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
    """INV feature-map analysis of a set of images (docs/method.md §1).

    Parameters
    ----------
    model : a CNN returning logits of shape (N, K); used as it is (put it in eval mode), never modified.
    images : Tensor of shape (N, 3, H, W), normalised for the model; moved to the model's device.
    layers : layer names (module names, Keras aliases for VGG, ``last_conv:N``); default ``cfg.layers``.
    cfg : settings; default ``ExtractConfig()``. Images go through in batches of ``cfg.run.batch_size``.
    targets : Tensor or sequence of shape (N,), the class per image; default the predicted class.
    sample_ids : sequence of shape (N,), ids for the records; default ``"0", "1", …``.
    progress : show a tqdm bar over images.
    timings : optional dict receiving seconds per step (``forward_backward``, ``weights``,
        ``pca``, ``tsne``, ``clustering``, ``maps``).

    Returns
    -------
    list of N :class:`ImageExplanation`, in input order.

    Notes
    -----
    Results are deterministic for a given configuration (seed) and batch size. A different batch
    size can change the network's activations by float rounding (batched convolutions), which
    t-SNE may amplify into a different embedding; kept maps and weights agree to rounding.
    """
    from tqdm.auto import tqdm

    cfg = cfg or ExtractConfig()
    layers = tuple(layers) if layers is not None else cfg.layers
    layers = expand_layers(model, layers, int(images.shape[-1]))
    n = images.shape[0]
    ids = [str(s) for s in sample_ids] if sample_ids is not None else [str(i) for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"sample_ids: expected {n} ids, got {len(ids)}")
    tgt = None if targets is None else torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if tgt is not None and tgt.numel() != n:
        raise ValueError(f"targets: expected {n} class indices, got {tgt.numel()}")
    out: list[ImageExplanation] = []
    device = _model_device(model)
    batch = cfg.run.batch_size
    capture = LayerCapture(model, layers)
    with capture as cap, tqdm(total=n, desc="INV extract", unit="img", disable=not progress) as bar:
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            x = images[start:stop].to(device)
            with timed(timings, "forward_backward"):
                captured = cap.run(x, None if tgt is None else tgt[start:stop].to(device))
            out.extend(analyse_batch(captured, cfg, ids[start:stop], tuple(x.shape[-2:]), timings))
            bar.update(stop - start)
    return out


@dataclass(eq=False)
class _Problem:
    """One image and layer: its maps, weights and the kept channels (one t-SNE + Ward problem)."""

    b: int  # image within the batch
    layer: Any  # the captured layer (``.name``, ``.module``)
    acts: torch.Tensor  # (C, H, W) for this image
    w_raw: torch.Tensor  # (C,)
    w_norm: torch.Tensor  # (C,)
    total: float
    scale: float
    threshold: float | None
    kept: torch.Tensor  # (n,) channel ids


def _problems(captured: Captured, cfg: ExtractConfig) -> list[_Problem]:
    """Channel weights, normalisation and threshold of every image and layer of a batch (§1.2-§1.4)."""
    nb = captured.logits.shape[0]
    problems: list[_Problem] = []
    for layer in captured.layers:
        acts = captured.activations[layer.name].float()
        problem = spatial_problem(acts)
        if problem:
            raise LayerError(
                f"layer {layer.name!r} ({layer.capture}): {problem}; INV needs the spatial map of a "
                "convolution or a block (an earlier layer, or last_conv:N)"
            )
        grads = captured.gradients[layer.name].float()
        w = WEIGHTINGS[cfg.weights](acts, grads)  # (B, C)
        total = layer_total(w)  # (B,)
        w_norm = NORMALISATIONS[cfg.normalisation](w, total)
        scales = normalisation_scale(cfg.normalisation, total).tolist()
        thr = layer_threshold(layer.name, acts.shape[1], cfg.threshold)
        keep = keep_mask(w, thr, cfg.threshold.keep_nonpositive)
        totals = total.tolist()
        for b in range(nb):
            kept = keep[b].nonzero().flatten()
            problems.append(_Problem(b, layer, acts[b], w[b], w_norm[b], totals[b], scales[b], thr, kept))
    return problems


def _embed(
    problems: Sequence[_Problem], cfg: ExtractConfig, device: torch.device, timings: dict[str, float] | None
) -> list[Embedding]:
    """Min-max scaled kept maps -> points to cluster, every problem of the batch at once (§1.5-§1.6)."""
    with timed(timings, "weights"):
        xs = []
        for pr in problems:
            flat = pr.acts[pr.kept].flatten(1)
            xs.append(minmax_rows(flat) if cfg.minmax else flat)
    if cfg.embedding == "pca":
        return embed_pca(xs, cfg.pca_components, timings)
    backend = resolve_backend(cfg.tsne.backend, device)
    return embed(xs, cfg.tsne, cfg.pca_components, cfg.seed, backend=backend, timings=timings)


def analyse_batch(
    captured: Captured,
    cfg: ExtractConfig,
    ids: Sequence[str],
    input_size: tuple[int, int],
    timings: dict[str, float] | None = None,
) -> list[ImageExplanation]:
    """Analyse one captured batch: weights, threshold, embedding, clusters, maps (§1.2-§1.9).

    Parameters
    ----------
    captured : activations (B, C, H, W) and gradients of every layer, logits (B, K) and targets (B,)
        of one forward/backward pass (:class:`inviz.fmaps.gradients.Captured`).
    cfg : the settings.
    ids : sequence of shape (B,), the images' ids.
    input_size : (height, width) of the network input (``map_scaling: code`` upsamples to it).
    timings : optional dict receiving seconds per step.

    Returns
    -------
    list of B :class:`ImageExplanation`.
    """
    with timed(timings, "weights"):
        problems = _problems(captured, cfg)
    embeddings = _embed(problems, cfg, captured.logits.device, timings)
    nb = captured.logits.shape[0]
    per_image: list[dict[str, LayerExplanation]] = [{} for _ in range(nb)]
    for pr, emb in zip(problems, embeddings, strict=True):
        with timed(timings, "clustering"):
            est = WardSilhouette(cfg.k_min, cfg.k_max, cfg.few_points, cfg.clustering).fit(emb.points)
        with timed(timings, "maps"):
            per_image[pr.b][pr.layer.name] = _layer_record(pr, emb, est, cfg, input_size)
    logits = captured.logits.float().cpu()
    targets = captured.targets.cpu()
    probs, preds = logits.softmax(1).max(1)
    return [
        ImageExplanation(
            ids[b],
            int(targets[b]),
            int(preds[b]),
            float(logits[b, targets[b]]),
            per_image[b],
            float(probs[b]),
        )
        for b in range(nb)
    ]


def _clusters(
    pr: _Problem, labels_in: np.ndarray, k: int, cfg: ExtractConfig, input_size: tuple[int, int]
) -> tuple[np.ndarray, list[ClusterResult]]:
    """Cluster weights and maps numbered by decreasing weight, pruning, map scaling (§1.8-§1.9).

    Returns the labels renumbered like the clusters, ndarray of shape (n,), and the clusters.
    """
    weights = pr.w_norm[pr.kept]
    labels = torch.as_tensor(labels_in, dtype=torch.long, device=pr.acts.device)
    w_c, a_c = cluster_maps(pr.acts[pr.kept], weights, labels, k)
    # clusters numbered by decreasing weight (stable for ties)
    order = torch.as_tensor(np.argsort(-w_c.double().cpu().numpy(), kind="stable"), device=w_c.device)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(k, device=w_c.device)
    w_c, a_c = w_c[order], a_c[order]
    labels = rank[labels]
    if cfg.prune:
        kept_mask = prune_mask(w_c, cfg.prune_max_divisor, cfg.prune_mean_divisor)
    else:
        kept_mask = torch.ones(k, dtype=torch.bool)
    shown = MAP_SCALINGS[cfg.map_scaling](a_c, input_size)
    map_dtype = np.float16 if cfg.map_dtype == "float16" else np.float32
    labels_np = labels.cpu().numpy().astype(np.int64)
    a_np = a_c.float().cpu().numpy().astype(map_dtype)
    s_np = shown.float().cpu().numpy().astype(map_dtype)
    w_np = w_c.double().cpu().numpy()
    pruned = ~kept_mask.cpu().numpy()
    kept_np = pr.kept.cpu().numpy().astype(np.int64)
    clusters = [
        ClusterResult(j, float(w_np[j]), kept_np[labels_np == j], a_np[j], s_np[j], bool(pruned[j]))
        for j in range(k)
    ]
    return labels_np, clusters


def _layer_record(
    pr: _Problem, emb: Embedding, est: WardSilhouette, cfg: ExtractConfig, input_size: tuple[int, int]
) -> LayerExplanation:
    c, h, w = pr.acts.shape
    n = int(pr.kept.numel())
    status = est.status_
    n_positive = int((pr.w_raw > 0).sum())
    if n == 0 and n_positive == 0:
        status = "no_positive"
    k = int(est.n_clusters_)
    labels_np, clusters = np.zeros(n, dtype=np.int64), []
    if n and k:
        labels_np, clusters = _clusters(pr, est.labels_, k, cfg, input_size)
    return LayerExplanation(
        layer=pr.layer.name,
        module=pr.layer.module,
        n_channels=c,
        height=h,
        width=w,
        threshold=pr.threshold,
        total_weight=float(pr.total),
        scale=float(pr.scale),
        n_positive=n_positive,
        channels=pr.kept.cpu().numpy().astype(np.int64),
        weights=pr.w_norm[pr.kept].double().cpu().numpy(),
        embedding=emb.points,
        embedding_method=emb.method,
        perplexity=float(emb.perplexity),
        kl=float(emb.kl),
        tsne_iter=int(emb.n_iter),
        ks=tuple(int(v) for v in est.ks_),
        silhouettes=tuple(float(v) for v in est.silhouette_scores_),
        k=k,
        silhouette=float(est.silhouette_),
        labels=labels_np,
        clusters=tuple(clusters),
        status=status,
    )
