"""The dataset step (docs/method.md §0): get the images, index them, carve the test pool.

:class:`DataConfig` is the ``data`` section of ``params.yaml``; :func:`prepare_dataset` does the
whole step and returns the tables the ``data`` stage writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd

from inviz.data.folder import FolderConfig
from inviz.data.imagenette import ImagenetteConfig
from inviz.data.index import SplitConfig


@dataclass(frozen=True)
class DataRunConfig:
    """``data.run``: how the step runs (not a DVC dependency).

    check_workers : threads decoding every image once. generate_workers : processes rendering the
    synthetic images (the images do not depend on it).
    """

    check_workers: int = 4
    generate_workers: int = 1


@dataclass(frozen=True)
class DataConfig:
    """``data`` section.

    source : ``imagenette`` (the paper), ``synthetic`` (offline demo, see ``synthetic``) or
        ``folder`` (your own image-folder dataset, see ``folder``).
    imagenette : download / local-copy settings. synthetic : generator settings
    (:class:`inviz.data.synthetic.SyntheticConfig`). folder : your dataset
    (:class:`inviz.data.folder.FolderConfig`). split : test-pool carving (and the seed of the
    folder dataset's fractions).
    run : execution settings (:class:`DataRunConfig`; old key ``check_workers`` still accepted).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {"check_workers": "run.check_workers"}

    source: Literal["imagenette", "synthetic", "folder"] = "imagenette"
    imagenette: ImagenetteConfig = field(default_factory=ImagenetteConfig)
    synthetic: dict[str, Any] = field(default_factory=dict)
    folder: FolderConfig = field(default_factory=FolderConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    run: DataRunConfig = field(default_factory=DataRunConfig)


@dataclass(frozen=True)
class Dataset:
    """What :func:`prepare_dataset` produced.

    index : one row per usable image (sample id, split, label, path, ...).
    skipped : files not used, with the reason. classes : ``[{label, class_folder, class_name}]``.
    parts : ground-truth part masks (:class:`inviz.data.synthetic.PartMasks`; empty for real data).
    game_classes : the label game's class list (:mod:`inviz.data.game_classes`): the paper's for
        Imagenette, generated from the class names otherwise.
    """

    index: pd.DataFrame
    skipped: pd.DataFrame
    classes: list[dict[str, Any]]
    parts: Any
    game_classes: pd.DataFrame


def synthetic_config(cfg: DataConfig, source: str = "params") -> Any:
    """``data.synthetic`` as a validated :class:`inviz.data.synthetic.SyntheticConfig`."""
    from inviz.core.config import from_dict
    from inviz.data import synthetic

    return from_dict(synthetic.SyntheticConfig, cfg.synthetic, "data.synthetic", source)


def prepare_dataset(cfg: DataConfig, images: str | Path, source: str = "params") -> Dataset:
    """Fetch (Imagenette), generate (synthetic) or link (folder) the images into ``images``; index; split.

    Parameters
    ----------
    cfg : the ``data`` section. images : destination folder (``<split>/<class>/<image>``).
    source : the params file name, for error messages.
    """
    from inviz.data import synthetic
    from inviz.data.folder import prepare_folder
    from inviz.data.game_classes import game_classes_frame
    from inviz.data.imagenette import IMAGENETTE_CLASSES, fetch_imagenette, imagenette_game_classes
    from inviz.data.index import carve_test_pool, scan_image_folder

    images = Path(images)
    parts = synthetic.empty_parts()
    if cfg.source == "folder":
        index, skipped = prepare_folder(cfg.folder, cfg.split, images, workers=cfg.run.check_workers)
    else:
        if cfg.source == "imagenette":
            fetch_imagenette(cfg.imagenette, images)
            names: dict[str, str] | None = IMAGENETTE_CLASSES
        else:
            scfg = synthetic_config(cfg, source)
            parts = synthetic.generate_dataset(scfg, images, workers=cfg.run.generate_workers)
            names = synthetic.class_names(scfg)
        index, skipped = scan_image_folder(images, names, workers=cfg.run.check_workers)
        before = index.set_index("path")["sample_id"]
        index = carve_test_pool(index, cfg.split)
        after = index.set_index("path")["sample_id"]
        parts = parts.renamed({before[p]: after[p] for p in after.index if before[p] != after[p]})
    classes = (
        index.drop_duplicates("label")
        .sort_values("label")[["label", "class_folder", "class_name"]]
        .to_dict("records")
    )
    if cfg.source == "imagenette":
        game = imagenette_game_classes()
    else:
        game = game_classes_frame([c["class_name"] for c in classes], [c["class_folder"] for c in classes])
    return Dataset(index=index, skipped=skipped, classes=classes, parts=parts, game_classes=game)
