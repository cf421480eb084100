"""The per-layer map threshold: which channels' maps enter the analysis (docs/method.md §1.4).

The threshold is a **percentage share** ``100 * w_k / T`` of the layer's total positive weight
``T`` (:func:`inviz.fmaps.weighting.share_percent`), whatever the normalisation of the stored
weights. :data:`THRESHOLD_RULES` is a registry ``name -> rule`` chosen by ``extract.threshold.rule``;
a rule gives the threshold of a layer from its name and channel count ``C``:

- ``channels`` (authors' code, default): 0.175 if C >= 512, 0.35 if C >= 256, 0.7 if C >= 128,
  1.4 if C >= 64, else 76.8 / C (every number is a parameter of :class:`ThresholdConfig`);
- ``values``: explicit per-layer values;
- ``none``: no threshold.

A channel is kept (:func:`keep_mask`) when its weight is positive and its share is **strictly
greater** than the threshold. ``keep_nonpositive=True`` together with rule ``none`` keeps every
channel, negative ones included, which turns the weighted sum of the kept maps into plain Grad-CAM
(the identity test of docs/method.md §1.8).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch

from inviz.fmaps.weighting import share_percent


@dataclass(frozen=True)
class ThresholdConfig:
    """``extract.threshold``: which channels' maps are kept (docs/method.md §1.4).

    Parameters
    ----------
    rule : ``channels`` (by channel count, the authors' code), ``values`` (explicit per-layer
        values in ``values``) or ``none`` (keep every positive-weight channel).
    by_channels : ``[[min_channels, percent], ...]`` in decreasing ``min_channels``: the first
        step with ``C >= min_channels`` gives the threshold (code: 512 -> 0.175, 256 -> 0.35,
        128 -> 0.7, 64 -> 1.4).
    below : for fewer channels than the last step, threshold = ``below / C`` (code: 76.8, i.e.
        0.768x the uniform share 100/C; the steps themselves are ~0.9x it at their channel counts).
    values : rule ``values``: ``{layer name: percent}``; every explained layer must be listed.
    keep_nonpositive : keep channels with ``w <= 0`` too (only with rule ``none``); makes the
        weighted sum of kept maps equal plain Grad-CAM (default False: docs/method.md §1.2 removes them).
    """

    rule: Literal["channels", "values", "none"] = "channels"
    by_channels: tuple[tuple[int, float], ...] = ((512, 0.175), (256, 0.35), (128, 0.7), (64, 1.4))
    below: float = 76.8
    values: dict[str, float] = field(default_factory=dict)
    keep_nonpositive: bool = False

    def __post_init__(self) -> None:
        """Check the steps and the ``keep_nonpositive`` combination."""
        steps = [c for c, _ in self.by_channels]
        if steps != sorted(steps, reverse=True):
            raise ValueError(f"threshold.by_channels: expected decreasing channel counts, got {steps}")
        if self.keep_nonpositive and self.rule != "none":
            raise ValueError("threshold.keep_nonpositive: only meaningful with rule 'none'")


def channel_count_threshold(n_channels: int, cfg: ThresholdConfig) -> float:
    """Apply the authors' threshold rule: the percent share for a layer with ``n_channels`` channels.

    Parameters
    ----------
    n_channels : number of channels ``C`` of the layer.
    cfg : the steps (``by_channels``) and the fallback ``below / C``.

    Returns
    -------
    float, the threshold in percent.
    """
    for min_c, value in cfg.by_channels:
        if n_channels >= min_c:
            return float(value)
    return float(cfg.below) / n_channels


def _explicit(layer: str, values: Mapping[str, float]) -> float:
    if layer not in values:
        raise ValueError(
            f"threshold.values: no value for layer {layer!r} (rule 'values' needs one per layer; "
            f"given: {', '.join(values) or 'none'})"
        )
    return float(values[layer])


#: name -> ``f(layer, n_channels, cfg) -> percent share or None`` (no threshold)
THRESHOLD_RULES: dict[str, Callable[[str, int, ThresholdConfig], float | None]] = {
    "channels": lambda layer, c, cfg: channel_count_threshold(c, cfg),
    "values": lambda layer, c, cfg: _explicit(layer, cfg.values),
    "none": lambda layer, c, cfg: None,
}


def layer_threshold(layer: str, n_channels: int, cfg: ThresholdConfig) -> float | None:
    """Threshold of one layer under ``cfg.rule``.

    Parameters
    ----------
    layer : layer name (rule ``values`` looks it up).
    n_channels : number of channels ``C`` of the layer (rule ``channels``).
    cfg : the threshold settings.

    Returns
    -------
    float (percent share) or None (no threshold).
    """
    return THRESHOLD_RULES[cfg.rule](layer, n_channels, cfg)


def keep_mask(w: torch.Tensor, threshold: float | None, keep_nonpositive: bool = False) -> torch.Tensor:
    """Channels kept for the map analysis.

    Parameters
    ----------
    w : Tensor of shape (..., C), raw channel weights.
    threshold : percent share; a channel is kept when ``w > 0`` and ``100 w / T > threshold``.
        ``None``: every positive channel (every channel when ``keep_nonpositive``).
    keep_nonpositive : with ``threshold=None``, keep channels with ``w <= 0`` too.

    Returns
    -------
    BoolTensor of shape (..., C).
    """
    if threshold is None:
        return torch.ones_like(w, dtype=torch.bool) if keep_nonpositive else w > 0
    return (w > 0) & (share_percent(w) > threshold)
