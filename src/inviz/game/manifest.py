"""The manifest of the game's masked images, and reading them back (docs/method.md §2).

The ``masks`` stage (:mod:`inviz.game.assets`) stores the masked images in one zip per layer and
lists them in a manifest with one row per cluster map and level::

    cluster_id, extract_id, image, layer, layer_index, cluster, label, true_class, pred,
    pred_name, weight, level, percent, revealed_share, factor, sigma, shard, member, file

with ``file = <shard>/<member>`` (``zipfile.Path`` notation) and ``revealed_share`` the share of
pixels actually shown (ties can make it larger than ``percent``). The label stages and a game
server read it with :func:`read_manifest` and :func:`load_masked_image`; nothing here needs
the extraction code.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError
from inviz.core.io import require_file

#: Columns of the manifest (one row per cluster map and level).
MANIFEST_COLUMNS = [
    "cluster_id",
    "extract_id",
    "image",
    "layer",
    "layer_index",
    "cluster",
    "label",
    "true_class",
    "pred",
    "pred_name",
    "weight",
    "level",
    "percent",
    "revealed_share",
    "factor",
    "sigma",
    "shard",
    "member",
    "file",
]


class GameAssetsError(InvizError, ValueError):
    """The extraction output and the selected images do not fit together, or a manifest is malformed."""


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest written by the ``masks`` stage (errors name the file).

    Parameters
    ----------
    path : str or Path
        The manifest CSV.

    Returns
    -------
    DataFrame
        One row per cluster map and level (:data:`MANIFEST_COLUMNS`).
    """
    path = require_file(path, "masks manifest", "masks", GameAssetsError)
    text = {"extract_id": str, "image": str, "layer": str, "true_class": str, "pred_name": str}
    frame = pd.read_csv(path, dtype=text)
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise GameAssetsError(f"{path}: not a masks manifest; missing column(s) {', '.join(missing)}")
    return frame


def load_masked_image(masks_dir: str | Path, file: str) -> np.ndarray:
    """Read one masked image by its manifest ``file``.

    Parameters
    ----------
    masks_dir : str or Path
        The folder of per-layer zips.
    file : str
        ``<shard>/<member>`` (the manifest's ``file``).

    Returns
    -------
    ndarray of uint8, shape (G, G, 3)
    """
    from PIL import Image

    shard, member = file.split("/", 1)
    with zipfile.ZipFile(Path(masks_dir) / shard) as z, z.open(member) as fh:
        return np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"))
