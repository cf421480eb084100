"""The label game's assets: every kept cluster map as six masked images, plus a manifest.

Glue between the ``extract`` output and :mod:`inviz.game.reveal` (METHOD.md §2), used by the
``masks`` stage and read back by the label stages and by a game server.

Cluster ids. Every kept (unpruned) cluster map of the selected images gets an integer
``cluster_id``, 1, 2, … in a stable order: images in ``selected.csv`` order, layers in the
extraction's layer order, clusters by their index (0 = heaviest). The game refers to maps by
this id; game exports carry it back.

Storage. Thousands of small PNGs make poor DVC outputs, so the masked images are stored in one
zip per layer (``<layer>.zip``, ``ZIP_STORED``: PNGs are compressed already); member
``<cluster_id>/<level>.png`` (level 0 = first view, 1..5 = hints). The manifest has one row per
cluster map and level::

    cluster_id, extract_id, image, layer, layer_index, cluster, label, true_class, pred,
    pred_name, weight, level, percent, revealed_share, factor, sigma, shard, member, file

with ``file = <shard>/<member>`` (``zipfile.Path`` notation) and ``revealed_share`` the share of
pixels actually shown (ties can make it larger than ``percent``).
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError
from inviz.game.reveal import Reveal, RevealConfig, reveal

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = [
    "cluster_id", "extract_id", "image", "layer", "layer_index", "cluster", "label", "true_class", "pred", "pred_name",
    "weight", "level", "percent", "revealed_share", "factor", "sigma", "shard", "member", "file",
]


class GameAssetsError(InvizError, ValueError):
    """The extraction output and the selected images do not fit together, or a manifest is malformed."""


def cluster_map_table(clusters: pd.DataFrame, selected: pd.DataFrame, layers: Sequence[str] | None = None) -> pd.DataFrame:
    """The kept cluster maps of the selected images, in game order, with integer ids.

    Parameters
    ----------
    clusters : the extraction's cluster table (``cluster_id, sample_id, layer, cluster, weight,
        pruned, height, width``; :func:`inviz.fmaps.extraction.load_results`).
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
        raise GameAssetsError(f"extraction clusters table: layer(s) {', '.join(unknown)} not in the layer list")
    missing_images = sorted(set(order) - set(clusters["sample_id"].astype(str)))
    if missing_images:
        log.warning("%d selected image(s) have no extraction results: %s", len(missing_images), ", ".join(missing_images[:5]))
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
    for col, src in (("label", "label"), ("true_class", "class_name"), ("pred", "pred"), ("pred_name", "pred_name")):
        out[col] = out["image"].map(sel[src]) if src in sel.columns else None
    return out


def encode_image(image: np.ndarray, cfg: RevealConfig) -> bytes:
    """PNG (or JPEG) bytes of an (H, W, 3) uint8 image."""
    from PIL import Image

    buf = io.BytesIO()
    pil = Image.fromarray(np.asarray(image, dtype=np.uint8))
    if cfg.image_format == "png":
        pil.save(buf, format="PNG", compress_level=cfg.png_compress_level)
    else:
        pil.save(buf, format="JPEG", quality=cfg.jpeg_quality)
    return buf.getvalue()


#: what :func:`_render` works with (set by :func:`write_game_assets`; inherited by forked workers)
_RENDER: dict[str, Any] = {}


def _render(job: tuple[str, str, bool]) -> tuple[list[bytes], np.ndarray, float, float, Reveal | None]:
    """Masked images of one cluster map, encoded: (files per level, revealed shares, factor, sigma, Reveal if kept)."""
    extract_id, image_id, keep = job
    cfg: RevealConfig = _RENDER["cfg"]
    if _RENDER["image"][0] != image_id:  # maps arrive image by image: decode each image once per process
        _RENDER["image"] = (image_id, _RENDER["get_image"](image_id))
    rv = reveal(_RENDER["get_map"](extract_id), _RENDER["image"][1], cfg)
    encoded = [encode_image(m, cfg) for m in rv.masked]
    return encoded, rv.revealed_share, rv.factor, rv.sigma, rv if keep else None


def write_game_assets(
    table: pd.DataFrame,
    get_map: Callable[[str], np.ndarray],
    get_image: Callable[[str], np.ndarray],
    cfg: RevealConfig,
    out_dir: str | Path,
    keep: Sequence[int] = (),
    progress: bool = True,
) -> tuple[pd.DataFrame, dict[int, Reveal]]:
    """Write every cluster map's masked images into per-layer zips; return the manifest.

    Parameters
    ----------
    table : from :func:`cluster_map_table`.
    get_map : extract id -> (h, h) cluster map. get_image : image id -> (G, G, 3) game image.
    out_dir : output folder (replaced atomically).
    keep : cluster ids whose :class:`Reveal` is returned (for figures).

    Returns
    -------
    manifest : one row per cluster map and level (:data:`MANIFEST_COLUMNS`).
    reveals : cluster id -> Reveal for the ids in ``keep``.
    """
    from tqdm.auto import tqdm

    from inviz.core.io import atomic_path

    ext = "png" if cfg.image_format == "png" else "jpg"
    rows: list[dict[str, Any]] = []
    kept: dict[int, Reveal] = {}
    keep_set = set(int(k) for k in keep)
    zips: dict[str, zipfile.ZipFile] = {}
    jobs = [(r.extract_id, r.image, int(r.cluster_id) in keep_set) for r in table.itertuples(index=False)]
    _RENDER.update(get_map=get_map, get_image=get_image, cfg=cfg, image=(None, None))
    pool = None
    if cfg.workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        pool = mp.get_context("fork").Pool(cfg.workers)  # the callables reach the workers by fork
        results = pool.imap(_render, jobs, chunksize=8)
    else:
        results = map(_render, jobs)
    with atomic_path(out_dir, directory=True) as tmp:
        try:
            for r, (encoded, shares, factor, sigma, rv) in tqdm(zip(table.itertuples(index=False), results, strict=True),
                                                                 total=len(table), desc="masked images", unit="map",
                                                                 disable=not progress):
                if rv is not None:
                    kept[int(r.cluster_id)] = rv
                shard = f"{r.layer}.zip"
                if shard not in zips:
                    zips[shard] = zipfile.ZipFile(tmp / shard, "w", compression=zipfile.ZIP_STORED)
                for level, (q, share, data) in enumerate(zip(cfg.levels, shares, encoded, strict=True)):
                    member = f"{int(r.cluster_id):06d}/{level}.{ext}"
                    info = zipfile.ZipInfo(member, date_time=(2020, 1, 1, 0, 0, 0))  # fixed time: reproducible zips
                    zips[shard].writestr(info, data)
                    rows.append({
                        "cluster_id": int(r.cluster_id), "extract_id": r.extract_id, "image": r.image, "layer": r.layer,
                        "layer_index": int(r.layer_index), "cluster": int(r.cluster), "label": r.label,
                        "true_class": r.true_class, "pred": r.pred, "pred_name": r.pred_name, "weight": float(r.weight),
                        "level": level, "percent": float(q), "revealed_share": float(share), "factor": float(factor),
                        "sigma": float(sigma), "shard": shard, "member": member, "file": f"{shard}/{member}",
                    })
        finally:
            for z in zips.values():
                z.close()
            if pool is not None:
                pool.terminate()
            _RENDER.clear()
    return pd.DataFrame(rows, columns=MANIFEST_COLUMNS), kept


def read_manifest(path: str | Path) -> pd.DataFrame:
    """Read a manifest written by the ``masks`` stage (errors name the file)."""
    path = Path(path)
    if not path.is_file():
        raise GameAssetsError(f"{path}: masks manifest not found (run the 'masks' stage first)")
    frame = pd.read_csv(path, dtype={"extract_id": str, "image": str, "layer": str, "true_class": str, "pred_name": str})
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise GameAssetsError(f"{path}: not a masks manifest; missing column(s) {', '.join(missing)}")
    return frame


def load_masked_image(masks_dir: str | Path, file: str) -> np.ndarray:
    """Read one masked image by its manifest ``file`` (``<shard>/<member>``) as (G, G, 3) uint8."""
    from PIL import Image

    shard, member = file.split("/", 1)
    with zipfile.ZipFile(Path(masks_dir) / shard) as z, z.open(member) as fh:
        return np.asarray(Image.open(io.BytesIO(fh.read())).convert("RGB"))


def figure_ids(table: pd.DataFrame, n: int, seed: int) -> list[int]:
    """Up to ``n`` cluster ids for the strip figure: spread over layers, seeded."""
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


def strip_figure(table: pd.DataFrame, reveals: dict[int, Reveal], maps: dict[int, np.ndarray], cfg: RevealConfig) -> Any:
    """Rows = cluster maps, columns = the map then its masked images at every level."""
    from inviz.core.plotting import MAP_CMAP, new_figure

    ids = [i for i in sorted(reveals)]
    n_levels = len(cfg.levels)
    fig, axes = new_figure(1.1 * (n_levels + 1), 1.2 * max(len(ids), 1), nrows=max(len(ids), 1), ncols=n_levels + 1, squeeze=False)
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
