"""The label game's assets: every kept cluster map as six masked images, plus a manifest.

Glue between the ``extract`` output and :mod:`inviz.game.reveal` (docs/method.md §2):
:func:`make_game_assets` is what the ``masks`` stage runs; :func:`load_cluster_maps` reads the
maps the game masked back for the label stages. The manifest's layout and its readers are in
:mod:`inviz.game.manifest`.

Cluster ids. Every kept (unpruned) cluster map of the selected images gets an integer
``cluster_id``, 1, 2, … in a stable order: images in ``selected.csv`` order, layers in the
extraction's layer order, clusters by their index (0 = heaviest). The game refers to maps by
this id; game exports carry it back.

Storage. Thousands of small PNGs make poor DVC outputs, so the masked images are stored in one
zip per layer (``<layer>.zip``, ``ZIP_STORED``: PNGs are compressed already); member
``<cluster_id>/<level>.png`` (level 0 = first view, 1..5 = hints), with one manifest row per
cluster map and level (:data:`inviz.game.manifest.MANIFEST_COLUMNS`).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.game.manifest import MANIFEST_COLUMNS, GameAssetsError
from inviz.game.reveal import Reveal, RevealConfig, game_image, reveal

log = logging.getLogger(__name__)


def cluster_map_table(
    clusters: pd.DataFrame, selected: pd.DataFrame, layers: Sequence[str] | None = None
) -> pd.DataFrame:
    """List the kept cluster maps of the selected images, in game order, with integer ids.

    Parameters
    ----------
    clusters : the extraction's cluster table (``cluster_id, sample_id, layer, cluster, weight,
        pruned, height, width``; :func:`inviz.fmaps.store.load_results`).
    selected : ``selected.csv`` (``sample_id, label, class_name, pred, pred_name``).
    layers : layer order; default: order of first appearance in ``clusters``.

    Returns
    -------
    DataFrame ``cluster_id, extract_id, image, layer, layer_index, cluster, weight, height,
    label, true_class, pred, pred_name`` (one row per kept cluster map, ``cluster_id`` 1..N).
    """
    need = ["cluster_id", "sample_id", "layer", "cluster", "weight", "pruned", "height"]
    missing = [c for c in need if c not in clusters.columns]
    if missing:
        raise GameAssetsError(f"extraction clusters table: missing column(s) {', '.join(missing)}")
    order = {s: i for i, s in enumerate(selected["sample_id"].astype(str))}
    layers = list(layers) if layers is not None else list(dict.fromkeys(clusters["layer"]))
    lorder = {name: i for i, name in enumerate(layers)}
    kept = clusters[~clusters["pruned"].astype(bool) & clusters["sample_id"].astype(str).isin(order)].copy()
    unknown = sorted(set(kept["layer"]) - set(lorder))
    if unknown:
        raise GameAssetsError(
            f"extraction clusters table: layer(s) {', '.join(unknown)} not in the layer list"
        )
    missing_images = sorted(set(order) - set(clusters["sample_id"].astype(str)))
    if missing_images:
        log.warning(
            "%d selected image(s) have no extraction results: %s",
            len(missing_images),
            ", ".join(missing_images[:5]),
        )
    kept["_o"] = kept["sample_id"].astype(str).map(order)
    kept["layer_index"] = kept["layer"].map(lorder).astype(int)
    kept = kept.sort_values(["_o", "layer_index", "cluster"], kind="stable").reset_index(drop=True)
    sel = selected.assign(sample_id=selected["sample_id"].astype(str)).set_index("sample_id")
    out = pd.DataFrame(
        {
            "cluster_id": np.arange(1, len(kept) + 1),
            "extract_id": kept["cluster_id"].astype(str),
            "image": kept["sample_id"].astype(str),
            "layer": kept["layer"].astype(str),
            "layer_index": kept["layer_index"],
            "cluster": kept["cluster"].astype(int),
            "weight": kept["weight"].astype(float),
            "height": kept["height"].astype(int),
        }
    )
    carried = (("label", "label"), ("true_class", "class_name"), ("pred", "pred"), ("pred_name", "pred_name"))
    for col, src in carried:
        out[col] = out["image"].map(sel[src]) if src in sel.columns else None
    return out


def encode_image(image: np.ndarray, cfg: RevealConfig) -> bytes:
    """Encode an image as PNG (or JPEG, ``cfg.image_format``).

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        The image.
    cfg : RevealConfig
        Format, PNG compression level, JPEG quality.

    Returns
    -------
    bytes
    """
    from PIL import Image

    buf = io.BytesIO()
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if cfg.image_format == "png":
        pil.save(buf, format="PNG", compress_level=cfg.png_compress_level)
    else:
        pil.save(buf, format="JPEG", quality=cfg.jpeg_quality)
    return buf.getvalue()


@dataclass(frozen=True)
class MapSource:
    """Where the ``masks`` stage reads cluster maps and game images from.

    results : the extraction output (:func:`inviz.fmaps.store.load_results`).
    images_dir : the dataset folder. paths : sample id -> image path relative to it.
    input_size : the network's input side. cfg : reveal settings (map kind, game size, resampling).
    """

    results: Any
    images_dir: Path
    paths: dict[str, str]
    input_size: int
    cfg: RevealConfig

    def cluster_map(self, extract_id: str) -> np.ndarray:
        """Return the (h, h) cluster map of an extraction cluster id as float64 (``cfg.map_kind``)."""
        return np.asarray(self.results.cluster_map(extract_id, self.cfg.map_kind), dtype=np.float64)

    def game_image(self, sample_id: str) -> np.ndarray:
        """Return the (G, G, 3) uint8 game image of a sample (:func:`inviz.game.reveal.game_image`)."""
        from PIL import Image

        with Image.open(self.images_dir / self.paths[sample_id]) as im:
            rgb = np.asarray(im.convert("RGB"))
        return game_image(rgb, self.input_size, self.cfg.game_size, self.cfg.image_resample)


#: what :func:`_render` works with (set by :func:`write_game_assets`; inherited by forked workers)
_RENDER: dict[str, Any] = {}


def _render(job: tuple[str, str, bool]) -> tuple[list[bytes], np.ndarray, float, float, Reveal | None]:
    """Render one cluster map: (encoded file per level, revealed shares, factor, sigma, Reveal if kept)."""
    extract_id, image_id, keep = job
    source: MapSource = _RENDER["source"]
    if _RENDER["image"][0] != image_id:  # maps arrive image by image: decode each image once per process
        _RENDER["image"] = (image_id, source.game_image(image_id))
    rv = reveal(source.cluster_map(extract_id), _RENDER["image"][1], source.cfg)
    encoded = [encode_image(m, source.cfg) for m in rv.masked]
    return encoded, rv.revealed_share, rv.factor, rv.sigma, rv if keep else None


def write_game_assets(
    table: pd.DataFrame,
    source: MapSource,
    out_dir: str | Path,
    keep: Sequence[int] = (),
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[int, Reveal]]:
    """Write every cluster map's masked images into per-layer zips; return the manifest.

    Parameters
    ----------
    table : DataFrame
        From :func:`cluster_map_table`.
    source : MapSource
        Cluster maps, game images and the reveal settings (``source.cfg``).
    out_dir : str or Path
        Output folder (replaced atomically).
    keep : sequence of int
        Cluster ids whose :class:`~inviz.game.reveal.Reveal` is returned (for figures).
    progress : bool
        Show a progress bar.

    Returns
    -------
    manifest : DataFrame
        One row per cluster map and level (:data:`~inviz.game.manifest.MANIFEST_COLUMNS`).
    reveals : dict of int to Reveal
        Cluster id -> Reveal for the ids in ``keep``.
    """
    from tqdm.auto import tqdm

    from inviz.core.io import atomic_path

    cfg = source.cfg
    rows: list[dict[str, Any]] = []
    kept: dict[int, Reveal] = {}
    keep_set = set(int(k) for k in keep)
    zips: dict[str, zipfile.ZipFile] = {}
    jobs = [(r.extract_id, r.image, int(r.cluster_id) in keep_set) for r in table.itertuples(index=False)]
    _RENDER.update(source=source, image=(None, None))
    pool = None
    if cfg.run.workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(cfg.run.workers)  # the source reaches the workers by fork
        results = pool.imap(_render, jobs, chunksize=8)
    else:
        results = map(_render, jobs)
    with atomic_path(out_dir, directory=True) as tmp:
        try:
            done = zip(table.itertuples(index=False), results, strict=True)
            for r, (encoded, shares, factor, sigma, rv) in tqdm(
                done, total=len(table), desc="masked images", unit="map", disable=not progress
            ):
                if rv is not None:
                    kept[int(r.cluster_id)] = rv
                shard = f"{r.layer}.zip"
                if shard not in zips:
                    zips[shard] = zipfile.ZipFile(tmp / shard, "w", compression=zipfile.ZIP_STORED)
                rows += _write_levels(zips[shard], shard, r, encoded, shares, factor, sigma, cfg)
        finally:
            for z in zips.values():
                z.close()
            if pool is not None:
                pool.terminate()
            _RENDER.clear()
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS), kept


def _write_levels(
    z: zipfile.ZipFile,
    shard: str,
    r: Any,
    encoded: list[bytes],
    shares: np.ndarray,
    factor: float,
    sigma: float,
    cfg: RevealConfig,
) -> list[dict[str, Any]]:
    """Store one cluster map's encoded levels in its layer's zip; return their manifest rows."""
    ext = "png" if cfg.image_format == "png" else "jpg"
    rows = []
    for level, (q, share, data) in enumerate(zip(cfg.levels, shares, encoded, strict=True)):
        member = f"{int(r.cluster_id):06d}/{level}.{ext}"
        info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))  # fixed time: reproducible zips
        z.writestr(info, data)
        rows.append(
            {
                "cluster_id": int(r.cluster_id),
                "extract_id": r.extract_id,
                "image": r.image,
                "layer": r.layer,
                "layer_index": int(r.layer_index),
                "cluster": int(r.cluster),
                "label": r.label,
                "true_class": r.true_class,
                "pred": r.pred,
                "pred_name": r.pred_name,
                "weight": float(r.weight),
                "level": level,
                "percent": float(q),
                "revealed_share": float(share),
                "factor": float(factor),
                "sigma": float(sigma),
                "shard": shard,
                "member": member,
                "file": f"{shard}/{member}",
            }
        )
    return rows


@dataclass(frozen=True)
class GameAssets:
    """What :func:`make_game_assets` produced (the zips are already in their folder).

    manifest : one row per cluster map and level (:data:`~inviz.game.manifest.MANIFEST_COLUMNS`).
    figure : the six-level strip figure (matplotlib). metrics : counts for the ``masks`` stage.
    """

    manifest: pd.DataFrame
    figure: Any
    metrics: dict[str, Any]


def _metrics(table: pd.DataFrame, manifest: pd.DataFrame, out_dir: Path) -> dict[str, Any]:
    """Count what the ``masks`` stage made: maps, images, files, bytes, revealed shares, upscale factors."""
    per_level = manifest.groupby("level")["revealed_share"].agg(["mean", "max"]) if len(manifest) else None
    first = manifest[manifest["level"] == 0] if len(manifest) else manifest
    n_maps = int(table["cluster_id"].nunique())
    return {
        "n_cluster_maps": n_maps,
        "n_images": int(table["image"].nunique()),
        "n_files": int(len(manifest)),
        "shard_bytes": int(sum(p.stat().st_size for p in out_dir.glob("*.zip"))),
        "maps_per_image_layer": float(n_maps / max(1, table.groupby(["image", "layer"]).ngroups)),
        "revealed_share_mean": {f"level_{int(k)}": float(v) for k, v in per_level["mean"].items()}
        if per_level is not None
        else {},
        "maps_revealing_more_than_twice_the_first_level": int(
            (first["revealed_share"] > 2 * first["percent"] / 100).sum()
        ),
        "upscale_factors": sorted({float(f) for f in manifest["factor"]}) if len(manifest) else [],
    }


def make_game_assets(
    extract_dir: str | Path,
    selected: pd.DataFrame,
    images_dir: str | Path,
    input_size: int,
    cfg: RevealConfig,
    out_dir: str | Path,
) -> GameAssets:
    """Make the game's masked images of every kept cluster map of the selected images.

    Parameters
    ----------
    extract_dir : str or Path
        The extraction folder (``extract`` stage).
    selected : DataFrame
        ``selected.csv`` (``sample_id, path, label, class_name, pred, pred_name``).
    images_dir : str or Path
        The dataset folder (``path`` is relative to it).
    input_size : int
        The network's input side (the game image is the network input, upscaled).
    cfg : RevealConfig
        The ``masks`` section.
    out_dir : str or Path
        Folder of the per-layer zips (replaced atomically).

    Returns
    -------
    GameAssets
    """
    from inviz.fmaps.store import load_results

    results = load_results(extract_dir)
    table = cluster_map_table(results.clusters, selected, results.manifest.get("layers") or None)
    paths = dict(zip(selected["sample_id"].astype(str), selected["path"], strict=False))
    source = MapSource(results, Path(images_dir), paths, input_size, cfg)
    ids = figure_ids(table, cfg.figure_maps, cfg.figure_seed)
    manifest, reveals = write_game_assets(table, source, out_dir, keep=ids)
    ext_of = dict(zip(table["cluster_id"], table["extract_id"], strict=False))
    fig = strip_figure(table, reveals, {i: source.cluster_map(ext_of[i]) for i in ids}, cfg)
    return GameAssets(manifest, fig, _metrics(table, manifest, Path(out_dir)))


def load_cluster_maps(
    extract_dir: str | Path, manifest: pd.DataFrame, map_kind: str
) -> dict[int, np.ndarray]:
    """Read the cluster map of every cluster id of a masks manifest from the extraction folder.

    Parameters
    ----------
    extract_dir : str or Path
        The extraction folder (``extract`` stage).
    manifest : DataFrame
        The masks manifest (:func:`inviz.game.manifest.read_manifest`).
    map_kind : str
        ``map`` or ``raw`` (``masks.map_kind``: the maps the game masked).

    Returns
    -------
    dict of int to ndarray of float64, shape (h, h)
        Cluster id -> its map, by cluster id.
    """
    from inviz.fmaps.store import load_results

    results = load_results(extract_dir)
    ext_ids = manifest.drop_duplicates("cluster_id").set_index("cluster_id")["extract_id"].sort_index()
    return {
        int(c): np.asarray(results.cluster_map(e, map_kind), dtype=np.float64) for c, e in ext_ids.items()
    }


def figure_ids(table: pd.DataFrame, n: int, seed: int) -> list[int]:
    """Pick up to ``n`` cluster ids for the strip figure, spread over layers.

    Parameters
    ----------
    table : DataFrame
        From :func:`cluster_map_table`.
    n : int
        How many.
    seed : int
        Seeds the draw.

    Returns
    -------
    list of int
        Sorted cluster ids.
    """
    rng = np.random.default_rng(seed)
    if table.empty:
        return []
    by_layer = [g["cluster_id"].to_numpy() for _, g in table.groupby("layer_index", sort=True)]
    picks: list[int] = []
    layer_order = rng.permutation(len(by_layer))
    i = 0
    while len(picks) < min(n, len(table)):
        ids = [c for c in by_layer[layer_order[i % len(by_layer)]] if int(c) not in picks]
        if ids:
            picks.append(int(rng.choice(ids)))
        i += 1
    return sorted(picks)


def strip_figure(
    table: pd.DataFrame, reveals: dict[int, Reveal], maps: dict[int, np.ndarray], cfg: RevealConfig
) -> Any:
    """Draw the strip figure: one row per cluster map, the map then its masked images at every level.

    Parameters
    ----------
    table : DataFrame
        From :func:`cluster_map_table`.
    reveals : dict of int to Reveal
        Cluster id -> its masked images (the rows).
    maps : dict of int to ndarray of shape (h, h)
        Cluster id -> its map.
    cfg : RevealConfig
        The reveal levels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from inviz.core.plotting import MAP_CMAP, new_figure

    ids = [i for i in sorted(reveals)]
    n_levels = len(cfg.levels)
    rows = max(len(ids), 1)
    fig, axes = new_figure(1.1 * (n_levels + 1), 1.2 * rows, nrows=rows, ncols=n_levels + 1, squeeze=False)
    info = table.set_index("cluster_id")
    for row, cid in enumerate(ids):
        rv = reveals[cid]
        meta = info.loc[cid]
        ax = axes[row, 0]
        ax.imshow(maps[cid], cmap=MAP_CMAP, interpolation="nearest")
        ax.set_title(f"#{cid} {meta['layer']}\n{meta['true_class']} (w {meta['weight']:.1f})", fontsize=6)
        for level in range(n_levels):
            ax = axes[row, level + 1]
            ax.imshow(rv.masked[level])
            ax.set_title(f"{cfg.levels[level]:g}% (shown {100 * rv.revealed_share[level]:.1f}%)", fontsize=6)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("top", "right", "bottom", "left"):
            ax.spines[side].set_visible(False)
    fig.suptitle(f"Deep Reveal: cluster map, first view and {n_levels - 1} hints", fontsize=8)
    fig.tight_layout()
    return fig
