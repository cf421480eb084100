"""Deletion and insertion curves of pixel maps, RISE protocol (Petsiuk et al. 2018; docs/method.md §8).

For one image, its target class and a relevance map (H, W), pixels are ranked by decreasing
relevance (:func:`pixel_ranks`; ties in a seeded random order, or raster order). Curve point ``i``
of ``steps`` (``i = 0 .. steps``) is the target's softmax probability on the image with the first
``round(i * H * W / steps)`` ranked pixels

- **deletion**: replaced by the deletion baseline (RISE: 0 in the normalised input, i.e. the
  dataset's mean colour) — a faithful map makes the probability fall fast: **lower AUC is better**;
- **insertion**: copied into the insertion baseline (RISE: a blurred copy of the image) — a faithful
  map makes it rise fast: **higher AUC is better**.

AUC is the trapezoid over the removed share in [0, 1] (RISE's ``auc``). Every point of a curve
goes through the network in batches of ``batch_size`` perturbed images. Quantus 0.6's
``PixelFlipping`` is the same deletion curve without its start point, but it ranks the
attribution broadcast over the colour channels (ties between a pixel's channels broken
arbitrarily) and its AUC helper calls ``np.trapz``, which NumPy 2.4 no longer has; the curves
agree exactly where both are defined (tests/test_quality_pixel.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from inviz.quality.config import PixelConfig
from inviz.quality.maps import MapKey


def pixel_ranks(
    saliency: np.ndarray, tie_break: str = "random", rng: np.random.Generator | None = None
) -> np.ndarray:
    """Rank pixels by decreasing relevance.

    Parameters
    ----------
    saliency : ndarray of shape (H, W).
    tie_break : ``random`` (equal values in a random order drawn from ``rng``) | ``index`` (raster order).
    rng : the generator of the random tie order.

    Returns
    -------
    int64 ndarray of shape (H, W): the rank of each pixel, 0 = most relevant.
    """
    s = np.asarray(saliency, dtype=np.float64).reshape(-1)
    if tie_break == "random":
        rng = rng if rng is not None else np.random.default_rng(0)
        order = np.lexsort((rng.permutation(s.size), -s))
    else:
        order = np.argsort(-s, kind="stable")
    ranks = np.empty(s.size, dtype=np.int64)
    ranks[order] = np.arange(s.size)
    return ranks.reshape(np.shape(saliency))


def map_rng(seed: int, sample_id: str, key: MapKey) -> np.random.Generator:
    """Return a generator seeded by ``(seed, sample_id, method, layer)`` (tie orders, noise).

    Parameters
    ----------
    seed : the measure's seed.
    sample_id : the image.
    key : (method, layer).

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng([seed, zlib.crc32(f"{sample_id}|{key[0]}|{key[1]}".encode())])


def baseline_image(
    x: torch.Tensor,
    kind: str,
    mean: Sequence[float],
    std: Sequence[float],
    kernel: int = 11,
    sigma: float = 5.0,
) -> torch.Tensor:
    """Return the image that removed pixels take (deletion) or insertion starts from.

    Parameters
    ----------
    x : Tensor of shape (3, H, W), normalised.
    kind : ``mean`` (zeros of the normalised input) | ``black`` (RGB 0) | ``blur`` (Gaussian blur of ``x``).
    mean, std : the normalisation.
    kernel, sigma : the blur.

    Returns
    -------
    Tensor of shape (3, H, W).
    """
    if kind == "mean":
        return torch.zeros_like(x)
    if kind == "black":
        m = torch.as_tensor(mean, dtype=x.dtype).reshape(3, 1, 1)
        s = torch.as_tensor(std, dtype=x.dtype).reshape(3, 1, 1)
        return (-m / s).expand_as(x).clone()
    if kind == "blur":
        from torchvision.transforms.v2.functional import gaussian_blur

        return gaussian_blur(x[None], kernel_size=[kernel, kernel], sigma=[sigma, sigma])[0]
    raise ValueError(f"baseline: expected mean, black or blur, got {kind!r}")


def target_probs(model: nn.Module, inputs: torch.Tensor, target: int, batch_size: int) -> np.ndarray:
    """Softmax probability of ``target`` for a stack of inputs, in batches.

    Parameters
    ----------
    model : the CNN (eval mode).
    inputs : Tensor of shape (M, 3, H, W).
    target : the class.
    batch_size : inputs per forward pass.

    Returns
    -------
    float64 ndarray of shape (M,); :func:`target_outputs` also gives the predicted classes.
    """
    return target_outputs(model, inputs, target, batch_size)[0]


def target_outputs(
    model: nn.Module, inputs: torch.Tensor, target: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax probability of ``target`` and the predicted class of each input.

    Parameters
    ----------
    model, inputs, target, batch_size : as :func:`target_probs`.

    Returns
    -------
    probs : float64 ndarray of shape (M,).
    preds : int64 ndarray of shape (M,).
    """
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    probs, preds = [], []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            logits = model(inputs[start : start + batch_size].to(device)).double()
            probs.append(torch.softmax(logits, 1)[:, target].cpu().numpy())
            preds.append(logits.argmax(1).cpu().numpy())
    return np.concatenate(probs), np.concatenate(preds)


def perturbation_curve(
    model: nn.Module,
    x: torch.Tensor,
    target: int,
    ranks: np.ndarray,
    mode: Literal["deletion", "insertion"],
    substrate: torch.Tensor,
    steps: int,
    batch_size: int = 64,
) -> np.ndarray:
    """Compute the deletion or insertion curve of one image and one pixel ranking.

    Parameters
    ----------
    model : the CNN (eval mode).
    x : Tensor of shape (3, H, W), normalised.
    target : the class whose probability is followed.
    ranks : int ndarray of shape (H, W) from :func:`pixel_ranks`.
    mode : ``deletion`` (ranked pixels replaced by ``substrate``) | ``insertion`` (ranked pixels of
        ``x`` copied into ``substrate``).
    substrate : Tensor of shape (3, H, W), the baseline image.
    steps : curve points after the start.
    batch_size : perturbed images per forward pass.

    Returns
    -------
    float64 ndarray of shape (steps + 1,), the probabilities at removed/inserted shares ``i / steps``.
    """
    n = ranks.size
    cuts = torch.as_tensor(np.round(np.arange(steps + 1) * n / steps).astype(np.int64))
    r = torch.as_tensor(ranks)
    out = []
    for start in range(0, steps + 1, batch_size):
        chosen = (r[None] < cuts[start : start + batch_size, None, None])[:, None]  # (m, 1, H, W)
        if mode == "deletion":
            batch = torch.where(chosen, substrate[None], x[None])
        else:
            batch = torch.where(chosen, x[None], substrate[None])
        out.append(target_probs(model, batch, target, batch_size))
    return np.concatenate(out)


def auc(curve: np.ndarray) -> float:
    """Trapezoid area under a curve sampled at equal steps over [0, 1] (RISE's ``auc``).

    Parameters
    ----------
    curve : ndarray of shape (S + 1,).

    Returns
    -------
    float
    """
    c = np.asarray(curve, dtype=np.float64)
    return float((c.sum() - c[0] / 2 - c[-1] / 2) / (len(c) - 1))


def pixel_faithfulness(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int],
    sample_ids: Sequence[str],
    maps: dict[MapKey, np.ndarray],
    cfg: PixelConfig,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compute the deletion and insertion curves of every map of every image.

    Parameters
    ----------
    model : the CNN (eval mode).
    images : Tensor of shape (n, 3, H, W), normalised (the images the maps belong to, same order).
    targets, sample_ids : sequences of n class indices and ids.
    maps : {(method, layer): ndarray of shape (n, H, W)} (:func:`inviz.quality.maps.compute_maps`).
    cfg : steps, baselines, tie-break, seed.
    mean, std : the input normalisation (``black`` baseline).
    batch_size : perturbed images per forward pass.
    progress : show a progress bar.

    Returns
    -------
    aucs : one row per image and map: ``sample_id, method, layer, deletion_auc, insertion_auc``.
    curves : mean curves: ``method, layer, mode, fraction, prob_mean, prob_sd`` (steps + 1 rows each).
    """
    rows, curves = [], {}
    bar = tqdm(total=len(sample_ids) * len(maps), desc="deletion/insertion", disable=not progress)
    for i, (sid, target) in enumerate(zip(sample_ids, targets, strict=True)):
        x = images[i].cpu()
        subs = {
            mode: baseline_image(x, kind, mean, std, cfg.blur_kernel, cfg.blur_sigma)
            for mode, kind in (("deletion", cfg.deletion_baseline), ("insertion", cfg.insertion_baseline))
        }
        for key, stack in maps.items():
            ranks = pixel_ranks(stack[i], cfg.tie_break, map_rng(cfg.seed, sid, key))
            row = {"sample_id": sid, "method": key[0], "layer": key[1]}
            for mode in ("deletion", "insertion"):
                c = perturbation_curve(model, x, int(target), ranks, mode, subs[mode], cfg.steps, batch_size)
                curves.setdefault((key[0], key[1], mode), []).append(c)
                row[f"{mode}_auc"] = auc(c)
            rows.append(row)
            bar.update(1)
    bar.close()
    frac = np.arange(cfg.steps + 1) / cfg.steps
    mean_curves = [
        pd.DataFrame(
            {
                "method": m,
                "layer": layer,
                "mode": mode,
                "fraction": frac,
                "prob_mean": np.mean(cs, axis=0),
                "prob_sd": np.std(cs, axis=0),
            }
        )
        for (m, layer, mode), cs in curves.items()
    ]
    return pd.DataFrame(rows), (pd.concat(mean_curves, ignore_index=True) if mean_curves else pd.DataFrame())
