"""Shared fixtures: tiny image folders, a temporary MLflow store, no network."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]

#: test files by their measured time on one worker, longest first (``pytest --durations``, 2026-12-02:
#: 892, 554, 363, 154, 140, 97, 81 and 69 s; the whole suite is about 2,700 s). ``make test`` sends
#: files to its two workers in this order (``--dist loadfile --no-loadscope-reorder``; xdist would
#: otherwise start with the files holding the most tests and leave these to the end), so the long
#: end-to-end modules start first and the workers finish together.
LONGEST_FIRST = (
    "test_pipeline_e2e.py",
    "test_paper_e2e.py",
    "test_own_model_e2e.py",
    "test_distributed.py",
    "test_table2.py",
    "test_survey.py",
    "test_inv_stages.py",
    "test_warmup.py",
)


def pytest_collection_modifyitems(config, items):
    """Run the files of :data:`LONGEST_FIRST` first, in that order; the rest keep collection order."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Tests never touch the network: any outbound connection fails immediately."""

    def guard(*args, **kwargs):
        raise OSError("network access is disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", guard)
    monkeypatch.setattr(socket, "create_connection", guard)


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """A throw-away MLflow sqlite store for this test."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def write_image_folder(
    root: Path, classes: list[str], n_per_split: dict[str, int], size: int = 32, seed: int = 0
) -> Path:
    """Write ``root/<split>/<class>/<i>.png`` with a class-dependent colour plus noise."""
    rng = np.random.default_rng(seed)
    for split, n in n_per_split.items():
        for ci, c in enumerate(classes):
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                base = np.zeros((size, size, 3), np.float32)
                base[..., ci % 3] = 200
                if ci >= 3:
                    base[: size // 2] = 255 - base[: size // 2]
                img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(d / f"{c}_{split}_{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return write_image_folder(tmp_path / "ds", ["a_cls", "b_cls", "c_cls"], {"train": 6, "val": 4})
