"""Channel weights, their normalisation and the per-layer map threshold (METHOD.md §1.2-§1.4).

Three registries, each a dict ``name -> function`` chosen by a string in ``params.yaml``:

- :data:`WEIGHTINGS` — channel weight ``w_k`` from activations ``A`` and gradients ``G`` of shape
  (N, C, H, W), returning (N, C):

  * ``guided`` (authors' code, default): spatial mean of ``G * 1[A > 0] * 1[G > 0]`` (zeros
    included in the mean), so ``w_k >= 0``;
  * ``gradcam`` (paper text): plain spatial mean of ``G`` (Grad-CAM's weights; may be negative).

- :data:`NORMALISATIONS` — the scale of the stored weights, from ``w`` (C,) and the layer's total
  ``T = sum_k max(w_k, 0)`` (the L1 sum of the positive weights; for ``guided`` weights simply
  ``sum(w)``; for ``gradcam`` the sum after removing the maps with ``w <= 0``):

  * ``percent`` (code, default): ``100 * w / T``, weights of a layer sum to 100;
  * ``unit`` (paper text, "unit normalisation"): ``w / T``, weights sum to 1;
  * ``none``: the raw ``w`` (e.g. to compare with Grad-CAM in its own units).

  The map threshold is always expressed as a **percentage share** ``100 * w / T`` whatever the
  normalisation, so the normalisation only rescales the stored weights and cluster weights; the
  pruning rule and Table 1 are scale-free.

- :data:`THRESHOLD_RULES` — the per-layer threshold (percent share) for a layer with ``C``
  channels: ``channels`` (code: 0.175 if C >= 512, 0.35 if C >= 256, 0.7 if C >= 128, 1.4 if
  C >= 64, else 76.8 / C — every number is a parameter of :class:`ThresholdConfig`), ``values``
  (explicit per-layer values) or ``none`` (no threshold).

A channel is kept when its weight is positive and its share is **strictly greater** than the
threshold. ``keep_nonpositive=True`` together with rule ``none`` keeps every channel, negative
ones included, which turns the weighted sum of the kept maps into plain Grad-CAM (the identity
test of METHOD.md §1.8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

#: (activations, gradients) -> weights; shapes (N, C, H, W), (N, C, H, W) -> (N, C)
WeightFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def guided_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Spatial mean of ``grads * 1[acts > 0] * 1[grads > 0]`` (authors' code), shape (N, C)."""
    return (grads * ((acts > 0) & (grads > 0))).mean(dim=(2, 3))


def gradcam_weights(acts: torch.Tensor, grads: torch.Tensor) -> torch.Tensor:
    """Spatial mean of ``grads`` (Grad-CAM, paper text), shape (N, C)."""
    return grads.mean(dim=(2, 3))


WEIGHTINGS: dict[str, WeightFn] = {
    "guided": guided_weights,
    "gradcam": gradcam_weights,
}


def layer_total(w: torch.Tensor) -> torch.Tensor:
    """``T = sum_k max(w_k, 0)`` over the last dimension: (…, C) -> (…,)."""
    return w.clamp(min=0).sum(-1)


def _safe(total: torch.Tensor) -> torch.Tensor:
    return torch.where(total > 0, total, torch.ones_like(total))


NORMALISATIONS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "percent": lambda w, total: 100.0 * w / _safe(total)[..., None],
    "unit": lambda w, total: w / _safe(total)[..., None],
    "none": lambda w, total: w,
}


def share_percent(w: torch.Tensor) -> torch.Tensor:
    """Percentage share ``100 * w / T`` of each channel, (…, C) -> (…, C); zeros when T = 0."""
    return 100.0 * w / _safe(layer_total(w))[..., None]


@dataclass(frozen=True)
class ThresholdConfig:
    """``extract.threshold``: which channels' maps are kept (METHOD.md §1.4).

    rule : ``channels`` (by channel count, the authors' code), ``values`` (explicit per-layer
        values in ``values``) or ``none`` (keep every positive-weight channel).
    by_channels : ``[[min_channels, percent], ...]`` in decreasing ``min_channels``: the first
        step with ``C >= min_channels`` gives the threshold (code: 512 -> 0.175, 256 -> 0.35,
        128 -> 0.7, 64 -> 1.4).
    below : for fewer channels than the last step, threshold = ``below / C`` (code: 76.8, about
        0.9x the uniform share 100/C).
    values : rule ``values``: ``{layer name: percent}``; every explained layer must be listed.
    keep_nonpositive : keep channels with ``w <= 0`` too (only with rule ``none``); makes the
        weighted sum of kept maps equal plain Grad-CAM (default False: METHOD.md §1.2 removes them).
    """

    rule: Literal["channels", "values", "none"] = "channels"
    by_channels: tuple[tuple[int, float], ...] = ((512, 0.175), (256, 0.35), (128, 0.7), (64, 1.4))
    below: float = 76.8
    values: dict[str, float] = field(default_factory=dict)
    keep_nonpositive: bool = False

    def __post_init__(self) -> None:
        steps = [c for c, _ in self.by_channels]
        if steps != sorted(steps, reverse=True):
            raise ValueError(f"threshold.by_channels: expected decreasing channel counts, got {steps}")
        if self.keep_nonpositive and self.rule != "none":
            raise ValueError("threshold.keep_nonpositive: only meaningful with rule 'none'")


def channel_count_threshold(n_channels: int, cfg: ThresholdConfig) -> float:
    """The authors' threshold rule: percent share for a layer with ``n_channels`` channels."""
    for min_c, value in cfg.by_channels:
        if n_channels >= min_c:
            return float(value)
    return float(cfg.below) / n_channels


THRESHOLD_RULES: dict[str, Callable[[str, int, ThresholdConfig], float | None]] = {
    "channels": lambda layer, c, cfg: channel_count_threshold(c, cfg),
    "values": lambda layer, c, cfg: _explicit(layer, cfg.values),
    "none": lambda layer, c, cfg: None,
}


def _explicit(layer: str, values: Mapping[str, float]) -> float:
    if layer not in values:
        raise ValueError(
            f"threshold.values: no value for layer {layer!r} (rule 'values' needs one per layer; "
            f"given: {', '.join(values) or 'none'})"
        )
    return float(values[layer])


def layer_threshold(layer: str, n_channels: int, cfg: ThresholdConfig) -> float | None:
    """Threshold (percent share) for ``layer``; ``None`` means no threshold."""
    return THRESHOLD_RULES[cfg.rule](layer, n_channels, cfg)


def keep_mask(w: torch.Tensor, threshold: float | None, keep_nonpositive: bool = False) -> torch.Tensor:
    """Channels kept for the map analysis.

    Parameters
    ----------
    w : Tensor of shape (…, C), raw channel weights.
    threshold : percent share; a channel is kept when ``w > 0`` and ``100 w / T > threshold``.
        ``None``: every positive channel (every channel when ``keep_nonpositive``).

    Returns
    -------
    BoolTensor of shape (…, C).
    """
    if threshold is None:
        return torch.ones_like(w, dtype=torch.bool) if keep_nonpositive else w > 0
    return (w > 0) & (share_percent(w) > threshold)
