"""The INV explorer: a static site that opens from disk in a browser, no server.

:func:`build_explorer` writes into a folder:

``index.html``, ``explorer.js``, ``style.css``
    the viewer (copied from ``inviz/resources/explorer``): pick a class and an image; one column
    per layer with cluster cards (overlay, weight bar, labels with score bars, feature-map count,
    game statistics, a one-sentence narrative) under the image's narrative
    (:mod:`inviz.views.narratives`); a toggle between merged and the game's cluster maps; a global view per
    class and layer with the top labels, their TCAV results and example maps; deep links in the
    URL hash (``#view=image&image=<id>&layer=<layer>&card=<key>``, ``#view=global&class=<label>
    &layer=<layer>``).
``data.js``
    ``window.INVIZ = {...}`` — everything the viewer shows, loaded by a script tag (``file://``
    pages cannot ``fetch`` JSON).
``img/<n>.jpg``
    one sprite per image: tile 0 is the image, then every card's overlay, ``tile`` pixels square
    (few files: thousands of tiny files are slow for DVC and for browsers from disk).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.game.reveal import RevealConfig
from inviz.views.overlays import OverlayConfig, overlay, thumbnail
from inviz.views.records import Card, ImageINV

ASSETS = ("index.html", "explorer.js", "style.css")


@dataclass(frozen=True)
class ExplorerConfig:
    """``explorer`` section.

    tile : side in pixels of the stored tiles (sprites). card_px : side of a card's tile on screen.
    jpeg_quality : sprite JPEG quality. title : page title (``null``: "inviz explorer").
    global_layer : layer the global view opens on (``null``: the deepest with results).
    """

    tile: int = 128
    card_px: int = 128
    jpeg_quality: int = 88
    title: str | None = None
    global_layer: str | None = None

    def __post_init__(self) -> None:
        if self.tile < 16 or self.card_px < 16:
            raise ValueError("tile and card_px: expected >= 16 pixels")
        if not 1 <= self.jpeg_quality <= 95:
            raise ValueError(f"jpeg_quality: expected 1..95, got {self.jpeg_quality}")


def _num(x: Any, digits: int = 4) -> float | None:
    """Round to a JSON-safe float with ``digits`` significant digits (None for missing / non-finite)."""
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if not math.isfinite(v) else float(f"{v:.{digits}g}")


def _card_json(c: Card, tile: int, narrative_cfg: Any = None, top: int = 3) -> dict[str, Any]:
    text = None
    if narrative_cfg is not None:
        from inviz.views.narratives import card_narrative

        text = card_narrative(c, narrative_cfg, top)
    return {
        "narrative": text,
        "source": c.source,
        "confidence": _num(c.confidence),
        "coverage": _num(c.coverage),
        "key": c.key,
        "kind": c.kind,
        "id": c.id,
        "layer": c.layer,
        "tile": tile,
        "weight": _num(c.weight),
        "n_fmaps": c.n_fmaps,
        "members": list(c.members),
        "labels": [[lab, _num(s)] for lab, s in c.labels],
        "best": list(c.best),
        "plays": c.plays,
        "wins": c.wins,
        "losses": c.losses,
        "resigns": c.resigns,
        "mean_hints": _num(c.mean_hints),
    }


def build_explorer(
    invs: Sequence[ImageINV],
    global_table: pd.DataFrame,
    out: str | Path,
    cfg: ExplorerConfig,
    overlay_cfg: OverlayConfig,
    reveal_cfg: RevealConfig,
    top_labels: int = 3,
    subtitle: str = "",
    narrative_cfg: Any = None,
) -> dict[str, Any]:
    """Write the explorer into the (new, empty) folder ``out``; returns the data it shows.

    Parameters
    ----------
    invs : INVs of the explained images (:func:`inviz.views.records.load_inv`).
    global_table : ``global.csv`` of the ``global`` stage (may be empty): ``class_label, layer,
        rank, label, importance, n_maps, examples`` and optionally the TCAV columns.
    out : destination folder (the caller makes the write atomic).
    cfg, overlay_cfg, reveal_cfg : tile sizes, overlay style, the game's reveal settings.
    top_labels : labels shown per card.
    subtitle : the page's subtitle.
    narrative_cfg : NarrativeConfig, optional
        With it, every image, card and global view gets its narrative (:mod:`inviz.views.narratives`).
    """
    out = Path(out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    for name in ASSETS:
        with resources.as_file(resources.files("inviz").joinpath(f"resources/explorer/{name}")) as src:
            shutil.copyfile(src, out / name)

    images: dict[str, Any] = {}
    tile_of: dict[tuple[str, str], int] = {}
    for n, inv in enumerate(invs):
        images[inv.sample_id] = _image_entry(
            n, inv, out, tile_of, cfg, overlay_cfg, reveal_cfg, top_labels, narrative_cfg
        )
    classes: dict[int, dict[str, Any]] = {}
    for inv in invs:
        classes.setdefault(inv.true_label, {"label": inv.true_label, "name": inv.true_class, "images": []})[
            "images"
        ].append(inv.sample_id)
    glob = _global_entries(invs, global_table, tile_of)
    layers = list(invs[0].layers) if invs else []
    data = {
        "title": cfg.title or "inviz explorer",
        "subtitle": subtitle,
        "tile": cfg.tile,
        "card_px": cfg.card_px,
        "top_labels": top_labels,
        "layers": layers,
        "classes": [classes[k] for k in sorted(classes)],
        "images": images,
        "global": glob,
        "global_narratives": _global_narratives(global_table, narrative_cfg),
        "global_default_layer": cfg.global_layer or (layers[-1] if layers else None),
    }
    (out / "data.js").write_text(
        "window.INVIZ = " + json.dumps(data, separators=(",", ":")) + ";\n", encoding="utf-8"
    )
    return data


def _image_entry(
    n: int,
    inv: ImageINV,
    out: Path,
    tile_of: dict[tuple[str, str], int],
    cfg: ExplorerConfig,
    overlay_cfg: OverlayConfig,
    reveal_cfg: RevealConfig,
    top_labels: int,
    narrative_cfg: Any = None,
) -> dict[str, Any]:
    """Write image ``n``'s sprite (the image, then one tile per card) and return its data.

    ``tile_of`` receives the tile index of each of its cards, keyed by (sample id, card key).
    """
    from PIL import Image

    tiles = [thumbnail(inv.image, cfg.tile)]
    cards: dict[str, dict[str, list[dict[str, Any]]]] = {"merged": {}, "cluster": {}}
    score_max = {}
    for kind, by_layer in (("merged", inv.merged), ("cluster", inv.clusters)):
        for layer, layer_cards in by_layer.items():
            out_cards = []
            for c in layer_cards:
                tile_of[(inv.sample_id, c.key)] = len(tiles)
                out_cards.append(_card_json(c, len(tiles), narrative_cfg, top_labels))
                tiles.append(thumbnail(overlay(inv.image, c.map, overlay_cfg, reveal_cfg), cfg.tile))
            cards[kind][layer] = out_cards
        score_max[kind] = max(
            [s for cs in by_layer.values() for c in cs for _, s in c.top(top_labels)] + [0.0]
        )
    sprite = np.concatenate(tiles, axis=1)
    Image.fromarray(sprite).save(out / "img" / f"{n}.jpg", quality=cfg.jpeg_quality)
    return {
        "sprite": f"img/{n}.jpg",
        "n_tiles": len(tiles),
        "label": inv.true_label,
        "true": inv.true_class,
        "pred": inv.pred_name,
        "confidence": _num(inv.confidence),
        "cards": cards,
        "score_max": score_max,
        "narrative": _image_narratives(inv, narrative_cfg),
    }


def _image_narratives(inv: ImageINV, narrative_cfg: Any) -> dict[str, str] | None:
    """Return the image's narratives of its merged and of its single cluster maps (None without a config)."""
    if narrative_cfg is None:
        return None
    from inviz.views.narratives import inv_narrative

    return {
        "merged": inv_narrative(inv, True, narrative_cfg),
        "cluster": inv_narrative(inv, False, narrative_cfg),
    }


def _global_narratives(table: pd.DataFrame, narrative_cfg: Any) -> dict[str, dict[str, str]]:
    """Return class label -> layer -> the global narrative (empty without a config or a table)."""
    if narrative_cfg is None or not len(table):
        return {}
    from inviz.views.narratives import global_narrative

    out: dict[str, dict[str, str]] = {}
    for (cl, layer), grp in table.groupby(["class_label", "layer"], sort=False):
        out.setdefault(str(int(cl)), {})[str(layer)] = global_narrative(grp, narrative_cfg)
    return out


def _global_entries(
    invs: Sequence[ImageINV], global_table: pd.DataFrame, tile_of: dict[tuple[str, str], int]
) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Return the global view's rows by class label and layer, example tiles resolved to (image, tile)."""
    glob: dict[str, dict[str, list[dict[str, Any]]]] = {}
    image_of_key = {
        c.key: inv.sample_id
        for inv in invs
        for by in (inv.merged, inv.clusters)
        for cs in by.values()
        for c in cs
    }
    for r in global_table.itertuples() if len(global_table) else []:
        ex = []
        for key in str(r.examples).split(";") if isinstance(r.examples, str) else []:
            img = image_of_key.get(key)
            if img is not None:
                ex.append([img, tile_of[(img, key)], key])
        status = getattr(r, "tcav_status", None)
        tcav = None
        if isinstance(status, str):
            tcav = {
                "status": status,
                "score": _num(getattr(r, "tcav_score", None)),
                "p_adjusted": _num(getattr(r, "p_adjusted", None), 6),
                "significant": bool(getattr(r, "significant", False)) if status == "ok" else None,
                "n_examples": int(r.n_examples) if pd.notna(getattr(r, "n_examples", None)) else None,
            }
        glob.setdefault(str(int(r.class_label)), {}).setdefault(str(r.layer), []).append(
            {
                "rank": int(r.rank),
                "label": str(r.label),
                "importance": _num(r.importance),
                "n_maps": int(r.n_maps),
                "examples": ex,
                "tcav": tcav,
            }
        )
    return glob
