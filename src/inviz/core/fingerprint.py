"""Fingerprints of the files a pipeline reads from outside the project (DVC cannot list them as deps).

``data.imagenette.local_path`` and a ``model.weights`` file are paths that the params name, so
``dvc.yaml`` cannot declare them as dependencies (a dependency path must always exist; the
defaults are ``null`` and ``imagenet``). The ``inputs`` stage (``always_changed`` in ``dvc.yaml``)
writes one small JSON fingerprint per input; ``data`` and ``train`` depend on those files, so
replacing the weights file or the data folder re-runs them, while an unchanged input leaves the
fingerprint byte-identical and nothing downstream re-runs.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from inviz.core.errors import InvizError
from inviz.core.io import file_digest

#: ``model.weights`` values that name no file (the torchvision download is pinned by its URL's hash)
WEIGHT_KEYWORDS = ("imagenet", "none")


class InputMissing(InvizError, FileNotFoundError):
    """An input named by the params does not exist."""


def fingerprint_path(path: str | Path) -> dict[str, Any]:
    """Fingerprint a file (its bytes) or a folder (every file's relative path, size and mtime).

    The location is not part of it: the same bytes elsewhere give the same fingerprint (the
    params, a DVC dependency themselves, record the path). A folder is fingerprinted from file
    metadata, so hashing Imagenette's ~13,000 images costs milliseconds; a copy with new
    modification times counts as changed (a re-run, never a stale result).

    Parameters
    ----------
    path : str or Path
        A file or a folder.

    Returns
    -------
    dict
        ``{"kind": "file", "bytes": n, "sha256": hex}`` or
        ``{"kind": "folder", "files": n, "bytes": n, "sha256": hex}``.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return {"kind": "file", "bytes": path.stat().st_size, "sha256": file_digest(path)}
    if not path.is_dir():
        raise InputMissing(f"{path}: no such file or folder")
    h, n_files, n_bytes = hashlib.sha256(), 0, 0
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            p = Path(root) / name
            st = p.stat()
            h.update(f"{p.relative_to(path).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
            n_files, n_bytes = n_files + 1, n_bytes + st.st_size
    return {"kind": "folder", "files": n_files, "bytes": n_bytes, "sha256": h.hexdigest()}


def data_inputs(source: str, local_path: str | None) -> dict[str, Any]:
    """Fingerprint the ``data`` stage's outside input: Imagenette's ``local_path``, if any.

    Parameters
    ----------
    source : ``data.source``. local_path : ``data.imagenette.local_path``.

    Returns
    -------
    dict
        ``{"source": ..., "local_path": fingerprint or None}``; a missing ``local_path`` raises
        :class:`InputMissing` naming the key.
    """
    if source != "imagenette" or not local_path:
        return {"source": source, "local_path": None}
    try:
        return {"source": source, "local_path": fingerprint_path(local_path)}
    except InputMissing as err:
        raise InputMissing(f"data.imagenette.local_path: {err}") from None


def weights_inputs(weights: str) -> dict[str, Any]:
    """Fingerprint the ``train`` stage's outside input: the ``model.weights`` file, if one is named.

    Returns
    -------
    dict
        ``{"weights": "imagenet"}`` / ``{"weights": "none"}``, or ``{"weights": fingerprint}``;
        a missing file raises :class:`InputMissing` naming the key.
    """
    if weights in WEIGHT_KEYWORDS:
        return {"weights": weights}
    try:
        return {"weights": fingerprint_path(weights)}
    except InputMissing as err:
        raise InputMissing(
            f"model.weights: expected 'imagenet', 'none' or the path of a state_dict file; {err}"
        ) from None
