"""Scan an image-folder dataset (Imagenette layout) into an index table, with a test pool.

Layout: ``<root>/<split>/<class folder>/<image>`` for ``split`` in ``train``, ``val``. Class
order is the sorted class folders. Every file is opened and fully decoded once; unreadable or
corrupt images are listed in a *skipped* table (file, reason) and never reach training.

Imagenette has no test split: a seeded, stratified share (``test_fraction``) of ``val`` becomes
the ``test`` pool from which images to explain are drawn; the rest of ``val`` drives early stopping
and the reported validation metrics.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
INDEX_COLUMNS = ["sample_id", "path", "split", "label", "class_folder", "class_name"]


class DatasetLayoutError(InvizError, ValueError):
    """The dataset folder does not have the expected layout."""


@dataclass(frozen=True)
class SplitConfig:
    """How the test pool is carved out of ``val``: ``test_fraction`` of each class, seeded."""

    test_fraction: float = 0.5
    seed: int = 432

    def __post_init__(self) -> None:
        if not 0 < self.test_fraction < 1:
            raise ValueError(f"test_fraction: expected a fraction in (0, 1), got {self.test_fraction}")


def check_image(path: Path) -> str | None:
    """Return ``None`` if ``path`` decodes as an image, else the reason it does not."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            im.load()
            if im.width < 1 or im.height < 1:
                return "empty image"
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
        return f"{type(err).__name__}: {err}"
    return None


def class_folders(root: Path, split: str) -> list[str]:
    """List the class folders of ``root/split``, sorted, hidden ones left out (missing split: an error)."""
    d = root / split
    if not d.is_dir():
        raise DatasetLayoutError(f"{d}: split folder not found (expected {root}/{split}/<class>/<images>)")
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_folders_of_splits(
    root: Path, splits: tuple[str, ...], class_names: dict[str, str] | None
) -> list[str]:
    """Return the class folders, the same in every split (and those of ``class_names`` when given)."""
    expected = sorted(class_names) if class_names else None
    folders: list[str] | None = None
    for split in splits:
        found = class_folders(root, split)
        if expected is not None:
            missing = [c for c in expected if c not in found]
            if missing:
                raise DatasetLayoutError(
                    f"{root / split}: missing class folder(s) {', '.join(missing)}; "
                    f"expected {', '.join(expected)}"
                )
            extra = [c for c in found if c not in expected]
            if extra:
                raise DatasetLayoutError(f"{root / split}: unexpected class folder(s) {', '.join(extra)}")
        if folders is None:
            folders = found
        elif found != folders:
            raise DatasetLayoutError(
                f"{root / split}: class folders {found} differ from those of '{splits[0]}' ({folders})"
            )
        if not found:
            raise DatasetLayoutError(f"{root / split}: no class folders")
    assert folders is not None
    return folders


def scan_image_folder(
    root: str | Path,
    class_names: dict[str, str] | None = None,
    splits: tuple[str, ...] = ("train", "val"),
    workers: int = 4,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index every image under ``root`` and decode it once.

    Parameters
    ----------
    root : dataset folder with ``<split>/<class folder>/`` inside.
    class_names : class folder -> readable name; when given every listed folder must exist in
        every split (a missing folder is an error naming it). Default: folder names.
    splits : split folders to scan.

    Returns
    -------
    index : DataFrame with :data:`INDEX_COLUMNS`, one row per readable image, sorted.
    skipped : DataFrame ``path, split, reason`` of files that were not used.
    """
    root = Path(root)
    folders = _class_folders_of_splits(root, splits, class_names)
    label_of = {c: i for i, c in enumerate(folders)}

    candidates: list[tuple[str, str, Path]] = []
    skipped: list[dict] = []
    for split in splits:
        for c in folders:
            for p in sorted((root / split / c).iterdir()):
                rel = p.relative_to(root).as_posix()
                if p.is_dir():
                    skipped.append({"path": rel, "split": split, "reason": "unexpected sub-folder"})
                elif p.suffix.lower() not in IMAGE_SUFFIXES:
                    skipped.append(
                        {
                            "path": rel,
                            "split": split,
                            "reason": f"not an image file ({p.suffix or 'no suffix'})",
                        }
                    )
                else:
                    candidates.append((split, c, p))

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(
            tqdm(
                pool.map(lambda t: check_image(t[2]), candidates),
                total=len(candidates),
                desc="checking images",
                unit="img",
            )
        )
    rows = []
    for (split, c, p), reason in zip(candidates, reasons, strict=True):  # one reason per candidate
        rel = p.relative_to(root).as_posix()
        if reason is not None:
            skipped.append({"path": rel, "split": split, "reason": reason})
            log.warning("skipping %s: %s", root / rel, reason)
            continue
        rows.append(
            {
                "sample_id": f"{split}/{c}/{p.stem}",
                "path": rel,
                "split": split,
                "label": label_of[c],
                "class_folder": c,
                "class_name": (class_names or {}).get(c, c),
            }
        )
    index = pd.DataFrame(rows, columns=INDEX_COLUMNS)
    dupes = index["sample_id"].duplicated(keep=False)
    if dupes.any():
        raise DatasetLayoutError(
            f"{root}: image names must be unique per class folder ignoring the suffix; duplicates: "
            f"{', '.join(index.loc[dupes, 'path'].head(5))}"
        )
    return index, pd.DataFrame(skipped, columns=["path", "split", "reason"])


def carve_test_pool(index: pd.DataFrame, cfg: SplitConfig, source: str = "val") -> pd.DataFrame:
    """Move a seeded, stratified ``cfg.test_fraction`` of each class of ``source`` to ``test``.

    Per class ``round(test_fraction * n)`` images are drawn (at least 1 and at most ``n - 1``
    when the class has two or more images), so every class is in both pools. A moved image's
    ``sample_id`` starts with ``test/`` (``val/n01440764/x`` -> ``test/n01440764/x``), so an
    explained image never reads as a validation image; its ``path`` stays the file's.
    """
    out = index.copy()
    rng = np.random.default_rng(cfg.seed)
    pool = out[out["split"] == source]
    for label in sorted(pool["label"].unique()):
        rows = pool.index[pool["label"] == label].to_numpy()
        n = len(rows)
        k = int(round(cfg.test_fraction * n))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        chosen = rng.choice(rows, size=k, replace=False) if k else []
        out.loc[chosen, "split"] = "test"
        out.loc[chosen, "sample_id"] = [
            "test/" + sid.removeprefix(f"{source}/") for sid in out.loc[chosen, "sample_id"]
        ]
    return out.sort_values(["split", "label", "sample_id"], kind="stable").reset_index(drop=True)


def split_counts(index: pd.DataFrame) -> dict[str, dict[str, int]]:
    """``{split: {class_name: count}}`` for reports and metrics."""
    out: dict[str, dict[str, int]] = {}
    for split, group in index.groupby("split", sort=True):
        out[str(split)] = {str(k): int(v) for k, v in group.groupby("class_name", sort=False).size().items()}
    return out
