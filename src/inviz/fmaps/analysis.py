"""One captured batch through the analysis (docs/method.md §1.2-§1.9): device part, then CPU part.

:func:`prepare_batch` runs right after the network pass, on its device: channel weights
(§1.2-§1.3), the map threshold (§1.4), min-max scaling (§1.5) and PCA (§1.6) of every image and
layer of the batch. The host waits for the device once per layer (to learn which channels are
kept) and once per padded size in PCA; the kept maps are copied to the host once per layer,
without blocking. :func:`finish_batch` embeds the PCA scores with t-SNE (§1.6; on the device for
the ``torch`` backend, with a wait per convergence check) and runs the CPU steps: Ward +
silhouette (§1.7), cluster weights, maps and pruning (§1.8-§1.9), the records.
:class:`inviz.fmaps.explain.Explainer` runs :func:`finish_batch` of one batch in a background
thread while the next batch goes through the network.

Every step computes each image and layer on its own (the weights of a padded batch, PCA and
t-SNE per problem, see :mod:`inviz.fmaps.pca` and :mod:`inviz.fmaps._tsne_torch`), so an image's
records do not depend on the other images of its batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from inviz.core.compute import one_thread
from inviz.core.sharing import SharedLoop
from inviz.fmaps.cluster_maps import MAP_SCALINGS, cluster_maps, prune_mask
from inviz.fmaps.clustering import WardSilhouette
from inviz.fmaps.embedding import TSNE_BACKENDS, Embedding, pca_points, resolve_backend, timed
from inviz.fmaps.gradients import Captured, ResolvedLayer
from inviz.fmaps.layers import LayerError, spatial_problem
from inviz.fmaps.pca import minmax_rows, pca_scores
from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation
from inviz.fmaps.threshold import keep_mask, layer_threshold
from inviz.fmaps.weighting import NORMALISATIONS, WEIGHTINGS, layer_total, normalisation_scale

if TYPE_CHECKING:
    from inviz.fmaps.explain import ExtractConfig


@dataclass(eq=False)
class Problem:
    """One image and layer on the host: its weights, kept channels and kept maps (one t-SNE + Ward problem).

    Parameters
    ----------
    b : the image's position in the batch.
    layer : the captured layer.
    shape : (C, H, W) of the layer.
    w_raw, w_norm : ndarrays of shape (C,), raw and normalised channel weights (float32 values).
    total, scale : the layer's total positive weight ``T`` and the normalisation factor.
    threshold : the threshold in percent (None: no threshold).
    kept : int64 ndarray of shape (n,), the kept channels.
    maps : float32 Tensor of shape (n, H, W) on the CPU, their raw activations.
    """

    b: int
    layer: ResolvedLayer
    shape: tuple[int, int, int]
    w_raw: np.ndarray
    w_norm: np.ndarray
    total: float
    scale: float
    threshold: float | None
    kept: np.ndarray
    maps: torch.Tensor


@dataclass(eq=False)
class PreparedBatch:
    """A batch after the device part: everything :func:`finish_batch` needs, on the host.

    Parameters
    ----------
    ids : the images' ids (B real images; padding images of the network batch are dropped).
    targets, preds : int64 ndarrays of shape (B,), differentiated and predicted classes.
    logits : float64 ndarray of shape (B,), the target logits.
    confidence : float64 ndarray of shape (B,), the softmax probability of the predicted class.
    problems : one :class:`Problem` per image and layer (layer-major).
    scores : one Tensor per problem: its PCA scores, shape (n, d) (on the device for ``torch``),
        or, when ``reduced`` is False, its min-max scaled kept maps, shape (n, H*W), on the host.
    method : ``pca`` (Ward on the PCA scores) or the t-SNE backend that embeds the scores.
    input_size : (height, width) of the network input.
    copied : on CUDA, an event recorded after the kept maps' copies to the host were queued.
    reduced : whether the PCA was done. On the CPU it is left to :func:`finish_batch`, i.e. to the
        background thread that overlaps the next batch's network pass (same one-thread PCA, same
        numbers); on a GPU it is part of the device work.
    """

    ids: list[str]
    targets: np.ndarray
    preds: np.ndarray
    logits: np.ndarray
    confidence: np.ndarray
    problems: list[Problem]
    scores: list[torch.Tensor]
    method: str
    input_size: tuple[int, int]
    copied: torch.cuda.Event | None = None
    reduced: bool = True


def _layer_problems(
    captured: Captured, layer: ResolvedLayer, nb: int, cfg: ExtractConfig
) -> tuple[list[Problem], list[torch.Tensor]]:
    """Weights, threshold and kept maps of one layer for the first ``nb`` images (§1.2-§1.5).

    Returns the problems (maps on the host) and the maps to embed on the device, ``(n, H*W)`` each.
    """
    acts = captured.activations[layer.name].float()  # (B, C, H, W), B >= nb (a padded batch)
    problem = spatial_problem(acts[:nb])  # the real images (a padded batch has more)
    if problem:
        raise LayerError(
            f"layer {layer.name!r} ({layer.capture}): {problem}; INV needs the spatial map of a "
            "convolution or a block (an earlier layer, or last_conv:N)"
        )
    grads = captured.gradients[layer.name].float()
    c, h, w = acts.shape[1:]
    raw = WEIGHTINGS[cfg.weights](acts, grads)  # (B, C)
    total = layer_total(raw)
    norm = NORMALISATIONS[cfg.normalisation](raw, total)
    scale = normalisation_scale(cfg.normalisation, total)
    thr = layer_threshold(layer.name, c, cfg.threshold)
    keep = keep_mask(raw, thr, cfg.threshold.keep_nonpositive)
    # one transfer (one wait for the device) for the layer's per-image numbers
    packed = torch.cat(
        [keep.double(), raw.double(), norm.double(), total.double()[:, None], scale[:, None]], 1
    )
    host = packed[:nb].cpu().numpy()
    kept = [np.flatnonzero(host[b, :c]).astype(np.int64) for b in range(nb)]
    index = torch.from_numpy(np.concatenate([b * c + k for b, k in enumerate(kept)]).astype(np.int64))
    # (sum n, H, W): every kept map of the layer (index_select: a row copy, unlike advanced indexing)
    maps = acts.flatten(0, 1).index_select(0, index.to(acts.device))
    flat = maps.flatten(1)
    xs = (minmax_rows(flat) if cfg.minmax else flat).split([len(k) for k in kept])
    maps_host = maps.to("cpu", non_blocking=True).split([len(k) for k in kept])
    problems = [
        Problem(
            b,
            layer,
            (c, h, w),
            host[b, c : 2 * c],
            host[b, 2 * c : 3 * c],
            float(host[b, 3 * c]),
            float(host[b, 3 * c + 1]),
            thr,
            kept[b],
            maps_host[b],
        )
        for b in range(nb)
    ]
    return problems, list(xs)


def prepare_batch(
    captured: Captured,
    cfg: ExtractConfig,
    ids: Sequence[str],
    input_size: tuple[int, int],
    timings: dict[str, float] | None = None,
) -> PreparedBatch:
    """Run the first part of the analysis of one captured batch: weights, threshold, min-max, PCA (§1.2-§1.6).

    Parameters
    ----------
    captured : activations (B', C, H, W) and gradients of every layer, logits (B', K) and targets
        (B',) of one forward/backward pass; ``B' >= B`` (images after the first ``len(ids)`` pad
        the network batch and are ignored).
    cfg : the settings.
    ids : sequence of shape (B,), the images' ids.
    input_size : (height, width) of the network input.
    timings : optional dict receiving seconds per step (``weights``, ``pca``).

    Returns
    -------
    :class:`PreparedBatch` (PCA scores on the device for the ``torch`` backend, the rest on the
    host; on the CPU the PCA is left to :func:`finish_batch`).
    """
    nb = len(ids)
    if nb == 0:
        empty = np.zeros(0, dtype=np.int64)
        size = (int(input_size[0]), int(input_size[1]))
        return PreparedBatch([], empty, empty, np.zeros(0), np.zeros(0), [], [], "pca", size)
    device = captured.logits.device
    problems: list[Problem] = []
    xs: list[torch.Tensor] = []
    with timed(timings, "weights"), one_thread(device):  # small tensors: threads would only wait
        for layer in captured.layers:
            p, x = _layer_problems(captured, layer, nb, cfg)
            problems.extend(p)
            xs.extend(x)
    method = "pca" if cfg.embedding == "pca" else resolve_backend(cfg.tsne.backend, device)
    reduced = device.type != "cpu"  # on the CPU the PCA runs in finish_batch (the background thread)
    if reduced:
        with timed(timings, "pca"):
            scores = _pca(xs, method, cfg, device)
    else:
        scores = xs
    logits = captured.logits[:nb].float()
    targets = captured.targets[:nb]
    target_logits = logits.gather(1, targets[:, None])[:, 0]
    confidence = logits.double().softmax(1).max(1).values
    head = torch.stack([targets.double(), logits.argmax(1).double(), target_logits.double(), confidence])
    head = head.cpu().numpy()
    copied = None
    if device.type == "cuda":  # the kept maps are copied to the host without blocking
        copied = torch.cuda.Event()
        copied.record(torch.cuda.current_stream(device))
    return PreparedBatch(
        list(ids),
        head[0].astype(np.int64),
        head[1].astype(np.int64),
        head[2],
        head[3],
        problems,
        scores,
        method,
        (int(input_size[0]), int(input_size[1])),
        copied,
        reduced,
    )


def _pca(xs: list[torch.Tensor], method: str, cfg: ExtractConfig, device: torch.device) -> list[torch.Tensor]:
    """Reduce each problem's kept maps, shape (n, H*W), to PCA scores, shape (n, d), on one thread."""
    with one_thread(device):
        if method == "pca":
            return pca_scores(xs, cfg.pca_components)
        if method != "torch":  # the CPU backends
            xs = [x.cpu() for x in xs]
        return TSNE_BACKENDS[method].pca(xs, cfg.pca_components, cfg.seed)


def finish_batch(
    batch: PreparedBatch,
    cfg: ExtractConfig,
    timings: dict[str, float] | None = None,
    shared: SharedLoop | None = None,
) -> list[ImageExplanation]:
    """Run the second part: t-SNE, Ward + silhouette, cluster weights and maps, pruning, records (§1.6-§1.9).

    Parameters
    ----------
    batch : the output of :func:`prepare_batch`.
    cfg : the settings.
    timings : optional dict receiving seconds per step (``pca`` on the CPU, ``tsne``, ``clustering``,
        ``maps``).
    shared : runs the per-problem loops (PCA on the CPU; Ward, cluster maps and records) so that a
        waiting thread can take part (:meth:`inviz.core.sharing.SharedLoop.help`); each problem is
        computed on one thread on its own, so the records are the same whoever computes them.

    Returns
    -------
    list of B :class:`ImageExplanation`, in batch order.
    """
    shared = shared or SharedLoop()
    cuda = batch.copied is not None
    scores = batch.scores
    if not batch.reduced:
        cpu = torch.device("cpu")
        with timed(timings, "pca"):  # problem by problem: the same numbers as all at once (pca_scores)
            scores = shared.map(lambda i: _pca([batch.scores[i]], batch.method, cfg, cpu)[0], len(scores))
    # a background thread starts on CUDA device 0: work on the batch's device
    with torch.cuda.device(batch.copied.device) if cuda else contextlib.nullcontext():
        if batch.method == "pca":
            embeddings = pca_points(scores)
        else:
            embeddings = TSNE_BACKENDS[batch.method].embed_scores(scores, cfg.tsne, cfg.seed, timings)
        if cuda:
            batch.copied.synchronize()
    if len(embeddings) != len(batch.problems):
        raise RuntimeError(f"t-SNE returned {len(embeddings)} embeddings for {len(batch.problems)} problems")

    def record(i: int) -> LayerExplanation:
        pr, emb = batch.problems[i], embeddings[i]
        with one_thread("cpu"):  # one problem's maps at a time: threads would only wait for each other
            with timed(timings, "clustering"):
                est = WardSilhouette(cfg.k_min, cfg.k_max, cfg.few_points, cfg.clustering).fit(emb.points)
            with timed(timings, "maps"):
                return _layer_record(pr, emb, est, cfg, batch.input_size)

    per_image: list[dict[str, LayerExplanation]] = [{} for _ in batch.ids]
    for pr, rec in zip(batch.problems, shared.map(record, len(batch.problems)), strict=True):
        per_image[pr.b][pr.layer.name] = rec
    return [
        ImageExplanation(
            sid,
            int(batch.targets[b]),
            int(batch.preds[b]),
            float(batch.logits[b]),
            per_image[b],
            float(batch.confidence[b]),
        )
        for b, sid in enumerate(batch.ids)
    ]


def analyse_batch(
    captured: Captured,
    cfg: ExtractConfig,
    ids: Sequence[str],
    input_size: tuple[int, int],
    timings: dict[str, float] | None = None,
    shared: SharedLoop | None = None,
) -> list[ImageExplanation]:
    """Analyse one captured batch: :func:`prepare_batch`, then :func:`finish_batch` (§1.2-§1.9).

    Parameters
    ----------
    captured : one forward/backward pass (:class:`inviz.fmaps.gradients.Captured`); images after
        the first ``len(ids)`` are padding and ignored.
    cfg : the settings.
    ids : sequence of shape (B,), the images' ids.
    input_size : (height, width) of the network input (``map_scaling: code`` upsamples to it).
    timings : optional dict receiving seconds per step.
    shared : runs :func:`finish_batch`'s per-problem loops (see there).

    Returns
    -------
    list of B :class:`ImageExplanation`.
    """
    return finish_batch(prepare_batch(captured, cfg, ids, input_size, timings), cfg, timings, shared)


def _clusters(
    pr: Problem, labels_in: np.ndarray, k: int, cfg: ExtractConfig, input_size: tuple[int, int]
) -> tuple[np.ndarray, list[ClusterResult]]:
    """Cluster weights and maps numbered by decreasing weight, pruning, map scaling (§1.8-§1.9).

    Returns the labels renumbered like the clusters, ndarray of shape (n,), and the clusters.
    """
    weights = torch.from_numpy(pr.w_norm[pr.kept].astype(np.float32))
    w_c, a_c = cluster_maps(pr.maps, weights, torch.as_tensor(labels_in, dtype=torch.long), k)
    # clusters numbered by decreasing weight (stable for ties)
    order = np.argsort(-w_c.double().numpy(), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(k)
    w_c, a_c = w_c[torch.from_numpy(order)], a_c[torch.from_numpy(order)]
    w_np = w_c.double().numpy()
    labels_np = rank[np.asarray(labels_in)].astype(np.int64)
    if cfg.prune:
        pruned = ~prune_mask(w_c, cfg.prune_max_divisor, cfg.prune_mean_divisor).numpy()
    else:
        pruned = np.zeros(k, dtype=bool)
    shown = MAP_SCALINGS[cfg.map_scaling](a_c, input_size)
    map_dtype = np.float16 if cfg.map_dtype == "float16" else np.float32
    a_np = a_c.float().numpy().astype(map_dtype)
    s_np = shown.float().numpy().astype(map_dtype)
    clusters = [
        ClusterResult(j, float(w_np[j]), pr.kept[labels_np == j], a_np[j], s_np[j], bool(pruned[j]))
        for j in range(k)
    ]
    return labels_np, clusters


def _layer_record(
    pr: Problem, emb: Embedding, est: WardSilhouette, cfg: ExtractConfig, input_size: tuple[int, int]
) -> LayerExplanation:
    c, h, w = pr.shape
    n = len(pr.kept)
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
        channels=pr.kept,
        weights=pr.w_norm[pr.kept].astype(np.float64),
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
