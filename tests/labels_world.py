"""A tiny synthetic world for the label-stage tests: images, part masks, a checkpoint and an
extraction folder (written with the real shard writer) whose cluster maps cover known parts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from inviz.data import synthetic
from inviz.fmaps.records import ClusterResult, ImageExplanation, LayerExplanation
from inviz.fmaps.shards import consolidate, write_shard
from inviz.models.checkpoint import save_checkpoint
from inviz.models.vgg import ModelConfig, build_vgg16

LAYERS = {"block4_conv1": 16, "block5_conv3": 8}
SYN = {
    "image_size": 128,
    "n_train_per_class": 1,
    "n_val_per_class": 1,
    "seed": 5,
    "classes": {k: list(v) for k, v in list(synthetic.DEFAULT_CLASSES.items())[:5]},
}


def _layer(
    name: str, side: int, maps: list[np.ndarray], weights: list[float], pruned: list[bool]
) -> LayerExplanation:
    clusters = tuple(
        ClusterResult(i, float(w), np.array([i]), m.astype(np.float32), m.astype(np.float32), p)
        for i, (m, w, p) in enumerate(zip(maps, weights, pruned, strict=False))
    )
    n = len(maps)
    return LayerExplanation(
        layer=name,
        module=name,
        n_channels=n,
        height=side,
        width=side,
        threshold=0.5,
        total_weight=float(sum(weights)),
        scale=1.0,
        n_positive=n,
        channels=np.arange(n),
        weights=np.asarray(weights, float),
        embedding=np.zeros((n, 2)),
        embedding_method="none",
        perplexity=0.0,
        kl=0.0,
        tsne_iter=0,
        ks=(),
        silhouettes=(),
        k=n,
        silhouette=0.0,
        labels=np.arange(n),
        clusters=clusters,
        status="ok",
    )


def _down(mask: np.ndarray, side: int) -> np.ndarray:
    h = mask.shape[0] // side
    return mask.reshape(side, h, side, h).mean(axis=(1, 3))


def build_world(root: Path, n_train_per_class: int = 1, n_val_per_class: int = 1) -> dict[str, Path]:
    """Write everything the label stages need under ``root``; returns the paths (``index`` lists every image)."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = synthetic.SyntheticConfig(
        **{**SYN, "n_train_per_class": n_train_per_class, "n_val_per_class": n_val_per_class}
    )
    parts = synthetic.generate_dataset(cfg, root / "images")
    parts.save(root / "parts.npz")
    specs = synthetic.classes(cfg)
    classes = [{"label": c.label, "class_folder": c.folder, "class_name": c.name} for c in specs]
    (root / "classes.json").write_text(json.dumps(classes), encoding="utf-8")
    rows = []
    for c in specs:
        stem = f"{c.folder.split('_', 1)[1]}_0"
        rows.append(
            {
                "sample_id": f"val/{c.folder}/{stem}",
                "path": f"val/{c.folder}/{stem}.png",
                "label": c.label,
                "class_name": c.name,
                "pred": c.label,
                "pred_name": c.name,
                "confidence": 0.9,
            }
        )
    selected = pd.DataFrame(rows)
    selected.to_csv(root / "selected.csv", index=False)
    model = build_vgg16(
        len(classes), ModelConfig(weights="none", input_size=128, width=0.0625, head_hidden=8)
    )
    save_checkpoint(root / "model.pt", model, classes)

    rng = np.random.default_rng(0)
    explanations = []
    for r in rows:
        layers = {}
        for name, side in LAYERS.items():
            present = parts.parts_of(r["sample_id"])
            maps = [
                _down(parts.mask(r["sample_id"], p).astype(float), side) + 0.01 * rng.random((side, side))
                for p in present
            ]
            maps.append(rng.random((side, side)))  # a background cluster
            maps.append(rng.random((side, side)))  # a pruned one
            weights = [30.0 + 5 * i for i in range(len(present))] + [10.0, 1.0]
            layers[name] = _layer(name, side, maps, weights, [False] * (len(maps) - 1) + [True])
        explanations.append(ImageExplanation(r["sample_id"], r["label"], r["label"], 1.0, layers))
    extract = root / "extract"
    write_shard(extract, "r000-test-00000", explanations)
    (extract / "manifest.json").write_text(
        json.dumps({"format": "inviz-extract/1", "layers": list(LAYERS)}), encoding="utf-8"
    )
    consolidate(extract, selected["sample_id"])
    index = [
        {
            "sample_id": str(p.relative_to(root / "images").with_suffix("")),
            "path": str(p.relative_to(root / "images")),
            "split": "test" if p.parts[-3] == "val" else "train",
            "label": next(c.label for c in specs if c.folder == p.parts[-2]),
            "class_folder": p.parts[-2],
            "class_name": next(c.name for c in specs if c.folder == p.parts[-2]),
        }
        for p in sorted((root / "images").glob("*/*/*.png"))
    ]
    pd.DataFrame(index).to_csv(root / "index.csv", index=False)
    return {
        "root": root,
        "index": root / "index.csv",
        "images": root / "images",
        "parts": root / "parts.npz",
        "classes": root / "classes.json",
        "selected": root / "selected.csv",
        "model": root / "model.pt",
        "extract": extract,
    }


def write_params(path: Path, game_dir: Path, class_map: Path, **overrides) -> Path:
    """A params file with the demo's label sections and ``overrides`` ({section: {key: value}})."""
    demo = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "demo" / "params.yaml").read_text(encoding="utf-8")
    )
    params = {
        "mlflow": {"enabled": False},
        "data": {"source": "synthetic", "synthetic": dict(SYN)},
        "masks": {**demo["masks"], "figure_maps": 2, "run": {"workers": 1}},
        # the simulator deals the maps itself (the web game's http mode: tests/test_game_simulate.py)
        "labels_simulate": {**demo["labels_simulate"], "mode": "direct", "n_players": 20, "plays_per_map": 4},
        "labels_import": {**demo["labels_import"], "source_dir": str(game_dir), "class_map": str(class_map)},
        "labels_analyze": {**demo["labels_analyze"], "progress": False},
        "narratives": demo["narratives"],
    }
    for section, values in overrides.items():
        params[section] = {**params.get(section, {}), **values}
    path.write_text(yaml.safe_dump(params, sort_keys=False), encoding="utf-8")
    return path


def tiny_global(demo_global: dict, **extra) -> dict:
    """The demo's ``global`` section with TCAV shrunk for the tiny world (4 runs, 4-6 examples).

    Transferred labels are off unless ``extra`` turns them on (``transfer={...}``).
    """
    glob = demo_global
    return {
        **glob,
        "transfer": {**glob.get("transfer", {}), "enabled": False},
        "concepts": {**glob["concepts"], "random_split": "train", "random_pool": 15, "class_images": 5},
        "tcav": {
            **glob["tcav"],
            "layers": ["block5_conv3"],
            "n_runs": 4,
            "min_examples": 4,
            "max_examples": 6,
            "n_random_examples": 4,
            "batch_size": 8,
        },
        **extra,
    }
