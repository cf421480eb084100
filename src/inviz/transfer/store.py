"""The transfer folder (``data/transfer/``) and its readers (docs/method.md §9).

Layout (written by the ``transfer`` stage)
------------------------------------------
``label_model.json``
    The label model (:meth:`inviz.transfer.model.LabelModel.save`): labelled maps per layer, the
    CNN's sha256, the extraction settings; what ``inviz explain --labels`` reads.
``images.csv``
    The extra images (``sample_id, path, label, class_name, pred, pred_name, confidence``).
``extract/``
    Their extraction folder (:mod:`inviz.fmaps.store`; same ``extract`` settings, resumable).
``labels/``
    Their transferred labels (:class:`inviz.transfer.apply.Transferred`): ``maps.csv`` (one row
    per kept cluster map: weight, confidence, coverage, best labels, merged id), ``scores.csv``
    (every label share), ``inv.csv`` (merged maps), ``merged_scores.csv``.

:func:`load_transferred_invs` reads the extra images back as :class:`inviz.views.records.ImageINV`
records with transferred cards (what ``global`` adds to TCAV's concept examples).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.transfer.apply import Transferred
from inviz.transfer.maps import TransferDataError

#: file names of the ``labels/`` folder -> attribute of :class:`Transferred`
LABEL_FILES = {
    "maps.csv": "maps",
    "scores.csv": "scores",
    "inv.csv": "inv",
    "merged_scores.csv": "merged_scores",
}


def write_labels(folder: str | Path, t: Transferred) -> Path:
    """Write the four tables of ``t`` into ``folder`` (replaced atomically)."""
    from inviz.core.io import atomic_path

    with atomic_path(folder, directory=True) as tmp:
        for name, attr in LABEL_FILES.items():
            getattr(t, attr).to_csv(tmp / name, index=False)
        (tmp / "variant.txt").write_text(t.variant + "\n", encoding="utf-8")
    return Path(folder)


def read_labels(folder: str | Path) -> Transferred:
    """Read a folder written by :func:`write_labels`; errors name the missing file."""
    folder = Path(folder)
    tables = {}
    for name, attr in LABEL_FILES.items():
        path = folder / name
        if not path.is_file():
            raise TransferDataError(f"{path}: transferred labels not found (run 'inviz transfer' first)")
        tables[attr] = pd.read_csv(
            path, dtype={"sample_id": str, "image": str, "label": str, "best_labels": str}
        )
    tables["maps"]["best_labels"] = tables["maps"]["best_labels"].fillna("")
    variant = (
        (folder / "variant.txt").read_text(encoding="utf-8").strip()
        if (folder / "variant.txt").is_file()
        else ""
    )
    return Transferred(variant=variant, **tables)


def load_transferred_invs(
    transfer_dir: str | Path,
    images_dir: str | Path,
    input_size: int,
    map_kind: str,
    min_confidence: float,
    layer_order: list[str] | None = None,
) -> list[Any]:
    """Read the extra images of a transfer folder as INV records with transferred cards.

    Parameters
    ----------
    transfer_dir : str or Path
        The ``transfer`` stage's folder (see the module docstring).
    images_dir : str or Path
        The dataset folder (``images.csv`` paths are relative to it).
    input_size : int
        The network input side (images are shown as the network saw them).
    map_kind : str
        ``map`` or ``raw`` (``masks.map_kind``, as the played images' cards).
    min_confidence : float
        Cards whose confidence is below it keep no label.
    layer_order : list of str, optional
        The layers (default: the extraction's).

    Returns
    -------
    list of ImageINV
        One per extra image with results, in ``images.csv`` order (empty without extra images).
    """
    from inviz.fmaps.store import load_results
    from inviz.transfer.apply import image_cards
    from inviz.views.records import ImageINV, load_images

    root = Path(transfer_dir)
    images_csv = root / "images.csv"
    if not images_csv.is_file():
        raise TransferDataError(f"{images_csv}: extra images not found (run 'inviz transfer' first)")
    images = pd.read_csv(images_csv, dtype={"sample_id": str, "path": str})
    t = read_labels(root / "labels")
    if images.empty or t.maps.empty:
        return []
    results = load_results(root / "extract")
    layers = layer_order or list(results.manifest.get("layers") or dict.fromkeys(t.maps["layer"]))
    images = images[images["sample_id"].isin(set(t.maps["sample_id"]))]

    def map_of(extract_id: str) -> np.ndarray:
        return np.asarray(results.cluster_map(extract_id, map_kind), dtype=np.float32)  # type: ignore[arg-type]

    out = []
    for r, arr in zip(images.itertuples(), load_images(images, images_dir, input_size), strict=True):
        merged, clusters = image_cards(t, str(r.sample_id), layers, map_of, min_confidence)
        out.append(
            ImageINV(
                sample_id=str(r.sample_id),
                path=str(r.path),
                true_label=int(r.label),
                true_class=str(r.class_name),
                pred=int(r.pred),
                pred_name=str(r.pred_name),
                confidence=float(r.confidence),
                image=arr,
                layers=tuple(layers),
                merged=merged,
                clusters=clusters,
            )
        )
    return out
