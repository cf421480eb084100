"""Benchmark: ``inviz explain`` seconds per image (a labelled INV of a new image, docs/method.md §9).

Runs :func:`inviz.transfer.new_images.explain_new_images` on image files with a pipeline's model and
label model (default: the demo's, ``demo/models/model.safetensors`` and
``demo/data/transfer/label_model.json``) and prints, per image, the wall time of the whole
explanation (forward + backward, t-SNE + Ward of every layer, label transfer, merge, narrative;
figure drawing excluded); the first call's numba JIT / cache-load cost is measured separately. Images: the photos of ``skimage.data`` (outside any
dataset) unless files are given. The machine may be shared: medians over ``--repeat`` runs.

Usage::

    .venv/bin/python experiments/bench_explain.py                      # 4 skimage photos, demo model
    .venv/bin/python experiments/bench_explain.py --images a.png b.jpg --repeat 3
    .venv/bin/python experiments/bench_explain.py --model models/model.safetensors \\
        --labels data/transfer/label_model.json
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def skimage_photos(n: int, folder: Path) -> list[Path]:
    """Write ``n`` photos of ``skimage.data`` as PNG files into ``folder``."""
    import skimage.data
    from PIL import Image

    out = []
    for name in PHOTOS[:n]:
        path = folder / f"{name}.png"
        Image.fromarray(getattr(skimage.data, name)()).convert("RGB").save(path)
        out.append(path)
    return out


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(root / "demo/models/model.safetensors"))
    ap.add_argument("--labels", default=str(root / "demo/data/transfer/label_model.json"))
    ap.add_argument("--images", nargs="*", default=None, help="image files (default: skimage photos)")
    ap.add_argument("--n", type=int, default=4, help="skimage photos when --images is not given")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from inviz.models.checkpoint import load_checkpoint
    from inviz.transfer.model import LabelModel
    from inviz.transfer.new_images import explain_new_images

    loaded = load_checkpoint(args.model)
    model = LabelModel.load(args.labels)
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(p) for p in args.images] if args.images else skimage_photos(args.n, Path(tmp))
        t0 = time.perf_counter()
        explain_new_images(paths[:1], loaded, model)
        first = time.perf_counter() - t0
        times: dict[str, list[float]] = {p.name: [] for p in paths}
        for _ in range(args.repeat):
            for r in explain_new_images(paths, loaded, model):
                times[Path(r.inv.path).name].append(r.seconds)
        results = explain_new_images(paths, loaded, model)
    print(
        f"model {args.model} ({loaded.config.input_size} px), label model {args.labels} ({model.cfg.variant})"
    )
    tsne = model.extract_config.get("tsne", {}).get("backend", "auto")
    print(f"layers: {len(model.layers)}; t-SNE backend setting: {tsne}")
    print(f"first call (numba JIT / cache load included): {first:.2f} s")
    print(f"{'image':<22}{'median s':>10}{'pred':>14}{'conf':>7}{'maps':>6}{'labelled':>10}")
    for r in results:
        name = Path(r.inv.path).name
        cards = [c for cs in r.inv.merged.values() for c in cs]
        print(
            f"{name:<22}{statistics.median(times[name]):>10.2f}{r.inv.pred_name:>14}"
            f"{100 * r.inv.confidence:>6.1f}%{len(cards):>6}{sum(1 for c in cards if c.labels):>10}"
        )
    allt = [t for v in times.values() for t in v]
    print(
        f"seconds per image: median {statistics.median(allt):.2f}, max {max(allt):.2f} (shared machine: pessimistic)"
    )


if __name__ == "__main__":
    main()
