"""The game's class list joined to the dataset's classes (docs/method.md §3, input).

A game refers to classes by its own ids (``1..K``) and names; a *class map* file (``game_id,
game_name, class_folder, class_name``; the paper's is
``inviz/resources/game_classes_imagenette.csv``) joins them to the dataset's class folders.
:func:`load_class_map` reads and checks it; :class:`ClassMap` resolves a class given as game id,
game name, class name or folder; :func:`game_classes_frame` (re-exported from
:mod:`inviz.data.game_classes`, where the ``data`` stage writes every dataset's list) makes a class
list like the paper's.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from inviz.data.game_classes import game_classes_frame
from inviz.game.export.layouts import CLASS_MAP
from inviz.game.export.problems import GameExportError
from inviz.game.export.tables import check_columns, read_table

__all__ = ["ClassMap", "game_classes_frame", "load_class_map"]


def _norm_name(value: str) -> str:
    return re.sub(r"[\s_\-]+", " ", str(value).strip().lower())


@dataclass(frozen=True)
class ClassMap:
    """The game's class list joined to the dataset's classes.

    table : ``game_id, game_name, class_folder, class_name, label`` (``label`` = dataset index).
    """

    table: pd.DataFrame

    def __post_init__(self) -> None:
        lookup: dict[str, int] = {}
        ids: dict[int, int] = {}
        names: dict[int, str] = {}
        columns = ["game_id", "game_name", "class_folder", "class_name", "label"]
        for gid, gname, folder, cname, label in self.table[columns].itertuples(index=False):
            ids[int(gid)] = int(label)
            names.setdefault(int(label), str(cname))
            for alias in (gname, folder, cname):
                lookup[_norm_name(alias)] = int(label)
        object.__setattr__(self, "_lookup", lookup)
        object.__setattr__(self, "_ids", ids)
        object.__setattr__(self, "_names", names)

    def resolve(self, value: Any) -> int | None:
        """Find the dataset label of a class given as game id (``3``), game name, class name or folder.

        Parameters
        ----------
        value : str or int
            The class as the export gives it (case, spaces, ``_`` and ``-`` do not matter).

        Returns
        -------
        int or None
            The dataset label; None when empty or unknown.
        """
        s = str(value).strip()
        if not s:
            return None
        if re.fullmatch(r"\d+(\.0+)?", s):
            return self._ids.get(int(float(s)))  # type: ignore[attr-defined]
        return self._lookup.get(_norm_name(s))  # type: ignore[attr-defined]

    def class_name(self, label: int) -> str:
        """Return the dataset class name of ``label`` (``KeyError`` for a label not in the list)."""
        return self._names[int(label)]  # type: ignore[attr-defined]

    def names_table(self) -> pd.DataFrame:
        """List the class names per dataset label (the names label analysis removes from texts).

        Returns
        -------
        DataFrame
            ``label, class_folder, class_name, game_id, game_name``, one row per class, by label.
        """
        t = self.table
        return pd.DataFrame(
            {
                "label": t["label"],
                "class_folder": t["class_folder"],
                "class_name": t["class_name"],
                "game_id": t["game_id"],
                "game_name": t["game_name"],
            }
        ).sort_values("label")


def load_class_map(path: str | Path, classes: Sequence[dict[str, Any]], encoding: str = "utf-8") -> ClassMap:
    """Read the game's class list and join it to the dataset's classes.

    Every game class must name an existing ``class_folder`` and every dataset class must appear
    once; otherwise :class:`GameExportError` names the file and the class.

    Parameters
    ----------
    path : str or Path
        The class map file (``game_id, game_name, class_folder, class_name``).
    classes : sequence of dict
        ``data/classes.json`` records (``label, class_folder, class_name``).
    encoding : str
        Text encoding of the file.

    Returns
    -------
    ClassMap
    """
    path = Path(path)
    raw = read_table(path, encoding)
    check_columns(raw, CLASS_MAP, path)
    if raw.problems:
        p = raw.problems[0]
        raise GameExportError(f"{path}: row {p.row}: {p.message}")
    t = raw.frame.copy()
    by_folder = {str(c["class_folder"]): int(c["label"]) for c in classes}
    errs = []
    labels = []
    for i, (gid, folder) in enumerate(zip(t["game_id"], t["class_folder"], strict=False)):
        line = raw.lines[i]
        if not re.fullmatch(r"\s*\d+\s*", str(gid)):
            errs.append(f"row {line}: game_id {gid!r} is not an integer")
        if str(folder).strip() not in by_folder:
            known = ", ".join(sorted(by_folder))
            errs.append(f"row {line}: class_folder {folder!r} is not a dataset class ({known})")
        labels.append(by_folder.get(str(folder).strip(), -1))
    if errs:
        raise GameExportError(f"{path}: " + "; ".join(errs))
    t["game_id"] = t["game_id"].astype(int)
    t["label"] = labels
    for col, what in (("game_id", "game id"), ("label", "class_folder")):
        d = t[col][t[col].duplicated()]
        if len(d):
            raise GameExportError(f"{path}: {what} {d.iloc[0]} appears more than once")
    missing = sorted(set(by_folder) - set(t["class_folder"].str.strip()))
    if missing:
        raise GameExportError(
            f"{path}: dataset class(es) {', '.join(missing)} missing from the game's class list"
        )
    return ClassMap(t.sort_values("game_id").reset_index(drop=True))
