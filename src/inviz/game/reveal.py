"""Masked images for the label game *Deep Reveal* (docs/method.md §2).

A player first sees only the most salient ``levels[0]`` percent of a cluster map laid over the
image, then may ask for up to five hints, each revealing a larger share. For one cluster map
``A`` (native resolution, e.g. 8x8 … 64x64) and its image:

1. game image: the network input (the original image resized to the model's input size, as the
   model saw it) upscaled to ``game_size`` (paper: 256 → 512);
2. the cluster map upscaled to ``game_size`` by nearest-neighbour block replication (x8, x16,
   x32 in the paper);
3. for each level ``Q``: binary mask ``M = A_up >= percentile(A_up, 100 - Q)``;
4. soft mask: ``gaussian_filter(M, sigma, truncate=1.5)`` with ``sigma`` set by the upscale
   factor (paper: 12 / 16 / 24 for x8 / x16 / x32; see :func:`blur_sigma` for other factors);
5. masked image = soft mask * game image.

Ties make a mask show more than ``Q`` percent (a constant map reveals everything): the share
actually shown is returned with every level so manifests can report it.

Steps 2-4 are composed in one place, :func:`reveal_masks`: the game's masked images
(:func:`reveal`), the overlays people look at (:func:`reveal_mask` at any size) and what simulated
players see of a part (:mod:`inviz.game.coverage`) all call it. It computes step 4 without
blurring the full-size masks: a binary mask is the block replication ``U_r B U_c^T`` of the map's
own binary mask ``B`` (h x w), and the separable Gaussian is a matrix ``G`` per axis (scipy's
``gaussian_filter1d`` applied to the identity, border mode included), so the soft mask is
``(G U_r) B (G U_c)^T``: two small matrix products instead of two 1-D convolutions over every
game pixel (the same numbers as ``gaussian_filter`` on the full mask up to float32 rounding;
:func:`soft_mask` is that reference).

Everything here is a pure function over arrays; the ``masks`` stage does the I/O.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np

from inviz.core.checks import check_at_least

Resample = Literal["nearest", "bilinear", "bicubic", "lanczos"]


@dataclass(frozen=True)
class MasksRunConfig:
    """``masks.run``: how the ``masks`` stage runs; the outputs do not depend on it.

    workers : processes rendering and encoding masked images (1: none).
    """

    workers: int = 1

    def __post_init__(self) -> None:
        check_at_least(self, {"workers": 1})


@dataclass(frozen=True)
class RevealConfig:
    """``masks`` section: how Deep Reveal's masked images are made.

    game_size : side of the square game image in pixels (paper: 512 = 2x the 256 input).
    levels : revealed percentages, first view then one per hint (paper: 2, 4.5, 8, 13, 20, 30).
    sigma : upscale factor -> Gaussian sigma in game pixels (paper: {8: 12, 16: 16, 32: 24}).
        For a factor ``f`` not in the table, sigma = ``sigma[g] * sqrt(f / g)`` where ``g`` is
        the table factor nearest to ``f`` on a log scale (ties: the smaller ``g``); e.g. x4 → 8.49.
    truncate : Gaussian kernel radius in sigmas (``scipy.ndimage.gaussian_filter(truncate=)``).
    blur_mode : border handling of the blur (``scipy.ndimage`` mode; default ``reflect``).
    image_resample : filter that upscales the network input to ``game_size``.
    image_format : ``png`` (lossless, default) or ``jpeg`` for the stored masked images.
    png_compress_level : zlib level 0-9 of PNGs (size/speed only, pixels unchanged).
    jpeg_quality : JPEG quality 1-95 when ``image_format`` is ``jpeg``.
    figure_maps : cluster maps shown in the six-level strip figure.
    figure_seed : which cluster maps the figure shows (seeded draw).
    map_kind : which cluster map of the ``extract`` output is masked: ``map`` (the stored map,
        scaled as ``extract.map_scaling`` says; ``code`` = the authors' display map) or ``raw``
        (``A_C``). Min-max scaling does not move percentiles; the ``code`` resampling can.
    run : run settings (:class:`MasksRunConfig`; ``masks.workers`` of older params files is
        read as ``masks.run.workers``).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {"workers": "run.workers"}

    game_size: int = 512
    levels: tuple[float, ...] = (2.0, 4.5, 8.0, 13.0, 20.0, 30.0)
    sigma: dict[int, float] = field(default_factory=lambda: {8: 12.0, 16: 16.0, 32: 24.0})
    truncate: float = 1.5
    blur_mode: Literal["reflect", "constant", "nearest", "mirror", "wrap"] = "reflect"
    image_resample: Resample = "bilinear"
    image_format: Literal["png", "jpeg"] = "png"
    png_compress_level: int = 1
    jpeg_quality: int = 90
    figure_maps: int = 4
    figure_seed: int = 432
    map_kind: Literal["map", "raw"] = "map"
    run: MasksRunConfig = field(default_factory=MasksRunConfig)

    def __post_init__(self) -> None:
        if self.game_size < 1:
            raise ValueError(f"game_size: expected >= 1, got {self.game_size}")
        if not self.levels:
            raise ValueError("levels: expected at least one reveal level")
        if any(not 0 < q <= 100 for q in self.levels):
            raise ValueError(f"levels: expected percentages in (0, 100], got {list(self.levels)}")
        if list(self.levels) != sorted(self.levels) or len(set(self.levels)) != len(self.levels):
            raise ValueError(f"levels: expected strictly increasing percentages, got {list(self.levels)}")
        if not self.sigma or any(f < 1 or s < 0 for f, s in self.sigma.items()):
            raise ValueError(f"sigma: expected factor (>= 1) -> sigma (>= 0) entries, got {self.sigma}")
        if self.truncate <= 0:
            raise ValueError(f"truncate: expected > 0, got {self.truncate}")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"png_compress_level: expected 0..9, got {self.png_compress_level}")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality: expected 1..95, got {self.jpeg_quality}")
        if self.figure_maps < 1:
            raise ValueError(f"figure_maps: expected >= 1, got {self.figure_maps}")


@dataclass(frozen=True)
class Reveal:
    """The Deep Reveal images of one cluster map (L = number of levels, G = game size).

    masked : ndarray of uint8, shape (L, G, G, 3) — soft mask * game image per level.
    soft : ndarray of float32, shape (L, G, G) — blurred masks in [0, 1].
    binary : ndarray of bool, shape (L, G, G) — ``map >= percentile(map, 100 - Q)``.
    revealed_share : ndarray of float, shape (L,) — share of pixels in the binary mask
        (``levels / 100`` unless the map has ties; the blur keeps the mean with ``reflect``).
    factor : upscale factor (game size / map side). sigma : blur sigma used.
    """

    masked: np.ndarray
    soft: np.ndarray
    binary: np.ndarray
    revealed_share: np.ndarray
    factor: float
    sigma: float


def upscale_factor(map_shape: Sequence[int], game_size: int) -> float:
    """Compute the upscale factor game size / map side of a square map.

    Parameters
    ----------
    map_shape : sequence of int
        The map's shape (h, w); a non-square map raises ``ValueError``.
    game_size : int
        Side of the game image in pixels.

    Returns
    -------
    float
    """
    h, w = int(map_shape[0]), int(map_shape[1])
    if h != w:
        raise ValueError(f"cluster maps must be square, got shape {(h, w)}")
    return game_size / h


def blur_sigma(factor: float, table: dict[int, float]) -> float:
    """Look up the blur sigma of an upscale factor (see :class:`RevealConfig` ``sigma`` for the rule).

    Exact table entries are returned as they are; any other factor scales the nearest entry
    (log scale, ties to the smaller factor) by ``sqrt(factor / entry)``.

    Parameters
    ----------
    factor : float
        The upscale factor.
    table : dict of int to float
        Factor -> sigma (``masks.sigma``).

    Returns
    -------
    float
    """
    if factor in table:
        return float(table[factor])  # type: ignore[index]
    ref = min(sorted(table), key=lambda g: abs(math.log(factor / g)))
    return float(table[ref]) * math.sqrt(factor / ref)


def upscale_nearest(cmap: np.ndarray, size: int) -> np.ndarray:
    """Upscale a map by nearest neighbours.

    Pixel ``(y, x)`` of the result takes map pixel ``(y * h // size, x * w // size)``: for an
    integer factor this is exact block replication (``np.kron`` with a block of ones).

    Parameters
    ----------
    cmap : ndarray of shape (h, w)
        The map.
    size : int
        Side of the result.

    Returns
    -------
    ndarray of shape (size, size), the dtype of ``cmap``
    """
    cmap = np.asarray(cmap)
    if cmap.ndim != 2:
        raise ValueError(f"expected a 2-D map, got shape {cmap.shape}")
    h, w = cmap.shape
    rows = (np.arange(size) * h) // size
    cols = (np.arange(size) * w) // size
    return cmap[rows[:, None], cols[None, :]]


def percentile_mask(values: np.ndarray, q: float) -> np.ndarray:
    """Select the top ``q`` percent: ``values >= np.percentile(values, 100 - q)``.

    Ties at the threshold are all included, so the mask can cover more than ``q`` percent.
    Non-finite values raise ``ValueError``.

    Parameters
    ----------
    values : ndarray
        Any shape.
    q : float
        Percentage in (0, 100].

    Returns
    -------
    ndarray of bool, the shape of ``values``
    """
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("map contains NaN or infinite values")
    return values >= np.percentile(values, 100.0 - q)


def soft_mask(binary: np.ndarray, sigma: float, truncate: float = 1.5, mode: str = "reflect") -> np.ndarray:
    """Blur a binary mask with a Gaussian (step 4 of the module docstring).

    Parameters
    ----------
    binary : ndarray of bool, shape (G, G)
        The mask.
    sigma : float
        Gaussian sigma in pixels; 0 returns the mask as float.
    truncate : float
        Kernel radius in sigmas.
    mode : str
        Border handling (``scipy.ndimage`` mode).

    Returns
    -------
    ndarray of float32, shape (G, G), values in [0, 1]
    """
    from scipy.ndimage import gaussian_filter

    m = np.asarray(binary, dtype=np.float32)
    if sigma <= 0:
        return m
    return np.clip(gaussian_filter(m, sigma=sigma, truncate=truncate, mode=mode), 0.0, 1.0).astype(np.float32)


def apply_mask(image: np.ndarray, soft: np.ndarray) -> np.ndarray:
    """Mask an image: ``round(soft * image)``.

    Parameters
    ----------
    image : ndarray of uint8, shape (G, G, 3)
        The game image.
    soft : ndarray of shape (G, G)
        The soft mask, values in [0, 1].

    Returns
    -------
    ndarray of uint8, shape (G, G, 3)
    """
    out = np.asarray(image, dtype=np.float32) * np.asarray(soft, dtype=np.float32)[..., None]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


_PIL_FILTERS = {"nearest": 0, "lanczos": 1, "bilinear": 2, "bicubic": 3}


def game_image(
    image: np.ndarray, input_size: int, game_size: int, resample: Resample = "bilinear"
) -> np.ndarray:
    """Make the game's picture: ``image`` resized to the network input, then upscaled to ``game_size``.

    The first resize matches :func:`inviz.data.loading.eval_transform` (bilinear with
    antialiasing on a PIL image), so players see what the network saw.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3) — the original RGB image.
    input_size, game_size : sides in pixels. resample : filter of the second resize.

    Returns
    -------
    ndarray of uint8, shape (game_size, game_size, 3)
    """
    from PIL import Image

    pil = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB")
    if pil.size != (input_size, input_size):
        pil = pil.resize((input_size, input_size), Image.Resampling.BILINEAR)
    if input_size != game_size:
        pil = pil.resize((game_size, game_size), Image.Resampling(_PIL_FILTERS[resample]))
    return np.asarray(pil, dtype=np.uint8)


def binary_levels(
    cmap: np.ndarray, cfg: RevealConfig, levels: Sequence[float] | None = None, size: int | None = None
) -> np.ndarray:
    """Binary reveal masks of one cluster map, one per level (steps 2-3 of the module docstring).

    Parameters
    ----------
    cmap : ndarray of shape (h, w), the cluster map.
    cfg : reveal settings. levels : revealed percentages (default ``cfg.levels``).
    size : side of the masks in pixels (default ``cfg.game_size``).

    Returns
    -------
    ndarray of bool, shape (L, size, size)
    """
    return _binary_blocks(
        cmap, cfg.levels if levels is None else levels, cfg.game_size if size is None else size
    )[0]


def _binary_blocks(
    cmap: np.ndarray, levels: Sequence[float], size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 3 on the map itself: the game-size masks are block replications of the map's own masks.

    Returns ``binary`` (L, size, size) bool, ``small`` (L, h, w) bool (the map's pixels at or above
    each level's threshold: :func:`percentile_mask` of the upscaled values, one partition for
    every level) and the float64 map.
    """
    small, cmap = _small_blocks(cmap, levels, size)
    rows = (np.arange(size) * cmap.shape[0]) // size
    cols = (np.arange(size) * cmap.shape[1]) // size
    return small[:, rows[:, None], cols[None, :]], small, cmap


def _small_blocks(cmap: np.ndarray, levels: Sequence[float], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the map's pixels at or above each level's threshold, (L, h, w) bool, and the float64 map."""
    cmap = np.asarray(cmap, dtype=np.float64)
    up = upscale_nearest(cmap, size)
    if not np.all(np.isfinite(up)):
        raise ValueError("map contains NaN or infinite values")
    thresholds = np.percentile(up, [100.0 - q for q in levels])
    return cmap[None, :, :] >= thresholds[:, None, None], cmap


def mask_sigma(map_shape: Sequence[int], cfg: RevealConfig, size: int | None = None) -> float:
    """Compute the blur sigma of the soft masks of a square map drawn at ``size`` pixels.

    The game's sigma (:func:`blur_sigma` of the upscale factor to ``cfg.game_size``), scaled by
    ``size / game_size`` when the masks are drawn at another size.

    Parameters
    ----------
    map_shape : sequence of int
        The map's shape (h, h).
    cfg : RevealConfig
        ``game_size`` and ``sigma``.
    size : int, optional
        Side of the masks (default: the game size).

    Returns
    -------
    float
    """
    sigma = blur_sigma(upscale_factor(map_shape, cfg.game_size), cfg.sigma)
    return sigma if size is None or size == cfg.game_size else sigma * size / cfg.game_size


def reveal_masks(
    cmap: np.ndarray, cfg: RevealConfig, levels: Sequence[float] | None = None, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Compose the game's binary and soft reveal masks of one cluster map (steps 2-4 of the module docstring).

    Parameters
    ----------
    cmap : ndarray of shape (h, h), the cluster map at the layer's native resolution.
    cfg : reveal settings. levels : revealed percentages (default ``cfg.levels``).
    size : side of the masks in pixels (default ``cfg.game_size``; the blur scales with it).

    Returns
    -------
    binary : ndarray of bool, shape (L, size, size).
    soft : ndarray of float32, shape (L, size, size), values in [0, 1].
    """
    size = cfg.game_size if size is None else size
    binary, small, cmap = _binary_blocks(cmap, cfg.levels if levels is None else levels, size)
    return binary, _soft(binary, small, cmap, cfg, size)


def soft_masks(cmap: np.ndarray, cfg: RevealConfig) -> np.ndarray:
    """Compose the game's soft reveal masks only: :func:`reveal_masks`'s second output, the same values.

    Skips the game-size binary masks (the soft ones are blurred from the map's own blocks), which
    is a third of the work when only the soft masks are needed (part coverage).

    Parameters
    ----------
    cmap : ndarray of shape (h, h), the cluster map. cfg : reveal settings (``levels``, ``game_size``).

    Returns
    -------
    ndarray of float32, shape (L, game_size, game_size), values in [0, 1].
    """
    size = cfg.game_size
    if mask_sigma(np.shape(cmap), cfg, size) <= 0:
        return reveal_masks(cmap, cfg)[1]
    small, cmap = _small_blocks(cmap, cfg.levels, size)
    return _soft(None, small, cmap, cfg, size)


def _soft(
    binary: np.ndarray | None, small: np.ndarray, cmap: np.ndarray, cfg: RevealConfig, size: int
) -> np.ndarray:
    sigma = mask_sigma(cmap.shape, cfg, size)
    if sigma <= 0:
        assert binary is not None
        return binary.astype(np.float32)
    ar = _blurred_upscale(size, cmap.shape[0], sigma, cfg.truncate, cfg.blur_mode)[0]  # (size, h)
    act = _blurred_upscale(size, cmap.shape[1], sigma, cfg.truncate, cfg.blur_mode)[1]  # (w, size)
    n_levels, h, w = small.shape
    # axis 0 then axis 1, each summed in float64 and stored in float32 as scipy's gaussian_filter does;
    # one BLAS thread: these products are small, and threaded BLAS next to torch's threads or the
    # masks stage's worker processes spends more time waiting than computing
    with _blas_controller().limit(limits=1, user_api="blas"):
        first = np.matmul(ar, small.astype(np.float64)).astype(np.float32)  # (L, size, w)
        soft = (first.astype(np.float64).reshape(n_levels * size, w) @ act).astype(np.float32)
    return np.clip(soft.reshape(n_levels, size, size), 0.0, 1.0)


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@functools.lru_cache(maxsize=32)
def _blurred_upscale(
    size: int, n: int, sigma: float, truncate: float, mode: str
) -> tuple[np.ndarray, np.ndarray]:
    """Write the 1-D Gaussian blur of a nearest-upscaled axis as one matrix ``A``, shape (size, n).

    Column ``k`` is the blur (scipy's ``gaussian_filter1d``, border ``mode``) of the indicator of
    the game pixels that take map pixel ``k`` (:func:`upscale_nearest`); ``A @ b`` blurs the
    upscaled ``b`` (length ``n``). Returns ``A`` and a C-contiguous ``A.T`` (a transposed view
    would send ``np.matmul`` down its slow non-BLAS loop); read-only: they are cached.
    """
    from scipy.ndimage import gaussian_filter1d

    blur = gaussian_filter1d(np.eye(size), sigma, axis=0, truncate=truncate, mode=mode)
    pick = np.zeros((size, n))
    pick[np.arange(size), (np.arange(size) * n) // size] = 1.0
    out = blur @ pick
    out_t = np.ascontiguousarray(out.T)
    out.setflags(write=False)
    out_t.setflags(write=False)
    return out, out_t


def reveal_mask(cmap: np.ndarray, size: int, level: float, cfg: RevealConfig) -> np.ndarray:
    """Draw the game's soft reveal mask of a cluster map at ``level`` % with ``size`` pixels.

    Parameters
    ----------
    cmap : ndarray of shape (h, h). size : output side in pixels. level : revealed percentage.
    cfg : reveal settings.

    Returns
    -------
    ndarray of float32, shape (size, size), values in [0, 1].
    """
    return reveal_masks(cmap, cfg, (level,), size)[1][0]


def reveal(cmap: np.ndarray, image: np.ndarray, cfg: RevealConfig) -> Reveal:
    """All Deep Reveal levels of one cluster map.

    Parameters
    ----------
    cmap : ndarray, shape (h, h) — the cluster map at the layer's native resolution.
    image : ndarray of uint8, shape (G, G, 3) — the game image (:func:`game_image`).
    cfg : reveal settings.

    Returns
    -------
    Reveal with L = ``len(cfg.levels)`` masked images.
    """
    image = np.asarray(image)
    g = cfg.game_size
    if image.shape != (g, g, 3):
        raise ValueError(f"image: expected shape {(g, g, 3)}, got {image.shape}")
    binary, soft = reveal_masks(cmap, cfg)
    masked = np.stack([apply_mask(image, s) for s in soft])
    return Reveal(
        masked=masked,
        soft=soft,
        binary=binary,
        revealed_share=binary.reshape(len(binary), -1).mean(axis=1),
        factor=upscale_factor(np.shape(cmap), g),
        sigma=mask_sigma(np.shape(cmap), cfg),
    )
