"""Your own image-folder dataset (``data.source: folder``, settings in ``data.folder``).

Two layouts (``data.folder.layout``; ``auto`` picks ``splits`` when the train folder exists):

- ``splits``: ``<path>/train/<class>/<image>``, ``<path>/val/...`` and optionally
  ``<path>/test/...`` (folder names set by ``data.folder.splits``). Without a test folder a seeded,
  stratified share of ``val`` becomes the test pool, as for Imagenette (``data.split``);
- ``single``: ``<path>/<class>/<image>``, split per class by seeded, stratified fractions
  (``data.folder.fractions``, seed ``data.split.seed``); every class needs an image in each split.

Class names are the folder names, or come from a mapping file (``data.folder.class_names``: a CSV
``class_folder,class_name`` naming every class folder). Every image is decoded once, as for
Imagenette: unreadable files, files outside class folders and foreign files are listed in the
skipped report, never used. The usable images are linked (or copied) into the pipeline's image
folder in the canonical layout ``<split>/<class>/<image>``, so later stages see one layout.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from inviz.core.checks import coverage_problems
from inviz.data.index import (
    INDEX_COLUMNS,
    DatasetLayoutError,
    SplitConfig,
    carve_test_pool,
    scan_image_folder,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FolderSplits:
    """``data.folder.splits``: the folder names of the splits (layout ``splits``)."""

    train: str = "train"
    val: str = "val"
    test: str = "test"


@dataclass(frozen=True)
class FolderFractions:
    """``data.folder.fractions``: shares of each class per split (layout ``single``); they sum to 1."""

    train: float = 0.7
    val: float = 0.15
    test: float = 0.15

    def __post_init__(self) -> None:
        values = (self.train, self.val, self.test)
        if any(not 0 < v < 1 for v in values) or abs(sum(values) - 1) > 1e-6:
            raise ValueError(f"fractions: expected three shares in (0, 1) summing to 1, got {values}")


@dataclass(frozen=True)
class FolderConfig:
    """``data.folder`` section (``data.source: folder``).

    path : the dataset folder (relative to the pipeline's folder, or absolute).
    layout : ``auto`` | ``splits`` (train/val[/test] folders) | ``single`` (one folder of classes).
    splits : split folder names (:class:`FolderSplits`).
    fractions : per-class shares of the ``single`` layout (:class:`FolderFractions`), seeded by
        ``data.split.seed``.
    class_names : a CSV ``class_folder,class_name`` with a readable name per class folder
        (``null``: the folder names).
    """

    path: str | None = None
    layout: Literal["auto", "splits", "single"] = "auto"
    splits: FolderSplits = field(default_factory=FolderSplits)
    fractions: FolderFractions = field(default_factory=FolderFractions)
    class_names: str | None = None


def read_class_names(path: str | Path) -> dict[str, str]:
    """Read a class-name mapping ``class_folder,class_name``; errors name the file and row."""
    path = Path(path)
    if not path.is_file():
        raise DatasetLayoutError(f"data.folder.class_names: {str(path)!r} is not a file")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("class_folder", "class_name") if c not in frame.columns]
    if missing:
        raise DatasetLayoutError(
            f"{path}: missing column(s) {', '.join(missing)}; expected class_folder,class_name"
        )
    for i, (folder, name) in enumerate(zip(frame["class_folder"], frame["class_name"], strict=True)):
        if not folder.strip() or not name.strip():
            raise DatasetLayoutError(f"{path}: row {i + 2}: empty class_folder or class_name")
    for col in ("class_folder", "class_name"):
        dup = frame[col][frame[col].duplicated()]
        if len(dup):
            raise DatasetLayoutError(f"{path}: {col} {dup.iloc[0]!r} appears more than once")
    return {f.strip(): n.strip() for f, n in zip(frame["class_folder"], frame["class_name"], strict=True)}


def _check_names(names: dict[str, str] | None, folders: list[str], source: str | None) -> None:
    """Every class folder has a name and every named folder exists."""
    if names is None:
        return
    problems = coverage_problems(
        names, folders, "no class_name for class folder(s)", "class folder(s) not in the dataset:"
    )
    if problems:
        raise DatasetLayoutError(f"{source}: {problems}")


def _stray_files(root: Path, split_dirs: list[Path]) -> list[dict[str, str]]:
    """Files lying outside class folders (in the dataset root or a split folder): skipped, reported."""
    rows = []
    for d in [root, *split_dirs]:
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if p.is_file() and not p.name.startswith("."):
                rel = p.relative_to(root).as_posix()
                rows.append({"path": rel, "split": "", "reason": "not inside a class folder"})
    return rows


def assign_fractions(index: pd.DataFrame, fractions: FolderFractions, seed: int) -> pd.Series:
    """Split each class by the fractions (seeded, stratified): the split of every row.

    Per class of ``n`` images: ``round(test * n)`` test and ``round(val * n)`` val images, at least
    one each, the rest (at least one) train.

    Parameters
    ----------
    index : rows with ``sample_id``, ``label`` and ``class_folder``.
    fractions : the shares. seed : the draw's seed.

    Returns
    -------
    Series of str (``train`` | ``val`` | ``test``), aligned with ``index``.
    """
    rng = np.random.default_rng(seed)
    split = pd.Series("train", index=index.index, dtype=object)
    for label in sorted(index["label"].unique()):
        rows = index[index["label"] == label].sort_values("sample_id").index.to_numpy()
        n = len(rows)
        if n < 3:
            folder = index.loc[rows[0], "class_folder"]
            raise DatasetLayoutError(
                f"class folder {folder!r} has {n} usable image(s); the single-folder layout needs at least "
                "3 per class (one each for train, val and test)"
            )
        n_test = min(max(int(round(fractions.test * n)), 1), n - 2)
        n_val = min(max(int(round(fractions.val * n)), 1), n - 1 - n_test)
        perm = rows[rng.permutation(n)]
        split[perm[:n_test]] = "test"
        split[perm[n_test : n_test + n_val]] = "val"
    return split


def _materialise(index: pd.DataFrame, source_root: Path, dest: Path) -> pd.DataFrame:
    """Link every indexed image into ``dest/<split>/<class>/<file>``; return the index with new paths, ids."""
    from inviz.core.io import atomic_path, link_or_copy

    out = index.copy()
    names = [Path(p).name for p in out["path"]]
    out["path"] = [f"{s}/{c}/{n}" for s, c, n in zip(out["split"], out["class_folder"], names, strict=True)]
    out["sample_id"] = [
        f"{s}/{c}/{Path(n).stem}" for s, c, n in zip(out["split"], out["class_folder"], names, strict=True)
    ]
    with atomic_path(dest, directory=True) as tmp:
        for src, rel in zip(index["path"], out["path"], strict=True):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(source_root / src, target)
    return out.sort_values(["split", "label", "sample_id"], kind="stable").reset_index(drop=True)[
        INDEX_COLUMNS
    ]


def prepare_folder(
    cfg: FolderConfig, split_cfg: SplitConfig, dest: str | Path, workers: int = 4
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index the dataset folder, split it, and link its usable images into ``dest``.

    Parameters
    ----------
    cfg : the ``data.folder`` section.
    split_cfg : ``data.split`` (test pool of the ``splits`` layout without a test folder; the seed
        of the ``single`` layout's fractions).
    dest : the pipeline's image folder (``<split>/<class>/<image>``), replaced atomically.
    workers : threads decoding the images.

    Returns
    -------
    index : DataFrame with :data:`inviz.data.index.INDEX_COLUMNS`, splits ``train``, ``val``, ``test``.
    skipped : DataFrame ``path, split, reason`` (paths relative to ``cfg.path``).
    """
    if not cfg.path:
        raise DatasetLayoutError("data.folder.path: set it to your dataset folder (data.source: folder)")
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DatasetLayoutError(f"data.folder.path: {root} is not a folder")
    names = read_class_names(cfg.class_names) if cfg.class_names else None
    dirs = {s: getattr(cfg.splits, s) for s in SPLITS}
    layout = cfg.layout
    if layout == "auto":
        layout = "splits" if (root / dirs["train"]).is_dir() else "single"
    if layout == "splits":
        present = [s for s in SPLITS if (root / dirs[s]).is_dir()]
        missing = [dirs[s] for s in ("train", "val") if s not in present]
        if missing:
            raise DatasetLayoutError(
                f"{root}: missing split folder(s) {', '.join(missing)} (layout splits: "
                f"{dirs['train']}/, {dirs['val']}/ and optionally {dirs['test']}/, one sub-folder per class)"
            )
        _check_names(names, _class_dirs(root / dirs["train"]), cfg.class_names)
        index, skipped = scan_image_folder(root, names, tuple(dirs[s] for s in present), workers)
        canonical = {dirs[s]: s for s in present}
        index["split"] = index["split"].map(canonical)
        skipped["split"] = skipped["split"].map(canonical)
        stray = _stray_files(root, [root / dirs[s] for s in present])
    else:
        _check_names(names, _class_dirs(root), cfg.class_names)
        index, skipped = scan_image_folder(root.parent, names, (root.name,), workers)
        index["path"] = [Path(p).relative_to(root.name).as_posix() for p in index["path"]]
        skipped["path"] = [Path(p).relative_to(root.name).as_posix() for p in skipped["path"]]
        skipped["split"] = ""
        index["split"] = assign_fractions(index, cfg.fractions, split_cfg.seed)
        present = list(SPLITS)
        stray = _stray_files(root, [])
    skipped = pd.concat([skipped, pd.DataFrame(stray, columns=skipped.columns)], ignore_index=True)
    index = _materialise(index, root, Path(dest))
    if "test" not in present:  # as for Imagenette: the carved test images keep their val path and id
        index = carve_test_pool(index, split_cfg)
    log.info("folder dataset %s (layout %s): %d images, %d skipped", root, layout, len(index), len(skipped))
    return index, skipped


def _class_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))
