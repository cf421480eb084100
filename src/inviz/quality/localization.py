"""Localisation against ground-truth part masks (docs/method.md §8; the synthetic demo has them).

The ground truth of an image is the union of its parts' masks (:class:`inviz.data.parts.PartMasks`):
the parts defining its class (``parts: class``) or every visible part (``all``), resized to the
network input (nearest neighbour).

- **Pointing game** (Zhang et al. 2018): does the map's maximum fall inside the ground truth?
  Quantus' ``PointingGame`` (a tie at the maximum counts as a hit when any tied pixel is inside).
- **Relevance mass accuracy** (Arras et al. 2022): the share of the map's positive relevance that
  lies inside the ground truth; Quantus' ``RelevanceMassAccuracy`` on ``max(map, 0)``.
- **Reveal IoU** (INV's cluster maps as the game shows them): per kept cluster map and reveal level,
  the binary mask of the top ``Q`` % (:func:`inviz.game.reveal.binary_levels`, as Deep Reveal cuts
  it) against each visible part; the best-matching part's IoU, and whether that part belongs to the
  image's class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from inviz.data.parts import PartMasks
from inviz.fmaps.records import ImageExplanation
from inviz.game.reveal import RevealConfig, binary_levels
from inviz.quality.maps import MapKey


def _resize(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if mask.shape == tuple(size):
        return mask.astype(bool)
    t = torch.as_tensor(mask.astype(np.float32))[None, None]
    return torch.nn.functional.interpolate(t, size=size, mode="nearest")[0, 0].numpy() > 0.5


def ground_truth(
    parts: PartMasks, sample_id: str, label: int, which: str, size: tuple[int, int]
) -> np.ndarray:
    """Ground-truth mask of one image: the union of its class's (or every visible) part masks.

    Parameters
    ----------
    parts : the dataset's part masks.
    sample_id : the image.
    label : its class index (``class_parts[label]`` are the class's parts).
    which : ``class`` | ``all``.
    size : (H, W) of the network input.

    Returns
    -------
    bool ndarray of shape (H, W).
    """
    visible = parts.parts_of(sample_id)
    chosen = visible if which == "all" else [p for p in visible if p in parts.class_parts[label]]
    out = np.zeros(parts.masks.shape[1:], dtype=bool)
    for p in chosen:
        out |= parts.mask(sample_id, p)
    return _resize(out, size)


def pointing_and_mass(
    model: nn.Module,
    images: torch.Tensor,
    targets: Sequence[int],
    sample_ids: Sequence[str],
    maps: dict[MapKey, np.ndarray],
    truth: np.ndarray,
) -> pd.DataFrame:
    """Pointing game and relevance mass accuracy of every map (Quantus' implementations).

    Parameters
    ----------
    model : the CNN (Quantus asks for it; these metrics do not run it).
    images : Tensor of shape (n, 3, H, W).
    targets, sample_ids : n class indices and ids.
    maps : {(method, layer): ndarray of shape (n, H, W)}.
    truth : bool ndarray of shape (n, H, W), the ground truth.

    Returns
    -------
    DataFrame ``sample_id, method, layer, pointing_game, relevance_mass, truth_share, constant_map``
    (``truth_share``: the ground truth's share of the image, the pointing game's chance level).

    Notes
    -----
    A constant map (e.g. INV at a layer where no cluster map was kept: all zeros) has no maximum to
    point with: its pointing game is NaN (Quantus would count every tied pixel, so a hit whenever the
    ground truth is not empty, and refuses a batch of such maps), and so is the relevance mass of a
    map without positive relevance (0 / 0). ``constant_map`` marks them; means skip them and the
    report counts them.
    """
    import quantus

    x = images.cpu().numpy()
    y = np.asarray(list(targets), dtype=np.int64)
    s = truth[:, None].astype(np.float32)
    kwargs = {"disable_warnings": True, "display_progressbar": False}
    pointing = quantus.PointingGame(normalise_func_kwargs={"normalise_axes": (1, 2, 3)}, **kwargs)
    mass = quantus.RelevanceMassAccuracy(normalise_func_kwargs={"normalise_axes": (1, 2, 3)}, **kwargs)

    def scored(metric: Any, a: np.ndarray, ok: np.ndarray) -> np.ndarray:
        out = np.full(len(a), np.nan)
        if ok.any():
            got = metric(
                model=model, x_batch=x[ok], y_batch=y[ok], a_batch=a[ok], s_batch=s[ok], device="cpu"
            )
            out[ok] = np.asarray(got, dtype=np.float64)
        return out

    rows = []
    for (method, layer), a in maps.items():
        a = np.asarray(a, dtype=np.float64)[:, None]
        flat = a.reshape(len(a), -1)
        constant = flat.max(1, initial=-np.inf) == flat.min(1, initial=np.inf)
        hits = scored(pointing, a, ~constant)
        masses = scored(mass, np.clip(a, 0, None), flat.max(1, initial=0.0) > 0)
        for i, sid in enumerate(sample_ids):
            rows.append(
                {
                    "sample_id": sid,
                    "method": method,
                    "layer": layer,
                    "pointing_game": float(hits[i]),
                    "relevance_mass": float(masses[i]),
                    "truth_share": float(truth[i].mean()),
                    "constant_map": bool(constant[i]),
                }
            )
    return pd.DataFrame(rows)


def constant_map_notes(table: pd.DataFrame) -> list[str]:
    """Return the report's note on the constant maps left out of :func:`pointing_and_mass` (or none).

    Parameters
    ----------
    table : the output of :func:`pointing_and_mass`.

    Returns
    -------
    list of at most one sentence, counting the constant maps per method and layer.
    """
    if table.empty or not table["constant_map"].any():
        return []
    n_images = int(table.groupby(["method", table["layer"].fillna("")]).size().max())
    flagged = table[table["constant_map"]]
    counts = flagged.groupby(["method", flagged["layer"].fillna("")], sort=False).size()
    where = ", ".join(f"{m}{f' at {layer}' if layer else ''}: {n}" for (m, layer), n in counts.items())
    return [
        f"localization: {len(flagged)} constant map(s) (no maximum to point with, e.g. a layer without "
        f"kept cluster maps) are left out of the pointing game and relevance mass, of {n_images} "
        f"images per method and layer: {where}"
    ]


def reveal_iou(
    records: Sequence[ImageExplanation],
    labels: Sequence[int],
    layers: Sequence[str],
    parts: PartMasks,
    reveal: RevealConfig,
    levels: Sequence[float],
    size: tuple[int, int],
) -> pd.DataFrame:
    """IoU of each kept cluster map's revealed region with its best-matching part, per level.

    Parameters
    ----------
    records : the INV records.
    labels : each image's class index.
    layers : the layers.
    parts : the part masks.
    reveal : the game's reveal settings (``map_kind``: which stored map the game cuts).
    levels : revealed percentages.
    size : (H, W) of the network input (square).

    Returns
    -------
    DataFrame ``sample_id, layer, cluster, weight, level, best_part, iou, class_part`` (one row
    per kept cluster map and level; ``best_part`` empty when the image has no visible part).
    """
    rows = []
    for rec, label in zip(records, labels, strict=True):
        visible = parts.parts_of(rec.sample_id)
        masks = {p: _resize(parts.mask(rec.sample_id, p), size) for p in visible}
        for layer in layers:
            for cl in rec.layers[layer].kept_clusters:
                cmap = cl.map if reveal.map_kind == "map" else cl.raw_map
                binary = binary_levels(cmap, reveal, levels, size=size[0])
                for q, b in zip(levels, binary, strict=True):
                    ious = {p: float((b & m).sum() / max(1, (b | m).sum())) for p, m in masks.items()}
                    best = max(ious, key=lambda p: ious[p]) if ious else ""
                    rows.append(
                        {
                            "sample_id": rec.sample_id,
                            "layer": layer,
                            "cluster": cl.cluster,
                            "weight": cl.weight,
                            "level": float(q),
                            "best_part": best,
                            "iou": ious.get(best, float("nan")),
                            "class_part": bool(best and best in parts.class_parts[label]),
                        }
                    )
    return pd.DataFrame(rows)
