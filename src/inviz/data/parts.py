"""Ground-truth part masks of a dataset (docs/method.md §0, §2 and §3; the synthetic demo's).

The synthetic demo knows which pixels of every image show which *part* (wheel, stripes, ...).
:class:`PartMasks` keeps them for a whole dataset as one bitfield image per sample (bit ``i`` =
part ``vocabulary[i]``), keyed by the sample ids :func:`inviz.data.index.scan_image_folder`
produces (``"{split}/{class folder}/{file stem}"``). The ``data`` stage writes it (empty for real
datasets, :func:`empty_parts`); the simulated players and the closed loop of label analysis read
it. It depends on nothing of the generator (:mod:`inviz.data.synthetic`), so changing how parts
are drawn does not touch the code that reads the masks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from inviz.core.errors import InvizError
from inviz.core.io import require_file


class PartMasksError(InvizError, ValueError):
    """A part-mask file is missing, unreadable or inconsistent."""


def mask_dtype(n_parts: int) -> np.dtype:
    """Choose the smallest bitfield dtype for ``n_parts`` parts: uint16 up to 16, uint32 up to 32.

    Parameters
    ----------
    n_parts : int
        Size of the part vocabulary.

    Returns
    -------
    numpy.dtype
        ``uint16`` or ``uint32``; more than 32 parts raise ``ValueError``.
    """
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

    def renamed(self, ids: dict[str, str]) -> PartMasks:
        """Return a copy whose sample ids are mapped through ``ids`` (ids not in it are kept).

        The test pool's images get ``test/`` ids after the masks were generated under ``val/`` ones.
        """
        new = np.asarray([ids.get(str(s), str(s)) for s in self.sample_ids], dtype=str)
        return replace(self, sample_ids=new)

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
        """Return where ``part`` is visible in ``sample_id``: a boolean mask of shape (H, W)."""
        return (self.masks[self._index(sample_id)] & self.bit(part)) != 0

    def parts_of(self, sample_id: str) -> list[str]:
        """List the parts visible in ``sample_id`` (non-empty mask), in vocabulary order."""
        present = int(np.bitwise_or.reduce(self.masks[self._index(sample_id)], axis=None))
        return [p for i, p in enumerate(self.vocabulary) if present >> i & 1]

    def save(self, path: str | Path) -> Path:
        """Write a compressed ``.npz`` atomically (see :func:`inviz.core.io.save_npz`).

        Parameters
        ----------
        path : str or Path
            Where to write (the ``data`` stage's ``--parts``).

        Returns
        -------
        Path
            The file written.
        """
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
        """Read a file written by :meth:`save`.

        A missing or malformed file raises :class:`PartMasksError` naming it.

        Parameters
        ----------
        path : str or Path
            A file written by :meth:`save` (empty masks for real data).

        Returns
        -------
        PartMasks
        """
        path = require_file(path, "part-mask file", "data", PartMasksError)
        keys = ("sample_ids", "masks", "vocabulary", "class_folders", "class_parts")
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in keys if k not in data.files]
                if missing:
                    raise PartMasksError(
                        f"{path}: not a part-mask file; missing array(s) {', '.join(missing)}"
                    )
                arrays = {k: data[k] for k in keys}
        except PartMasksError:
            raise
        except Exception as err:  # zipfile.BadZipFile, OSError, ValueError, EOFError ...
            raise PartMasksError(
                f"{path}: not a readable part-mask .npz file ({type(err).__name__}: {err})"
            ) from err
        try:
            return cls(
                sample_ids=arrays["sample_ids"].astype(str),
                masks=arrays["masks"],
                vocabulary=tuple(arrays["vocabulary"].astype(str).tolist()),
                class_folders=tuple(arrays["class_folders"].astype(str).tolist()),
                class_parts=tuple(
                    tuple(p.split("|")) if p else () for p in arrays["class_parts"].astype(str).tolist()
                ),
            )
        except ValueError as err:
            raise PartMasksError(f"{path}: inconsistent part-mask file: {err}") from err


def empty_parts() -> PartMasks:
    """Make a :class:`PartMasks` with no samples and no vocabulary (for real datasets)."""
    return PartMasks(np.zeros(0, dtype=str), np.zeros((0, 0, 0), dtype=np.uint16), ())
