"""Atomic file output and small I/O helpers shared by every stage.

Everything a stage writes goes through :func:`atomic_path`: the content is written to a
temporary sibling and moved into place with :func:`os.replace` only when complete, so an
interrupted stage never leaves a half-written file that DVC or a later stage would trust.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` on success.

    Parameters
    ----------
    path : destination file (or directory when ``directory=True``).
    directory : create the temporary as an empty directory, and replace a whole directory.

    On an exception the temporary is deleted and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if directory:
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            _remove(old)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            _remove(old)
    else:
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as pretty JSON atomically (NumPy scalars/arrays and paths allowed)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return Path(path)


def read_json(path: str | Path) -> Any:
    """Read a JSON file; a missing file or invalid JSON raises an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` as UTF-8 atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_csv(path: str | Path, frame: Any, **kwargs: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically (no index unless asked)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, **kwargs)
    return Path(path)


def write_parquet(path: str | Path, frame: Any) -> Path:
    """Write a pandas DataFrame as Parquet atomically (no index)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def save_npz(path: str | Path, **arrays: Any) -> Path:
    """Save arrays to a compressed ``.npz`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return Path(path)


def save_figure(
    fig: Any, path: str | Path, formats: tuple[str, ...] = ("png",), dpi: int = 200, tight: bool = True
) -> list[Path]:
    """Save a matplotlib figure atomically to ``path`` (its suffix decides the first format).

    ``formats`` lists extra formats written next to it (``("png", "pdf")`` → ``x.png``, ``x.pdf``).
    ``tight``: crop to the drawn content (``bbox_inches="tight"``; an extra draw pass, not needed
    for figures laid out by hand). PNGs use zlib level 1 (~2x faster to write than the default,
    pixels unchanged).
    """
    path = Path(path)
    stem = path.with_suffix("")
    suffixes = [path.suffix.lstrip(".")] if path.suffix else []
    suffixes += [f for f in formats if f not in suffixes]
    written = []
    for fmt in suffixes:
        target = stem.with_suffix(f".{fmt}")
        with atomic_path(target) as tmp:
            extra = {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}
            fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight" if tight else None, **extra)
        written.append(target)
    return written


def link_or_copy(src: str | Path, dst: str | Path) -> None:
    """Hard-link ``src`` to ``dst`` (same file system), else copy it with its metadata."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def require_file(path: str | Path, what: str, stage: str, error: type[Exception] = FileNotFoundError) -> Path:
    """Return ``path`` as a Path; a missing file raises ``error`` naming it and the stage that writes it.

    Parameters
    ----------
    path : str or Path
        The input file.
    what : str
        What the file is, for the message (``model checkpoint``).
    stage : str
        The ``inviz`` stage that writes it.
    error : exception class
        Raised with the message ``"<path>: <what> not found (run the '<stage>' stage first)"``.

    Returns
    -------
    Path
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: {what} not found (run the '{stage}' stage first)")
    return path


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    """Return the hex digest of a file's bytes, read in chunks.

    Parameters
    ----------
    path : str or Path
        The file.
    algorithm : str
        A :mod:`hashlib` algorithm name (``sha256``, ``md5``, ...).

    Returns
    -------
    str
        The hexadecimal digest.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, algorithm).hexdigest()
