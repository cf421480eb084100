"""Imagenette (fast.ai), the paper's dataset: download, verify, or take a local copy.

The 320-px release ``imagenette2-320.tgz`` holds ``train/`` and ``val/`` with one folder per
ImageNet WNID. Class order is the sorted WNID folders (docs/method.md §0): tench, English springer,
cassette player, chain saw, church, French horn, garbage truck, gas pump, golf ball, parachute.

Sources, in order: ``local_path`` (an extracted ``imagenette2-320`` folder or the ``.tgz``
archive) when given, otherwise the official URL (downloaded once into ``cache_dir`` and
md5-verified). Offline without a local copy, :class:`DatasetUnavailable` says what to fetch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)

#: WNID -> class name, as in torchvision's ``Imagenette``.
IMAGENETTE_CLASSES: dict[str, str] = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888605": "parachute",
}


def imagenette_game_classes() -> Any:
    """Return the paper's label-game class list for Imagenette (the packaged file) as a DataFrame.

    Columns ``game_id, game_name, class_folder, class_name`` (see :mod:`inviz.data.game_classes`).
    """
    from importlib import resources

    import pandas as pd

    from inviz.data.game_classes import GAME_CLASS_COLUMNS

    with resources.files("inviz").joinpath("resources/game_classes_imagenette.csv").open() as fh:
        return pd.read_csv(fh, dtype={"class_folder": str})[GAME_CLASS_COLUMNS]


class DatasetUnavailable(InvizError, RuntimeError):
    """The dataset is neither available locally nor downloadable."""


@dataclass(frozen=True)
class ImagenetteConfig:
    """``data.imagenette`` section.

    url, md5 : the official archive and its checksum (torchvision's values for the 320-px release).
    local_path : an extracted ``imagenette2-320`` folder or the ``.tgz``; ``None`` → download.
    cache_dir : where a downloaded archive is kept (relative to the stage's working directory).
    """

    url: str = "https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-320.tgz"
    md5: str = "3df6f0d01a2c9592104656642f5e78a3"
    local_path: str | None = None
    cache_dir: str = ".cache/imagenette"


def _check_layout(root: Path) -> None:
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir():
            raise DatasetUnavailable(
                f"{root}: expected an Imagenette folder with '{split}/' inside; not found"
            )
        missing = [w for w in IMAGENETTE_CLASSES if not (d / w).is_dir()]
        if missing:
            raise DatasetUnavailable(
                f"{d}: missing class folder(s) {', '.join(missing)} "
                f"(expected one folder per WNID: {', '.join(IMAGENETTE_CLASSES)})"
            )


def _extract(archive: Path, md5: str | None, dest: Path) -> Path:
    from torchvision.datasets.utils import check_integrity

    if md5 and not check_integrity(str(archive), md5):
        raise DatasetUnavailable(
            f"{archive}: md5 checksum mismatch (expected {md5}); "
            "the file is corrupt or not imagenette2-320.tgz"
        )
    log.info("extracting %s", archive)
    tmp = dest.with_name(f".{dest.name}.extract")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, OSError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DatasetUnavailable(f"{archive}: cannot extract ({err})") from err
    inner = [p for p in tmp.iterdir() if p.is_dir()]
    top = inner[0] if len(inner) == 1 and not (tmp / "train").is_dir() else tmp
    return top


def _copy_tree(src: Path, dest: Path) -> None:
    """Copy ``src`` into ``dest`` (hard links when on the same file system)."""
    from inviz.core.io import link_or_copy

    shutil.copytree(src, dest, copy_function=link_or_copy)


def fetch_imagenette(cfg: ImagenetteConfig, dest: str | Path) -> Path:
    """Put the Imagenette ``train/`` and ``val/`` folders at ``dest`` and return it.

    ``dest`` is replaced as a whole only once the data is complete.
    """
    from inviz.core.io import atomic_path

    dest = Path(dest)
    if cfg.local_path:
        src = Path(cfg.local_path).expanduser()
        if not src.exists():
            raise DatasetUnavailable(f"data.imagenette.local_path: {src} does not exist")
        if src.is_dir():
            _check_layout(src)
            with atomic_path(dest, directory=True) as tmp:
                tmp.rmdir()
                _copy_tree(src, tmp)
            return dest
        archive = src
    else:
        archive = Path(cfg.cache_dir) / os.path.basename(cfg.url)
        if not archive.is_file():
            from torchvision.datasets.utils import download_url

            try:
                download_url(cfg.url, str(archive.parent), filename=archive.name, md5=cfg.md5)
            except Exception as err:  # URLError/HTTPError/OSError: offline or blocked
                raise DatasetUnavailable(
                    f"Could not download Imagenette from {cfg.url} ({type(err).__name__}: {err}).\n"
                    f"Offline? Download {cfg.url} (md5 {cfg.md5}) on a connected machine, then either\n"
                    f"  - put the archive at {archive.resolve()}, or\n"
                    "  - set data.imagenette.local_path in params.yaml to the archive or its extracted "
                    "'imagenette2-320' folder."
                ) from err
    top = _extract(archive, cfg.md5, dest)
    try:
        _check_layout(top)
        with atomic_path(dest, directory=True) as tmp:
            tmp.rmdir()
            os.replace(top, tmp)
    finally:
        shutil.rmtree(dest.with_name(f".{dest.name}.extract"), ignore_errors=True)
    return dest
