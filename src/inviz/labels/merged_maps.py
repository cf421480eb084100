"""The merged cluster maps on disk: one ``.npz`` per layer (docs/method.md §3.8).

Label analysis merges cluster maps whose best labels overlap; a merged map is the weight-average
of its members' maps (:func:`inviz.labels.scoring.merge_maps`). They are stored in one folder,
one file ``<layer>.npz`` per layer holding three arrays:

- ``merged_id`` : int, shape (M,) — the merged ids (rows of the merged INV table);
- ``weight`` : float, shape (M,) — their weights (% of the layer's weight);
- ``maps`` : float32, shape (M, h, h) — the maps at the layer's native resolution.

:func:`write_merged_maps` (the ``labels_analyze`` stage) and :func:`read_merged_maps` (the INV
records, :func:`inviz.views.records.load_inv`) are the only code that knows this layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError


class MergedMapsError(InvizError, ValueError):
    """A merged-maps file is missing."""


def write_merged_maps(folder: str | Path, inv: pd.DataFrame, maps: Mapping[int, np.ndarray]) -> Path:
    """Write the merged maps into ``folder`` (replaced atomically), one ``<layer>.npz`` per layer.

    Parameters
    ----------
    folder : str or Path
        The output folder.
    inv : DataFrame
        The merged INV table (``merged_id, layer, weight``, one row per merged map); files and
        rows follow its order.
    maps : mapping of int to ndarray of shape (h, h)
        Merged id -> merged map (every id of ``inv``).

    Returns
    -------
    Path
        ``folder``.
    """
    from inviz.core.io import atomic_path

    table = inv.set_index("merged_id")
    with atomic_path(folder, directory=True) as tmp:
        for layer, grp in table.groupby("layer", sort=False):
            ids = grp.index.to_numpy()
            np.savez_compressed(
                tmp / f"{layer}.npz",
                merged_id=ids,
                weight=grp["weight"].to_numpy(),
                maps=np.stack([maps[int(i)] for i in ids]).astype(np.float32),
            )
    return Path(folder)


def read_merged_maps(folder: str | Path, layers: Iterable[str]) -> dict[int, np.ndarray]:
    """Read the merged maps of ``layers`` from a folder written by :func:`write_merged_maps`.

    Parameters
    ----------
    folder : str or Path
        The merged-maps folder.
    layers : iterable of str
        The layers to read (each must have its file).

    Returns
    -------
    dict of int to ndarray of float32, shape (h, h)
        Merged id -> merged map.

    Raises
    ------
    MergedMapsError
        A layer's file is missing.
    """
    out: dict[int, np.ndarray] = {}
    for layer in layers:
        f = Path(folder) / f"{layer}.npz"
        if not f.is_file():
            raise MergedMapsError(
                f"{f}: merged maps of layer {layer} not found ('inviz labels_analyze' writes them)"
            )
        with np.load(f) as z:
            pairs = zip(z["merged_id"], z["maps"], strict=True)
            out.update({int(i): np.asarray(m, dtype=np.float32) for i, m in pairs})
    return out
