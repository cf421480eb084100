"""Benchmark the offline demo's training recipe: synthetic data -> narrow VGG-16 from scratch.

Generates the synthetic dataset into a temporary folder, indexes it and carves the test pool as
``inviz data`` does, trains with :func:`inviz.models.training.fit_phases` as ``inviz train`` does, and
prints per-epoch validation accuracy, wall time, training throughput (images/s), the final
validation and test accuracy (best weights restored) and the block5 feature-map size.

The recipe is read from the ``data``, ``model`` and ``train`` sections of a params file
(default ``demo/params.yaml``; built-in defaults when absent) and can be overridden key by key::

    .venv/bin/python experiments/demo_recipe.py
    .venv/bin/python experiments/demo_recipe.py --set model.width=0.125 --set train.seed=1
    .venv/bin/python experiments/demo_recipe.py --set train.phases.0.lr=3e-4 --set data.synthetic.n_train_per_class=150
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]


def apply_override(params: dict[str, Any], assignment: str) -> None:
    """Set ``a.b.0.c=value`` (value parsed as YAML) inside nested dicts/lists."""
    key, _, raw = assignment.partition("=")
    if not _:
        raise SystemExit(f"--set {assignment!r}: expected key=value")
    node: Any = params
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    value = yaml.safe_load(raw)
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def epoch_printer(start: float) -> Any:
    """A callback for :func:`fit_phases` that prints each epoch's validation metrics live."""
    import lightning as L

    class EpochPrinter(L.Callback):
        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            m = trainer.callback_metrics
            if trainer.sanity_checking or "val_acc" not in m:
                return
            print(
                f"  [{time.perf_counter() - start:6.1f} s] epoch {trainer.current_epoch + 1}: "
                f"val_loss {float(m.get('val_loss', float('nan'))):.4f} val_acc {float(m['val_acc']):.3f}",
                flush=True,
            )

    return EpochPrinter()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--params", default=str(ROOT / "demo" / "params.yaml"), help="params file with data/model/train"
    )
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a dotted key")
    ap.add_argument("--workdir", default=None, help="keep the generated data here (default: a temp dir)")
    ap.add_argument("--verbose", action="store_true", help="Lightning progress bars and logs")
    args = ap.parse_args()

    import lightning as L
    import torch

    from inviz.core.config import flatten, from_dict
    from inviz.data import synthetic
    from inviz.data.datamodule import ImageDataModule
    from inviz.data.dataset import DataConfig
    from inviz.data.index import carve_test_pool, scan_image_folder
    from inviz.models.training import TrainConfig, fit_phases, predict_logits
    from inviz.models.vgg import ModelConfig, build_vgg16, keras_layer_names

    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    if not args.verbose:
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logging.getLogger(name).setLevel(logging.ERROR)

    path = Path(args.params)
    params: dict[str, Any] = yaml.safe_load(path.read_text()) if path.is_file() else {}
    params = {k: copy.deepcopy(params.get(k, {})) for k in ("data", "model", "train")}
    params["data"].setdefault("source", "synthetic")
    for item in args.set:
        apply_override(params, item)
    data_cfg = from_dict(DataConfig, params["data"], "data", str(path))
    scfg = from_dict(synthetic.SyntheticConfig, data_cfg.synthetic, "data.synthetic", str(path))
    mcfg = from_dict(ModelConfig, params["model"], "model", str(path))
    tcfg = from_dict(TrainConfig, params["train"], "train", str(path))
    print("recipe:", {k: v for k, v in flatten({"model": mcfg, "train": tcfg}).items()})
    print(
        "data:",
        {k: v for k, v in flatten(scfg).items() if not k.startswith(("palette", "classes", "geometry"))},
    )

    if tcfg.run.threads:
        torch.set_num_threads(tcfg.run.threads)
    with tempfile.TemporaryDirectory(prefix="demo_recipe_") as tmp:
        work = Path(args.workdir) if args.workdir else Path(tmp)
        images = work / "images"
        t0 = time.perf_counter()
        synthetic.generate_dataset(scfg, images)
        t_gen = time.perf_counter() - t0
        index, skipped = scan_image_folder(
            images, synthetic.class_names(scfg), workers=data_cfg.run.check_workers
        )
        index = carve_test_pool(index, data_cfg.split)
        n = index["split"].value_counts().to_dict()
        print(
            f"generated {len(index)} images in {t_gen:.1f} s ({len(index) / t_gen:.0f} img/s); splits {n}; skipped {len(skipped)}"
        )

        L.seed_everything(tcfg.seed, workers=True, verbose=False)
        n_classes = int(index["label"].nunique())
        model = build_vgg16(n_classes, mcfg)
        dm = ImageDataModule(
            index,
            images,
            mcfg.input_size,
            mcfg.mean,
            mcfg.std,
            augment=tcfg.augment,
            batch_size=tcfg.batch_size,
            num_workers=tcfg.run.num_workers,
            seed=tcfg.seed,
            cache_images=tcfg.run.cache_images,
        )
        t0 = time.perf_counter()
        c0 = time.process_time()
        results = fit_phases(model, dm, tcfg, callbacks=[epoch_printer(t0)])
        t_train = time.perf_counter() - t0
        cpu_train = time.process_time() - c0

        epochs = sum(r.epochs for r in results)
        print("\nepoch phase     train_loss train_acc val_loss val_acc")
        for r in results:
            for row in r.history:
                print(
                    f"{row['epoch']:5d} {row['phase']:9s} {row.get('train_loss', float('nan')):10.4f} "
                    f"{row.get('train_acc', float('nan')):9.3f} {row.get('val_loss', float('nan')):8.4f} "
                    f"{row.get('val_acc', float('nan')):7.3f}"
                )
            print(
                f"phase {r.name}: {r.epochs} epochs, best epoch {r.best_epoch} (val_loss {r.best_val_loss:.4f})"
            )

        def evaluate(loader: Any) -> tuple[float, torch.Tensor]:
            out = predict_logits(model, loader, accelerator="cpu")
            pred = out["logits"].argmax(1)
            confusion = torch.zeros(n_classes, n_classes, dtype=torch.long)
            confusion.index_put_((out["label"], pred), torch.ones_like(pred), accumulate=True)
            return float((pred == out["label"]).float().mean()), confusion

        val_acc, _ = evaluate(dm.val_dataloader())
        test_acc, confusion = evaluate(dm.test_dataloader())
        names = [f"{c.name} ({'+'.join(c.parts)})" for c in synthetic.classes(scfg)]
        print("\ntest confusion (rows: true class; columns: predicted label)")
        for name, row in zip(names, confusion.tolist(), strict=True):
            print(
                f"  {name:36s} "
                + " ".join(f"{v:3d}" for v in row)
                + f"   acc {row[names.index(name)] / max(1, sum(row)):.2f}"
            )
        side = mcfg.input_size
        with torch.no_grad():
            feats = model.features[
                : int(keras_layer_names(model.features)["block5_conv3"].split(".")[1]) + 1
            ](torch.zeros(1, 3, side, side))
        images_seen = n.get("train", 0) * epochs
        print(
            f"\nRESULT width={mcfg.width} lr={[p.lr for p in tcfg.phases]} seed={tcfg.seed} "
            f"epochs={epochs} train_time={t_train:.1f}s ({t_train / 60:.2f} min) "
            f"cpu_time={cpu_train:.1f}s img/s={images_seen / t_train:.1f} img/cpu-s={images_seen / cpu_train:.1f} val_acc={val_acc:.4f} test_acc={test_acc:.4f} "
            f"block5_conv3={tuple(feats.shape[1:])}"
        )


if __name__ == "__main__":
    main()
