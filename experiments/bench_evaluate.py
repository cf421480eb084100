"""Cost of the ``evaluate`` stage per image and per measure, and what batching the concept deletions buys.

Runs :func:`inviz.quality.run.evaluate` on a pipeline's outputs (the demo by default: run
``cd demo && dvc repro extract`` first) with the profile's ``evaluate`` settings, optionally on fewer
images, and prints seconds per measure, per image and per map method. Then times concept deletion
three ways on the same interventions: batched (the image's prefix once, ``run.batch_size`` masked
activations per forward pass: what the stage does), one mask per forward pass, and one full forward
pass per mask (the naive way). Timings on a shared machine are pessimistic::

    PYTHONPATH=src .venv/bin/python experiments/bench_evaluate.py                  # demo settings
    PYTHONPATH=src .venv/bin/python experiments/bench_evaluate.py --images 10 --threads 1
    PYTHONPATH=src .venv/bin/python experiments/bench_evaluate.py --only concept pixel
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MEASURES = ("concept", "completeness", "pixel", "road", "sanity", "localization")


def load(folder: Path, n_images: int | None):
    import pandas as pd
    import torch

    from inviz.core.config import load_section
    from inviz.data.loading import IndexedImageDataset, eval_transform
    from inviz.data.parts import PartMasks
    from inviz.fmaps.explain import ExtractConfig
    from inviz.fmaps.store import load_results
    from inviz.game.reveal import RevealConfig
    from inviz.models.checkpoint import load_checkpoint
    from inviz.quality.config import EvaluateConfig
    from inviz.quality.run import EvaluationInputs
    from inviz.survey.panels import SurveyConfig

    params = folder / "params.yaml"
    cfg = load_section(params, "evaluate", EvaluateConfig)
    loaded = load_checkpoint(folder / "models" / "model.safetensors")
    mc = loaded.config
    selected = pd.read_csv(folder / "data" / "selected.csv", dtype={"sample_id": str})
    by_id = {r.sample_id: r for r in load_results(folder / "data" / "extract").explanations()}
    selected = selected[selected["sample_id"].isin(by_id)].reset_index(drop=True)
    if n_images is not None:
        selected = selected.iloc[:n_images]
    tf = eval_transform(mc.input_size, mc.mean, mc.std)
    data = IndexedImageDataset(selected, folder / "data" / "images", tf)
    images = torch.stack([data[i]["image"] for i in range(len(data))])
    index = pd.read_csv(folder / "data" / "index.csv", dtype={"sample_id": str})
    train = index[index["split"] == "train"].head(50)
    background = torch.stack(
        [IndexedImageDataset(train, folder / "data" / "images", tf)[i]["image"] for i in range(len(train))]
    )
    inputs = EvaluationInputs(
        loaded.model,
        images,
        [by_id[s] for s in selected["sample_id"]],
        selected["label"].astype(int).tolist(),
        mc.mean,
        mc.std,
        load_section(params, "extract", ExtractConfig),
        load_section(params, "survey", SurveyConfig),
        load_section(params, "masks", RevealConfig),
        PartMasks.load(folder / "data" / "parts.npz"),
        background,
    )
    return inputs, cfg


def only(cfg, keep: set[str]):
    changes = {m: {"enabled": m in keep} for m in ("concept", "pixel", "road", "sanity", "localization")}
    return cfg.replace(completeness="completeness" in keep, **changes)


def bench_batching(inputs, cfg, n_images: int) -> None:
    import numpy as np
    import torch

    from inviz.quality.concept_deletion import layer_masks, layer_rng
    from inviz.quality.intervention import masked_logits, scaled_output

    model = inputs.model.eval()
    layers = list(inputs.records[0].layers)
    jobs = []
    for x, rec in list(zip(inputs.images, inputs.records, strict=True))[:n_images]:
        for layer in layers:
            rows = layer_masks(
                rec.layers[layer], cfg.concept, layer_rng(cfg.concept.seed, rec.sample_id, layer)
            )
            jobs.append((x, layer, torch.as_tensor(np.stack([r.keep for r in rows]), dtype=torch.float32)))
    n_masks = sum(len(m) for _, _, m in jobs)

    def timed(fn) -> float:
        t0 = time.perf_counter()
        for x, layer, mult in jobs:
            fn(x, layer, mult)
        return time.perf_counter() - t0

    def naive(x, layer, mult):
        with torch.no_grad():
            for m in mult:
                with scaled_output(model, layer, m[None]):
                    model(x[None])

    batched = timed(lambda x, layer, mult: masked_logits(model, x, layer, mult, cfg.run.batch_size))
    single = timed(lambda x, layer, mult: masked_logits(model, x, layer, mult, 1))
    plain = timed(naive)
    print(f"\nconcept deletion, {n_images} images x {len(layers)} layers = {n_masks} masked forward passes:")
    print(
        f"  batched (batch {cfg.run.batch_size}, prefix once) {batched:7.2f} s  ({1000 * batched / n_masks:.2f} ms/mask)"
    )
    print(f"  one mask per pass (prefix once)    {single:7.2f} s  ({single / batched:.1f}x the batched time)")
    print(f"  one full forward pass per mask     {plain:7.2f} s  ({plain / batched:.1f}x the batched time)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=["demo", "paper"], default="demo")
    p.add_argument("--images", type=int, default=None, help="evaluate only the first N selected images")
    p.add_argument(
        "--threads", type=int, default=None, help="torch/numba threads (default: evaluate.run.threads)"
    )
    p.add_argument("--only", nargs="*", choices=MEASURES, default=list(MEASURES))
    p.add_argument(
        "--batching-images", type=int, default=5, help="images of the batching comparison (0: skip)"
    )
    args = p.parse_args(argv)

    import numba
    import torch

    from inviz.quality.run import evaluate

    folder = ROOT / "demo" if args.profile == "demo" else ROOT
    inputs, cfg = load(folder, args.images)
    threads = args.threads if args.threads is not None else cfg.run.threads
    if threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # first: it resets torch's
        torch.set_num_threads(threads)
    cfg = only(dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, progress=False)), set(args.only))
    print(f"profile {args.profile}: {len(inputs.records)} images, torch threads {torch.get_num_threads()}")
    t0 = time.perf_counter()
    res = evaluate(inputs, cfg)
    total = time.perf_counter() - t0
    print(f"\n{'measure':28s} {'images':>6s} {'seconds':>9s} {'s/image':>9s}")
    n_maps = max([v for k, v in res.n_images.items() if k in ("pixel", "road", "localization")] or [0])
    for name, sec in res.seconds.items():
        n = res.n_images.get(name, n_maps if name.startswith("maps.") else 0)
        print(f"{name:28s} {n:6d} {sec:9.2f} {sec / max(1, n):9.3f}")
    print(f"{'total':28s} {'':6s} {total:9.2f}")
    if res.pixel_auc is not None:
        per_curve = res.seconds["pixel"] / max(1, 2 * len(res.pixel_auc))
        print(
            f"\npixel: {len(res.pixel_auc)} maps x 2 curves of {cfg.pixel.steps + 1} points: {per_curve:.3f} s per curve"
        )
    if res.road is not None:
        per = res.seconds["road"] / max(1, len(res.road))
        print(f"road: {len(res.road)} imputed images: {per:.3f} s each (sparse solve + forward)")
    if res.sanity is not None:
        steps = res.sanity["step"].nunique()
        print(
            f"sanity: {steps} randomisation steps: {res.seconds['sanity'] / max(1, steps):.2f} s per step (INV re-run)"
        )
    if args.batching_images and "concept" in args.only:
        bench_batching(inputs, cfg, min(args.batching_images, len(inputs.records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
