"""``inviz explain``: a labelled INV of any image file in seconds, without a game (docs/method.md §9).

:func:`explain_new_images` reads image files (outside the dataset too), explains them with the
CNN and the label model's extraction settings (:func:`inviz.fmaps.explain.explain`: one forward
and backward pass, t-SNE, Ward, pruning), transfers labels to their cluster maps
(:func:`inviz.transfer.apply.transfer_labels`, merged as §3.8) and returns, per image, its INV
record (:class:`inviz.views.records.ImageINV` with ``source="transfer"`` cards), a JSON record and
its narrative. Errors are clear: an unreadable image names the file; a CNN the label model was not
learnt from (checkpoint sha256) or a layer it lacks is refused before any work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inviz.core.errors import InvizError
from inviz.transfer.model import LabelModel
from inviz.views.narratives import NarrativeConfig, inv_summary, render
from inviz.views.records import Card, ImageINV

log = logging.getLogger(__name__)

FORMAT = "inviz-explain/1"


class ImageFileError(InvizError, ValueError):
    """An image file is missing or unreadable."""


@dataclass(frozen=True, eq=False)
class NewImage:
    """One explained image.

    inv : its INV (transferred cards). record : the JSON record (prediction, cards, summary,
    narrative). narrative : the plain-language text. seconds : wall time of this image.
    """

    inv: ImageINV
    record: dict[str, Any]
    narrative: str
    seconds: float


def read_image(path: str | Path) -> Any:
    """Read an image file as an RGB PIL image (errors name the file and say what was expected)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ImageFileError(f"{p}: image file not found")
    try:
        with Image.open(p) as im:
            im.load()
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise ImageFileError(f"{p}: not a readable image (PNG, JPEG, … expected): {err}") from err


def extract_config(model: LabelModel, layers: Sequence[str]) -> Any:
    """Return the label model's extraction settings for ``layers``, one image per pass (``ExtractConfig``)."""
    from inviz.core.config import from_dict
    from inviz.fmaps.explain import ExtractConfig

    cfg = from_dict(ExtractConfig, dict(model.extract_config), "extract_config", "label model")
    return cfg.replace(layers=tuple(layers), run={"batch_size": 1})


def _card_json(c: Card, top: int) -> dict[str, Any]:
    return {
        "key": c.key,
        "id": c.id,
        "members": list(c.members),
        "weight": float(c.weight),
        "n_fmaps": c.n_fmaps,
        "labels": [[lab, float(p)] for lab, p in c.top(top)],
        "best": list(c.best),
        "confidence": float(c.confidence),
        "coverage": float(c.coverage),
    }


def _record(
    inv: ImageINV, path: Path, probs: torch.Tensor, classes: Sequence[str], ctx: dict[str, Any]
) -> dict:
    order = probs.argsort(descending=True)[: ctx["top_classes"]].tolist()
    return {
        "format": FORMAT,
        "image": str(path),
        "image_sha256": ctx["digest"](path),
        "model_sha256": ctx["model"].model_sha256,
        "label_model": {"path": ctx["labels_path"], "variant": ctx["variant"]},
        "prediction": {
            "label": inv.pred,
            "class_name": inv.pred_name,
            "confidence": inv.confidence,
            "top_classes": [[classes[i], float(probs[i])] for i in order],
        },
        "layers": {
            ly: [_card_json(c, ctx["top"]) for c in inv.cards(ctx["merged"]).get(ly, [])] for ly in inv.layers
        },
    }


def explain_new_images(
    paths: Sequence[str | Path],
    loaded: Any,
    model: LabelModel,
    layers: Sequence[str] | None = None,
    top: int = 3,
    map_kind: str = "map",
    merged: bool = True,
    narrative_cfg: NarrativeConfig | None = None,
    labels_path: str = "",
) -> list[NewImage]:
    """Explain image files with the CNN and label their cluster maps with the label model.

    Parameters
    ----------
    paths : sequence of str or Path
        Image files (any size; resized to the CNN's input as its evaluation transform does).
    loaded : LoadedModel
        The CNN (:func:`inviz.models.checkpoint.load_checkpoint`); it must be the label model's.
    model : LabelModel
        The label model (``inviz transfer``'s ``label_model.json``).
    layers : sequence of str, optional
        Layers to explain (default: every layer of the label model).
    top : int
        Labels per cluster map in the record (and the figure).
    map_kind : str
        ``map`` (as the game showed, ``extract.map_scaling``) or ``raw`` cluster maps on the cards.
    merged : bool
        Records and narratives of the merged cluster maps (§3.8) or of the single ones.
    narrative_cfg : NarrativeConfig, optional
    labels_path : str
        The label model's file, named in the records.

    Returns
    -------
    list of NewImage
        In the order of ``paths``.
    """
    from inviz.core.io import file_digest
    from inviz.data.loading import eval_transform
    from inviz.fmaps.explain import explain
    from inviz.game.reveal import game_image
    from inviz.transfer.apply import image_cards, transfer_labels

    narrative_cfg = narrative_cfg or NarrativeConfig()
    model.check_model(loaded.sha256, "model checkpoint")
    layers = list(layers or model.layers)
    model.check_layers(layers)
    images = [read_image(p) for p in paths]  # every file is checked before any work
    cfg = extract_config(model, layers)
    mc = loaded.config
    tf = eval_transform(mc.input_size, mc.mean, mc.std)
    ctx = {
        "model": model,
        "digest": file_digest,
        "labels_path": labels_path,
        "variant": model.cfg.variant,
        "top": top,
        "merged": merged,
        "top_classes": min(5, len(loaded.class_names)),
    }
    out = []
    for path, rgb in zip(paths, images, strict=True):
        t0 = time.perf_counter()
        x = tf(rgb)[None]
        ex = explain(loaded.model, x, layers, cfg, sample_ids=[Path(path).stem])[0]
        with torch.no_grad():
            probs = loaded.model(x.to(next(loaded.model.parameters()).device)).float().softmax(1)[0].cpu()
        t = transfer_labels([ex], model, layers)
        shown = {
            f"{ex.sample_id}|{ly}|{c.cluster}": c.raw_map if map_kind == "raw" else c.map
            for ly, rec in ex.layers.items()
            for c in rec.clusters
        }
        m_cards, c_cards = image_cards(t, ex.sample_id, layers, shown.__getitem__)
        inv = ImageINV(
            sample_id=ex.sample_id,
            path=str(path),
            true_label=-1,
            true_class="",
            pred=int(ex.pred),
            pred_name=loaded.class_names[int(ex.pred)],
            confidence=float(probs[int(ex.pred)]),
            image=game_image(np.asarray(rgb), mc.input_size, mc.input_size),
            layers=tuple(layers),
            merged=m_cards,
            clusters=c_cards,
        )
        record = _record(inv, Path(path), probs, loaded.class_names, ctx)
        record["summary"] = inv_summary(inv, merged, narrative_cfg)
        text = render("inv.txt.j2", record["summary"], narrative_cfg)
        record["narrative"] = text
        seconds = time.perf_counter() - t0
        record["seconds"] = round(seconds, 3)
        out.append(NewImage(inv, record, text, seconds))
        log.info("explain: %s -> %s (%.1f %%) in %.2f s", path, inv.pred_name, 100 * inv.confidence, seconds)
    return out
