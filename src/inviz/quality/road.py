"""ROAD: RemOve And Debias (Rong et al. 2022; docs/method.md §8), MoRF and LeRF.

Deleting pixels to a constant colour creates images the network never saw, so a deletion curve
partly measures the artefact. ROAD fills the removed pixels by **noisy linear imputation**: each
removed pixel is the weighted mean of its 8 neighbours (weights 1/6 for the 4 direct, 1/12 for the
4 diagonal ones), solved jointly for all removed pixels as one sparse linear system per colour
channel, plus Gaussian noise of sd ``noise``. The equations are those of Quantus'
``quantus.functions.perturb_func.noisy_linear_imputation`` (itself from the authors' code); this
module builds the system vectorised (Quantus fills a ``lil_matrix`` entry by entry: ~10x slower at
128 px) and draws the noise from a seeded generator instead of NumPy's global one. Equality with
Quantus' imputation (noise 0) is a test.

Quantus 0.6's ``ROAD`` metric itself cannot score RGB images with one relevance value per pixel: it
broadcasts the map over the colour channels, ranks 3 x H x W values and passes those flat indices
to the imputation, which indexes H x W pixels (``IndexError`` as soon as an index exceeds H x W); it
also only runs MoRF. Here pixels are ranked once per map (:func:`inviz.quality.pixel.pixel_ranks`),
``int(H * W * p / 100)`` of them removed (Quantus' rounding), most relevant first (**MoRF**: the
probability should fall fast, lower is better) and least relevant first (**LeRF**: it should stay,
higher is better). Per removal the target's probability and whether the prediction is still the
target (ROAD's accuracy) are recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from inviz.quality.config import RoadConfig
from inviz.quality.maps import MapKey
from inviz.quality.pixel import map_rng, pixel_ranks, target_outputs

#: (dy, dx) -> weight of a neighbour in the imputation (Quantus / ROAD)
NEIGHBOURS: tuple[tuple[tuple[int, int], float], ...] = (
    ((1, 1), 1 / 12),
    ((0, 1), 1 / 6),
    ((-1, 1), 1 / 12),
    ((1, -1), 1 / 12),
    ((0, -1), 1 / 6),
    ((-1, -1), 1 / 12),
    ((1, 0), 1 / 6),
    ((-1, 0), 1 / 6),
)


def linear_imputation(
    x: np.ndarray, removed: np.ndarray, noise: float = 0.0, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Fill the removed pixels of an image by noisy linear imputation from their neighbours.

    Parameters
    ----------
    x : ndarray of shape (C, H, W).
    removed : bool ndarray of shape (H, W), the pixels to fill.
    noise : sd of the Gaussian noise added to the filled values.
    rng : the noise's generator (required when ``noise > 0``).

    Returns
    -------
    float64 ndarray of shape (C, H, W): ``x`` with the removed pixels imputed.
    """
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    c, h, w = x.shape
    flat = np.asarray(x, dtype=np.float64).reshape(c, -1)
    idx = np.flatnonzero(np.asarray(removed).reshape(-1))
    out = flat.copy()
    n = len(idx)
    if n == 0:
        return out.reshape(c, h, w)
    var = np.full(h * w, -1, dtype=np.int64)
    var[idx] = np.arange(n)
    ys, xs = np.divmod(idx, w)
    rows, cols, vals = [], [], []
    rhs = np.zeros((n, c))
    diag = np.zeros(n)
    for (dy, dx), weight in NEIGHBOURS:
        yy, xx = ys + dy, xs + dx
        inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        at = np.flatnonzero(inside)
        nb = yy[inside] * w + xx[inside]
        diag[at] += weight
        unknown = var[nb] >= 0
        rows.append(at[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), weight))
        np.subtract.at(rhs, at[~unknown], weight * flat[:, nb[~unknown]].T)
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(-diag)
    a = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    sol = np.asarray(spsolve(a, rhs)).reshape(n, c)
    out[:, idx] = sol.T
    out = out.reshape(c, h, w)
    if noise > 0:
        _add_noise(out, removed, noise, rng)
    return out


def _add_noise(
    filled: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator | None
) -> None:
    """Add N(0, noise²) to the imputed pixels of ``filled`` (C, H, W) in place, drawn pixel by pixel."""
    if rng is None:
        raise ValueError("linear_imputation: noise > 0 needs a seeded rng")
    c = filled.shape[0]
    flat = filled.reshape(c, -1)
    idx = np.flatnonzero(np.asarray(removed).reshape(-1))
    flat[:, idx] += (noise * rng.standard_normal((len(idx), c))).T


def road(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int],
    sample_ids: Sequence[str],
    maps: dict[MapKey, np.ndarray],
    cfg: RoadConfig,
    batch_size: int = 64,
    progress: bool = False,
    workers: int = 0,
) -> pd.DataFrame:
    """ROAD curves (MoRF and LeRF) of every map of every image.

    Parameters
    ----------
    model : the CNN (eval mode).
    images : Tensor of shape (n, 3, H, W), normalised, the images of the maps in order.
    targets, sample_ids : sequences of n class indices and ids.
    maps : {(method, layer): ndarray of shape (n, H, W)}.
    cfg : percentages, noise, seed.
    batch_size : imputed images per forward pass.
    progress : show a progress bar.
    workers : threads for the imputations' sparse solves (0: as many as torch uses); the results
        do not depend on it.

    Returns
    -------
    DataFrame, one row per image, map, order and percentage: ``sample_id, method, layer, order,
    percentage, prob, correct``.
    """
    from concurrent.futures import ThreadPoolExecutor

    rows = []
    bar = tqdm(total=len(sample_ids) * len(maps), desc="ROAD", disable=not progress)
    # the sparse solves release the GIL: they run in threads; the noise is drawn afterwards in the
    # serial order, so the imputed images are those of one thread bit for bit (tested)
    with ThreadPoolExecutor(max(1, workers or torch.get_num_threads())) as pool:
        for i, (sid, target) in enumerate(zip(sample_ids, targets, strict=True)):
            x = images[i].cpu().double().numpy()
            for key, stack in maps.items():
                rng = map_rng(cfg.seed, sid, key)
                ranks = pixel_ranks(stack[i], "random", rng)
                n = ranks.size
                masks, labels = [], []
                for order in ("MoRF", "LeRF"):
                    for p in cfg.percentages:
                        k = int(n * p / 100)
                        masks.append(ranks < k if order == "MoRF" else ranks >= n - k)
                        labels.append((order, p))
                batch = list(pool.map(lambda removed: linear_imputation(x, removed), masks))  # noqa: B023
                if cfg.noise > 0:
                    for filled, removed in zip(batch, masks, strict=True):
                        _add_noise(filled, removed, cfg.noise, rng)
                inputs = torch.as_tensor(np.stack(batch), dtype=images.dtype)
                probs, preds = target_outputs(model, inputs, int(target), batch_size)
                for (order, p), prob, pred in zip(labels, probs, preds, strict=True):
                    rows.append((sid, key[0], key[1], order, p, float(prob), bool(pred == target)))
                bar.update(1)
    bar.close()
    return pd.DataFrame(
        rows, columns=["sample_id", "method", "layer", "order", "percentage", "prob", "correct"]
    )
