"""The ``evaluate`` stage's one library call: every quality measure of docs/method.md §8 on INV's records.

:func:`evaluate` takes the model, the explained images and their INV records (the extraction) plus
what the baselines need (:class:`EvaluationInputs`), runs the measures the ``evaluate`` section
enables on nested image subsets (:mod:`inviz.quality.config`) and returns an
:class:`EvaluationResult` of tables; :mod:`inviz.quality.report` turns them into the headline
table, Markdown, figures and the metrics.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from inviz.data.parts import PartMasks
from inviz.fmaps.explain import ExtractConfig
from inviz.fmaps.records import ImageExplanation
from inviz.game.reveal import RevealConfig
from inviz.quality.completeness import completeness
from inviz.quality.concept_deletion import concept_deletion, summarise_concepts
from inviz.quality.config import EvaluateConfig, PixelConfig
from inviz.quality.localization import constant_map_notes, ground_truth, pointing_and_mass, reveal_iou
from inviz.quality.maps import MapContext, MapKey, compute_maps, map_keys
from inviz.quality.pixel import pixel_faithfulness
from inviz.quality.road import road
from inviz.quality.sanity import gradcam_mprt, mprt
from inviz.survey.panels import SurveyConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class EvaluationInputs:
    """Everything the measures read.

    Parameters
    ----------
    model : the CNN the records explain (eval mode).
    images : Tensor of shape (N, 3, H, W), normalised as for the model.
    records : N INV records (same order).
    labels : N true class indices (ground truth of localisation).
    mean, std : the input normalisation.
    extract : the extraction's settings (MPRT re-runs INV with them; completeness re-weights).
    survey : the ``survey`` section (Grad-CAM / LIME / SHAP).
    reveal : the ``masks`` section (reveal levels of the IoU).
    parts : ground-truth part masks, or None (no localisation).
    background : SHAP's background images (B, 3, H, W), or None.
    """

    model: nn.Module
    images: torch.Tensor
    records: Sequence[ImageExplanation]
    labels: Sequence[int]
    mean: Sequence[float]
    std: Sequence[float]
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    survey: SurveyConfig = field(default_factory=SurveyConfig)
    reveal: RevealConfig = field(default_factory=RevealConfig)
    parts: PartMasks | None = None
    background: torch.Tensor | None = None


@dataclass(frozen=True, eq=False)
class EvaluationResult:
    """The measures' tables (None for a measure that did not run) and their cost.

    Parameters
    ----------
    layers : the evaluated layers; ``layers[-1]`` is the headline.
    concept_rows : every intervention (:func:`inviz.quality.concept_deletion.concept_deletion`).
    concept : per image and layer (:func:`inviz.quality.concept_deletion.summarise_concepts`).
    completeness : per image and layer (:func:`inviz.quality.completeness.completeness`).
    pixel_auc, pixel_curves : :func:`inviz.quality.pixel.pixel_faithfulness`.
    road : :func:`inviz.quality.road.road`.
    sanity, sanity_gradcam : :func:`inviz.quality.sanity.mprt`, :func:`~inviz.quality.sanity.gradcam_mprt`.
    localization, iou : :func:`inviz.quality.localization.pointing_and_mass`, ``reveal_iou``.
    example_maps, example_images : the headline maps {key: (k, H, W)} and the uint8 images (H, W, 3)
        of the first ``examples`` pixel-measure images (the examples figure).
    n_images : images per measure.
    seconds : seconds per measure (``maps.<method>`` for the maps).
    notes : what was skipped and why.
    """

    layers: tuple[str, ...]
    concept_rows: pd.DataFrame | None = None
    concept: pd.DataFrame | None = None
    completeness: pd.DataFrame | None = None
    pixel_auc: pd.DataFrame | None = None
    pixel_curves: pd.DataFrame | None = None
    road: pd.DataFrame | None = None
    sanity: pd.DataFrame | None = None
    sanity_gradcam: pd.DataFrame | None = None
    localization: pd.DataFrame | None = None
    iou: pd.DataFrame | None = None
    example_maps: dict[MapKey, np.ndarray] = field(default_factory=dict)
    example_images: tuple[np.ndarray, ...] = ()
    n_images: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def headline_layer(self) -> str:
        """The deepest evaluated layer."""
        return self.layers[-1]


def image_order(n: int, seed: int) -> np.ndarray:
    """Return the seeded order of the images; a measure with ``n_images = m`` takes the first m (nested).

    Parameters
    ----------
    n : number of images.
    seed : the order's seed.

    Returns
    -------
    int64 ndarray of shape (n,), a permutation.
    """
    return np.random.default_rng(seed).permutation(n)


def subset(order: np.ndarray, n_images: int | None) -> list[int]:
    """Return the first ``n_images`` of ``order`` (all when None), sorted back into input order."""
    return sorted(int(i) for i in order[: len(order) if n_images is None else n_images])


def _layers(inputs: EvaluationInputs, cfg: EvaluateConfig) -> tuple[str, ...]:
    present = tuple(inputs.records[0].layers) if inputs.records else ()
    layers = cfg.layers or present
    missing = [layer for layer in layers if layer not in present]
    if missing:
        raise ValueError(f"evaluate.layers: {missing} not in the extraction (layers: {list(present)})")
    return tuple(layers)


def _maps(
    inputs: EvaluationInputs, cfg: EvaluateConfig, layers: tuple[str, ...], order: np.ndarray, timing: dict
) -> tuple[dict[MapKey, np.ndarray], list[int]]:
    """Every map any enabled pixel measure needs, for the union of their images."""
    keys: list[MapKey] = []
    wanted: list[int | None] = []
    if cfg.pixel.enabled:
        keys += map_keys(cfg.pixel.methods, layers[-1], _inv_layers(cfg.pixel, layers))
        wanted.append(cfg.pixel.n_images)
    if cfg.road.enabled:
        keys += map_keys(cfg.road.methods, layers[-1])
        wanted.append(cfg.road.n_images)
    if cfg.localization.enabled and inputs.parts is not None and len(inputs.parts):
        keys += map_keys(cfg.localization.methods, layers[-1], layers)
        wanted.append(cfg.localization.n_images)
    if not keys:
        return {}, []
    n = None if any(w is None for w in wanted) else max(w for w in wanted if w is not None)
    idx = subset(order, n)
    ctx = MapContext(
        inputs.model,
        inputs.images,
        inputs.records,
        inputs.mean,
        inputs.std,
        inputs.survey,
        inputs.background,
        cfg.pixel.lime_features,
        cfg.pixel.seed,
    )
    maps, seconds = compute_maps(ctx, list(dict.fromkeys(keys)), idx, cfg.run.progress)
    timing.update({"maps." + re.sub(r"[^a-z0-9]+", "_", m.lower()).strip("_"): s for m, s in seconds.items()})
    return maps, idx


def _rows(maps: dict[MapKey, np.ndarray], idx: list[int], wanted: list[int], keys: list[MapKey]) -> dict:
    """Return the rows of ``wanted`` images (positions in ``idx``) of the maps ``keys``."""
    pos = [idx.index(i) for i in wanted]
    return {k: maps[k][pos] for k in keys}


class _Runner:
    """Runs the measures of one :func:`evaluate` call, timing each and counting its images."""

    def __init__(self, inputs: EvaluationInputs, cfg: EvaluateConfig) -> None:
        self.inputs, self.cfg = inputs, cfg
        self.layers = _layers(inputs, cfg)
        self.order = image_order(len(inputs.records), cfg.seed)
        self.model = inputs.model.eval()
        self.targets = [r.target for r in inputs.records]
        self.ids = [r.sample_id for r in inputs.records]
        self.out: dict = {"n_images": {}, "seconds": {}}
        self.bs, self.progress = cfg.run.batch_size, cfg.run.progress

    def timed(self, name: str, n: int, fn: Callable, *args: Any) -> Any:
        t0 = time.perf_counter()
        value = fn(*args)
        self.out["seconds"][name] = time.perf_counter() - t0
        self.out["n_images"][name] = n
        return value

    def images(self, idx: list[int]) -> tuple[torch.Tensor, list[int], list[str]]:
        return self.inputs.images[idx], [self.targets[i] for i in idx], [self.ids[i] for i in idx]

    def concept(self) -> None:
        idx = subset(self.order, self.cfg.concept.n_images)
        x, recs = self.inputs.images[idx], [self.inputs.records[i] for i in idx]
        args = (self.model, x, recs, self.layers, self.cfg.concept, self.bs, self.progress)
        rows = self.timed("concept", len(idx), concept_deletion, *args)
        self.out["concept_rows"], self.out["concept"] = rows, summarise_concepts(rows, self.cfg.concept)

    def completeness(self) -> None:
        inp = self.inputs
        args = (self.model, inp.images, inp.records, self.layers, inp.extract, self.bs)
        self.out["completeness"] = self.timed("completeness", len(inp.records), completeness, *args)

    def pixel(self, maps: dict[MapKey, np.ndarray], map_idx: list[int]) -> None:
        cfg = self.cfg.pixel
        idx = subset(self.order, cfg.n_images)
        keys = map_keys(cfg.methods, self.layers[-1], _inv_layers(cfg, self.layers))
        args = (
            self.model,
            *self.images(idx),
            _rows(maps, map_idx, idx, keys),
            cfg,
            self.inputs.mean,
            self.inputs.std,
        )
        self.out["pixel_auc"], self.out["pixel_curves"] = self.timed(
            "pixel", len(idx), pixel_faithfulness, *args, self.bs, self.progress
        )
        shown = idx[: self.cfg.examples]
        head = map_keys(cfg.methods, self.layers[-1])
        self.out["example_maps"] = _rows(maps, map_idx, shown, head)
        ctx = MapContext(
            self.model, self.inputs.images, self.inputs.records, self.inputs.mean, self.inputs.std
        )
        self.out["example_images"] = tuple(ctx.uint8_image(i) for i in shown)

    def road(self, maps: dict[MapKey, np.ndarray], map_idx: list[int]) -> None:
        cfg = self.cfg.road
        idx = subset(self.order, cfg.n_images)
        sub = _rows(maps, map_idx, idx, map_keys(cfg.methods, self.layers[-1]))
        self.out["road"] = self.timed(
            "road",
            len(idx),
            road,
            self.model,
            *self.images(idx),
            sub,
            cfg,
            self.bs,
            self.progress,
            self.cfg.run.threads,
        )

    def sanity(self) -> None:
        cfg = self.cfg.sanity
        idx = subset(self.order, cfg.n_images)
        x, tg, sid = self.images(idx)
        args = (
            self.model,
            x,
            tg,
            sid,
            cfg.layers or self.layers,
            self.inputs.extract,
            cfg,
            self.bs,
            self.progress,
        )
        self.out["sanity"] = self.timed("sanity", len(idx), mprt, *args)
        args2 = (self.model, x, tg, sid, self.inputs.survey, cfg, self.bs)
        self.out["sanity_gradcam"] = self.timed("sanity_gradcam", len(idx), gradcam_mprt, *args2)

    def localization(self, maps: dict[MapKey, np.ndarray], map_idx: list[int]) -> None:
        cfg, inp = self.cfg.localization, self.inputs
        idx = subset(self.order, cfg.n_images)
        size = (int(inp.images.shape[-2]), int(inp.images.shape[-1]))
        labels = [int(inp.labels[i]) for i in idx]
        truth = np.stack(
            [
                ground_truth(inp.parts, self.ids[i], lab, cfg.parts, size)
                for i, lab in zip(idx, labels, strict=True)
            ]
        )
        sub = _rows(maps, map_idx, idx, map_keys(cfg.methods, self.layers[-1], self.layers))
        args = (self.model, *self.images(idx), sub, truth)
        self.out["localization"] = self.timed("localization", len(idx), pointing_and_mass, *args)
        levels = cfg.levels or inp.reveal.levels
        recs = [inp.records[i] for i in idx]
        args3 = (recs, labels, self.layers, inp.parts, inp.reveal, levels, size)
        self.out["iou"] = self.timed("iou", len(idx), reveal_iou, *args3)


def _inv_layers(cfg: PixelConfig, layers: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(cfg.inv_layers) if cfg.inv_layers is not None else layers


def evaluate(inputs: EvaluationInputs, cfg: EvaluateConfig) -> EvaluationResult:
    """Run the enabled quality measures (docs/method.md §8).

    Parameters
    ----------
    inputs : the model, images, records and the baselines' settings.
    cfg : the ``evaluate`` section.

    Returns
    -------
    :class:`EvaluationResult`
    """
    run = _Runner(inputs, cfg)
    notes: list[str] = []
    has_parts = inputs.parts is not None and len(inputs.parts) > 0
    if cfg.localization.enabled and not has_parts:
        notes.append("localization skipped: the dataset has no ground-truth part masks")
    if cfg.concept.enabled:
        run.concept()
    if cfg.completeness:
        run.completeness()
    maps, map_idx = _maps(inputs, cfg, run.layers, run.order, run.out["seconds"])
    if cfg.pixel.enabled:
        run.pixel(maps, map_idx)
    if cfg.road.enabled:
        run.road(maps, map_idx)
    if cfg.sanity.enabled:
        run.sanity()
    if cfg.localization.enabled and has_parts:
        run.localization(maps, map_idx)
        notes += constant_map_notes(run.out["localization"])
    return EvaluationResult(layers=run.layers, notes=tuple(notes), **run.out)
