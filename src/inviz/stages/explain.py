"""``inviz explain IMAGE… --model … --labels … --out DIR``: a labelled INV of any image, no game (§9).

Not a pipeline stage: a command for new images (outside the dataset too). Each image is explained
with the CNN and the label model's extraction settings, its cluster maps get transferred labels
(:func:`inviz.transfer.new_images.explain_new_images`), and ``--out`` receives per image
``<name>.png`` (+ the other ``figures.formats``: the Figure-3 style INV, captioned with the
narrative), ``<name>.json`` (the record: prediction, cards with labels, confidence and coverage,
the narrative's numbers, seconds) and ``<name>.txt`` (the narrative, also printed), plus
``explain.json`` (every image's files and seconds). ``--params`` (default ``params.yaml`` when
present, else the built-in defaults) gives the ``figures``, ``masks`` (map kind, overlay masks) and
``narratives`` settings.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "labelled INV of image files (also outside the dataset) from a label model: figure, JSON, narrative"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, …)")
    parser.add_argument("--model", required=True, help="CNN checkpoint the label model was learnt from")
    parser.add_argument("--labels", required=True, help="label model ('inviz transfer': label_model.json)")
    parser.add_argument("--out", required=True, help="output folder (figures, JSON records, narratives)")
    parser.add_argument(
        "--layers", nargs="+", default=None, help="layers to explain (default: the label model's)"
    )
    parser.add_argument(
        "--top", type=int, default=None, help="labels per cluster map (default: figures.top_labels)"
    )
    parser.add_argument("--variant", default=None, help="label model variant (default: the label model's)")
    parser.add_argument(
        "--params",
        default=None,
        help="params file for figures/masks/narratives (default: params.yaml if present)",
    )


def _settings(params: str | None) -> tuple[Any, Any, Any]:
    """Read the ``figures``, ``masks`` and ``narratives`` sections (defaults when absent)."""
    from pathlib import Path

    from inviz.core.config import from_dict, read_params
    from inviz.game.reveal import RevealConfig
    from inviz.views.figures import FigureConfig
    from inviz.views.narratives import NarrativeConfig

    data: dict[str, Any] = {}
    if params is not None or Path("params.yaml").is_file():
        source = params or "params.yaml"
        data = read_params(source)
    else:
        source = "defaults"
    return tuple(
        from_dict(cls, data.get(key), key, source)
        for key, cls in (("figures", FigureConfig), ("masks", RevealConfig), ("narratives", NarrativeConfig))
    )


def _names(paths: list[str]) -> list[str]:
    """File-safe, unique output names from the image file names."""
    from pathlib import Path

    from inviz.views.records import safe_name

    seen: dict[str, int] = {}
    out = []
    for p in paths:
        base = safe_name(Path(p).stem)
        seen[base] = seen.get(base, 0) + 1
        out.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import dataclasses
    from pathlib import Path

    from inviz.core.config import ParamsError
    from inviz.core.io import save_figure, write_json, write_text
    from inviz.core.plotting import close
    from inviz.models.checkpoint import load_checkpoint
    from inviz.transfer.model import VARIANTS, LabelModel
    from inviz.transfer.new_images import explain_new_images
    from inviz.views.figures import inv_figure

    fig_cfg, reveal_cfg, narrative_cfg = _settings(args.params)
    top = args.top or fig_cfg.top_labels
    if top < 1:
        raise ParamsError(f"--top: expected >= 1, got {top}")
    fig_cfg = dataclasses.replace(fig_cfg, top_labels=top)
    label_model = LabelModel.load(args.labels)
    if args.variant is not None:
        if args.variant not in VARIANTS:
            raise ParamsError(f"--variant: expected one of {', '.join(VARIANTS)}, got {args.variant!r}")
        label_model = dataclasses.replace(
            label_model, cfg=dataclasses.replace(label_model.cfg, variant=args.variant)
        )
    loaded = load_checkpoint(args.model)
    results = explain_new_images(
        args.images,
        loaded,
        label_model,
        layers=args.layers,
        top=top,
        map_kind=reveal_cfg.map_kind,
        merged=fig_cfg.merged,
        narrative_cfg=narrative_cfg,
        labels_path=str(args.labels),
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for name, r in zip(_names(list(args.images)), results, strict=True):
        fig = inv_figure(r.inv, fig_cfg, reveal_cfg, r.narrative if narrative_cfg.enabled else None)
        save_figure(
            fig, out / f"{name}.{fig_cfg.formats[0]}", formats=fig_cfg.formats, dpi=fig_cfg.dpi, tight=False
        )
        close(fig)
        write_json(out / f"{name}.json", r.record)
        write_text(out / f"{name}.txt", r.narrative + "\n")
        print(f"\n== {r.inv.path} ==\n{r.narrative}")
        index.append(
            {
                "image": r.inv.path,
                "name": name,
                "pred_name": r.inv.pred_name,
                "confidence": r.inv.confidence,
                "figure": f"{name}.{fig_cfg.formats[0]}",
                "record": f"{name}.json",
                "narrative": f"{name}.txt",
                "seconds": round(r.seconds, 3),
            }
        )
    seconds = [r.seconds for r in results]
    summary = {
        "model_sha256": loaded.sha256,
        "label_model": str(args.labels),
        "variant": label_model.cfg.variant,
        "n_images": len(results),
        "seconds_per_image": round(sum(seconds) / len(seconds), 3) if seconds else None,
        "images": index,
    }
    write_json(out / "explain.json", summary)
    log.info(
        "explain: %d image(s) -> %s (%.2f s per image)", len(results), out, summary["seconds_per_image"] or 0
    )
    return summary
