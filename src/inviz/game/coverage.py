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
from inviz.game.reveal import RevealConfig, soft_masks, upscale_nearest

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
    return _coverage(cmap, part_pixels(part_masks, reveal_cfg.game_size), reveal_cfg)


def part_pixels(part_masks: Mapping[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Return each part's pixels in the game-size image (nearest upscaling) as flat indices, by name."""
    return {
        p: np.flatnonzero(upscale_nearest(part_masks[p].astype(np.uint8), size)) for p in sorted(part_masks)
    }


def _coverage(cmap: np.ndarray, pixels: Mapping[str, np.ndarray], reveal_cfg: RevealConfig) -> Coverage:
    soft = soft_masks(cmap, reveal_cfg)
    flat = soft.reshape(soft.shape[0], -1)
    parts = list(pixels)
    cov = np.zeros((len(reveal_cfg.levels), len(parts)))
    for pi, p in enumerate(parts):
        if pixels[p].size:
            rows = flat[:, pixels[p]]  # one gather per part; then 1-D float32 means, level by level
            for li in range(len(rows)):  # (a 2-D mean over axis 1 sums in another order)
                cov[li, pi] = float(rows[li].mean())
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
    pixels: dict[str, dict[str, np.ndarray]] = {}  # per image: its parts' pixels, for all its maps
    bar = tqdm(images.items(), total=len(images), desc="part coverage", unit="map", disable=not progress)
    for cid, image in bar:
        if image not in pixels:
            present = {p: parts.mask(image, p) for p in parts.parts_of(image)}
            pixels[image] = part_pixels(present, reveal_cfg.game_size)
        out[int(cid)] = _coverage(maps[int(cid)], pixels[image], reveal_cfg)
    return out
