"""What Deep Reveal shows of each ground-truth part of an image (docs/method.md §2; demo only).

On the synthetic demo the parts of every image are known (:class:`inviz.data.parts.PartMasks`).
The *coverage* of a part at a reveal level is the mean of the game's soft mask
(:func:`inviz.game.reveal.reveal_masks`) over the part's pixels: 0 = hidden, 1 = fully lit.
Simulated players recognise parts by their coverage (:mod:`inviz.game.simulate`) and the closed
loop of label analysis checks labels against the parts a map covers
(:mod:`inviz.labels.closed_loop`); both use :func:`maps_part_coverage`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from tqdm.auto import tqdm

from inviz.data.parts import PartMasks
from inviz.game.reveal import RevealConfig, reveal_masks, upscale_nearest

#: What :func:`part_coverage` returns: the part names (sorted) and the coverage array (L, P).
Coverage = tuple[list[str], np.ndarray]


def part_coverage(
    cmap: np.ndarray, part_masks: Mapping[str, np.ndarray], reveal_cfg: RevealConfig
) -> Coverage:
    """Measure the coverage of each part at each reveal level: mean soft mask over the part's pixels.

    Parameters
    ----------
    cmap : ndarray of shape (h, h)
        The cluster map.
    part_masks : mapping of str to ndarray of bool, shape (H, W)
        Part name -> its mask at the image's resolution (non-empty masks only).
    reveal_cfg : RevealConfig
        The game's reveal settings (levels, blur).

    Returns
    -------
    parts : list of str, length P
        The part names, sorted.
    coverage : ndarray of shape (L, P)
        Values in [0, 1], one row per level of ``reveal_cfg.levels``.
    """
    g = reveal_cfg.game_size
    soft = reveal_masks(cmap, reveal_cfg)[1]
    parts = sorted(part_masks)
    big = {p: upscale_nearest(part_masks[p].astype(np.uint8), g).astype(bool) for p in parts}
    cov = np.zeros((len(reveal_cfg.levels), len(parts)))
    for li in range(len(reveal_cfg.levels)):
        for pi, p in enumerate(parts):
            m = big[p]
            cov[li, pi] = float(soft[li][m].mean()) if m.any() else 0.0
    return parts, cov


def maps_part_coverage(
    maps: Mapping[int, np.ndarray],
    images: Mapping[int, str],
    parts: PartMasks,
    reveal_cfg: RevealConfig,
    progress: bool = False,
) -> dict[int, Coverage]:
    """Measure the part coverage of many cluster maps, each over the parts visible in its image.

    Parameters
    ----------
    maps : mapping of int to ndarray of shape (h, h)
        Cluster id -> cluster map (every id of ``images``).
    images : mapping of int to str
        Cluster id -> sample id of its image; the maps to measure, in this order.
    parts : PartMasks
        Ground-truth part masks of the images.
    reveal_cfg : RevealConfig
        The game's reveal settings.
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict of int to (parts, coverage)
        Cluster id -> :func:`part_coverage` of its map over its image's parts.
    """
    out: dict[int, Coverage] = {}
    bar = tqdm(images.items(), total=len(images), desc="part coverage", unit="map", disable=not progress)
    for cid, image in bar:
        present = {p: parts.mask(image, p) for p in parts.parts_of(image)}
        out[int(cid)] = part_coverage(maps[int(cid)], present, reveal_cfg)
    return out
