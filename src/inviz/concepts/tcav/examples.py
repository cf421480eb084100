"""TCAV example sets: revealed regions as inputs, input checks, concept subsampling (docs/method.md §4).

A concept example is the region of an image that a cluster map reveals (:func:`reveal_region`);
a concept with more than ``max_examples`` examples is subsampled with a seeded subset
(:func:`select_examples`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch

from inviz.concepts.tcav.config import TCAVConfig, TCAVError


def reveal_region(
    image: torch.Tensor,
    mask: torch.Tensor,
    fill: Literal["mean", "zero"] = "mean",
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> torch.Tensor:
    """Reveal the region of a (normalised) image under a soft mask, as a network input.

    The label game shows ``mask * image`` in pixel space (docs/method.md §2). As a TCAV concept
    example the hidden part is filled with

    - ``mean``: the dataset mean colour, which is 0 after normalisation (a neutral input):
      ``mask * image``;
    - ``zero``: black pixels, i.e. exactly the game's masked image, normalised:
      ``mask * image + (1 - mask) * (-mean / std)`` (needs ``mean`` and ``std``).

    Parameters
    ----------
    image : Tensor of shape (3, H, W) or (N, 3, H, W)
        Normalised with ``mean``/``std``.
    mask : Tensor of shape (H, W) or (N, H, W)
        Values in [0, 1] (1 = revealed).
    fill : str
        ``mean`` or ``zero`` (``TCAVConfig.reveal_fill``).
    mean, std : sequence of 3 floats, optional
        Per-channel normalisation statistics (``ModelConfig.mean``/``std``), required for
        ``fill="zero"``.

    Returns
    -------
    Tensor of the shape and dtype of ``image``
    """
    if image.dim() not in (3, 4) or image.shape[-3] != 3:
        raise TCAVError(
            f"reveal_region: image: expected shape (3, H, W) or (N, 3, H, W), got {tuple(image.shape)}"
        )
    if mask.shape != image.shape[:-3] + image.shape[-2:]:
        raise TCAVError(
            f"reveal_region: mask: expected shape {tuple(image.shape[:-3] + image.shape[-2:])} "
            f"to match the image, got {tuple(mask.shape)}"
        )
    if not bool(torch.isfinite(mask).all()) or float(mask.min()) < 0 or float(mask.max()) > 1:
        raise TCAVError("reveal_region: mask: expected finite values in [0, 1]")
    m = mask.to(image.dtype).unsqueeze(-3)
    if fill == "mean":
        return m * image
    if fill == "zero":
        if mean is None or std is None:
            raise TCAVError("reveal_region: fill='zero' needs the normalisation mean and std")
        shape = (3, 1, 1)
        mean_t = torch.as_tensor(mean, dtype=image.dtype).reshape(shape)
        black = -mean_t / torch.as_tensor(std, dtype=image.dtype).reshape(shape)
        return m * image + (1 - m) * black.to(image.device)
    raise TCAVError(f"reveal_region: fill: expected 'mean' or 'zero', got {fill!r}")


def check_images(name: str, x: Any, chw: tuple[int, ...] | None) -> torch.Tensor:
    """Check that ``x`` is a finite image batch of the expected image shape; return it detached.

    Parameters
    ----------
    name : str
        The argument's name, for the error message.
    x : Tensor of shape (n, C, H, W)
    chw : tuple (C, H, W) or None
        The image shape required (that of the class inputs); ``None``: any.

    Returns
    -------
    Tensor of shape (n, C, H, W)
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise TCAVError(f"{name}: expected a Tensor of shape (n, C, H, W), got {shape}")
    if chw is not None and tuple(x.shape[1:]) != chw:
        raise TCAVError(f"{name}: expected images of shape {chw} like class_inputs, got {tuple(x.shape[1:])}")
    if not bool(torch.isfinite(x).all()):
        raise TCAVError(f"{name}: NaN or infinite pixel values")
    return x.detach()


def select_examples(name: str, n: int, cfg: TCAVConfig) -> np.ndarray:
    """Choose the concept examples used: all, or a seeded subset of ``max_examples``.

    Parameters
    ----------
    name : str
        The concept (its hash seeds the subset with ``cfg.seed``).
    n : int
        Concept examples available.
    cfg : TCAVConfig

    Returns
    -------
    ndarray of int of shape (min(n, max_examples),), sorted
    """
    if n <= cfg.max_examples:
        return np.arange(n)
    name_key = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng([cfg.seed, 2, name_key])
    return np.sort(rng.choice(n, size=cfg.max_examples, replace=False))
