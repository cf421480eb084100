"""A reduced *paper profile* project for end-to-end tests: a fake ``imagenette2-320`` folder and params.

The fake dataset has the real layout (``train/`` and ``val/`` with the ten WNID folders) filled with
synthetic JPEGs at 320 px whose colour and stripe pattern depend on the class (so one epoch learns
something), plus one corrupt and one zero-byte file, as a user's copy might have.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from inviz.data.imagenette import IMAGENETTE_CLASSES

#: params.yaml values replaced to keep the paper profile small (dotted keys); the rest is the paper's
PAPER_OVERRIDES = {
    "model.input_size": 64,
    "train.batch_size": 16,
    "train.augment.enabled": False,
    "train.run.num_workers": 0,
    "train.run.accelerator": "cpu",
    "select.per_class": 1,
    "select.on_shortfall": "warn",
    "select.run.batch_size": 32,
    "extract.layers": ["block4_conv3", "block5_conv3"],
    "extract.run.batch_size": 4,
    "extract.run.num_workers": 0,
    "extract.run.device": "cpu",
    "masks.run.workers": 1,
    "figures.dpi": 50,
    "figures.run.workers": 1,
    "survey.lime_samples": 30,
    "survey.shap_samples": 4,
    "survey.shap_background": 4,
    "survey.dpi": 50,
    "global.tcav.n_runs": 3,
    "global.concepts.class_images": 4,
    "global.concepts.random_pool": 12,
    "labels_analyze.sbert.batch_size": 16,
}


def failure(cmd: list[str] | str, proc) -> str:
    """An assertion message for a failed command: exit code and the error (stderr) first, then stdout's end.

    DVC and the stages write their error and traceback to stderr; CI logs may keep only a message's
    first lines, so those come first.
    """
    shown = cmd if isinstance(cmd, str) else " ".join(cmd)
    return (
        f"{shown} failed with exit code {proc.returncode}\n--- stderr (end) ---\n{proc.stderr[-5000:]}"
        f"\n--- stdout (end) ---\n{proc.stdout[-2500:]}"
    )


def pipeline_env(repo: Path) -> dict[str, str]:
    """Environment for DVC runs in ``repo``: this venv's dvc/inviz, a store in ``repo``, a git identity."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "COLUMNS": "200",
    }


def set_key(params: dict, dotted: str, value) -> None:
    """Set ``params[a][b][c] = value`` for ``dotted = "a.b.c"``; a numeric part indexes a list."""
    node = params
    *parents, last = dotted.split(".")
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def _class_image(ci: int, rng: np.random.Generator, size: int) -> Image.Image:
    """A 320-px image whose hue and stripe direction/frequency encode class ``ci``."""
    hue = np.array([(ci * 37) % 256, (ci * 91 + 60) % 256, (ci * 53 + 120) % 256], np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    coord = xx if ci % 2 else yy
    stripes = (np.sin(2 * np.pi * (2 + ci // 2) * coord) > 0).astype(np.float32)[..., None]
    img = hue * (0.5 + 0.5 * stripes) + rng.normal(0, 12, (size, size, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write_fake_imagenette(
    root: Path, n_train: int = 6, n_val: int = 4, size: int = 320, seed: int = 0
) -> Path:
    """Write ``root/imagenette2-320/{train,val}/<wnid>/*.JPEG`` plus one corrupt and one empty file.

    Returns
    -------
    Path
        The ``imagenette2-320`` folder (what ``data.imagenette.local_path`` points at).
    """
    rng = np.random.default_rng(seed)
    top = root / "imagenette2-320"
    for split, n in (("train", n_train), ("val", n_val)):
        for ci, wnid in enumerate(IMAGENETTE_CLASSES):
            d = top / split / wnid
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _class_image(ci, rng, size).save(d / f"{wnid}_{i:05d}.JPEG", quality=90)
    first = IMAGENETTE_CLASSES and next(iter(IMAGENETTE_CLASSES))
    (top / "train" / first / "corrupt_00000.JPEG").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (top / "train" / first / "empty_00000.JPEG").write_bytes(b"")
    return top


def paper_params(root_params: Path, local_path: Path, weights: str, overrides: dict | None = None) -> dict:
    """The project's ``params.yaml`` with the reduced settings, ``local_path`` and ``weights`` set."""
    params = copy.deepcopy(yaml.safe_load(root_params.read_text()))
    for key, value in {**PAPER_OVERRIDES, **(overrides or {})}.items():
        set_key(params, key, value)
    for phase in params["train"]["phases"]:
        phase["max_epochs"] = 1
    params["data"]["imagenette"]["local_path"] = str(local_path)
    params["model"]["weights"] = weights
    return params
