"""The synthetic demo's part shapes and clutter shapes (registries; docs/method.md §0).

Every vocabulary part is a *shape function* registered in :data:`PART_SHAPES` under its name;
the registry's order is the bit order of :class:`inviz.data.parts.PartMasks`. Its geometry is
:class:`PartGeometry` (``data.synthetic.geometry``). Clutter shapes, none of them a part, are
registered in :data:`DISTRACTORS`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from inviz.core.checks import check_at_least, check_pair, check_unit

if TYPE_CHECKING:
    from inviz.data.synthetic.config import SyntheticConfig


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
        unit = ("wheel_tire_inner", "wheel_hub", "ring_inner", "star_inner", "cross_arm", "zigzag_amplitude")
        unit += ("zigzag_width", "grid_line", "dots_radius", "crescent_cut", "diamond_aspect")
        check_unit(self, unit, "()", prefix="geometry.")
        lows = {"wheel_spokes": 1, "star_points": 3, "zigzag_segments": 1, "stripes_count": 2}
        check_at_least(self, {**lows, "checker_cells": 2, "grid_cells": 1}, prefix="geometry.")
        if self.wheel_hub >= self.wheel_tire_inner:
            raise ValueError("geometry.wheel_hub: must be smaller than wheel_tire_inner")
        if self.zigzag_amplitude + self.zigzag_width >= 1:
            raise ValueError("geometry.zigzag_amplitude + zigzag_width: must be < 1 (stay in the unit disk)")
        check_pair("geometry.dots_count", self.dots_count, 1)
        check_unit(self, ("crescent_offset",), "[)", prefix="geometry.")


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
    for cu, cv in zip(r * np.cos(a), r * np.sin(a), strict=True):
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
    inside = (np.hypot(u, v) <= 1) & (np.hypot(u - g.crescent_offset, v) > g.crescent_cut)
    return inside, np.zeros(u.shape, bool)


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
