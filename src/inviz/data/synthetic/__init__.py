"""Offline demo data: a 10-class synthetic image dataset built from named parts (docs/method.md §0).

This machine-independent stand-in for Imagenette lets the whole pipeline run without a
download. Every class is defined by two or three *parts* taken from a shared vocabulary
(:data:`~inviz.data.synthetic.shapes.VOCABULARY`: wheel, stripes, star, ring, checker, dots,
triangle, cross, zigzag, grid, crescent, diamond). Parts are shared between classes, so a class is
recognised by its combination of parts, never by one part alone (a few parts belong to one class
only).

An image is drawn in three layers:

1. a smooth, muted background colour field (random palette colours blended towards grey on a
   coarse grid, bilinearly upsampled);
2. clutter: solid ellipses, rectangles and thick line segments in palette colours
   (:data:`~inviz.data.synthetic.shapes.DISTRACTORS`; none of them is a vocabulary part);
3. the class's parts, one or more instances each, at random non-overlapping positions, scales,
   rotations and palette colours (colours carry no class information),

and finally per-pixel Gaussian noise. Parts never overlap each other and are drawn over the
clutter, so the ground-truth mask of a part is exactly the set of pixels the part painted.

Layout matches Imagenette: ``<dest>/<split>/<class folder>/<image>.png`` with class folders
``c00_bicycle``, ``c01_tractor``, ... (sorted folder order = class order). The masks of all images
are kept in one :class:`inviz.data.parts.PartMasks` (a uint16/uint32 bitfield per pixel, bit ``i`` = part
``VOCABULARY[i]``), keyed by the sample ids :func:`inviz.data.index.scan_image_folder` produces
(``"{split}/{class folder}/{file stem}"``).

Every number that shapes the data is a field of :class:`~inviz.data.synthetic.config.SyntheticConfig`
(part geometry in :class:`~inviz.data.synthetic.shapes.PartGeometry`). Generation is deterministic:
image ``i`` of class ``k`` in split ``s`` draws from ``numpy.random.default_rng([seed, s, k, i])``,
independent of every other image.

Modules: :mod:`~inviz.data.synthetic.config` (settings, classes), :mod:`~inviz.data.synthetic.shapes`
(part and clutter registries, geometry), :mod:`~inviz.data.synthetic.render` (drawing, the
dataset writer); the masks are :mod:`inviz.data.parts`. The words simulated players type for the
parts live with the players (:mod:`inviz.game.simulate.vocabulary`). The names below are
re-exported so that ``from inviz.data import synthetic; synthetic.generate_dataset(...)`` works.
"""

from inviz.data.parts import PartMasks, PartMasksError, empty_parts
from inviz.data.synthetic.config import (
    DEFAULT_CLASSES,
    DEFAULT_PALETTE,
    SyntheticClass,
    SyntheticConfig,
    class_names,
    classes,
)
from inviz.data.synthetic.render import SPLITS, generate_dataset, image_rng, render_image
from inviz.data.synthetic.shapes import DISTRACTORS, PART_SHAPES, VOCABULARY, PartGeometry

__all__ = [
    "DEFAULT_CLASSES",
    "DEFAULT_PALETTE",
    "DISTRACTORS",
    "PART_SHAPES",
    "SPLITS",
    "VOCABULARY",
    "PartGeometry",
    "PartMasks",
    "PartMasksError",
    "SyntheticClass",
    "SyntheticConfig",
    "class_names",
    "classes",
    "empty_parts",
    "generate_dataset",
    "image_rng",
    "render_image",
]
