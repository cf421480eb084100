"""Benchmark: the fast INV extraction path against the scikit-learn ``reference`` recipe.

Same model (random-init full-width VGG-16, ``build_vgg16(10, ModelConfig(weights="none", input_size=size))``),
same images (real photos from ``skimage.data`` resized to the input size), same 9 layers
(block3_conv1 … block5_conv3), same kept maps. Prints

- per-image seconds of each path and of each step (forward+backward, weights, PCA, t-SNE,
  clustering, maps), the speedup, and the ratio to the bare forward+backward pass;
- the numba first-call (JIT/cache-load) cost, measured separately before any timing;
- agreement of the two paths: chosen k per image and layer, adjusted Rand index of the cluster
  assignments (same maps), Table 1 columns and their relative differences;
- recovery of known groups on structured synthetic maps (blobs at distinct positions): chosen k
  and ARI against the ground truth, for every path (t-SNE backend + clustering implementation).

The ``reference`` path is the authors' recipe: ``tsne.backend: reference`` (scikit-learn PCA and
Barnes-Hut t-SNE) with ``clustering: sklearn`` (``AgglomerativeClustering`` refitted per k); the
fast paths use the ``numba`` / ``torch`` backend with ``clustering: scipy`` (one Ward tree).

The machine may be shared: timings are wall-clock medians over ``--repeat`` runs, alternating
the paths, and can be noisy. Usage::

    .venv/bin/python experiments/bench_extract.py            # 4 images, 256 px
    .venv/bin/python experiments/bench_extract.py --quick    # 2 images, 1 repeat
    .venv/bin/python experiments/bench_extract.py --images 8 --repeat 3 --torch
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

PHOTOS = (
    "chelsea",
    "coffee",
    "astronaut",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
)


def photos(n: int, size: int) -> torch.Tensor:
    """``n`` skimage photos resized (squashed) to ``size``, ImageNet-normalised, shape (n, 3, size, size)."""
    import skimage.data
    from PIL import Image

    from inviz.data.datamodule import eval_transform

    tf = eval_transform(size, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    out = []
    for i in range(n):
        arr = getattr(skimage.data, PHOTOS[i % len(PHOTOS)])()
        out.append(tf(Image.fromarray(arr).convert("RGB")))
    return torch.stack(out)


def synthetic_maps(
    n_groups: int, per_group: int, side: int, noise: float, seed: int
) -> tuple[torch.Tensor, np.ndarray]:
    """Maps with known groups: a Gaussian blob at a group-specific position (evenly spaced on a
    circle), jittered, with a random amplitude, plus Gaussian noise of sd ``noise``, rectified."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    angles = 2 * np.pi * np.arange(n_groups) / n_groups + rng.uniform(0, 2 * np.pi)
    centres = side / 2 + 0.3 * side * np.stack([np.sin(angles), np.cos(angles)], 1)
    maps, labels = [], []
    for g in range(n_groups):
        for _ in range(per_group):
            cy, cx = centres[g] + rng.normal(0, 0.05 * side, 2)
            amp = rng.uniform(0.5, 2.0)
            blob = amp * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.1 * side) ** 2))
            maps.append(np.maximum(blob + rng.normal(0, noise, (side, side)), 0))
            labels.append(g)
    return torch.tensor(np.array(maps), dtype=torch.float32), np.array(labels)


def run_path(
    model: torch.nn.Module, images: torch.Tensor, cfg: Any
) -> tuple[list[Any], dict[str, float], float]:
    from inviz.fmaps.explain import explain

    timings: dict[str, float] = {}
    start = time.perf_counter()
    out = explain(model, images, cfg=cfg, timings=timings)
    return out, timings, time.perf_counter() - start


def agreement(ref: list[Any], fast: list[Any]) -> dict[str, Any]:
    from sklearn.metrics import adjusted_rand_score

    same_k, aris, n = 0, [], 0
    per_layer: dict[str, list[float]] = {}
    for a, b in zip(ref, fast, strict=True):
        for name, la in a.layers.items():
            lb = b.layers[name]
            assert np.array_equal(la.channels, lb.channels), "the two paths must see the same kept maps"
            n += 1
            same_k += int(la.k == lb.k)
            if la.n_kept >= 2:
                ari = adjusted_rand_score(la.labels, lb.labels)
                aris.append(ari)
                per_layer.setdefault(name, []).append(ari)
    return {
        "n": n,
        "same_k": same_k,
        "ari_mean": float(np.mean(aris)) if aris else float("nan"),
        "ari_median": float(np.median(aris)) if aris else float("nan"),
        "ari_per_layer": {k: float(np.mean(v)) for k, v in per_layer.items()},
    }


def table1_of(expls: list[Any], layers: tuple[str, ...]) -> Any:
    from inviz.fmaps.shards import to_tables
    from inviz.fmaps.table1 import table1

    _, layer_stats, _ = to_tables(expls)
    return table1(layer_stats, layers)


def synthetic_recovery(paths: dict[str, Any], seeds: int = 3) -> list[dict[str, Any]]:
    """Known groups (3..8 blobs, 16..64 px, clean to noisy) through each path's t-SNE backend + Ward/silhouette."""
    from sklearn.metrics import adjusted_rand_score

    from inviz.fmaps.clustering import WardSilhouette
    from inviz.fmaps.embedding import embed
    from inviz.fmaps.pca import minmax_rows

    cases = [
        (3, 40, 32, 0.1),
        (4, 60, 16, 0.3),
        (5, 50, 64, 0.2),
        (6, 40, 32, 0.4),
        (8, 30, 16, 0.2),
        (5, 80, 32, 0.6),
    ]
    rows = []
    for name, cfg in paths.items():
        for n_groups, per_group, side, noise in cases:
            for seed in range(seeds):
                maps, truth = synthetic_maps(n_groups, per_group, side, noise, seed)
                x = minmax_rows(maps.flatten(1))
                start = time.perf_counter()
                emb = embed([x], cfg.tsne, cfg.pca_components, cfg.seed + seed)[0]
                est = WardSilhouette(cfg.k_min, cfg.k_max, implementation=cfg.clustering).fit(emb.points)
                rows.append(
                    {
                        "path": name,
                        "groups": n_groups,
                        "n": len(truth),
                        "side": side,
                        "noise": noise,
                        "seed": seed,
                        "k": est.n_clusters_,
                        "ari": adjusted_rand_score(truth, est.labels_),
                        "seconds": time.perf_counter() - start,
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=4, help="number of photos (default 4)")
    p.add_argument("--size", type=int, default=256, help="input size (paper: 256)")
    p.add_argument("--repeat", type=int, default=2, help="timed repetitions of each path (median reported)")
    p.add_argument("--quick", action="store_true", help="2 images, 1 repetition, fewer synthetic cases")
    p.add_argument(
        "--torch", action="store_true", help="also time the batched torch t-SNE backend (on this device)"
    )
    p.add_argument("--threads", type=int, default=0, help="CPU threads for every library (0: their defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument(
        "--self-check",
        action="store_true",
        help="also run the reference with another seed: how far the reference is from itself",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.repeat = min(args.images, 2), 1
    import numba

    if args.threads:  # torch, numba and the BLAS/OpenMP pools of numpy/scipy/scikit-learn
        import scipy.cluster.hierarchy  # noqa: F401  (load every native library before limiting it)
        import scipy.linalg  # noqa: F401
        import sklearn.cluster  # noqa: F401
        import sklearn.decomposition  # noqa: F401
        import sklearn.manifold  # noqa: F401
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        numba.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    from inviz.fmaps.explain import PAPER_LAYERS, ExtractConfig
    from inviz.fmaps.gradients import LayerCapture
    from inviz.models.vgg import ModelConfig, build_vgg16

    torch.manual_seed(args.seed)
    model = build_vgg16(10, ModelConfig(weights="none", input_size=args.size)).eval()
    images = photos(args.images, args.size)
    base = ExtractConfig(run={"batch_size": args.batch_size}, seed=args.seed)
    cfg_fast = base.replace(tsne={"backend": "numba"}, clustering="scipy")
    cfg_ref = base.replace(tsne={"backend": "reference"}, clustering="sklearn")
    print(
        f"VGG-16 (random init), {args.size} px, {args.images} photo(s), 9 layers; torch threads "
        f"{torch.get_num_threads()}, numba threads {numba.get_num_threads()}; batch {args.batch_size}"
    )
    print("NOTE: wall-clock on a possibly shared machine; medians over repetitions, still noisy.\n")

    # numba first call: JIT compile, or load from the on-disk cache (cache=True), on a tiny problem
    from inviz.fmaps import _tsne_numba
    from inviz.fmaps.embedding import embed

    start = time.perf_counter()
    embed([torch.rand(6, 16)], cfg_fast.tsne, 50, backend="numba")
    jit = time.perf_counter() - start
    how = (
        "loaded from the on-disk cache"
        if _tsne_numba.tsne_many.stats.cache_hits
        else "compiled (now cached on disk)"
    )
    print(f"numba first call: {jit:.2f} s, {how}; not included below")
    run_path(model, images[:1], cfg_fast)  # warm-up of torch and the rest (untimed)

    # bare forward + backward (the floor)
    fb = []
    for _ in range(max(args.repeat, 2)):
        with LayerCapture(model, PAPER_LAYERS) as cap:
            start = time.perf_counter()
            for i in range(0, args.images, args.batch_size):
                cap.run(images[i : i + args.batch_size])
            fb.append((time.perf_counter() - start) / args.images)
    fwd_bwd = statistics.median(fb)

    paths = {"reference": cfg_ref, "fast": cfg_fast}
    if args.torch:
        paths["torch"] = base.replace(tsne={"backend": "torch"}, clustering="scipy")
    if args.self_check:  # calibration: the reference against itself with another seed
        paths["reference_seed2"] = cfg_ref.replace(seed=args.seed + 1)
    results: dict[str, list[Any]] = {}
    times: dict[str, list[float]] = {k: [] for k in paths}
    steps: dict[str, list[dict[str, float]]] = {k: [] for k in paths}
    for _ in range(args.repeat):
        for name, cfg in paths.items():  # alternate the paths so load changes hit both
            out, tm, total = run_path(model, images, cfg)
            results[name] = out
            times[name].append(total / args.images)
            steps[name].append({k: v / args.images for k, v in tm.items()})

    keys = ["forward_backward", "weights", "pca", "tsne", "clustering", "maps"]
    print(f"\nper-image seconds (median of {args.repeat}):")
    print(f"{'path':<10}" + "".join(f"{k:>17}" for k in keys) + f"{'total':>10}")
    med = {}
    for name in paths:
        med[name] = statistics.median(times[name])
        cells = [statistics.median(s.get(k, 0.0) for s in steps[name]) for k in keys]
        print(f"{name:<10}" + "".join(f"{c:>17.3f}" for c in cells) + f"{med[name]:>10.3f}")
    print(f"\nbare forward+backward: {fwd_bwd:.3f} s/image")
    for name in paths:
        if name != "reference":
            print(
                f"{name}: speedup vs reference {med['reference'] / med[name]:.1f}x; "
                f"ratio to forward+backward {med[name] / fwd_bwd:.1f}x"
            )
    print(f"reference: ratio to forward+backward {med['reference'] / fwd_bwd:.1f}x")
    print(
        "non-network part (total minus forward_backward) per image: "
        + ", ".join(
            f"{name} {med[name] - statistics.median(s.get('forward_backward', 0.0) for s in steps[name]):.3f} s"
            for name in paths
        )
    )

    kept = [le.n_kept for ex in results["fast"] for le in ex.layers.values()]
    print(f"\nkept maps per image: {sum(kept) / args.images:.0f} (per layer {min(kept)}..{max(kept)})")
    for name in paths:
        if name == "reference":
            continue
        ag = agreement(results["reference"], results[name])
        print(
            f"\nagreement reference vs {name} over {ag['n']} image-layers: same k {ag['same_k']}/{ag['n']}, "
            f"ARI mean {ag['ari_mean']:.2f} (median {ag['ari_median']:.2f})"
        )
        print("  ARI per layer: " + ", ".join(f"{k}: {v:.2f}" for k, v in ag["ari_per_layer"].items()))
        t_ref = table1_of(results["reference"], PAPER_LAYERS)
        t_new = table1_of(results[name], PAPER_LAYERS)
        print("  Table 1 (reference | " + name + " | relative diff):")
        print(f"  {'layer':<14}{'clusters':>22}{'fmaps %':>24}{'weight %':>24}")
        rel_all = []
        for layer in PAPER_LAYERS:
            cells = []
            for col in ("leftover_clusters", "leftover_fmaps", "leftover_weight"):
                a, b = t_ref.loc[layer, col], t_new.loc[layer, col]
                rel = (b - a) / a * 100 if a else float("nan")
                rel_all.append((col, rel))
                cells.append(f"{a:7.2f} |{b:7.2f} |{rel:+5.0f}%")
            print(f"  {layer:<14}" + "".join(f"{c:>24}" for c in cells))
        for col in ("leftover_clusters", "leftover_fmaps", "leftover_weight"):
            a, b = t_ref[col].mean(), t_new[col].mean()
            print(f"  mean over layers {col}: reference {a:.2f}, {name} {b:.2f} ({(b - a) / a * 100:+.1f}%)")

    print("\nrecovery of known groups on synthetic maps (ARI vs ground truth, chosen k vs true k):")
    recovery = {name: cfg for name, cfg in paths.items() if name in ("reference", "fast", "torch")}
    rows = synthetic_recovery(recovery, seeds=1 if args.quick else 3)
    for name in recovery:
        part = [r for r in rows if r["path"] == name]
        right_k = sum(r["k"] == r["groups"] for r in part)
        by_noise = {}
        for r in part:
            by_noise.setdefault(r["noise"], []).append(r["ari"])
        print(
            f"  {name:<10} ARI mean {np.mean([r['ari'] for r in part]):.2f} (min {min(r['ari'] for r in part):.2f}), "
            f"right k {right_k}/{len(part)}, {np.mean([r['seconds'] for r in part]):.2f} s/problem; ARI by noise "
            + ", ".join(f"{k}: {np.mean(v):.2f}" for k, v in sorted(by_noise.items()))
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
