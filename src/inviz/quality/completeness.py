"""Map completeness: how much of the layer's weighted map the kept cluster maps still explain (§8, §1.8).

For one image and layer with channel weights ``w_k`` (normalised as the extraction stored them) and
activations ``A_k`` of **every** channel, the full map is ``G = sum_k w_k A_k`` (Grad-CAM's weighted
sum before its ReLU, over all channels). INV keeps the channels above the map threshold, clusters
them and prunes light clusters; what it shows sums to ``S = sum_{C kept} w_C A_C`` (docs/method.md
§1.8: the identity ``sum_C w_C A_C = sum_{j in C} w_j A_j``). Completeness loss:

    ``completeness = ||S - G|| / ||G||``  (Frobenius norm at the layer's native resolution)

0 = nothing given up; exactly 0 (up to float rounding) without threshold (``rule: none`` — with
``gradcam`` weights also ``keep_nonpositive``, since ``w <= 0`` maps are dropped otherwise) and
without pruning. It splits into what the threshold gives up (``completeness_threshold``: every
cluster, pruned ones too, against ``G``) and what pruning adds (``completeness_pruning``:
``||S - S_all|| / ||G||``).

``G`` needs the activations and gradients of every channel, which the extraction does not store:
:func:`captured_batches` re-runs the forward/backward pass (:class:`inviz.fmaps.gradients.LayerCapture`)
and the weights come from the same registry (:data:`inviz.fmaps.weighting.WEIGHTINGS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from inviz.fmaps.explain import ExtractConfig
from inviz.fmaps.gradients import Captured, LayerCapture
from inviz.fmaps.records import ImageExplanation, LayerExplanation
from inviz.fmaps.weighting import NORMALISATIONS, WEIGHTINGS, layer_total


def captured_batches(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str],
    targets: Sequence[int],
    batch_size: int,
) -> Iterator[tuple[int, Captured]]:
    """One forward/backward pass per batch: activations and gradients of every channel of ``layers``.

    Parameters
    ----------
    model : the CNN (eval mode).
    images : Tensor of shape (N, 3, H, W), normalised.
    layers : layer names.
    targets : sequence of N class indices (the differentiated logits).
    batch_size : images per pass.

    Yields
    ------
    (start, Captured) : the batch's first image index and its capture (B images).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    tgt = torch.as_tensor(list(targets), dtype=torch.long)
    with LayerCapture(model, layers) as cap:
        for start in range(0, images.shape[0], batch_size):
            stop = min(start + batch_size, images.shape[0])
            yield start, cap.run(images[start:stop].to(device), tgt[start:stop].to(device))


def normalised_weights(captured: Captured, layer: str, cfg: ExtractConfig) -> torch.Tensor:
    """Channel weights of every channel of ``layer``, normalised as the extraction normalises them.

    Parameters
    ----------
    captured : a batch's capture.
    layer : the layer name.
    cfg : ``weights`` and ``normalisation``.

    Returns
    -------
    float64 Tensor of shape (B, C).
    """
    acts = captured.activations[layer].double()
    grads = captured.gradients[layer].double()
    w = WEIGHTINGS[cfg.weights](acts, grads)
    return NORMALISATIONS[cfg.normalisation](w, layer_total(w))


def shown_map(rec: LayerExplanation, kept_only: bool = True) -> np.ndarray:
    """Return ``sum_C w_C A_C`` over the kept (or all) clusters of a record, at native resolution.

    Parameters
    ----------
    rec : the layer's record (``raw_map`` = ``A_C``, ``weight`` = ``w_C``).
    kept_only : only unpruned clusters (what INV shows) or every cluster.

    Returns
    -------
    float64 ndarray of shape (H, W) (zeros without clusters).
    """
    out = np.zeros((rec.height, rec.width))
    for cl in rec.kept_clusters if kept_only else rec.clusters:
        out += cl.weight * np.asarray(cl.raw_map, dtype=np.float64)
    return out


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else float("nan")


def completeness(
    model: nn.Module,
    images: torch.Tensor,
    records: Sequence[ImageExplanation],
    layers: Sequence[str],
    cfg: ExtractConfig,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Completeness loss of every image and layer (see the module docstring).

    Parameters
    ----------
    model : the CNN the records explain (eval mode).
    images : Tensor of shape (N, 3, H, W), normalised, in the order of ``records``.
    records : N INV records.
    layers : the layers.
    cfg : the extraction settings (``weights``, ``normalisation``) the records were made with.
    batch_size : images per forward/backward pass.

    Returns
    -------
    DataFrame with ``sample_id, layer, completeness, completeness_threshold, completeness_pruning,
    full_norm`` (one row per image and layer).
    """
    rows = []
    for start, cap in captured_batches(model, images, layers, [r.target for r in records], batch_size):
        for layer in layers:
            w = normalised_weights(cap, layer, cfg)
            full = torch.einsum("bc,bchw->bhw", w, cap.activations[layer].double()).cpu().numpy()
            for b in range(full.shape[0]):
                rec = records[start + b].layers[layer]
                g = full[b]
                norm = float(np.linalg.norm(g))
                shown, every = shown_map(rec), shown_map(rec, kept_only=False)
                rows.append(
                    {
                        "sample_id": records[start + b].sample_id,
                        "layer": layer,
                        "completeness": _ratio(float(np.linalg.norm(shown - g)), norm),
                        "completeness_threshold": _ratio(float(np.linalg.norm(every - g)), norm),
                        "completeness_pruning": _ratio(float(np.linalg.norm(shown - every)), norm),
                        "full_norm": norm,
                    }
                )
    return pd.DataFrame(rows)
