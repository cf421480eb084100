"""Benchmark of the Ward + silhouette step (docs/method.md §1.7): why :mod:`inviz.fmaps._ward_numba` exists.

For 2-D points (what t-SNE hands to the clustering) of ``n`` = 32 … 512 points and ``k`` =
``extract.k_min`` … ``extract.k_max``, milliseconds per problem of three ways to get the Ward
partition and the mean silhouette of every ``k``, all on one scipy ``linkage(method="ward")`` tree:

- ``numba``: :func:`inviz.fmaps.clustering.ward_scipy` (what the extraction runs): compiled cuts and
  one pass over the pairs for all ``k``, without the GIL;
- ``numpy``: :func:`~inviz.fmaps.clustering.cut_ward_tree` (union-find in Python) and
  :func:`~inviz.fmaps.clustering.silhouette_from_distances` per ``k`` on one distance matrix;
- ``libraries``: scipy ``cut_tree`` and scikit-learn ``silhouette_score`` per ``k``;

and checks that all three give identical partitions and the same silhouettes (max difference
printed). Wall clock, median of repetitions; noisy on a shared machine. Usage::

    .venv/bin/python experiments/bench_ward.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np


def _numpy_steps(x: np.ndarray, ks: list[int]) -> tuple[dict[int, np.ndarray], list[float]]:
    from scipy.cluster.hierarchy import linkage

    from inviz.fmaps import clustering

    tree = linkage(x, method="ward", metric="euclidean")
    parts = clustering.cut_ward_tree(tree, x.shape[0], ks)
    dist = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    return parts, [clustering.silhouette_from_distances(dist, parts[k]) for k in ks]


def _libraries(x: np.ndarray, ks: list[int]) -> tuple[dict[int, np.ndarray], list[float]]:
    from scipy.cluster.hierarchy import cut_tree, linkage
    from sklearn.metrics import silhouette_score

    from inviz.fmaps.clustering import canonical_labels

    cut = cut_tree(linkage(x, method="ward"), n_clusters=ks).T
    parts = {k: canonical_labels(cut[i]) for i, k in enumerate(ks)}
    return parts, [float(silhouette_score(x, parts[k])) for k in ks]


def _numba(x: np.ndarray, ks: list[int]) -> tuple[dict[int, np.ndarray], list[float]]:
    from inviz.fmaps.clustering import ward_scipy

    res = ward_scipy(x, ks)
    return res.partitions, res.scores


def _ms(fn: Callable, x: np.ndarray, ks: list[int], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(x, ks)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from inviz.fmaps.explain import ExtractConfig

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="32,64,128,256,512", help="point counts n")
    p.add_argument("--repeat", type=int, default=7, help="timed repetitions (median reported)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cfg = ExtractConfig()
    ks = list(range(cfg.k_min, cfg.k_max + 1))
    rng = np.random.default_rng(args.seed)
    _numba(rng.normal(size=(16, 2)), ks)  # compile or load from the numba cache (untimed)
    ways = {"numba": _numba, "numpy": _numpy_steps, "libraries": _libraries}
    print(f"Ward + silhouette for k = {ks[0]}..{ks[-1]}, ms per problem (median of {args.repeat})")
    print(f"{'n':>6}" + "".join(f"{w:>12}" for w in ways) + f"{'speed-up':>10}  same partitions, max |ds|")
    for n in (int(v) for v in args.sizes.split(",")):
        x = rng.normal(size=(n, 2)) * 10
        ms = {w: _ms(fn, x, ks, args.repeat) for w, fn in ways.items()}
        out = {w: fn(x, ks) for w, fn in ways.items()}
        ref_parts, ref_scores = out["numba"]
        same = all(np.array_equal(parts[k], ref_parts[k]) for parts, _ in out.values() for k in ks)
        diff = max(abs(a - b) for _, scores in out.values() for a, b in zip(scores, ref_scores, strict=True))
        row = "".join(f"{ms[w]:>12.2f}" for w in ways)
        print(f"{n:>6}{row}{ms['numpy'] / ms['numba']:>9.1f}x  {same}, {diff:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
