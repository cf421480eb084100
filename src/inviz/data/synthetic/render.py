"""Drawing the synthetic demo dataset (docs/method.md §0): images and their part masks.

An image is drawn in three layers (background colour field, clutter from
:data:`~inviz.data.synthetic.shapes.DISTRACTORS`, the class's parts from
:data:`~inviz.data.synthetic.shapes.PART_SHAPES`) plus sensor noise; see :mod:`inviz.data.synthetic`.
Image ``i`` of class ``k`` in split ``s`` draws from ``numpy.random.default_rng([seed, s, k, i])``
(:func:`image_rng`), independent of every other image.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from inviz.data.parts import PartMasks, mask_dtype
from inviz.data.synthetic.config import SyntheticConfig, classes
from inviz.data.synthetic.shapes import DISTRACTORS, PART_SHAPES, VOCABULARY

log = logging.getLogger(__name__)

#: Splits written by :func:`generate_dataset`, in order (their index seeds the per-image RNG).
SPLITS: tuple[str, ...] = ("train", "val")


def _local_coords(
    size: int, cy: float, cx: float, radius: float, angle: float
) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Return the bounding box of a disk in a ``size``-px image and its pixels' local coordinates.

    The disk is ``(cy, cx, radius)``; ``u, v`` (shape (h, w)) are the rotated, scaled coordinates
    of the pixel centres in the box.
    """
    y0, y1 = max(0, math.floor(cy - radius)), min(size, math.ceil(cy + radius) + 1)
    x0, x1 = max(0, math.floor(cx - radius)), min(size, math.ceil(cx + radius) + 1)
    dy = ((np.arange(y0, y1) + 0.5 - cy) / radius)[:, None]
    dx = ((np.arange(x0, x1) + 0.5 - cx) / radius)[None, :]
    c, s = math.cos(angle), math.sin(angle)
    return (slice(y0, y1), slice(x0, x1)), c * dx + s * dy, -s * dx + c * dy


def _colour(rgb: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    return np.clip(rgb + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)


def _place(
    radii: np.ndarray, size: int, gap: float, cfg: SyntheticConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping centres (shape (n, 2)) for disks of ``radii`` (shape (n,)) inside the image.

    Tries ``placement_tries`` positions per disk; when one does not fit, every radius shrinks by
    ``placement_shrink`` and placement restarts. Returns ``(centres, radii)``.
    """
    radii = radii.astype(float)
    while True:
        centres = np.zeros((len(radii), 2))
        ok = True
        for i, r in enumerate(radii):
            cand = rng.uniform(r, size - r, size=(cfg.placement_tries, 2))
            if i:
                dist = np.linalg.norm(cand[:, None, :] - centres[None, :i, :], axis=-1)
                fits = np.all(dist >= radii[None, :i] + r + gap, axis=1)
            else:
                fits = np.ones(len(cand), dtype=bool)
            if not fits.any():
                ok = False
                break
            centres[i] = cand[np.argmax(fits)]
        if ok:
            return centres, radii
        radii = radii * cfg.placement_shrink


def render_image(
    cfg: SyntheticConfig, parts: tuple[str, ...], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one image containing ``parts``.

    Parameters
    ----------
    cfg : generator settings.
    parts : names from :data:`VOCABULARY` to draw (``cfg.part_instances`` instances each).
    rng : the image's random generator.

    Returns
    -------
    image : ndarray of uint8, shape (S, S, 3) with S = ``cfg.image_size``.
    mask : ndarray of uint16/uint32, shape (S, S); bit ``VOCABULARY.index(p)`` where part ``p`` is.
    """
    size, geo = cfg.image_size, cfg.geometry
    palette = np.asarray(list(cfg.palette.values()), dtype=float) / 255.0

    # 1. background: coarse grid of muted palette colours, bilinearly upsampled
    from skimage.transform import resize

    grey = rng.uniform(*cfg.background_grey)
    cells = palette[rng.integers(0, len(palette), (cfg.background_cells, cfg.background_cells))]
    field_ = grey + cfg.background_saturation * (cells - grey)
    image = resize(field_, (size, size, 3), order=1, mode="edge", anti_aliasing=False)

    # 2. clutter
    kinds = list(cfg.distractor_kinds)
    for _ in range(int(rng.integers(cfg.n_distractors[0], cfg.n_distractors[1] + 1))):
        kind = kinds[int(rng.integers(len(kinds)))]
        radius = rng.uniform(*cfg.distractor_scale) * size / 2
        cy, cx = rng.uniform(0, size, 2)
        box, u, v = _local_coords(size, cy, cx, radius, rng.uniform(0, 2 * np.pi))
        inside = DISTRACTORS[kind](u, v, rng.uniform(*cfg.distractor_aspect), cfg)
        vivid = _colour(palette[rng.integers(len(palette))], rng, cfg.colour_jitter)
        image[box][inside] = grey + cfg.distractor_saturation * (vivid - grey)

    # 3. parts, non-overlapping
    mask = np.zeros((size, size), dtype=mask_dtype(len(VOCABULARY)))
    lo, hi = cfg.part_instances
    instances = [p for p in parts for _ in range(int(rng.integers(lo, hi + 1)))]
    order = rng.permutation(len(instances))
    instances = [instances[i] for i in order]
    radii = rng.uniform(*cfg.part_scale, size=len(instances)) * size / 2
    centres, radii = _place(radii, size, cfg.part_gap * size, cfg, rng)
    max_angle = np.deg2rad(cfg.part_rotation)
    for part, (cy, cx), radius in zip(instances, centres, radii, strict=True):
        box, u, v = _local_coords(size, cy, cx, radius, rng.uniform(-max_angle, max_angle))
        inside, second = PART_SHAPES[part](u, v, geo, rng)
        first, other = rng.choice(len(palette), size=2, replace=False)
        region = image[box]
        region[inside] = _colour(palette[first], rng, cfg.colour_jitter)
        region[inside & second] = _colour(palette[other], rng, cfg.colour_jitter)
        mask[box][inside] |= mask.dtype.type(1 << VOCABULARY.index(part))

    # 4. sensor noise
    if cfg.noise_std > 0:
        image = image + rng.normal(0.0, cfg.noise_std, image.shape)
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8), mask


def image_rng(cfg: SyntheticConfig, split: str, label: int, i: int) -> np.random.Generator:
    """Make the random generator of image ``i`` of class ``label`` in ``split``.

    Parameters
    ----------
    cfg : SyntheticConfig
        ``seed``.
    split : str
        One of :data:`SPLITS`.
    label, i : int
        The class and the image's index in it.

    Returns
    -------
    numpy.random.Generator
        ``default_rng([seed, SPLITS.index(split), label, i])``.
    """
    return np.random.default_rng([cfg.seed, SPLITS.index(split), label, i])


def _render_folder(
    cfg: SyntheticConfig,
    parts: tuple[str, ...],
    split: str,
    label: int,
    folder: Path,
    prefix: str,
    n: int,
    digits: int,
) -> np.ndarray:
    """Render and save one class folder of one split; return its part masks, shape (n, S, S).

    Every image draws from its own generator (:func:`image_rng`), so folders can be rendered in
    any order or process with the same result.
    """
    size = cfg.image_size
    masks = np.zeros((n, size, size), dtype=mask_dtype(len(VOCABULARY)))
    for i in range(n):
        image, masks[i] = render_image(cfg, parts, image_rng(cfg, split, label, i))
        Image.fromarray(image).save(
            folder / f"{prefix}_{i:0{digits}d}.png", format="PNG", compress_level=cfg.png_compress_level
        )
    return masks


def generate_dataset(cfg: SyntheticConfig, dest: str | Path, workers: int = 1) -> PartMasks:
    """Write the dataset as PNGs to ``dest`` (atomically, replacing it) and return its part masks.

    Parameters
    ----------
    cfg : generator settings.
    dest : output folder; it receives ``<split>/<class folder>/<class name>_<i>.png`` for
        ``split`` in :data:`SPLITS`.
    workers : processes rendering class folders in parallel (the result does not depend on it).

    Returns
    -------
    PartMasks with N = (n_train_per_class + n_val_per_class) * n_classes samples, in
    split, class, index order.
    """
    from concurrent.futures import ProcessPoolExecutor

    from inviz.core.io import atomic_path

    specs = classes(cfg)
    counts = {"train": cfg.n_train_per_class, "val": cfg.n_val_per_class}
    total = sum(counts.values()) * len(specs)
    digits = len(str(max(counts.values()) - 1))
    bar = tqdm(total=total, desc="synthetic images", unit="img")
    with atomic_path(dest, directory=True) as tmp, bar:
        jobs, ids = [], []
        for split in SPLITS:
            for spec in specs:
                folder = tmp / split / spec.folder
                folder.mkdir(parents=True)
                prefix = spec.folder.split("_", 1)[1]
                jobs.append((cfg, spec.parts, split, spec.label, folder, prefix, counts[split], digits))
                ids += [f"{split}/{spec.folder}/{prefix}_{i:0{digits}d}" for i in range(counts[split])]
        chunks = []
        if workers > 1:
            with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
                for masks in pool.map(_render_folder, *zip(*jobs, strict=True)):
                    chunks.append(masks)
                    bar.update(len(masks))
        else:
            for job in jobs:
                chunks.append(_render_folder(*job))
                bar.update(len(chunks[-1]))
        empty = np.zeros((0, cfg.image_size, cfg.image_size), dtype=mask_dtype(len(VOCABULARY)))
        masks = np.concatenate(chunks) if chunks else empty
    log.info("wrote %d synthetic images (%d classes) to %s", total, len(specs), dest)
    return PartMasks(
        sample_ids=np.asarray(ids, dtype=str),
        masks=masks,
        vocabulary=VOCABULARY,
        class_folders=tuple(s.folder for s in specs),
        class_parts=tuple(s.parts for s in specs),
    )
