"""Pixel relevance maps of every method compared (§8): INV beside Grad-CAM, LIME, SHAP and a random map.

A map is an ndarray of shape (H, W) at the network input's size, higher = more relevant for the
image's target class. :data:`MAP_METHODS` is the registry (name -> function):

- ``INV`` — the kept cluster maps' weighted sum ``sum_{C kept} w_C A_C`` of a layer
  (:func:`inviz.quality.completeness.shown_map`), upsampled bilinearly to the input size; the
  deepest evaluated layer is the headline, every layer can be scored;
- ``INV (heaviest)`` — the heaviest cluster's map ``A_C`` alone, upsampled the same way;
- ``Grad-CAM``, ``LIME``, ``SHAP (Gradient Explainer)`` — the survey's explainers
  (:data:`inviz.survey.panels.EXPLAINERS`) exactly as the ``survey`` section configures them, except
  that LIME's map keeps every superpixel with its signed weight unless ``pixel.lime_features`` asks for
  the survey's top-n (a map that is 0 outside five superpixels leaves most of the deletion order to ties);
- ``Random`` — i.i.d. uniform values, seeded per image: the chance level of every measure.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from inviz.fmaps.records import ImageExplanation
from inviz.quality.completeness import shown_map
from inviz.survey.panels import EXPLAINERS, SurveyConfig


@dataclass(frozen=True, eq=False)
class MapContext:
    """What the map methods need.

    Parameters
    ----------
    model : the CNN (eval mode).
    images : Tensor of shape (N, 3, H, W), normalised.
    records : N INV records, same order.
    mean, std : the input normalisation (3 floats each).
    survey : the ``survey`` section (Grad-CAM layer, LIME and SHAP settings).
    background : Tensor of shape (B, 3, H, W), SHAP's background images (None without SHAP).
    lime_features : None (every superpixel, signed) or the survey's top-n.
    seed : the random map's seed.
    """

    model: nn.Module
    images: torch.Tensor
    records: Sequence[ImageExplanation]
    mean: Sequence[float]
    std: Sequence[float]
    survey: SurveyConfig = field(default_factory=SurveyConfig)
    background: torch.Tensor | None = None
    lime_features: int | None = None
    seed: int = 432

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the network input."""
        return int(self.images.shape[-2]), int(self.images.shape[-1])

    def uint8_image(self, i: int) -> np.ndarray:
        """Image ``i`` as the network sees it, de-normalised to uint8 of shape (H, W, 3)."""
        mean = torch.as_tensor(self.mean).reshape(3, 1, 1)
        std = torch.as_tensor(self.std).reshape(3, 1, 1)
        x = (self.images[i].cpu() * std + mean).clamp(0, 1)
        return (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def upsample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Upsample a native-resolution map bilinearly to the input size (as Grad-CAM does).

    Parameters
    ----------
    a : ndarray of shape (h, w).
    size : (H, W).

    Returns
    -------
    float32 ndarray of shape (H, W).
    """
    t = torch.as_tensor(np.asarray(a, dtype=np.float32))[None, None]
    return F.interpolate(t, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()


def _inv(ctx: MapContext, i: int, layer: str | None) -> np.ndarray:
    return upsample(shown_map(ctx.records[i].layers[layer]), ctx.size)


def _inv_heaviest(ctx: MapContext, i: int, layer: str | None) -> np.ndarray:
    rec = ctx.records[i].layers[layer]
    if not rec.clusters:
        return np.zeros(ctx.size, np.float32)
    return upsample(rec.clusters[0].raw_map, ctx.size)


def _baseline(method: str) -> Callable[[MapContext, int, str | None], np.ndarray]:
    def explain(ctx: MapContext, i: int, layer: str | None) -> np.ndarray:
        cfg = ctx.survey
        if method == "LIME" and ctx.lime_features is None:
            cfg = dataclasses.replace(cfg, lime_features=10**9, lime_positive_only=False)
        elif method == "LIME":
            cfg = dataclasses.replace(cfg, lime_features=ctx.lime_features)
        extra: dict[str, Any] = {"image": ctx.uint8_image(i), "mean": ctx.mean, "std": ctx.std}
        extra["background"] = ctx.background
        x = ctx.images[i]
        return np.asarray(EXPLAINERS[method](ctx.model, x, ctx.records[i].target, cfg, extra), np.float32)

    return explain


def _random(ctx: MapContext, i: int, layer: str | None) -> np.ndarray:
    sid = ctx.records[i].sample_id
    rng = np.random.default_rng([ctx.seed, zlib.crc32(sid.encode())])
    return rng.random(ctx.size).astype(np.float32)


#: method name -> ``f(ctx, image index, layer) -> ndarray (H, W)``; ``layer`` matters for INV only
MAP_METHODS: dict[str, Callable[[MapContext, int, str | None], np.ndarray]] = {
    "INV": _inv,
    "INV (heaviest)": _inv_heaviest,
    "Grad-CAM": _baseline("Grad-CAM"),
    "LIME": _baseline("LIME"),
    "SHAP (Gradient Explainer)": _baseline("SHAP (Gradient Explainer)"),
    "Random": _random,
}

#: methods whose map depends on the layer
LAYERED: frozenset[str] = frozenset({"INV", "INV (heaviest)"})

#: a map's key: (method, layer) with layer None for the layer-free methods
MapKey = tuple[str, str | None]


def map_keys(methods: Sequence[str], headline: str, inv_layers: Sequence[str] = ()) -> list[MapKey]:
    """Return the (method, layer) keys of ``methods`` at the headline layer, plus INV at ``inv_layers``.

    Parameters
    ----------
    methods : method names (:data:`MAP_METHODS`).
    headline : the headline layer (of ``INV`` and ``INV (heaviest)``).
    inv_layers : more layers whose ``INV`` map is scored.

    Returns
    -------
    list of (method, layer or None), without repeats, in order.
    """
    keys = [(m, headline if m in LAYERED else None) for m in methods]
    keys += [("INV", layer) for layer in inv_layers]
    return list(dict.fromkeys(keys))


def compute_maps(
    ctx: MapContext, keys: Sequence[MapKey], indices: Sequence[int], progress: bool = False
) -> tuple[dict[MapKey, np.ndarray], dict[str, float]]:
    """Compute every map of ``keys`` for the images ``indices``.

    Parameters
    ----------
    ctx : the model, images, records and settings.
    keys : (method, layer) pairs (:func:`map_keys`).
    indices : image positions in ``ctx.images``.
    progress : show a progress bar.

    Returns
    -------
    maps : {key: float32 ndarray of shape (n, H, W)}, rows in the order of ``indices``.
    seconds : {method: seconds spent computing its maps}.
    """
    maps: dict[MapKey, list[np.ndarray]] = {k: [] for k in keys}
    seconds: dict[str, float] = {}
    bar = tqdm(total=len(keys) * len(indices), desc="maps", disable=not progress)
    for key in keys:
        method, layer = key
        t0 = time.perf_counter()
        for i in indices:
            maps[key].append(MAP_METHODS[method](ctx, i, layer))
            bar.update(1)
        seconds[method] = seconds.get(method, 0.0) + time.perf_counter() - t0
    bar.close()
    empty = np.zeros((0, *ctx.size), np.float32)
    return {k: np.stack(v) if v else empty for k, v in maps.items()}, seconds
