"""More images for the global explanations: unplayed test-pool images labelled by the label model (§9).

With 5 played images per class many labels top too few maps for TCAV (``min_examples``). The
test pool the played images were drawn from holds more correctly classified images: they are
explained with the **same** ``extract`` settings (:func:`inviz.fmaps.lightning.run_extraction`,
resumable) and their cluster maps get transferred labels (:func:`inviz.transfer.apply.transfer_labels`).

:func:`choose_images` picks them (seeded, optionally capped per class); :func:`label_more_images`
does the whole step.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from inviz.transfer.config import MoreImagesConfig

log = logging.getLogger(__name__)

#: columns of the chosen images table (``images.csv``), as ``selected.csv``
IMAGE_COLUMNS = ["sample_id", "path", "label", "class_name", "pred", "pred_name", "confidence"]


def choose_images(
    pool: pd.DataFrame,
    logits: torch.Tensor,
    class_names: Sequence[str],
    exclude: Sequence[str],
    cfg: MoreImagesConfig,
) -> pd.DataFrame:
    """Pick the extra images: the pool's (correctly classified) images minus ``exclude``, capped per class.

    Parameters
    ----------
    pool : DataFrame
        ``sample_id, path, label`` of the pool images, in the order of ``logits``' rows.
    logits : Tensor of shape (N, K)
        The CNN's logits of the pool images.
    class_names : sequence of str
        Class names in label order.
    exclude : sequence of str
        Sample ids never chosen (the played images).
    cfg : MoreImagesConfig
        ``correct_only``, ``max_per_class``, ``seed``.

    Returns
    -------
    DataFrame
        :data:`IMAGE_COLUMNS`, by class then sample id.
    """
    probs = logits.float().softmax(1)
    conf, pred = probs.max(1)
    frame = pool[["sample_id", "path", "label"]].reset_index(drop=True).copy()
    frame["label"] = frame["label"].astype(int)
    frame["pred"] = pred.numpy().astype(int)
    frame["confidence"] = conf.numpy().astype(float)
    frame = frame[~frame["sample_id"].astype(str).isin(set(map(str, exclude)))]
    if cfg.correct_only:
        frame = frame[frame["pred"] == frame["label"]]
    rng = np.random.default_rng(cfg.seed)
    chosen = []
    for label in sorted(frame["label"].unique()):
        of = frame[frame["label"] == label].sort_values("sample_id")
        if cfg.max_per_class is not None and len(of) > cfg.max_per_class:
            of = of.iloc[np.sort(rng.choice(len(of), size=cfg.max_per_class, replace=False))]
        chosen.append(of)
    out = pd.concat(chosen, ignore_index=True) if chosen else frame.iloc[:0]
    out["class_name"] = [class_names[i] for i in out["label"]]
    out["pred_name"] = [class_names[i] for i in out["pred"]]
    return out[IMAGE_COLUMNS].reset_index(drop=True)


def label_more_images(
    loaded: Any,
    index: pd.DataFrame,
    images_dir: str | Path,
    exclude: Sequence[str],
    model: Any,
    extract_cfg: Any,
    cfg: MoreImagesConfig,
    out_dir: str | Path,
    batch_size: int,
) -> tuple[pd.DataFrame, Any, dict[str, Any]]:
    """Choose, explain and label the extra images.

    Parameters
    ----------
    loaded : LoadedModel
        The CNN (:func:`inviz.models.checkpoint.load_checkpoint`).
    index : DataFrame
        The dataset index (``sample_id, path, label, split``).
    images_dir : str or Path
        The image folder.
    exclude : sequence of str
        The played images.
    model : LabelModel
        Transfers the labels.
    extract_cfg : ExtractConfig
        The ``extract`` section (the played images' settings).
    cfg : MoreImagesConfig
    out_dir : str or Path
        Their extraction folder (resumable).
    batch_size : int
        Images per prediction batch.

    Returns
    -------
    images : DataFrame
        :data:`IMAGE_COLUMNS` of the images explained.
    transferred : :class:`inviz.transfer.apply.Transferred`
    stats : dict
        ``pool``, ``chosen``, ``explained``, ``seconds_extract``, ``seconds_per_image``.
    """
    from inviz.data.datamodule import ImageDataModule, IndexedImageDataset, eval_transform
    from inviz.fmaps.lightning import run_extraction
    from inviz.fmaps.store import load_results
    from inviz.models.training import predict_logits
    from inviz.transfer.apply import transfer_labels

    mc = loaded.config
    pool = index[(index["split"] == cfg.split) & ~index["sample_id"].astype(str).isin(set(map(str, exclude)))]
    logits = torch.zeros(0, len(loaded.class_names))
    if len(pool):
        dm = ImageDataModule(
            index,
            images_dir,
            mc.input_size,
            mc.mean,
            mc.std,
            batch_size=batch_size,
            predict_ids=pool["sample_id"].tolist(),
        )
        preds = predict_logits(loaded.model, dm.predict_dataloader())
        order = {s: i for i, s in enumerate(preds["sample_id"])}
        pool = pool[pool["sample_id"].isin(order)]
        logits = preds["logits"][[order[s] for s in pool["sample_id"]]]
    images = choose_images(pool, logits, loaded.class_names, exclude, cfg)
    dataset = IndexedImageDataset(images, images_dir, eval_transform(mc.input_size, mc.mean, mc.std))
    ids = images["sample_id"].astype(str).tolist()
    run = run_extraction(loaded.model, dataset, ids, out_dir, extract_cfg, model_sha256=loaded.sha256)
    explanations = load_results(out_dir).explanations()
    transferred = transfer_labels(explanations, model)
    stats = {
        "pool": int(len(pool)),
        "chosen": int(len(images)),
        "explained": int(len(explanations)),
        "seconds_extract": round(run.seconds, 3),
        "seconds_per_image": round(run.seconds / run.n_new, 4) if run.n_new else None,
        "resumed": run.n_skipped,
    }
    return images, transferred, stats
