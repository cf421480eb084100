"""Compile the numba kernels of the feature-map analysis once, at install time.

The CPU analysis (guided weights and min-max scaling, t-SNE affinities and descent, Ward and its
silhouettes) runs numba kernels compiled with ``cache=True``: the first call on a machine compiles
them (~25 s on a 2-core CPU) and stores the machine code next to their source files; every later
process loads it. ``make install`` runs this module so that the first ``inviz extract`` (and
``make demo``) does not pay for the compilation. It explains two random images with a tiny random
VGG-16 through :func:`inviz.fmaps.explain.explain`, i.e. the same calls, types and kernels as the
``extract`` stage. Usage::

    python -m inviz.fmaps.warmup
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time

log = logging.getLogger(__name__)

#: Layers of the tiny VGG explained by the warm-up: many maps (block3) and few (block5).
LAYERS = ("block3_conv1", "block5_conv3")


def warm_up(seed: int = 0) -> float:
    """Explain two random images with a tiny random VGG-16 on the CPU; return the seconds it took.

    Parameters
    ----------
    seed : seeds the network's weights and the images.
    """
    import torch

    from inviz.fmaps.explain import ExtractConfig, explain
    from inviz.models.vgg import ModelConfig, build_vgg16

    start = time.perf_counter()
    torch.manual_seed(seed)
    model = build_vgg16(4, ModelConfig(weights="none", input_size=64, width=0.25, head_hidden=16)).eval()
    cfg = ExtractConfig()
    tsne, run = dataclasses.replace(cfg.tsne, backend="numba"), dataclasses.replace(cfg.run, batch_size=2)
    cfg = dataclasses.replace(cfg, tsne=tsne, run=run)
    explain(model, torch.randn(2, 3, 64, 64), LAYERS, cfg)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    """Command line: compile (or load) the kernels and say how long it took."""
    ap = argparse.ArgumentParser(prog="python -m inviz.fmaps.warmup", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="seeds the random network and images")
    args = ap.parse_args(argv)
    seconds = warm_up(args.seed)
    print(f"numba kernels of the feature-map analysis ready ({seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
