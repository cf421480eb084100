"""What the game shows: the ``masks`` stage's cluster maps and masked images, and the class list.

:class:`MaskStore` keeps the per-layer zips open and serves each masked image's bytes exactly as
stored (``ZIP_STORED`` members are read with one ``pread`` at their offset: nothing is unpacked to
disk, decoded or re-encoded). :class:`GameContent` joins the manifest (``data/masks.csv``, one
row per cluster map and level; :mod:`inviz.game.manifest`) with the game's class list
(``labels_import.class_map``, :mod:`inviz.game.export.classmap`).
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from inviz.game.export.classmap import ClassMap
from inviz.game.manifest import GameAssetsError, read_manifest

#: Media type of a stored image, by file extension.
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}
_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")


class MaskStore:
    """The masked images of the per-layer zips, kept open and read as stored.

    Parameters
    ----------
    masks_dir : str or Path
        The folder of per-layer zips (``data/masks``).
    files : iterable of str
        The manifest's ``file`` values (``<shard>/<member>``) that will be read.

    Raises
    ------
    GameAssetsError
        A zip or a member is missing, or a member is encrypted.
    """

    def __init__(self, masks_dir: str | Path, files: list[str]):
        self.masks_dir = Path(masks_dir)
        self._fds: dict[str, int] = {}
        self._zips: dict[str, zipfile.ZipFile] = {}
        self._index: dict[
            str, tuple[str, int, int]
        ] = {}  # file -> (shard, offset, size); size -1: compressed
        self._lock = threading.Lock()
        by_shard: dict[str, list[str]] = {}
        for f in files:
            by_shard.setdefault(f.split("/", 1)[0], []).append(f)
        try:
            for shard, names in by_shard.items():
                self._open_shard(shard, names)
        except BaseException:
            self.close()
            raise

    def _open_shard(self, shard: str, files: list[str]) -> None:
        path = self.masks_dir / shard
        if not path.is_file():
            raise GameAssetsError(f"{path}: masked-image zip not found (run 'dvc repro masks')")
        z = zipfile.ZipFile(path)
        self._zips[shard] = z
        fd = os.open(path, os.O_RDONLY)
        self._fds[shard] = fd
        infos = {i.filename: i for i in z.infolist()}
        for f in files:
            member = f.split("/", 1)[1]
            info = infos.get(member)
            if info is None:
                raise GameAssetsError(f"{path}: member {member} of the manifest is missing")
            if info.flag_bits & 0x1:
                raise GameAssetsError(f"{path}: member {member} is encrypted")
            if info.compress_type != zipfile.ZIP_STORED:
                self._index[f] = (shard, 0, -1)
                continue
            header = os.pread(fd, _LOCAL_HEADER.size, info.header_offset)
            fields = _LOCAL_HEADER.unpack(header)
            if fields[0] != b"PK\x03\x04":
                raise GameAssetsError(f"{path}: member {member}: bad local header")
            offset = info.header_offset + _LOCAL_HEADER.size + fields[9] + fields[10]
            self._index[f] = (shard, offset, info.file_size)

    def read(self, file: str) -> bytes:
        """Return the stored bytes of one masked image (``<shard>/<member>``).

        Parameters
        ----------
        file : str
            The manifest's ``file``.

        Returns
        -------
        bytes
            The encoded image (PNG or JPEG) exactly as in the zip.
        """
        shard, offset, size = self._index[file]
        if size < 0:  # a compressed member: zipfile inflates it (not what the masks stage writes)
            with self._lock:
                return self._zips[shard].read(file.split("/", 1)[1])
        return os.pread(self._fds[shard], size, offset)

    def close(self) -> None:
        """Close the zips."""
        for fd in self._fds.values():
            os.close(fd)
        for z in self._zips.values():
            z.close()
        self._fds.clear()
        self._zips.clear()


@dataclass(frozen=True)
class GameClass:
    """A class of the game: its game id, the name players see, the dataset label, folder and class name."""

    game_id: int
    name: str
    label: int
    folder: str
    class_name: str


class GameContent:
    """The cluster maps, their masked images and the class list of one game.

    Parameters
    ----------
    manifest : DataFrame
        The masks manifest (:func:`inviz.game.manifest.read_manifest`).
    masks_dir : str or Path
        The per-layer zips.
    class_map : ClassMap
        The game's class list joined to the dataset's classes.
    fingerprint : str, optional
        Identifies the content (default: a hash of the manifest's identity columns and the classes).

    Attributes
    ----------
    maps : DataFrame
        One row per cluster map, by ``cluster_id``: ``cluster_id, image, layer, layer_index,
        cluster, label, weight, game_id``.
    levels : ndarray of float, shape (L,)
        The revealed percentage of each level.
    classes : list of GameClass
        By game id.
    layers : list of str
        In extraction order.
    """

    def __init__(
        self, manifest: pd.DataFrame, masks_dir: str | Path, class_map: ClassMap, fingerprint: str = ""
    ):
        if manifest.empty:
            raise GameAssetsError("masks manifest: no cluster maps (nothing to play)")
        t = class_map.table
        self.classes = [
            GameClass(int(g), str(n), int(lab), str(f), str(c))
            for g, n, lab, f, c in zip(
                t["game_id"], t["game_name"], t["label"], t["class_folder"], t["class_name"], strict=True
            )
        ]
        game_of = {c.label: c.game_id for c in self.classes}
        self._by_id = {c.game_id: c for c in self.classes}
        levels = sorted(manifest["level"].astype(int).unique())
        self.n_levels = len(levels)
        if levels != list(range(self.n_levels)):
            raise GameAssetsError(f"masks manifest: levels {levels}, expected 0..{self.n_levels - 1}")
        per_map = manifest.groupby("cluster_id")["level"].nunique()
        short = per_map[per_map != self.n_levels]
        if len(short):
            raise GameAssetsError(
                f"masks manifest: cluster map {int(short.index[0])} has {int(short.iloc[0])} "
                f"of {self.n_levels} levels"
            )
        unknown = sorted(set(manifest["label"].astype(int)) - set(game_of))
        if unknown:
            raise GameAssetsError(f"masks manifest: dataset label(s) {unknown} not in the game's class list")
        first = manifest[manifest["level"] == 0].sort_values("cluster_id")
        self.maps = pd.DataFrame(
            {
                "cluster_id": first["cluster_id"].astype(int).to_numpy(),
                "image": first["image"].astype(str).to_numpy(),
                "layer": first["layer"].astype(str).to_numpy(),
                "layer_index": first["layer_index"].astype(int).to_numpy(),
                "cluster": first["cluster"].astype(int).to_numpy(),
                "label": first["label"].astype(int).to_numpy(),
                "weight": first["weight"].astype(float).to_numpy(),
            }
        )
        self.maps["game_id"] = self.maps["label"].map(game_of).astype(int)
        ids = [int(c) for c in self.maps["cluster_id"]]
        self.position = {c: i for i, c in enumerate(ids)}
        #: cluster id -> its true game id / image / dataset label (fast lookups for every request)
        self.game_of = dict(zip(ids, map(int, self.maps["game_id"]), strict=True))
        self.image_of = dict(zip(ids, map(str, self.maps["image"]), strict=True))
        self.label_of = dict(zip(ids, map(int, self.maps["label"]), strict=True))
        self.levels = (
            manifest[manifest["cluster_id"] == self.maps["cluster_id"].iloc[0]]
            .sort_values("level")["percent"]
            .to_numpy(dtype=float)
        )
        self.layers = list(self.maps.sort_values("layer_index")["layer"].drop_duplicates())
        ordered = manifest.sort_values(["cluster_id", "level"])
        files = ordered["file"].astype(str).tolist()
        self._files = np.asarray(files, dtype=object).reshape(len(self.maps), self.n_levels)
        self.media_type = MEDIA_TYPES.get(Path(files[0]).suffix.lower(), "application/octet-stream")
        self.store = MaskStore(masks_dir, files)
        self.fingerprint = fingerprint or self._fingerprint(ordered)

    def _fingerprint(self, ordered: pd.DataFrame) -> str:
        h = hashlib.sha256()
        cols = ["cluster_id", "image", "layer", "cluster", "label", "level", "file"]
        h.update(ordered[cols].to_csv(index=False).encode())
        h.update(repr([(c.game_id, c.label) for c in self.classes]).encode())
        return h.hexdigest()[:16]

    @classmethod
    def load(cls, manifest: str | Path, masks_dir: str | Path, class_map: ClassMap) -> GameContent:
        """Read a finished ``masks`` stage (manifest + zips) for the game.

        Parameters
        ----------
        manifest : str or Path
            ``data/masks.csv``.
        masks_dir : str or Path
            ``data/masks``.
        class_map : ClassMap
            :func:`inviz.game.export.classmap.load_class_map` of ``labels_import.class_map``.

        Returns
        -------
        GameContent
        """
        return cls(read_manifest(manifest), masks_dir, class_map)

    def game_class(self, game_id: int) -> GameClass:
        """Return the class of a game id."""
        return self._by_id[int(game_id)]

    @property
    def class_ids(self) -> list[int]:
        """Every game id, in order."""
        return [c.game_id for c in self.classes]

    def map_row(self, cluster_id: int) -> pd.Series:
        """Return the row of :attr:`maps` of a cluster id."""
        return self.maps.iloc[self.position[int(cluster_id)]]

    def image(self, cluster_id: int, level: int) -> bytes:
        """Return the stored masked image of a cluster map at a reveal level.

        Parameters
        ----------
        cluster_id : int
            The map.
        level : int
            0 (first view) .. ``n_levels - 1``.

        Returns
        -------
        bytes
        """
        return self.store.read(self._files[self.position[int(cluster_id)], int(level)])

    def close(self) -> None:
        """Close the zips."""
        self.store.close()
