"""Benchmark of the INV extraction: CPU cost against the bare network pass, batch independence, GPU use.

Model: a random-init full-width VGG-16 (``build_vgg16(10, ModelConfig(weights="none"))``) at
256 px, the 9 layers block3_conv1 … block5_conv3, real photos from ``skimage.data``. Prints

1. **CPU ratio to the bare forward+backward** (goal <= 1.3x): seconds per image of the network pass
   alone (the same padded batches, one forward and one backward) and of the whole extraction with
   the background clustering thread (``extract.run.overlap``) and without it, measured back to
   back in this process, alternating; each run's ratio is taken against the bare passes right
   before and after it (the machine's speed drifts), median and range over ``--repeat``;
   per-step seconds; and the analysis timed on one core, with the share of it the overlap hides.
2. **Batch independence**: the same images explained with every batch size of ``--batch-sizes``
   and in another order: how many image-layers give bit-identical records (k, labels, embedding,
   weights, cluster maps).
3. **GPU** (when CUDA is available): images per second of the network pass alone and of the whole
   extraction on the GPU (``tsne.backend: auto`` = batched torch t-SNE), and the share of the wall
   time the GPU is busy (kernel time from ``torch.profiler``).
4. With ``--reference``: agreement with the scikit-learn ``reference`` recipe (``tsne.backend:
   reference`` + ``clustering: sklearn``): speed-up, chosen k, adjusted Rand index, Table 1, and
   recovery of known groups on synthetic maps.

Timings are wall clock on a possibly shared machine: ratios are measured back to back in one
process, but stay noisy under load. Usage::

    .venv/bin/python experiments/bench_extract.py                   # 24 photos, batch 8 (3 batches)
    .venv/bin/python experiments/bench_extract.py --quick           # 8 photos, batch 4, 1 repetition
    .venv/bin/python experiments/bench_extract.py --gpu-images 256  # on a CUDA machine
    .venv/bin/python experiments/bench_extract.py --reference --images 4
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

    from inviz.data.loading import eval_transform

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
    model: torch.nn.Module, images: torch.Tensor, cfg: Any, ids: list[str] | None = None
) -> tuple[list[Any], dict[str, float], float]:
    """Explain ``images`` with ``cfg``: (records, seconds per step, wall seconds)."""
    from inviz.fmaps.explain import explain

    timings: dict[str, float] = {}
    start = time.perf_counter()
    out = explain(model, images, cfg=cfg, sample_ids=ids, timings=timings)
    if next(model.parameters()).device.type == "cuda":
        torch.cuda.synchronize()
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


def _same_layer(a: Any, b: Any) -> bool:
    """Two records of one image and layer are bit-identical."""
    if (a.k, a.ks, a.silhouettes, a.kl, a.tsne_iter) != (b.k, b.ks, b.silhouettes, b.kl, b.tsne_iter):
        return False
    arrays = ("channels", "weights", "embedding", "labels")
    if not all(np.array_equal(getattr(a, f), getattr(b, f)) for f in arrays):
        return False
    return all(
        np.array_equal(x.raw_map, y.raw_map) and np.array_equal(x.map, y.map)
        for x, y in zip(a.clusters, b.clusters, strict=True)
    )


def identical(a: list[Any], b: list[Any]) -> tuple[int, int]:
    """(bit-identical image-layers, all image-layers) of two runs over the same images (any order)."""
    by_id = {ex.sample_id: ex for ex in b}
    pairs = [(la, by_id[ex.sample_id].layers[name]) for ex in a for name, la in ex.layers.items()]
    return sum(_same_layer(x, y) for x, y in pairs), len(pairs)


def bare_pass(model: torch.nn.Module, images: torch.Tensor, batch: int) -> float:
    """Seconds per image of the network pass alone, on the batches the extraction uses (padded)."""
    from inviz.core.compute import exact_float32
    from inviz.fmaps.explain import MIN_NETWORK_BATCH, PAPER_LAYERS
    from inviz.fmaps.gradients import LayerCapture

    device = next(model.parameters()).device
    size = max(batch, MIN_NETWORK_BATCH)
    with exact_float32(), LayerCapture(model, PAPER_LAYERS) as cap:
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            x = images[i : i + batch].to(device)
            if len(x) < size:
                x = torch.cat([x, x[-1:].expand(size - len(x), *x.shape[1:])])
            cap.run(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / len(images)


def cpu_ratio(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> None:
    """Section 1: the extraction against the bare network pass on the CPU."""
    from inviz.fmaps.explain import ExtractConfig

    cfg = ExtractConfig(run={"batch_size": args.batch_size, "device": "cpu"}, seed=args.seed)
    paths = {"overlap": cfg, "serial": cfg.replace(run={"overlap": False})}
    run_path(model, images[: args.batch_size], cfg)  # warm-up (untimed)
    fb = [bare_pass(model, images, args.batch_size)]
    times: dict[str, list[float]] = {k: [] for k in paths}
    ratios: dict[str, list[float]] = {k: [] for k in paths}
    steps: dict[str, list[dict[str, float]]] = {k: [] for k in paths}
    for _ in range(args.repeat):  # alternate, so that load changes hit every path
        for name, c in paths.items():
            _, tm, total = run_path(model, images, c)
            fb.append(bare_pass(model, images, args.batch_size))
            times[name].append(total / len(images))
            # paired: against the bare passes right before and after this run (the machine drifts)
            ratios[name].append(times[name][-1] / ((fb[-2] + fb[-1]) / 2))
            steps[name].append({k: v / len(images) for k, v in tm.items()})
    floor = statistics.median(fb)
    n_batches = -(-len(images) // args.batch_size)
    print(
        f"\n1. CPU: seconds per image ({len(images)} photos, {n_batches} batches of {args.batch_size}; "
        f"median of {args.repeat})"
    )
    keys = ["forward_backward", "weights", "pca", "tsne", "clustering", "maps", "wait", "tail"]
    print(f"   {'path':<9}{'total':>8}{'ratio':>8}{'range':>13}" + "".join(f"{k:>17}" for k in keys))
    print(
        f"   {'network':<9}{floor:>8.3f}{1.0:>8.2f}{'':>13}   (bare forward+backward; "
        f"{min(fb):.3f}-{max(fb):.3f} over {len(fb)} passes)"
    )
    for name in paths:
        med = statistics.median(times[name])
        spread = f"{min(ratios[name]):.2f}-{max(ratios[name]):.2f}"
        cells = [statistics.median(s.get(k, 0.0) for s in steps[name]) for k in keys]
        print(
            f"   {name:<9}{med:>8.3f}{statistics.median(ratios[name]):>8.2f}{spread:>13}"
            + "".join(f"{c:>17.3f}" for c in cells)
        )
    ratio = statistics.median(ratios["overlap"])
    print(
        f"   ratio to the bare forward+backward (median of the runs' ratios to the bare passes right "
        f"before and after them): {ratio:.2f}x (goal <= 1.3x: {'met' if ratio <= 1.3 else 'NOT met'})"
    )
    tail = statistics.median(s.get("tail", 0.0) for s in steps["overlap"])  # per image, over all images
    steady = ratio - tail / floor
    print(
        f"   without the last batch's analysis (tail, {tail * len(images):.2f} s once per run, "
        f"nothing left to overlap it with): {steady:.2f}x; the tail adds {tail / floor:.2f}x at "
        f"{len(images)} images and shrinks as 1/images"
    )
    print(
        "   (step seconds are summed per thread: with overlap, t-SNE, clustering and maps run in the "
        "background thread while the next batch goes through the network; wait: the main thread "
        "waiting for the previous batch's analysis after its network pass)"
    )
    added = statistics.median(times["overlap"]) - tail - floor
    analysis_cost(model, images, paths["serial"], floor, added)


def analysis_cost(
    model: torch.nn.Module, images: torch.Tensor, cfg: Any, bare: float, added: float
) -> dict[str, float]:
    """The analysis timed on one core, and how much of it the overlap hides.

    The serial path runs with one numba thread (torch's small matrices in PCA and the weights use
    one core in practice), so its step seconds are the analysis' CPU seconds. ``added`` is what the
    overlapped extraction adds to the bare pass before the last batch's tail, per image; the rest
    of the analysis ran in cores the network pass left idle.
    """
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        _, tm, _ = run_path(model, images, cfg)
    finally:
        numba.set_num_threads(threads)
    steps = {k: tm.get(k, 0.0) / len(images) for k in ("weights", "pca", "tsne", "clustering", "maps")}
    analysis = sum(steps.values())
    print(
        f"   analysis on one core: {analysis:.3f} s per image ("
        + ", ".join(f"{k} {v:.3f}" for k, v in steps.items())
        + f"); the overlap adds {added:.3f} s per image to the bare pass ({bare:.3f}) before the tail: "
        f"it hides {100 * (1 - added / analysis):.0f}% of the analysis in cores the network pass leaves idle"
    )
    return {"analysis": analysis, **steps}


def batch_independence(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> None:
    """Section 2: the same images with several batch sizes and in another order."""
    from inviz.fmaps.explain import ExtractConfig

    n = min(len(images), args.independence_images)
    x, ids = images[:n], [f"img{i}" for i in range(n)]
    sizes = [int(v) for v in args.batch_sizes.split(",")]
    runs = {}
    for b in sizes:
        cfg = ExtractConfig(run={"batch_size": b, "device": "cpu"}, seed=args.seed)
        runs[f"batch {b}"] = run_path(model, x, cfg, ids)[0]
    order = list(range(n))[::-1]
    cfg = ExtractConfig(run={"batch_size": sizes[-1], "device": "cpu"}, seed=args.seed)
    runs[f"batch {sizes[-1]}, reversed"] = run_path(model, x[order], cfg, [ids[i] for i in order])[0]
    names = list(runs)
    print(f"\n2. Batch independence ({n} photos, 9 layers): bit-identical image-layers")
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            same, total = identical(runs[a], runs[b])
            print(f"   {a:<22} vs {b:<22} {same:>3}/{total}  {'identical' if same == total else 'DIFFER'}")


def gpu_throughput(model: torch.nn.Module, args: argparse.Namespace) -> None:
    """Section 3: images per second and GPU busy share on CUDA."""
    from inviz.fmaps.explain import ExtractConfig

    if not torch.cuda.is_available():
        print("\n3. GPU: no CUDA device here; run this script on a GPU machine for images/s and busy share")
        return
    device = torch.device("cuda")
    gpu_model = model.to(device)
    images = photos(args.gpu_images, args.size)
    cfg = ExtractConfig(run={"batch_size": args.gpu_batch_size, "device": "cuda"}, seed=args.seed)
    run_path(gpu_model, images[: args.gpu_batch_size], cfg)  # warm-up: cuDNN, kernels
    fb = bare_pass(gpu_model, images, args.gpu_batch_size)
    out, tm, total = run_path(gpu_model, images, cfg)
    torch.cuda.synchronize()
    per = total / len(images)
    print(
        f"\n3. GPU ({torch.cuda.get_device_name(device)}, {len(images)} photos, batch {args.gpu_batch_size}, "
        f"t-SNE backend torch)"
    )
    print(f"   network pass alone: {1 / fb:8.1f} images/s")
    print(f"   whole extraction:   {1 / per:8.1f} images/s ({per / fb:.2f}x the network pass)")
    print("   per-image seconds: " + ", ".join(f"{k} {v / len(images):.4f}" for k, v in tm.items()))
    try:
        from torch.profiler import ProfilerActivity, profile

        sub = images[: min(len(images), 4 * args.gpu_batch_size)]
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            run_path(gpu_model, sub, cfg)
            torch.cuda.synchronize()
            wall = time.perf_counter() - start
        kernels = sum(
            getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0))
            for e in prof.key_averages()
        )
        print(
            f"   GPU busy: {100 * kernels / 1e6 / wall:.0f}% of the wall time (kernel time, torch.profiler, "
            f"{len(sub)} photos; the profiler adds some host overhead)"
        )
    except Exception as err:  # the profiler is optional here
        print(f"   GPU busy share not measured: {err}")
    model.to("cpu")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=24, help="photos for the CPU ratio (default 24)")
    p.add_argument("--size", type=int, default=256, help="input size (paper: 256)")
    p.add_argument("--batch-size", type=int, default=8, help="extract.run.batch_size on the CPU (default 8)")
    p.add_argument("--repeat", type=int, default=2, help="timed repetitions (median reported)")
    p.add_argument("--quick", action="store_true", help="8 photos, batch 4, 1 repetition, small checks")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for every library (0: their defaults)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-sizes", default="1,2,5", help="batch sizes compared for batch independence")
    p.add_argument(
        "--independence-images", type=int, default=5, help="photos for the batch-independence check"
    )
    p.add_argument("--gpu-images", type=int, default=64, help="photos for the GPU throughput")
    p.add_argument("--gpu-batch-size", type=int, default=16, help="extract.run.batch_size on the GPU")
    p.add_argument("--skip", default="", help="comma-separated sections to skip: cpu,independence,gpu")
    p.add_argument(
        "--reference", action="store_true", help="also compare with the scikit-learn reference recipe"
    )
    p.add_argument(
        "--self-check",
        action="store_true",
        help="with --reference: also run the reference with another seed (how far it is from itself)",
    )
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.batch_size, args.repeat = min(args.images, 8), min(args.batch_size, 4), 1
        args.gpu_images = min(args.gpu_images, 16)
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

    from inviz.models.vgg import ModelConfig, build_vgg16

    torch.manual_seed(args.seed)
    model = build_vgg16(10, ModelConfig(weights="none", input_size=args.size)).eval()
    images = photos(args.images, args.size)
    print(
        f"VGG-16 (random init), {args.size} px, 9 layers; torch threads {torch.get_num_threads()}, "
        f"numba threads {numba.get_num_threads()}; torch {torch.__version__}"
    )
    print("NOTE: wall-clock on a possibly shared machine; medians over repetitions, still noisy.")
    numba_first_call()
    skip = set(args.skip.split(","))
    if "cpu" not in skip:
        cpu_ratio(model, images, args)
    if "independence" not in skip:
        batch_independence(model, images, args)
    if "gpu" not in skip:
        gpu_throughput(model, args)
    if args.reference:
        reference_comparison(model, images, args)
    return 0


def numba_first_call() -> None:
    """Report the numba JIT/cache-load cost of the first t-SNE call (not included in any timing)."""
    from inviz.fmaps import _tsne_affinities, _tsne_numba
    from inviz.fmaps.embedding import TSNEConfig, embed

    start = time.perf_counter()
    embed([torch.rand(6, 16)], TSNEConfig(), 50, backend="numba")
    jit = time.perf_counter() - start
    how = (
        "loaded from the on-disk cache"
        if _tsne_numba.descend_many.stats.cache_hits
        and _tsne_affinities.joint_probabilities_many.stats.cache_hits
        else "compiled (now cached)"
    )
    print(f"numba first call: {jit:.2f} s, {how}; not included below")


def reference_comparison(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> None:
    """Section 4: the fast path against the scikit-learn reference recipe (slow)."""
    from inviz.fmaps.explain import PAPER_LAYERS, ExtractConfig

    base = ExtractConfig(run={"batch_size": args.batch_size, "device": "cpu"}, seed=args.seed)
    cfg_fast = base.replace(tsne={"backend": "numba"}, clustering="scipy")
    cfg_ref = base.replace(tsne={"backend": "reference"}, clustering="sklearn")
    paths = {"reference": cfg_ref, "fast": cfg_fast}
    if args.self_check:  # calibration: the reference against itself with another seed
        paths["reference_seed2"] = cfg_ref.replace(seed=args.seed + 1)
    results: dict[str, list[Any]] = {}
    times: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(args.repeat):
        for name, cfg in paths.items():
            out, _, total = run_path(model, images, cfg)
            results[name] = out
            times[name].append(total / len(images))
    med = {name: statistics.median(t) for name, t in times.items()}
    print(
        f"\n4. Reference recipe: {med['reference']:.2f} s/image; fast path {med['fast']:.2f} s/image "
        f"({med['reference'] / med['fast']:.1f}x faster)"
    )
    for name in paths:
        if name == "reference":
            continue
        ag = agreement(results["reference"], results[name])
        print(
            f"   reference vs {name} over {ag['n']} image-layers: same k {ag['same_k']}/{ag['n']}, "
            f"ARI mean {ag['ari_mean']:.2f} (median {ag['ari_median']:.2f})"
        )
        t_ref, t_new = table1_of(results["reference"], PAPER_LAYERS), table1_of(results[name], PAPER_LAYERS)
        for col in ("leftover_clusters", "leftover_fmaps", "leftover_weight"):
            a, b = t_ref[col].mean(), t_new[col].mean()
            print(
                f"   Table 1 mean over layers, {col}: reference {a:.2f}, {name} {b:.2f} ({(b - a) / a * 100:+.1f}%)"
            )
    print("   recovery of known groups on synthetic maps (ARI vs ground truth, chosen k vs true k):")
    recovery = {name: cfg for name, cfg in paths.items() if name in ("reference", "fast")}
    rows = synthetic_recovery(recovery, seeds=1 if args.quick else 3)
    for name in recovery:
        part = [r for r in rows if r["path"] == name]
        right_k = sum(r["k"] == r["groups"] for r in part)
        print(
            f"   {name:<10} ARI mean {np.mean([r['ari'] for r in part]):.2f} (min {min(r['ari'] for r in part):.2f}), "
            f"right k {right_k}/{len(part)}, {np.mean([r['seconds'] for r in part]):.2f} s/problem"
        )


if __name__ == "__main__":
    sys.exit(main())
