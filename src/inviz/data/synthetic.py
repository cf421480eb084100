"""Offline demo data: a 10-class synthetic image dataset built from named parts, with part masks.

This machine-independent stand-in for Imagenette lets the whole pipeline run without a
download. Every class is defined by two or three *parts* taken from a shared vocabulary
(:data:`VOCABULARY`: wheel, stripes, star, ring, checker, dots, triangle, cross, zigzag, grid,
crescent, diamond). Parts are shared between classes, so a class is recognised by its
combination of parts, never by one part alone (a few parts belong to one class only).

An image is drawn in three layers:

1. a smooth, muted background colour field (random palette colours blended towards grey on a
   coarse grid, bilinearly upsampled);
2. clutter: solid ellipses, rectangles and thick line segments in palette colours
   (:data:`DISTRACTORS`; none of them is a vocabulary part);
3. the class's parts, one or more instances each, at random non-overlapping positions, scales,
   rotations and palette colours (colours carry no class information),

and finally per-pixel Gaussian noise. Parts never overlap each other and are drawn over the
clutter, so the ground-truth mask of a part is exactly the set of pixels the part painted.

Layout matches Imagenette: ``<dest>/<split>/<class folder>/<image>.png`` with class folders
``c00_bicycle``, ``c01_tractor``, ... (sorted folder order = class order). The masks of all images
are kept in one :class:`PartMasks` (a uint16/uint32 bitfield per pixel, bit ``i`` = part
``VOCABULARY[i]``), keyed by the sample ids :func:`inviz.data.index.scan_image_folder` produces
(``"{split}/{class folder}/{file stem}"``).

Every number that shapes the data is a field of :class:`SyntheticConfig` (part geometry in
:class:`PartGeometry`). Generation is deterministic: image ``i`` of class ``k`` in split ``s``
draws from ``numpy.random.default_rng([seed, s, k, i])``, independent of every other image.

:data:`PART_PHRASES` and :data:`COLOUR_PHRASES` give English and Italian words and phrases a
player might type for each part and colour (used by the simulated label game).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)

#: Splits written by :func:`generate_dataset`, in order (their index seeds the per-image RNG).
SPLITS: tuple[str, ...] = ("train", "val")

# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------

#: Default classes: readable name (``_`` for spaces) -> parts. Order = class order.
DEFAULT_CLASSES: dict[str, list[str]] = {
    "bicycle": ["wheel", "triangle"],
    "tractor": ["wheel", "grid"],
    "lighthouse": ["stripes", "triangle"],
    "night_sky": ["crescent", "star", "dots"],
    "sheriff": ["star", "ring"],
    "race_flag": ["checker", "stripes"],
    "pharmacy": ["cross", "dots"],
    "kite": ["diamond", "zigzag"],
    "harlequin": ["diamond", "checker"],
    "castle": ["grid", "zigzag"],
}

#: Default palette: colour name -> RGB (0-255). Parts, clutter and background draw from it.
DEFAULT_PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 20),
    "yellow": (245, 220, 30),
    "green": (40, 170, 60),
    "cyan": (30, 200, 220),
    "blue": (40, 70, 215),
    "purple": (135, 50, 190),
    "pink": (240, 110, 185),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "brown": (130, 80, 35),
}


@dataclass(frozen=True)
class PartGeometry:
    """``data.synthetic.geometry``: the shape of each vocabulary part.

    Every part is drawn in its own unit disk (radius 1 = half the part's size), so parts whose
    disks do not overlap never touch. Square parts (stripes, checker, grid) are inscribed in it.

    wheel_tire_inner : inner radius of the tyre (outer radius 1). wheel_hub : hub radius.
    wheel_spokes : number of spokes. wheel_spoke_width : half-width of a spoke.
    ring_inner : inner radius of the ring (outer radius 1).
    star_points : points of the star. star_inner : radius of its inner vertices.
    cross_arm : half-width of the arms of the cross.
    zigzag_segments : straight segments of the zigzag. zigzag_amplitude : half its height.
    zigzag_width : half-thickness of its line.
    stripes_count : stripes across the stripes square. checker_cells : cells per side of the
    checkerboard. grid_cells : cells per side of the grid. grid_line : grid line width as a
    fraction of a cell.
    dots_count : (min, max) dots per dots part. dots_radius : radius of one dot.
    crescent_offset : centre shift of the disk cut out of the crescent.
    crescent_cut : radius of that disk.
    diamond_aspect : half-width of the diamond (half-height 1).
    """

    wheel_tire_inner: float = 0.72
    wheel_hub: float = 0.22
    wheel_spokes: int = 6
    wheel_spoke_width: float = 0.09
    ring_inner: float = 0.55
    star_points: int = 5
    star_inner: float = 0.45
    cross_arm: float = 0.28
    zigzag_segments: int = 4
    zigzag_amplitude: float = 0.35
    zigzag_width: float = 0.16
    stripes_count: int = 5
    checker_cells: int = 4
    grid_cells: int = 3
    grid_line: float = 0.3
    dots_count: tuple[int, int] = (6, 9)
    dots_radius: float = 0.22
    crescent_offset: float = 0.45
    crescent_cut: float = 0.8
    diamond_aspect: float = 0.6

    def __post_init__(self) -> None:
        for name in ("wheel_tire_inner", "wheel_hub", "ring_inner", "star_inner", "cross_arm",
                     "zigzag_amplitude", "zigzag_width", "grid_line", "dots_radius", "crescent_cut",
                     "diamond_aspect"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise ValueError(f"geometry.{name}: expected a value in (0, 1), got {value}")
        for name, low in (("wheel_spokes", 1), ("star_points", 3), ("zigzag_segments", 1),
                          ("stripes_count", 2), ("checker_cells", 2), ("grid_cells", 1)):
            if getattr(self, name) < low:
                raise ValueError(f"geometry.{name}: expected >= {low}, got {getattr(self, name)}")
        if self.wheel_hub >= self.wheel_tire_inner:
            raise ValueError("geometry.wheel_hub: must be smaller than wheel_tire_inner")
        if self.zigzag_amplitude + self.zigzag_width >= 1:
            raise ValueError("geometry.zigzag_amplitude + zigzag_width: must be < 1 (stay in the unit disk)")
        if not 1 <= self.dots_count[0] <= self.dots_count[1]:
            raise ValueError(f"geometry.dots_count: expected 1 <= min <= max, got {self.dots_count}")
        if not 0 <= self.crescent_offset < 1:
            raise ValueError(f"geometry.crescent_offset: expected a value in [0, 1), got {self.crescent_offset}")


@dataclass(frozen=True)
class SyntheticConfig:
    """``data.synthetic`` section: every knob of the synthetic dataset.

    image_size : side of the square images in pixels (>= 128).
    n_train_per_class, n_val_per_class : images per class in ``train`` and ``val`` (``inviz data``
        later carves the test pool out of ``val``).
    seed : seeds everything; image ``i`` of class ``k`` in split ``s`` uses
        ``default_rng([seed, s, k, i])``.
    classes : readable class name (``_`` for spaces) -> its parts (names from :data:`VOCABULARY`),
        in class order. Folders are ``c00_<name>``, ``c01_<name>``, ...
    part_scale : (min, max) part diameter as a fraction of ``image_size``.
    part_instances : (min, max) instances of each of the class's parts per image.
    part_rotation : parts are rotated uniformly in ±``part_rotation`` degrees.
    part_gap : minimum gap between two parts' disks, as a fraction of ``image_size``.
    placement_tries : random positions tried per part before all part sizes of the image are
        shrunk by ``placement_shrink`` and placement restarts.
    palette : colour name -> RGB (0-255) used by parts, clutter and background.
    colour_jitter : each drawn colour moves by up to ±``colour_jitter`` (0-1 scale) per channel.
    background_cells : side of the coarse grid of the background colour field.
    background_saturation : background colours = grey + saturation * (palette colour - grey).
    background_grey : (min, max) grey level (0-1) of the background, drawn per image.
    n_distractors : (min, max) clutter shapes per image.
    distractor_scale : (min, max) clutter shape diameter as a fraction of ``image_size``.
    distractor_aspect : (min, max) minor/major axis ratio of clutter ellipses and rectangles.
    distractor_line_width : half-width of clutter line segments (unit-disk units).
    distractor_kinds : which clutter shapes to draw (names from :data:`DISTRACTORS`).
    distractor_saturation : clutter colours = grey + saturation * (palette colour - grey), with the
        image's background grey (1 = as vivid as the parts, lower = clutter recedes).
    noise_std : standard deviation of the per-pixel Gaussian noise (0-1 scale).
    png_compress_level : zlib level of the written PNGs (0-9; speed only, pixels unchanged).
    geometry : the shape of each part (:class:`PartGeometry`).
    """

    image_size: int = 128
    n_train_per_class: int = 200
    n_val_per_class: int = 50
    seed: int = 432
    classes: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_CLASSES.items()})
    part_scale: tuple[float, float] = (0.4, 0.55)
    part_instances: tuple[int, int] = (1, 1)
    part_rotation: float = 15.0
    part_gap: float = 0.02
    placement_tries: int = 50
    placement_shrink: float = 0.9
    palette: dict[str, tuple[int, int, int]] = field(default_factory=lambda: dict(DEFAULT_PALETTE))
    colour_jitter: float = 0.06
    background_cells: int = 4
    background_saturation: float = 0.35
    background_grey: tuple[float, float] = (0.3, 0.7)
    n_distractors: tuple[int, int] = (2, 5)
    distractor_scale: tuple[float, float] = (0.06, 0.2)
    distractor_aspect: tuple[float, float] = (0.2, 0.5)
    distractor_line_width: float = 0.12
    distractor_kinds: tuple[str, ...] = ("ellipse", "rectangle", "line")
    distractor_saturation: float = 0.5
    noise_std: float = 0.03
    png_compress_level: int = 1
    geometry: PartGeometry = field(default_factory=PartGeometry)

    def __post_init__(self) -> None:
        def check_range(name: str, lo: float, hi: float, low: float, high: float | None = None) -> None:
            if not (low <= lo <= hi and (high is None or hi <= high)):
                bound = f"{low} <= min <= max" + (f" <= {high}" if high is not None else "")
                raise ValueError(f"{name}: expected {bound}, got ({lo}, {hi})")

        if self.image_size < 128:
            raise ValueError(f"image_size: expected >= 128, got {self.image_size}")
        for name in ("n_train_per_class", "n_val_per_class", "placement_tries", "background_cells"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected >= 1, got {getattr(self, name)}")
        if len(self.classes) < 2:
            raise ValueError(f"classes: expected at least 2 classes, got {len(self.classes)}")
        seen: dict[frozenset[str], str] = {}
        for name, parts in self.classes.items():
            if not name or any(c in name for c in "/\\ ") or name.startswith("."):
                raise ValueError(f"classes.{name}: class names must be non-empty, without spaces or slashes")
            unknown = [p for p in parts if p not in PART_SHAPES]
            if unknown:
                raise ValueError(f"classes.{name}: unknown part(s) {unknown}; expected some of {list(VOCABULARY)}")
            if not parts or len(set(parts)) != len(parts):
                raise ValueError(f"classes.{name}: expected one or more distinct parts, got {parts}")
            key = frozenset(parts)
            if key in seen:
                raise ValueError(f"classes.{name}: same parts as class {seen[key]!r}; classes would be indistinguishable")
            seen[key] = name
        check_range("part_scale", *self.part_scale, low=1e-3, high=1.0)
        check_range("part_instances", *self.part_instances, low=1)
        check_range("background_grey", *self.background_grey, low=0.0, high=1.0)
        check_range("n_distractors", *self.n_distractors, low=0)
        check_range("distractor_scale", *self.distractor_scale, low=1e-3, high=1.0)
        check_range("distractor_aspect", *self.distractor_aspect, low=1e-3, high=1.0)
        if not 0 < self.placement_shrink < 1:
            raise ValueError(f"placement_shrink: expected a factor in (0, 1), got {self.placement_shrink}")
        if self.part_gap < 0 or self.part_rotation < 0 or self.colour_jitter < 0 or self.noise_std < 0:
            raise ValueError("part_gap, part_rotation, colour_jitter, noise_std: expected >= 0")
        for name in ("background_saturation", "distractor_saturation"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: expected a value in [0, 1], got {getattr(self, name)}")
        if not 0 < self.distractor_line_width < 1:
            raise ValueError(f"distractor_line_width: expected a value in (0, 1), got {self.distractor_line_width}")
        if len(self.palette) < 2:
            raise ValueError(f"palette: expected at least 2 colours, got {len(self.palette)}")
        for name, rgb in self.palette.items():
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ValueError(f"palette.{name}: expected 3 values in 0..255, got {rgb}")
        unknown = [k for k in self.distractor_kinds if k not in DISTRACTORS]
        if unknown or (not self.distractor_kinds and self.n_distractors[1] > 0):
            raise ValueError(f"distractor_kinds: expected some of {list(DISTRACTORS)}, got {list(self.distractor_kinds)}")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"png_compress_level: expected 0..9, got {self.png_compress_level}")


@dataclass(frozen=True)
class SyntheticClass:
    """One class: ``label`` (index), ``folder`` (``c00_bicycle``), readable ``name``, ``parts``."""

    label: int
    folder: str
    name: str
    parts: tuple[str, ...]


def classes(cfg: SyntheticConfig) -> list[SyntheticClass]:
    """The classes of ``cfg`` in class order (= sorted folder order)."""
    digits = max(2, len(str(len(cfg.classes) - 1)))
    return [
        SyntheticClass(i, f"c{i:0{digits}d}_{name}", name.replace("_", " "), tuple(parts))
        for i, (name, parts) in enumerate(cfg.classes.items())
    ]


def class_names(cfg: SyntheticConfig) -> dict[str, str]:
    """Class folder -> readable class name, e.g. ``{"c03_night_sky": "night sky", ...}``."""
    return {c.folder: c.name for c in classes(cfg)}


# --------------------------------------------------------------------------------------------
# part shapes (registry): (u, v) unit-disk coordinates -> (inside, second colour)
# --------------------------------------------------------------------------------------------

#: A shape function gets rotated, scaled pixel coordinates ``u, v`` (arrays of equal shape, the
#: part's unit disk is ``u**2 + v**2 <= 1``), the geometry and the image's RNG, and returns
#: ``(inside, second)``: boolean arrays, the part's pixels and those painted in its second colour.
ShapeFn = Callable[[np.ndarray, np.ndarray, PartGeometry, np.random.Generator], tuple[np.ndarray, np.ndarray]]

_HALF_SQUARE = 1 / math.sqrt(2)  # half-side of the square inscribed in the unit disk


def _in_polygon(u: np.ndarray, v: np.ndarray, pu: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test, vectorised over pixels; vertices ``(pu, pv)`` of shape (K,)."""
    inside = np.zeros(u.shape, dtype=bool)
    for i in range(len(pu)):
        j = i - 1
        crosses = (pv[i] > v) != (pv[j] > v)
        dv = pv[j] - pv[i]
        if dv == 0:
            continue
        x_at = (pu[j] - pu[i]) * (v - pv[i]) / dv + pu[i]
        inside ^= crosses & (u < x_at)
    return inside


def _dist_to_polyline(u: np.ndarray, v: np.ndarray, pu: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """Distance of every pixel to the polyline through ``(pu, pv)`` (shape (K,))."""
    best = np.full(u.shape, np.inf)
    for i in range(len(pu) - 1):
        au, av, bu, bv = pu[i], pv[i], pu[i + 1], pv[i + 1]
        du, dv = bu - au, bv - av
        t = np.clip(((u - au) * du + (v - av) * dv) / (du * du + dv * dv), 0.0, 1.0)
        best = np.minimum(best, np.hypot(u - au - t * du, v - av - t * dv))
    return best


def _square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return (np.abs(u) <= _HALF_SQUARE) & (np.abs(v) <= _HALF_SQUARE)


def _cells(w: np.ndarray, n: int) -> np.ndarray:
    """Cell coordinate in [0, n] across the inscribed square."""
    return (w + _HALF_SQUARE) / (2 * _HALF_SQUARE) * n


def _wheel(u, v, g, rng):
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    tire = (rho <= 1) & (rho >= g.wheel_tire_inner)
    step = 2 * np.pi / g.wheel_spokes
    off = theta - np.round(theta / step) * step
    spoke = (rho < g.wheel_tire_inner) & (np.abs(rho * np.sin(off)) <= g.wheel_spoke_width)
    return tire | spoke | (rho <= g.wheel_hub), tire


def _stripes(u, v, g, rng):
    return _square(u, v), np.floor(_cells(u, g.stripes_count)).astype(int) % 2 == 1


def _star(u, v, g, rng):
    k = np.arange(2 * g.star_points)
    radius = np.where(k % 2 == 0, 1.0, g.star_inner)
    angle = np.pi / 2 + k * np.pi / g.star_points
    return _in_polygon(u, v, radius * np.cos(angle), radius * np.sin(angle)), np.zeros(u.shape, bool)


def _ring(u, v, g, rng):
    rho = np.hypot(u, v)
    return (rho <= 1) & (rho >= g.ring_inner), np.zeros(u.shape, bool)


def _checker(u, v, g, rng):
    cu = np.floor(_cells(u, g.checker_cells)).astype(int)
    cv = np.floor(_cells(v, g.checker_cells)).astype(int)
    return _square(u, v), (cu + cv) % 2 == 1


def _dots(u, v, g, rng):
    n = int(rng.integers(g.dots_count[0], g.dots_count[1] + 1))
    r = np.sqrt(rng.uniform(0, 1, n)) * (1 - g.dots_radius)
    a = rng.uniform(0, 2 * np.pi, n)
    inside = np.zeros(u.shape, dtype=bool)
    for cu, cv in zip(r * np.cos(a), r * np.sin(a)):
        inside |= np.hypot(u - cu, v - cv) <= g.dots_radius
    return inside, np.zeros(u.shape, bool)


def _triangle(u, v, g, rng):
    angle = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
    return _in_polygon(u, v, np.cos(angle), np.sin(angle)), np.zeros(u.shape, bool)


def _cross(u, v, g, rng):
    arm = g.cross_arm
    length = math.sqrt(1 - arm * arm)
    au, av = np.abs(u), np.abs(v)
    return ((au <= arm) & (av <= length)) | ((av <= arm) & (au <= length)), np.zeros(u.shape, bool)


def _zigzag(u, v, g, rng):
    amp, width = g.zigzag_amplitude, g.zigzag_width
    half = math.sqrt(max((1 - width) ** 2 - amp * amp, 0.0))
    pu = np.linspace(-half, half, g.zigzag_segments + 1)
    pv = np.where(np.arange(g.zigzag_segments + 1) % 2 == 0, amp, -amp)
    return _dist_to_polyline(u, v, pu, pv) <= width, np.zeros(u.shape, bool)


def _grid(u, v, g, rng):
    fu, fv = _cells(u, g.grid_cells) % 1.0, _cells(v, g.grid_cells) % 1.0
    half = g.grid_line / 2
    line = (np.minimum(fu, 1 - fu) <= half) | (np.minimum(fv, 1 - fv) <= half)
    return _square(u, v), line


def _crescent(u, v, g, rng):
    return (np.hypot(u, v) <= 1) & (np.hypot(u - g.crescent_offset, v) > g.crescent_cut), np.zeros(u.shape, bool)


def _diamond(u, v, g, rng):
    return np.abs(u) / g.diamond_aspect + np.abs(v) <= 1, np.zeros(u.shape, bool)


#: Part registry: name -> shape function. Its order is the bit order of :class:`PartMasks`.
PART_SHAPES: dict[str, ShapeFn] = {
    "wheel": _wheel,
    "stripes": _stripes,
    "star": _star,
    "ring": _ring,
    "checker": _checker,
    "dots": _dots,
    "triangle": _triangle,
    "cross": _cross,
    "zigzag": _zigzag,
    "grid": _grid,
    "crescent": _crescent,
    "diamond": _diamond,
}

#: The part vocabulary; bit ``i`` of a mask pixel marks ``VOCABULARY[i]``.
VOCABULARY: tuple[str, ...] = tuple(PART_SHAPES)


def _ellipse(u, v, aspect, cfg):
    return u * u + (v / aspect) ** 2 <= 1


def _rectangle(u, v, aspect, cfg):
    # rectangle inscribed in the unit disk with side ratio ``aspect``
    half_long = 1 / math.sqrt(1 + aspect * aspect)
    return (np.abs(u) <= half_long) & (np.abs(v) <= aspect * half_long)


def _line(u, v, aspect, cfg):
    w = cfg.distractor_line_width
    return (np.abs(v) <= w) & (np.abs(u) <= math.sqrt(1 - w * w))


#: Clutter registry: name -> fn(u, v, aspect, cfg) -> inside. None of these is a vocabulary part.
DISTRACTORS: dict[str, Callable[[np.ndarray, np.ndarray, float, SyntheticConfig], np.ndarray]] = {
    "ellipse": _ellipse,
    "rectangle": _rectangle,
    "line": _line,
}


# --------------------------------------------------------------------------------------------
# words for the simulated label game
# --------------------------------------------------------------------------------------------

#: Part -> language -> words and phrases a player might type for it (English ``en``, Italian ``it``).
PART_PHRASES: dict[str, dict[str, list[str]]] = {
    "wheel": {
        "en": ["wheel", "wheels", "tyre", "tire", "spokes", "spoked wheel", "round wheel", "rim"],
        "it": ["ruota", "ruote", "pneumatico", "raggi", "cerchione", "ruota con i raggi"],
    },
    "stripes": {
        "en": ["stripes", "striped pattern", "lines", "zebra stripes", "parallel lines", "bands", "stripy"],
        "it": ["strisce", "righe", "a righe", "linee parallele", "strisce zebrate", "bande"],
    },
    "star": {
        "en": ["star", "stars", "five-pointed star", "star shape", "pointy star", "badge star"],
        "it": ["stella", "stelle", "stella a cinque punte", "forma di stella"],
    },
    "ring": {
        "en": ["ring", "circle", "hoop", "donut", "round outline", "annulus", "halo"],
        "it": ["anello", "cerchio", "ciambella", "cerchio vuoto", "aureola"],
    },
    "checker": {
        "en": ["checkerboard", "checkered pattern", "chessboard", "checks", "squares", "chequered flag"],
        "it": ["scacchiera", "a scacchi", "quadretti", "quadrati", "bandiera a scacchi"],
    },
    "dots": {
        "en": ["dots", "spots", "polka dots", "small circles", "pills", "bubbles", "dotted"],
        "it": ["puntini", "pallini", "pois", "cerchietti", "pillole", "bolle"],
    },
    "triangle": {
        "en": ["triangle", "triangular shape", "roof", "pyramid", "frame", "pointed top"],
        "it": ["triangolo", "forma triangolare", "tetto", "piramide", "telaio"],
    },
    "cross": {
        "en": ["cross", "plus sign", "plus", "medical cross", "red cross", "x shape"],
        "it": ["croce", "segno più", "più", "croce medica", "croce rossa"],
    },
    "zigzag": {
        "en": ["zigzag", "zig-zag line", "jagged line", "lightning", "wavy line", "tail", "battlements"],
        "it": ["zigzag", "linea a zigzag", "linea spezzata", "fulmine", "coda", "merli"],
    },
    "grid": {
        "en": ["grid", "windows", "lattice", "mesh", "grid pattern", "tiles", "grille"],
        "it": ["griglia", "finestre", "reticolo", "rete", "piastrelle", "grata"],
    },
    "crescent": {
        "en": ["crescent", "moon", "crescent moon", "half moon", "sickle", "banana shape"],
        "it": ["mezzaluna", "luna", "falce di luna", "spicchio di luna", "banana"],
    },
    "diamond": {
        "en": ["diamond", "rhombus", "lozenge", "diamond shape", "kite shape", "tilted square"],
        "it": ["rombo", "losanga", "diamante", "forma a rombo", "aquilone"],
    },
}

#: Colour name (keys of :data:`DEFAULT_PALETTE`) -> language -> words a player might type.
COLOUR_PHRASES: dict[str, dict[str, list[str]]] = {
    "red": {"en": ["red", "crimson"], "it": ["rosso", "rossa"]},
    "orange": {"en": ["orange"], "it": ["arancione", "arancio"]},
    "yellow": {"en": ["yellow", "golden"], "it": ["giallo", "gialla", "dorato"]},
    "green": {"en": ["green"], "it": ["verde"]},
    "cyan": {"en": ["cyan", "light blue", "turquoise"], "it": ["azzurro", "ciano", "turchese"]},
    "blue": {"en": ["blue", "dark blue"], "it": ["blu", "blu scuro"]},
    "purple": {"en": ["purple", "violet"], "it": ["viola"]},
    "pink": {"en": ["pink", "magenta"], "it": ["rosa", "fucsia"]},
    "white": {"en": ["white", "bright"], "it": ["bianco", "bianca", "chiaro"]},
    "black": {"en": ["black", "dark"], "it": ["nero", "nera", "scuro"]},
    "brown": {"en": ["brown"], "it": ["marrone"]},
}


# --------------------------------------------------------------------------------------------
# part masks
# --------------------------------------------------------------------------------------------


class PartMasksError(InvizError, ValueError):
    """A part-mask file is missing, unreadable or inconsistent."""


def _mask_dtype(n_parts: int) -> np.dtype:
    if n_parts > 32:
        raise ValueError(f"vocabulary: at most 32 parts fit a uint32 bitfield, got {n_parts}")
    return np.dtype(np.uint16 if n_parts <= 16 else np.uint32)


@dataclass(frozen=True)
class PartMasks:
    """Ground-truth part masks of a dataset, one bitfield image per sample.

    Attributes
    ----------
    sample_ids : ndarray of str, shape (N,)
        ``"{split}/{class folder}/{file stem}"``, as :func:`inviz.data.index.scan_image_folder` gives.
    masks : ndarray of uint16 or uint32, shape (N, H, W)
        Bit ``i`` of pixel ``(y, x)`` is set where part ``vocabulary[i]`` is visible.
    vocabulary : tuple of str, length P (P <= 32)
    class_folders : tuple of str, length K
        Class folders in class order.
    class_parts : tuple of tuple of str, length K
        The parts defining each class.
    """

    sample_ids: np.ndarray
    masks: np.ndarray
    vocabulary: tuple[str, ...]
    class_folders: tuple[str, ...] = ()
    class_parts: tuple[tuple[str, ...], ...] = ()

    def __post_init__(self) -> None:
        if self.masks.ndim != 3 or len(self.sample_ids) != len(self.masks):
            raise ValueError(
                f"masks: expected shape (N, H, W) with N = len(sample_ids) = {len(self.sample_ids)}, "
                f"got {self.masks.shape}"
            )
        if self.masks.dtype not in (np.uint16, np.uint32):
            raise ValueError(f"masks: expected uint16 or uint32, got {self.masks.dtype}")
        if len(self.vocabulary) > 8 * self.masks.dtype.itemsize:
            raise ValueError(f"vocabulary: {len(self.vocabulary)} parts do not fit {self.masks.dtype}")
        if len(self.class_folders) != len(self.class_parts):
            raise ValueError("class_folders and class_parts: expected the same length")
        if len(set(self.sample_ids.tolist())) != len(self.sample_ids):
            raise ValueError("sample_ids: expected unique ids")

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def _row(self) -> dict[str, int]:
        cache = self.__dict__.get("_row_cache")
        if cache is None:
            cache = {str(s): i for i, s in enumerate(self.sample_ids)}
            object.__setattr__(self, "_row_cache", cache)
        return cache

    def _index(self, sample_id: str) -> int:
        try:
            return self._row[sample_id]
        except KeyError:
            raise KeyError(f"no part masks for sample id {sample_id!r}") from None

    def bit(self, part: str) -> int:
        """Bit value (``1 << i``) of ``part``."""
        if part not in self.vocabulary:
            raise KeyError(f"unknown part {part!r}; vocabulary: {', '.join(self.vocabulary)}")
        return 1 << self.vocabulary.index(part)

    def mask(self, sample_id: str, part: str) -> np.ndarray:
        """Boolean mask of shape (H, W): where ``part`` is visible in ``sample_id``."""
        return (self.masks[self._index(sample_id)] & self.bit(part)) != 0

    def parts_of(self, sample_id: str) -> list[str]:
        """The parts visible in ``sample_id`` (non-empty mask), in vocabulary order."""
        present = int(np.bitwise_or.reduce(self.masks[self._index(sample_id)], axis=None))
        return [p for i, p in enumerate(self.vocabulary) if present >> i & 1]

    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz`` atomically (see :func:`inviz.core.io.save_npz`)."""
        from inviz.core.io import save_npz

        return save_npz(
            path,
            sample_ids=np.asarray(self.sample_ids, dtype=str),
            masks=self.masks,
            vocabulary=np.asarray(self.vocabulary, dtype=str),
            class_folders=np.asarray(self.class_folders, dtype=str),
            class_parts=np.asarray(["|".join(p) for p in self.class_parts], dtype=str),
        )

    @classmethod
    def load(cls, path: str | Path) -> PartMasks:
        """Read a file written by :meth:`save`; a missing or malformed file raises
        :class:`PartMasksError` naming it."""
        path = Path(path)
        if not path.is_file():
            raise PartMasksError(f"{path}: part-mask file not found (run the 'data' stage first)")
        keys = ("sample_ids", "masks", "vocabulary", "class_folders", "class_parts")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in keys if k not in data.files]
                if missing:
                    raise PartMasksError(f"{path}: not a part-mask file; missing array(s) {', '.join(missing)}")
                arrays = {k: data[k] for k in keys}
        except PartMasksError:
            raise
        except Exception as err:  # zipfile.BadZipFile, OSError, ValueError, EOFError ...
            raise PartMasksError(f"{path}: not a readable part-mask .npz file ({type(err).__name__}: {err})") from err
        try:
            return cls(
                sample_ids=arrays["sample_ids"].astype(str),
                masks=arrays["masks"],
                vocabulary=tuple(arrays["vocabulary"].astype(str).tolist()),
                class_folders=tuple(arrays["class_folders"].astype(str).tolist()),
                class_parts=tuple(tuple(p.split("|")) if p else () for p in arrays["class_parts"].astype(str).tolist()),
            )
        except ValueError as err:
            raise PartMasksError(f"{path}: inconsistent part-mask file: {err}") from err


def empty_parts() -> PartMasks:
    """A :class:`PartMasks` with no samples and no vocabulary (for real datasets)."""
    return PartMasks(np.zeros(0, dtype=str), np.zeros((0, 0, 0), dtype=np.uint16), ())


# --------------------------------------------------------------------------------------------
# drawing
# --------------------------------------------------------------------------------------------


def _local_coords(size: int, cy: float, cx: float, radius: float, angle: float) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
    """Bounding box of the disk ``(cy, cx, radius)`` in a ``size``-px image and the rotated,
    scaled coordinates ``u, v`` (shape (h, w)) of its pixel centres."""
    y0, y1 = max(0, math.floor(cy - radius)), min(size, math.ceil(cy + radius) + 1)
    x0, x1 = max(0, math.floor(cx - radius)), min(size, math.ceil(cx + radius) + 1)
    dy = ((np.arange(y0, y1) + 0.5 - cy) / radius)[:, None]
    dx = ((np.arange(x0, x1) + 0.5 - cx) / radius)[None, :]
    c, s = math.cos(angle), math.sin(angle)
    return (slice(y0, y1), slice(x0, x1)), c * dx + s * dy, -s * dx + c * dy


def _colour(rgb: np.ndarray, rng: np.random.Generator, jitter: float) -> np.ndarray:
    return np.clip(rgb + rng.uniform(-jitter, jitter, 3), 0.0, 1.0)


def _place(radii: np.ndarray, size: int, gap: float, cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
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
    mask = np.zeros((size, size), dtype=_mask_dtype(len(VOCABULARY)))
    lo, hi = cfg.part_instances
    instances = [p for p in parts for _ in range(int(rng.integers(lo, hi + 1)))]
    order = rng.permutation(len(instances))
    instances = [instances[i] for i in order]
    radii = rng.uniform(*cfg.part_scale, size=len(instances)) * size / 2
    centres, radii = _place(radii, size, cfg.part_gap * size, cfg, rng)
    max_angle = np.deg2rad(cfg.part_rotation)
    for part, (cy, cx), radius in zip(instances, centres, radii):
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
    """The random generator of image ``i`` of class ``label`` in ``split``."""
    return np.random.default_rng([cfg.seed, SPLITS.index(split), label, i])


def generate_dataset(cfg: SyntheticConfig, dest: str | Path) -> PartMasks:
    """Write the dataset as PNGs to ``dest`` (atomically, replacing it) and return its part masks.

    Parameters
    ----------
    cfg : generator settings.
    dest : output folder; it receives ``<split>/<class folder>/<class name>_<i>.png`` for
        ``split`` in :data:`SPLITS`.

    Returns
    -------
    PartMasks with N = (n_train_per_class + n_val_per_class) * n_classes samples, in
    split, class, index order.
    """
    from inviz.core.io import atomic_path

    specs = classes(cfg)
    counts = {"train": cfg.n_train_per_class, "val": cfg.n_val_per_class}
    total = sum(counts.values()) * len(specs)
    size = cfg.image_size
    masks = np.zeros((total, size, size), dtype=_mask_dtype(len(VOCABULARY)))
    ids: list[str] = []
    digits = len(str(max(counts.values()) - 1))
    with atomic_path(dest, directory=True) as tmp, tqdm(total=total, desc="synthetic images", unit="img") as bar:
        for split in SPLITS:
            for spec in specs:
                folder = tmp / split / spec.folder
                folder.mkdir(parents=True)
                stem_prefix = spec.folder.split("_", 1)[1]
                for i in range(counts[split]):
                    image, masks[len(ids)] = render_image(cfg, spec.parts, image_rng(cfg, split, spec.label, i))
                    stem = f"{stem_prefix}_{i:0{digits}d}"
                    Image.fromarray(image).save(folder / f"{stem}.png", format="PNG", compress_level=cfg.png_compress_level)
                    ids.append(f"{split}/{spec.folder}/{stem}")
                    bar.update()
    log.info("wrote %d synthetic images (%d classes) to %s", total, len(specs), dest)
    return PartMasks(
        sample_ids=np.asarray(ids, dtype=str),
        masks=masks,
        vocabulary=VOCABULARY,
        class_folders=tuple(s.folder for s in specs),
        class_parts=tuple(s.parts for s in specs),
    )


def describe(cfg: SyntheticConfig) -> list[dict[str, Any]]:
    """Classes as plain records (``label, folder, name, parts``) for reports and JSON."""
    return [{"label": c.label, "folder": c.folder, "name": c.name, "parts": list(c.parts)} for c in classes(cfg)]
