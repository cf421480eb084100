"""A tiny finished ``masks`` stage for the game tests: per-layer zips of small PNGs, a manifest,
the class list and a params file; every (map, level) image has its own bytes."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

from inviz.game.manifest import MANIFEST_COLUMNS

CLASSES = ["apple", "bicycle", "castle", "dragon"]
LAYERS = ["block4_conv1", "block5_conv3"]
LEVELS = [2.0, 4.5, 8.0, 13.0, 20.0, 30.0]


def png(cid: int, level: int, side: int = 8) -> bytes:
    img = np.zeros((side, side, 3), np.uint8)
    img[..., 0] = cid % 256
    img[..., 1] = level * 40
    img[0, 0, 2] = cid // 256
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def build_game_world(root: Path, n_images: int = 8, clusters: int = 2, **game) -> dict[str, Path]:
    """Write masks/, masks.csv, classes.json, game_classes.csv and params.yaml under ``root``.

    Images ``img0..`` have class ``i % len(CLASSES)``; each has ``clusters`` maps per layer with
    weights 40, 20, 8, 4 … (cluster 0 heaviest). Cluster ids 1..N in image, layer, cluster order.
    """
    root.mkdir(parents=True, exist_ok=True)
    classes = [{"label": i, "class_folder": f"c{i:02d}_{n}", "class_name": n} for i, n in enumerate(CLASSES)]
    (root / "classes.json").write_text(json.dumps(classes))
    pd.DataFrame(
        {
            "game_id": [1, 2, 3, 4],
            "game_name": ["Apple", "Bike", "Castle", "Dragon"],
            "class_folder": [c["class_folder"] for c in classes],
            "class_name": CLASSES,
        }
    ).to_csv(root / "game_classes.csv", index=False)
    (root / "masks").mkdir(exist_ok=True)
    zips = {
        layer: zipfile.ZipFile(root / "masks" / f"{layer}.zip", "w", zipfile.ZIP_STORED) for layer in LAYERS
    }
    rows, cid = [], 0
    weights = [40.0, 20.0, 8.0, 4.0, 2.0]
    for i in range(n_images):
        label = i % len(CLASSES)
        for li, layer in enumerate(LAYERS):
            for c in range(clusters):
                cid += 1
                for level, q in enumerate(LEVELS):
                    member = f"{cid:06d}/{level}.png"
                    zips[layer].writestr(member, png(cid, level))
                    rows.append(
                        {
                            "cluster_id": cid,
                            "extract_id": f"e{cid}",
                            "image": f"val/{classes[label]['class_folder']}/img{i}",
                            "layer": layer,
                            "layer_index": li,
                            "cluster": c,
                            "label": label,
                            "true_class": CLASSES[label],
                            "pred": label,
                            "pred_name": CLASSES[label],
                            "weight": weights[c],
                            "level": level,
                            "percent": q,
                            "revealed_share": q / 100,
                            "factor": 8.0,
                            "sigma": 12.0,
                            "shard": f"{layer}.zip",
                            "member": member,
                            "file": f"{layer}.zip/{member}",
                        }
                    )
    for z in zips.values():
        z.close()
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(root / "masks.csv", index=False)
    params = {
        "mlflow": {"enabled": False},
        "labels_import": {"source_dir": "export", "class_map": "game_classes.csv", "max_text_length": 40},
        "game": {
            "db_url": "sqlite:///game.db",
            "n_choices": 3,
            "plays_per_map": 2,
            "questionnaire_after": 3,
            "screening": {"enabled": False},
            **game,
        },
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return {
        "root": root,
        "params": root / "params.yaml",
        "manifest": root / "masks.csv",
        "masks": root / "masks",
        "classes": root / "classes.json",
        "class_map": root / "game_classes.csv",
    }


def paths(w: dict[str, Path]) -> dict[str, Path]:
    """The path overrides of Settings.from_params for a game world."""
    return {"manifest": w["manifest"], "masks_dir": w["masks"], "classes": w["classes"]}


class Clock:
    """A clock the tests move (epoch seconds)."""

    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class ThreadedServer:
    """A real uvicorn server for an app, in a thread on a free loopback port (``url``)."""

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the game server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=10)


WHATIF_GRID = 16


def build_whatif_world(root: Path) -> dict[str, Path]:
    """A game world with real images, a tiny checkpoint and masked images that are exactly
    ``cell mask x game image`` (one opacity per 4 x 4 px cell of the 64-px game image), for the
    "what if" panel. ``masks_of[cluster_id][level]`` holds each level's (16, 16) uint8 mask."""
    import torch

    from inviz.game.reveal import game_image
    from inviz.models.checkpoint import save_checkpoint
    from inviz.models.vgg import ModelConfig, build_vgg16

    w = build_game_world(root, n_images=4, clusters=1, what_if=True, what_if_grid=WHATIF_GRID)
    rng = np.random.default_rng(3)
    (root / "images" / "val").mkdir(parents=True, exist_ok=True)
    manifest = pd.read_csv(w["manifest"])
    selected, masks_of = [], {}
    for i, image in enumerate(sorted(manifest["image"].unique())):
        path = f"val/img{i}.png"
        rgb = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        Image.fromarray(rgb).save(root / "images" / path)
        selected.append({"sample_id": image, "path": path})
    pd.DataFrame(selected).to_csv(root / "selected.csv", index=False)
    paths_of = {r["sample_id"]: r["path"] for r in selected}
    zips = {
        layer: zipfile.ZipFile(root / "masks" / f"{layer}.zip", "w", zipfile.ZIP_STORED) for layer in LAYERS
    }
    for cid, g in manifest.groupby("cluster_id"):
        img = np.asarray(Image.open(root / "images" / paths_of[g["image"].iloc[0]]).convert("RGB"))
        full = game_image(img, 32, 64, "bilinear")
        base = rng.random((WHATIF_GRID, WHATIF_GRID))
        masks_of[int(cid)] = {}
        for r in g.itertuples():
            cell = np.where(base >= np.quantile(base, 1 - r.percent / 100), 255, 0).astype(np.uint8)
            soft = np.kron(cell, np.ones((4, 4), np.uint8)).astype(np.float64) / 255
            masked = np.rint(full * soft[..., None]).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(masked).save(buf, format="PNG")
            zips[r.layer].writestr(r.member, buf.getvalue())
            masks_of[int(cid)][int(r.level)] = cell
    for z in zips.values():
        z.close()
    torch.manual_seed(0)
    classes = json.loads(w["classes"].read_text())
    model = build_vgg16(len(classes), ModelConfig(weights="none", input_size=32, width=0.0625, head_hidden=8))
    save_checkpoint(root / "model.safetensors", model, classes)
    params = yaml.safe_load(w["params"].read_text())
    params["masks"] = {"game_size": 64, "image_resample": "bilinear"}
    w["params"].write_text(yaml.safe_dump(params, sort_keys=False))
    return {
        **w,
        "model": root / "model.safetensors",
        "selected": root / "selected.csv",
        "images": root / "images",
        "masks_of": masks_of,
    }


def whatif_paths(w: dict) -> dict:
    """The path overrides of Settings.from_params for a what-if world."""
    return {**paths(w), "model": w["model"], "selected": w["selected"], "images": w["images"]}
