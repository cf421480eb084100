"""Settings and classes of the synthetic demo dataset (docs/method.md §0).

:class:`SyntheticConfig` is the ``data.synthetic`` section: every number that shapes the data.
A class is a readable name and the parts that define it (:data:`DEFAULT_CLASSES`);
:func:`classes` gives them in class order with their folders (``c00_bicycle``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from inviz.core.checks import check_at_least, check_pair, check_unit
from inviz.data.synthetic.shapes import DISTRACTORS, PART_SHAPES, VOCABULARY, PartGeometry

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
    classes: dict[str, list[str]] = field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_CLASSES.items()}
    )
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
        if self.image_size < 128:
            raise ValueError(f"image_size: expected >= 128, got {self.image_size}")
        counts = ("n_train_per_class", "n_val_per_class", "placement_tries", "background_cells")
        check_at_least(self, dict.fromkeys(counts, 1))
        if len(self.classes) < 2:
            raise ValueError(f"classes: expected at least 2 classes, got {len(self.classes)}")
        seen: dict[frozenset[str], str] = {}
        for name, parts in self.classes.items():
            if not name or any(c in name for c in "/\\ ") or name.startswith("."):
                raise ValueError(f"classes.{name}: class names must be non-empty, without spaces or slashes")
            unknown = [p for p in parts if p not in PART_SHAPES]
            if unknown:
                raise ValueError(
                    f"classes.{name}: unknown part(s) {unknown}; expected some of {list(VOCABULARY)}"
                )
            if not parts or len(set(parts)) != len(parts):
                raise ValueError(f"classes.{name}: expected one or more distinct parts, got {parts}")
            key = frozenset(parts)
            if key in seen:
                raise ValueError(
                    f"classes.{name}: same parts as class {seen[key]!r}; classes would be indistinguishable"
                )
            seen[key] = name
        check_pair("part_scale", self.part_scale, low=1e-3, high=1.0)
        check_pair("part_instances", self.part_instances, low=1)
        check_pair("background_grey", self.background_grey, low=0.0, high=1.0)
        check_pair("n_distractors", self.n_distractors, low=0)
        check_pair("distractor_scale", self.distractor_scale, low=1e-3, high=1.0)
        check_pair("distractor_aspect", self.distractor_aspect, low=1e-3, high=1.0)
        check_unit(self, ("placement_shrink",), "()", what="a factor")
        if self.part_gap < 0 or self.part_rotation < 0 or self.colour_jitter < 0 or self.noise_std < 0:
            raise ValueError("part_gap, part_rotation, colour_jitter, noise_std: expected >= 0")
        check_unit(self, ("background_saturation", "distractor_saturation"))
        check_unit(self, ("distractor_line_width",), "()")
        if len(self.palette) < 2:
            raise ValueError(f"palette: expected at least 2 colours, got {len(self.palette)}")
        for name, rgb in self.palette.items():
            if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
                raise ValueError(f"palette.{name}: expected 3 values in 0..255, got {rgb}")
        unknown = [k for k in self.distractor_kinds if k not in DISTRACTORS]
        if unknown or (not self.distractor_kinds and self.n_distractors[1] > 0):
            raise ValueError(
                f"distractor_kinds: expected some of {list(DISTRACTORS)}, got {list(self.distractor_kinds)}"
            )
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
    """List the classes of ``cfg`` in class order (= sorted folder order).

    Parameters
    ----------
    cfg : SyntheticConfig
        The generator settings.

    Returns
    -------
    list of SyntheticClass
        Folders ``c00_<name>``, ``c01_<name>``, ... (zero-padded to at least two digits).
    """
    digits = max(2, len(str(len(cfg.classes) - 1)))
    return [
        SyntheticClass(i, f"c{i:0{digits}d}_{name}", name.replace("_", " "), tuple(parts))
        for i, (name, parts) in enumerate(cfg.classes.items())
    ]


def class_names(cfg: SyntheticConfig) -> dict[str, str]:
    """Map each class folder to its readable class name, e.g. ``{"c03_night_sky": "night sky", ...}``.

    Parameters
    ----------
    cfg : SyntheticConfig
        The generator settings (its ``classes``).

    Returns
    -------
    dict of str to str
        In class order, as :func:`classes`.
    """
    return {c.folder: c.name for c in classes(cfg)}
