"""The INV feature-map analysis of a set of images: images in, cluster maps out (docs/method.md §1).

Per batch one forward and one backward pass serve all layers (§1.1, :mod:`inviz.fmaps.gradients`);
then for every image and layer (:mod:`inviz.fmaps.analysis`): channel weights (§1.2-§1.3,
:mod:`inviz.fmaps.weighting`), the map threshold (§1.4, :mod:`inviz.fmaps.threshold`), min-max
scaling (§1.5) and PCA (§1.6) of the kept maps (:mod:`inviz.fmaps.pca`), t-SNE (§1.6,
:mod:`inviz.fmaps.embedding`; all problems of a batch at once), Ward + silhouette (§1.7,
:mod:`inviz.fmaps.clustering`), cluster weights, maps and pruning (§1.8-§1.9,
:mod:`inviz.fmaps.cluster_maps`). The results are records (:mod:`inviz.fmaps.records`).
:class:`Explainer` pads every batch to the batch size, pins the numerics
(:mod:`inviz.core.compute`) and clusters one batch on the CPU while the next one runs.

:class:`ExtractConfig` holds every number of §1 (the ``extract`` section of ``params.yaml``;
defaults are the authors' code); how the analysis runs (device, batch and shard size, threads …)
is the nested :class:`RunConfig` (``extract.run``), which the stage's DVC params leave out.
Storing results is :mod:`inviz.fmaps.shards` (read back by :mod:`inviz.fmaps.store`); many images
on several devices is :mod:`inviz.fmaps.lightning`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import nn

from inviz.core.compute import exact_float32
from inviz.core.config import from_dict
from inviz.core.sharing import SharedLoop
from inviz.fmaps.analysis import finish_batch, prepare_batch
from inviz.fmaps.cluster_maps import MAP_SCALINGS
from inviz.fmaps.clustering import CLUSTERINGS
from inviz.fmaps.embedding import TSNEConfig, timed
from inviz.fmaps.gradients import LayerCapture
from inviz.fmaps.layers import expand_layers
from inviz.fmaps.records import ImageExplanation
from inviz.fmaps.threshold import ThresholdConfig
from inviz.fmaps.weighting import NORMALISATIONS, WEIGHTINGS

#: the network never sees fewer images than this per pass (a single image takes another convolution
#: path in oneDNN, whose rounding depends on the thread count; from 2 images on it does not, measured)
MIN_NETWORK_BATCH = 2

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
    re-run the stage. An image's results do not depend on which images share its batch or process
    (the last batch is padded to ``batch_size``, see :class:`Explainer`), but they can depend on the
    batch size itself (the network's convolution algorithm is chosen by shape: on the GPU, and
    batch size 1 against larger ones on the CPU), so ``batch_size`` is part of the resume
    fingerprint (:data:`RESULT_KEYS`), with the device type and the t-SNE backend.

    Parameters
    ----------
    device : ``auto`` (CUDA when available) | ``cpu`` | ``cuda`` | ``cuda:1`` …
    devices, num_nodes, strategy : Lightning ``Trainer`` settings for
        :func:`inviz.fmaps.lightning.run_extraction` (DDP; ``devices`` per node, as in ``torchrun
        --nproc_per_node``).
    batch_size : images per forward/backward pass (the last batch is padded to it).
    num_workers : data-loader workers.
    shard_size : images per output shard.
    threads : CPU threads for torch and numba in the stage (0: the libraries' defaults).
    overlap : analyse one batch on the CPU (PCA, t-SNE, Ward, cluster maps) in a background thread
        while the next batch runs through the network; the main thread joins the per-problem
        loops whenever it would wait (after the last batch); results are the same either way.
    deterministic : Lightning's ``Trainer(deterministic=...)`` for the extraction: ``true`` (default:
        deterministic kernels or an error) or ``warn`` (for models with an op that has no
        deterministic CUDA kernel, e.g. adaptive average pooling's backward).
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
    overlap: bool = True
    deterministic: bool | Literal["warn"] = True

    def __post_init__(self) -> None:
        """Check the sizes."""
        if self.batch_size < 1 or self.shard_size < 1:
            raise ValueError("run.batch_size and run.shard_size must be >= 1")
        if self.devices < 1 or self.num_nodes < 1:
            raise ValueError("run.devices and run.num_nodes must be >= 1")


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


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def set_threads(threads: int) -> None:
    """Set the CPU threads of torch and numba (``extract.run.threads``; 0 keeps the libraries' defaults).

    Parameters
    ----------
    threads : number of threads, or 0.
    """
    if threads:
        import numba

        # numba first: setting its threads resets torch's (one OpenMP runtime)
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        torch.set_num_threads(threads)


def _init_worker(threads: int) -> None:
    """Set up the background thread: torch on one thread (its tensors are small), numba as configured."""
    torch.set_num_threads(1)  # per thread (OpenMP and MKL settings of this thread)
    if threads:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # per thread too


def _close_worker(pool: ThreadPoolExecutor, threads: int) -> None:
    """Stop the background thread, leaving torch's default for new threads as the caller had it."""
    pool.submit(torch.set_num_threads, threads)
    pool.shutdown(wait=True)


class Explainer:
    """Explains batches one after the other; a context manager (hooks, numerics, worker thread).

    Per batch (:meth:`submit`): the images are padded to ``cfg.run.batch_size`` (at least
    :data:`MIN_NETWORK_BATCH`; copies of the last image), go through one forward and one backward
    pass, then the device part of the analysis (:func:`inviz.fmaps.analysis.prepare_batch`); the
    CPU part (:func:`inviz.fmaps.analysis.finish_batch`: on a CPU device also the PCA, then t-SNE,
    Ward, cluster maps, records) runs in a background thread while the next batch is submitted
    (``cfg.run.overlap``). When the main thread waits for it (:meth:`flush`, after the last
    batch) it computes problems of the same loops (:class:`inviz.core.sharing.SharedLoop`).
    Everything runs under :func:`inviz.core.compute.exact_float32`. The caller's model is never modified.

    Parameters
    ----------
    model : a CNN returning logits of shape (N, K), in eval mode.
    cfg : the settings.
    layers : layer names; default ``cfg.layers``.
    timings : optional dict receiving seconds per step.

    Examples
    --------
    >>> with Explainer(model, cfg) as ex:                    # doctest: +SKIP
    ...     records = [r for x, ids in batches for r in ex.submit(x, None, ids)] + ex.flush()
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: ExtractConfig,
        layers: Sequence[str] | None = None,
        timings: dict[str, float] | None = None,
    ) -> None:
        self.model = model
        self.cfg = cfg
        self.layers = tuple(layers) if layers is not None else cfg.layers
        self.timings = timings
        self.device = _model_device(model)
        self._stack: contextlib.ExitStack | None = None
        self._capture: LayerCapture | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: Future | None = None
        self._shared = SharedLoop()

    def __enter__(self) -> Explainer:
        """Pin the numerics, register the hooks, start the worker thread."""
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(exact_float32())
            self._capture = stack.enter_context(LayerCapture(self.model, self.layers))
            if self.cfg.run.overlap:
                threads = self.cfg.run.threads
                pool = ThreadPoolExecutor(1, "inviz-cluster", initializer=_init_worker, initargs=(threads,))
                stack.callback(_close_worker, pool, torch.get_num_threads())
                self._pool = pool
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def __exit__(self, *exc: Any) -> None:
        """Wait for the worker, remove the hooks, restore the numerics."""
        self.close()

    def close(self) -> None:
        """Like leaving the context; safe to call twice."""
        self._pending = None
        if self._stack is not None:
            stack, self._stack = self._stack, None
            stack.close()
        self._capture = self._pool = None

    def submit(
        self, images: torch.Tensor, targets: torch.Tensor | Sequence[int] | None, ids: Sequence[str]
    ) -> list[ImageExplanation]:
        """Explain one batch.

        Parameters
        ----------
        images : Tensor of shape (B, 3, H, W), ``B <= cfg.run.batch_size``, normalised for the model.
        targets : Tensor or sequence of shape (B,), the class per image, or None (predicted class).
        ids : sequence of shape (B,), the images' ids.

        Returns
        -------
        list of :class:`ImageExplanation`: the records finished by now (with ``overlap``, those of
        the previous batch; :meth:`flush` returns the rest).
        """
        if self._capture is None:
            raise RuntimeError("Explainer.submit must be called inside 'with Explainer(...)'")
        n, size = images.shape[0], max(self.cfg.run.batch_size, MIN_NETWORK_BATCH)
        if n > self.cfg.run.batch_size:
            raise ValueError(
                f"a batch of {n} images is larger than run.batch_size ({self.cfg.run.batch_size})"
            )
        x = images.to(self.device)
        tgt = (
            None
            if targets is None
            else torch.as_tensor(targets, dtype=torch.long).reshape(-1).to(self.device)
        )
        if 0 < n < size:  # pad: every image goes through the network in a batch of the same size
            x = torch.cat([x, x[-1:].expand(size - n, *x.shape[1:])])
            tgt = None if tgt is None else torch.cat([tgt, tgt[-1:].expand(size - n)])
        with timed(self.timings, "forward_backward"):
            captured = self._capture.run(x, tgt)
        names, input_size = [str(i) for i in ids], (int(x.shape[-2]), int(x.shape[-1]))
        # the device part here, also on the CPU: in the background thread (next to the next batch's
        # network pass) it made the extraction slower (0.75 vs 0.65 s per image, measured A/B)
        prepared = prepare_batch(captured, self.cfg, names, input_size, self.timings)
        del captured  # only the kept maps live on
        with timed(self.timings, "wait"):  # the network is done; the previous batch's analysis is not
            done = self.flush()
        if self._pool is None:
            return done + finish_batch(prepared, self.cfg, self.timings)
        pending = self._pool.submit(finish_batch, prepared, self.cfg, self.timings, self._shared)
        pending.add_done_callback(lambda _: self._shared.wake())
        self._pending = pending
        return done

    def flush(self) -> list[ImageExplanation]:
        """Finish the batch still being clustered and return its records (empty when none).

        This thread takes part in the batch's per-problem loops (PCA, Ward, cluster maps) instead of
        only waiting (:class:`inviz.core.sharing.SharedLoop`): after the last batch, nothing else
        would use its core.

        Returns
        -------
        list of :class:`ImageExplanation`
        """
        pending, self._pending = self._pending, None
        if pending is None:
            return []
        self._shared.help(pending.done)
        return pending.result()


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
        ``pca``, ``tsne``, ``clustering``, ``maps``; summed over threads) and the main thread's
        time finishing the background analysis, waiting or helping (``wait`` between batches,
        ``tail`` after the last one).

    Returns
    -------
    list of N :class:`ImageExplanation`, in input order.

    Notes
    -----
    Results are deterministic for a given configuration, batch size and device type, and an
    image's records do not depend on the other images (their order, which of them share its
    batch, a partial last batch). A different batch size can change the network's activations
    by float rounding (the convolution algorithm is chosen by shape), which t-SNE may amplify
    into a different embedding; kept maps and weights agree to rounding.
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
    batch = cfg.run.batch_size
    with (
        Explainer(model, cfg, layers, timings) as ex,
        tqdm(total=n, desc="INV extract", unit="img", disable=not progress) as bar,
    ):
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            out.extend(
                ex.submit(images[start:stop], None if tgt is None else tgt[start:stop], ids[start:stop])
            )
            bar.update(stop - start)
        with timed(timings, "tail"):  # the last batch's analysis, nothing left to overlap it with
            out.extend(ex.flush())
    return out
