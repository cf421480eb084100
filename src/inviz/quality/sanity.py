"""Sanity check: model-parameter randomisation (MPRT, Adebayo et al. 2018; docs/method.md §8).

An explanation that does not change when the model's weights are destroyed does not explain the
model. The layers with parameters are randomised one after the other from the output down
(``order: top_down``, cascading) by Quantus' own generator
(``quantus.PyTorchModel.get_random_layer_generator``: ``reset_parameters()`` after
``torch.manual_seed(seed + 1)``), so INV and the Grad-CAM reference see the same randomised models.
After each step INV is re-run (:func:`inviz.fmaps.explain.explain`, the extraction's settings, the
original targets) and compared, per image and explained layer, with INV of the original model:

- ``n_common``, ``kept_jaccard`` — how many channels both keep, and the Jaccard index of the kept sets;
- ``ari`` — adjusted Rand index of the cluster assignments of the channels both keep (NaN with
  fewer than ``min_common`` such channels: two or three points agree by chance too often);
  1 = same grouping, ~0 = unrelated;
- ``rho_weights`` — Spearman rho of the weights of every channel of the layer (NaN when one
  vector is constant, e.g. a randomised layer whose logit no longer depends on it);
- ``ssim`` — SSIM of the layer's composite map (``sum_{C kept} w_C A_C``, upsampled to the input)
  with the original's, computed exactly as Quantus' MPRT compares maps (each map divided by its
  largest absolute value, absolute values, flattened, ``quantus.functions.similarity_func.ssim``).

:func:`gradcam_mprt` runs Quantus' ``MPRT`` metric itself on Grad-CAM (the survey's explainer) with
the same similarity: the reference curve.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from inviz.core.errors import InvizError
from inviz.fmaps.explain import ExtractConfig, explain
from inviz.fmaps.records import ImageExplanation, LayerExplanation
from inviz.quality.completeness import captured_batches, normalised_weights, shown_map
from inviz.quality.concept_deletion import spearman
from inviz.quality.config import SanityConfig
from inviz.quality.maps import upsample
from inviz.survey.panels import EXPLAINERS, SurveyConfig

log = logging.getLogger(__name__)


def map_similarity(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two maps as Quantus' MPRT computes it (max-abs normalised, absolute, flattened).

    Parameters
    ----------
    a, b : ndarrays of the same shape (H, W).

    Returns
    -------
    float (NaN when both maps are constant).
    """
    from quantus.functions.similarity_func import ssim

    def prep(m: np.ndarray) -> np.ndarray:
        m = np.asarray(m, dtype=np.float64).reshape(-1)
        top = np.abs(m).max()
        return np.abs(m / top) if top > 0 else np.abs(m)

    pa, pb = prep(a), prep(b)
    if np.ptp(np.concatenate([pa, pb])) == 0:
        return float("nan")
    return float(ssim(pa, pb))


def assignment_ari(orig: LayerExplanation, rand: LayerExplanation, min_common: int = 2) -> float:
    """Compute the adjusted Rand index of the cluster labels of the channels both records keep.

    Parameters
    ----------
    orig, rand : the records of one image and layer.
    min_common : fewer common channels -> NaN (two or three points agree by chance too often).

    Returns
    -------
    float (NaN with fewer than ``max(2, min_common)`` common channels).
    """
    from sklearn.metrics import adjusted_rand_score

    common, i, j = np.intersect1d(orig.channels, rand.channels, return_indices=True)
    if len(common) < max(2, min_common):
        return float("nan")
    if len(orig.labels) != len(orig.channels) or len(rand.labels) != len(rand.channels):
        return float("nan")
    return float(adjusted_rand_score(orig.labels[i], rand.labels[j]))


def kept_overlap(orig: LayerExplanation, rand: LayerExplanation) -> tuple[int, float]:
    """Count the channels both records keep and the Jaccard index of the two kept sets.

    Parameters
    ----------
    orig, rand : the records of one image and layer.

    Returns
    -------
    (int, float) : common channels, Jaccard (NaN when neither keeps a channel).
    """
    a, b = set(orig.channels.tolist()), set(rand.channels.tolist())
    union = len(a | b)
    return len(a & b), (len(a & b) / union if union else float("nan"))


def all_weights(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str],
    targets: Sequence[int],
    cfg: ExtractConfig,
    batch_size: int,
) -> dict[str, np.ndarray]:
    """Normalised weights of every channel, per layer.

    Parameters
    ----------
    model, images, layers, targets : as :func:`inviz.quality.completeness.captured_batches`.
    cfg : the extraction settings (``weights``, ``normalisation``).
    batch_size : images per pass.

    Returns
    -------
    {layer: float64 ndarray of shape (N, C)}
    """
    parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    for _, cap in captured_batches(model, images, layers, targets, batch_size):
        for layer in layers:
            parts[layer].append(normalised_weights(cap, layer, cfg).cpu().numpy())
    return {layer: np.concatenate(v) for layer, v in parts.items()}


def _compare(
    step: int,
    name: str,
    orig: Sequence[ImageExplanation],
    rand: Sequence[ImageExplanation] | None,
    w_orig: dict[str, np.ndarray],
    w_rand: dict[str, np.ndarray] | None,
    layers: Sequence[str],
    size: tuple[int, int],
    min_common: int = 2,
) -> list[dict[str, Any]]:
    rows = []
    for i, rec in enumerate(orig):
        for layer in layers:
            row: dict[str, Any] = {
                "step": step,
                "randomised": name,
                "sample_id": rec.sample_id,
                "layer": layer,
            }
            if rand is None or w_rand is None:
                rows.append(
                    row | {k: np.nan for k in ("n_common", "kept_jaccard", "ari", "rho_weights", "ssim")}
                )
                continue
            a, b = rec.layers[layer], rand[i].layers[layer]
            row["n_common"], row["kept_jaccard"] = kept_overlap(a, b)
            row["ari"] = assignment_ari(a, b, min_common)
            row["rho_weights"] = spearman(w_orig[layer][i], w_rand[layer][i])
            row["ssim"] = map_similarity(upsample(shown_map(a), size), upsample(shown_map(b), size))
            rows.append(row)
    return rows


def mprt(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int],
    sample_ids: Sequence[str],
    layers: Sequence[str],
    extract_cfg: ExtractConfig,
    cfg: SanityConfig,
    batch_size: int = 16,
    progress: bool = False,
) -> pd.DataFrame:
    """Cascading randomisation of ``model``; INV re-run and compared after each step.

    Parameters
    ----------
    model : the CNN (eval mode); never modified (Quantus randomises a deep copy).
    images : Tensor of shape (N, 3, H, W), normalised.
    targets, sample_ids : sequences of N class indices and ids.
    layers : the explained layers compared.
    extract_cfg : INV's settings (the extraction's).
    cfg : ``order``, ``max_steps``, ``seed``.
    batch_size : images per INV pass.
    progress : show a progress bar.

    Returns
    -------
    DataFrame, one row per step, image and layer: ``step`` (1 = the first randomised layer),
    ``randomised`` (the module randomised at that step), ``sample_id, layer, n_common, kept_jaccard,
    ari, rho_weights, ssim``.
    """
    from quantus import PyTorchModel

    ecfg = extract_cfg.replace(run={"batch_size": batch_size})

    def run_inv(m: nn.Module) -> tuple[list[ImageExplanation], dict[str, np.ndarray]]:
        recs = explain(m, images, layers, ecfg, targets=targets, sample_ids=sample_ids)
        return recs, all_weights(m, images, layers, targets, ecfg, batch_size)

    orig, w_orig = run_inv(model)
    wrapped = PyTorchModel(model, channel_first=True, softmax=False, device=str(images.device))
    n_steps = wrapped.random_layer_generator_length
    n_steps = n_steps if cfg.max_steps is None else min(n_steps, cfg.max_steps)
    rows: list[dict[str, Any]] = []
    size = (int(images.shape[-2]), int(images.shape[-1]))
    generator = wrapped.get_random_layer_generator(order=cfg.order, seed=cfg.seed)
    for step, (name, random_model) in enumerate(
        tqdm(generator, total=n_steps, desc="MPRT", disable=not progress)
    ):
        if step >= n_steps:
            break
        random_model.eval()
        try:
            rand, w_rand = run_inv(random_model)
        except (InvizError, FloatingPointError) as err:  # e.g. non-finite activations of a random model
            log.warning("MPRT step %d (%s): INV failed on the randomised model: %s", step + 1, name, err)
            rand, w_rand = None, None
        rows += _compare(step + 1, name, orig, rand, w_orig, w_rand, layers, size, cfg.min_common)
    return pd.DataFrame(rows)


def gradcam_explain_func(survey: SurveyConfig):  # noqa: ANN201 (a Quantus explain_func)
    """Build Quantus' ``explain_func`` for the survey's Grad-CAM.

    Parameters
    ----------
    survey : the ``survey`` section (``gradcam_layer``).

    Returns
    -------
    callable ``f(model, inputs (N, 3, H, W) ndarray, targets (N,), **kwargs) -> ndarray (N, 1, H, W)``;
    its attribute ``n_uniform`` counts the maps returned as uniform.

    Notes
    -----
    A randomised network can leave Grad-CAM no positive evidence: an all-zero map, which Quantus
    refuses (its explanations must not be all 0 or all 1). Such a map is returned as a uniform map
    (0.5 everywhere): it says nothing about the image, which is what MPRT should score, and
    ``n_uniform`` says how often it happened.
    """

    def explain_func(model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **kwargs: Any) -> np.ndarray:
        x = torch.as_tensor(np.asarray(inputs, dtype=np.float32))
        maps = [EXPLAINERS["Grad-CAM"](model.eval(), x[i], int(t), survey, {}) for i, t in enumerate(targets)]
        out = np.stack(maps)[:, None].astype(np.float32)
        empty = ~out.reshape(len(out), -1).any(axis=1)
        out[empty] = 0.5
        explain_func.n_uniform += int(empty.sum())
        return out

    explain_func.n_uniform = 0
    return explain_func


def gradcam_mprt(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int],
    sample_ids: Sequence[str],
    survey: SurveyConfig,
    cfg: SanityConfig,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Quantus' MPRT of Grad-CAM with the SSIM similarity: the reference curve.

    Parameters
    ----------
    model : the CNN (eval mode).
    images : Tensor of shape (N, 3, H, W), normalised.
    targets, sample_ids : N class indices and ids.
    survey : Grad-CAM's settings (the ``survey`` section).
    cfg : ``order``, ``max_steps``, ``seed``.
    batch_size : Quantus' batch size.

    Returns
    -------
    DataFrame ``step, randomised, sample_id, ssim`` (step 0 = the original model against its own map).
    """
    import quantus
    from quantus.functions.normalise_func import normalise_by_max
    from quantus.functions.similarity_func import ssim

    def similarity(a: np.ndarray, b: np.ndarray, batched: bool = False, **kwargs: Any) -> np.ndarray:
        # Quantus 0.6's ssim returns a list when batched; its MPRT then calls .tolist() on it
        return np.asarray(ssim(a, b, batched=batched, **kwargs))

    explain_func = gradcam_explain_func(survey)
    x = images.cpu().numpy()
    y = np.asarray(list(targets), dtype=np.int64)
    a = explain_func(model, x, y)
    metric = quantus.MPRT(
        similarity_func=similarity,
        layer_order=cfg.order,
        seed=cfg.seed,
        normalise_func=normalise_by_max,
        normalise_func_kwargs={"normalise_axes": (1, 2, 3)},  # per map, not per batch (Quantus' default)
        disable_warnings=True,
        display_progressbar=False,
    )
    try:
        scores = metric(
            model=model,
            x_batch=x,
            y_batch=y,
            a_batch=a,
            explain_func=explain_func,
            device="cpu",
            batch_size=batch_size,
        )
    except AssertionError as err:  # Quantus refuses a batch whose maps are all 0, all 1 or all uniform
        log.warning("MPRT of Grad-CAM not measured: Quantus refused the explanations (%s)", err)
        return pd.DataFrame(columns=["step", "randomised", "sample_id", "ssim"])
    if explain_func.n_uniform:
        log.warning(
            "MPRT: %d Grad-CAM map(s) were all zero (no positive evidence) and were scored as uniform maps",
            explain_func.n_uniform,
        )
    rows = []
    for step, (name, values) in enumerate(scores.items()):
        if cfg.max_steps is not None and step > cfg.max_steps:
            break
        rows += [
            {"step": step, "randomised": name, "sample_id": s, "ssim": float(v)}
            for s, v in zip(sample_ids, values, strict=True)
        ]
    return pd.DataFrame(rows)
