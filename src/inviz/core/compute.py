"""Where and how torch computes: the device, pinned float32 numerics, thread-independent CPU algebra.

- :func:`resolve_device` — a ``run.device`` setting (``auto`` | ``cpu`` | ``cuda`` | ``cuda:1``) as a
  torch device.

The INV analysis amplifies float rounding: t-SNE turns a relative difference of 1e-6 in the kept
maps into another embedding, and Ward then picks another k. So the arithmetic is pinned wherever a
library would otherwise choose it for us (docs/method.md §1, "Beyond the paper", run settings):

- :func:`exact_float32` — for the whole analysis (network pass, PCA, t-SNE, cluster maps) and the
  TCAV validation: full IEEE float32 for convolutions and matrix products on every backend (no
  TF32 on cuDNN / cuBLAS / oneDNN, whatever ``torch.set_float32_matmul_precision("high")`` or the
  TF32 defaults of the installed torch say), cuDNN in deterministic mode without auto-tuning. The
  caller's settings are restored on exit.
- :func:`one_thread` — for the CPU linear algebra of PCA and the torch t-SNE (MKL's Gram products
  and eigen-solvers give different rounding with 1 and 2 threads, measured): one thread, so the
  result does not depend on how many processes share the machine (Lightning and ``torchrun``
  give each process ``cores / processes`` threads).

Lightning's ``Trainer(deterministic=...)`` (``extract.run.deterministic``) adds
``torch.use_deterministic_algorithms`` for the extraction run; see
:func:`inviz.fmaps.lightning.run_extraction`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

#: the TF32-capable float32 back-ends of torch (new ``fp32_precision`` API, torch >= 2.9)
_PRECISION_FLAGS = (
    ("cuda", "matmul"),
    ("cudnn", "conv"),
    ("cudnn", "rnn"),
    ("mkldnn", "matmul"),
    ("mkldnn", "conv"),
    ("mkldnn", "rnn"),
)


def resolve_device(device: str) -> torch.device:
    """Resolve a ``run.device`` setting to a torch device.

    Parameters
    ----------
    device : ``auto`` (``cuda`` when available, else ``cpu``) or a torch device string.

    Returns
    -------
    torch.device
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _flag(backend: str, op: str) -> object:
    return getattr(getattr(torch.backends, backend), op)


@contextlib.contextmanager
def exact_float32() -> Iterator[None]:
    """Run the block with full float32 arithmetic and deterministic cuDNN kernels.

    Sets ``fp32_precision = "ieee"`` on cuBLAS, cuDNN and oneDNN (so TF32 and bf16 emulation
    are off even after ``torch.set_float32_matmul_precision("high")``), and
    ``cudnn.deterministic = True``, ``cudnn.benchmark = False``. Restores every flag on exit.

    Yields
    ------
    None
    """
    saved = {key: _flag(*key).fp32_precision for key in _PRECISION_FLAGS}
    saved_matmul = torch.get_float32_matmul_precision()
    det, bench = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        torch.set_float32_matmul_precision("highest")
        for key in _PRECISION_FLAGS:
            _flag(*key).fp32_precision = "ieee"
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.set_float32_matmul_precision(saved_matmul)
        for key, value in saved.items():
            _flag(*key).fp32_precision = value
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = det, bench


@contextlib.contextmanager
def one_thread(device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block's torch CPU operations on one thread (a no-op for CUDA work).

    Parameters
    ----------
    device : where the block computes; only ``cpu`` changes the thread count.

    Yields
    ------
    None
    """
    if torch.device(device).type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
