"""The CAV cache: a persistent folder of captum CAV files keyed by the model (docs/method.md §4).

Layout (a tracked, persistent DVC output)::

    <cache_dir>/
      <model_hash[:16]>/                 one directory per model checkpoint (sha256 of the file)
        model.json                       {"model_sha256": <full hash>}
        cav-<settings[:12]>/             one directory per CAV classifier setting (+ seed)
          settings.json                  the settings hashed into the directory name
          <id_a>-<id_b>-<layer>.pkl      captum CAV pickle ({"weights", "classes", "accs"})

``<layer>`` is the captured module's name (``features.29``). ``<id_a>``/``<id_b>`` are captum
concept ids derived from the **content** of the example sets (:func:`set_id`: sha256 of the image
tensors, the role "concept"/"random" included), ``id_a`` the concept (or the null's random set
``B_i``), ``id_b`` the random counter-set ``A_i``. A changed checkpoint gives a new top directory,
changed examples give new ids and changed classifier settings a new settings directory, so a stale
CAV is never reused; identical inputs reuse every CAV (no activation is computed then).

Captum works in a temporary directory: cached CAVs are copied in (:func:`restore_cavs`), new ones
are copied out atomically after each run (:func:`store_cavs`: an interrupted job keeps its finished
runs). The activation vectors captum stores to train CAVs are scratch, never in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from inviz.concepts.tcav.config import TCAVConfig, TCAVError
from inviz.core.io import atomic_path, write_json

log = logging.getLogger(__name__)


def safe_hash(model_hash: str) -> str:
    """Check that ``model_hash`` is a hex digest usable as a folder name.

    Parameters
    ----------
    model_hash : str
        sha256 of the model checkpoint (at least 16 alphanumeric characters).

    Returns
    -------
    str
        ``model_hash`` unchanged.
    """
    if not isinstance(model_hash, str) or not re.fullmatch(r"[0-9A-Za-z]{16,}", model_hash):
        raise TCAVError(
            "model_hash: expected the checkpoint's hex digest (at least 16 alphanumeric characters), "
            f"got {model_hash!r}"
        )
    return model_hash


def cache_dir_for(cache_dir: str | Path, model_hash: str, cfg: TCAVConfig) -> Path:
    """Return the directory holding the CAVs of ``model_hash`` under the settings of ``cfg``.

    Parameters
    ----------
    cache_dir : str or Path
        Root of the CAV cache.
    model_hash : str
        sha256 of the model checkpoint.
    cfg : TCAVConfig
        Its :meth:`TCAVConfig.cav_settings` name the settings directory.

    Returns
    -------
    Path
        ``<cache_dir>/<model_hash[:16]>/cav-<settings hash[:12]>``
    """
    settings = hashlib.sha256(repr(sorted(cfg.cav_settings().items())).encode()).hexdigest()
    return Path(cache_dir) / safe_hash(model_hash)[:16] / f"cav-{settings[:12]}"


def row_hashes(x: torch.Tensor) -> list[bytes]:
    """Hash every image of ``x`` with sha256 (its shape and dtype included).

    Parameters
    ----------
    x : Tensor of shape (n, C, H, W)

    Returns
    -------
    list of n bytes digests
    """
    x = x.detach().cpu().contiguous()
    head = f"{tuple(x.shape[1:])}|{x.dtype}".encode()
    return [hashlib.sha256(head + row.numpy().tobytes()).digest() for row in x]


def set_id(role: str, hashes: Sequence[bytes]) -> int:
    """Derive a captum concept id (< 2**60) from the role and the content of an example set.

    Parameters
    ----------
    role : str
        ``concept`` or ``random``.
    hashes : sequence of bytes
        :func:`row_hashes` of the set's images, in order.

    Returns
    -------
    int
    """
    h = hashlib.sha256(role.encode() + b"".join(hashes)).hexdigest()
    return int(h[:15], 16)


def prepare(settings_dir: Path, model_hash: str, cfg: TCAVConfig) -> None:
    """Create ``settings_dir`` with its ``settings.json`` and its model's ``model.json`` if missing."""
    settings_dir.mkdir(parents=True, exist_ok=True)
    model_json = settings_dir.parent / "model.json"
    if not model_json.is_file():
        write_json(model_json, {"model_sha256": model_hash})
    if not (settings_dir / "settings.json").is_file():
        write_json(settings_dir / "settings.json", cfg.cav_settings())


def restore_cavs(settings_dir: Path, tcav: Any, files: Mapping[tuple[tuple[Any, ...], str], str]) -> int:
    """Copy the cached CAVs of ``files`` into captum's scratch folder; drop unreadable ones.

    Parameters
    ----------
    settings_dir : Path
        The cache's settings directory (:func:`cache_dir_for`).
    tcav : inviz.concepts.tcav.pool.PooledTCAV
        The captum TCAV whose scratch folder receives the files.
    files : mapping (experimental set, layer) -> CAV file name

    Returns
    -------
    int
        CAVs restored. An unreadable file (corrupt or foreign) is deleted from the cache and from
        the scratch folder, so captum retrains it and :func:`store_cavs` replaces it.
    """
    from captum.concept import CAV

    n = 0
    for (concepts, layer), fname in files.items():
        src, dst = settings_dir / fname, tcav.cav_dir / fname
        if not src.is_file() or dst.is_file():
            continue
        shutil.copyfile(src, dst)
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", category=DeprecationWarning)  # numpy.core in CAV.load
                CAV.load(tcav.save_path, tcav.model_id, list(concepts), layer)
        except Exception as err:  # a corrupt or foreign file: retrain and replace it
            log.warning("unreadable CAV cache file %s (%s): retraining it", src, err)
            dst.unlink()
            src.unlink()
        else:
            n += 1
    return n


def store_cavs(settings_dir: Path, tcav: Any, fnames: Iterable[str]) -> None:
    """Copy the CAV files ``fnames`` missing from the cache out of captum's scratch folder, atomically."""
    for fname in fnames:
        if not (settings_dir / fname).is_file():
            with atomic_path(settings_dir / fname) as tmp:
                shutil.copyfile(tcav.cav_dir / fname, tmp)
