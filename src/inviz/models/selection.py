"""The images to explain (docs/method.md §0): N correctly classified test images per class, seeded."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
import torch

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)


class SelectionError(InvizError, ValueError):
    """Not enough correctly classified images for a class."""


@dataclass(frozen=True)
class SelectRunConfig:
    """``select.run``: batch_size of the inference pass (not a DVC dependency)."""

    batch_size: int = 32


@dataclass(frozen=True)
class SelectConfig:
    """``select`` section.

    per_class : images per class (paper: 5, giving 50). seed : draws among the correct ones.
    split : pool to draw from (the test pool carved out of val).
    on_shortfall : ``error`` when a class has fewer correct images than ``per_class``, or
        ``warn`` to take all it has (the shortfall is reported in the metrics).
    run : execution settings (:class:`SelectRunConfig`; old key ``batch_size`` still accepted).
    """

    MOVED_KEYS: ClassVar[dict[str, str]] = {"batch_size": "run.batch_size"}

    per_class: int = 5
    seed: int = 432
    split: str = "test"
    on_shortfall: Literal["error", "warn"] = "error"
    run: SelectRunConfig = field(default_factory=SelectRunConfig)

    def __post_init__(self) -> None:
        if self.per_class < 1:
            raise ValueError(f"per_class: expected >= 1, got {self.per_class}")


def select_correct(
    sample_ids: Sequence[str],
    labels: Sequence[int],
    logits: torch.Tensor,
    class_names: Sequence[str],
    cfg: SelectConfig,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Draw ``cfg.per_class`` correctly classified samples per class.

    Parameters
    ----------
    sample_ids : (N,) ids; labels : (N,) true classes; logits : Tensor of shape (N, K).

    Returns
    -------
    table : one row per selected image — ``sample_id, label, class_name, pred, pred_name,
        confidence`` (softmax probability of the prediction) and ``logit_0 .. logit_{K-1}``;
        ordered by class, then sample id.
    shortfall : ``{class_name: missing count}`` for classes with too few correct images.
    """
    logits = logits.float()
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    frame = pd.DataFrame(
        {
            "sample_id": list(sample_ids),
            "label": np.asarray(labels, dtype=int),
            "pred": pred.numpy(),
            "confidence": conf.numpy().astype(float),
        }
    )
    rng = np.random.default_rng(cfg.seed)
    chosen, shortfall = [], {}
    for label, name in enumerate(class_names):
        pool = frame[(frame["label"] == label) & (frame["pred"] == label)].sort_values("sample_id")
        if len(pool) < cfg.per_class:
            shortfall[name] = cfg.per_class - len(pool)
            if cfg.on_shortfall == "error":
                raise SelectionError(
                    f"class {name!r}: only {len(pool)} correctly classified image(s) in the pool, "
                    f"{cfg.per_class} requested (set select.on_shortfall: warn to take what there is)"
                )
        take = min(cfg.per_class, len(pool))
        idx = rng.choice(len(pool), size=take, replace=False) if take else []
        chosen.append(pool.iloc[np.sort(idx)])
    if shortfall:
        listed = ", ".join(f"{n} {cfg.per_class - k}" for n, k in shortfall.items())
        log.warning(
            "select: %d of %d classes have fewer than select.per_class=%d correctly classified image(s) "
            "in the %s pool (found: %s); taking what there is (select.on_shortfall: warn)",
            len(shortfall),
            len(class_names),
            cfg.per_class,
            cfg.split,
            listed,
        )
    table = pd.concat(chosen) if chosen else frame.iloc[:0]
    rows = torch.as_tensor(table.index.to_numpy().copy(), dtype=torch.long)
    table = table.reset_index(drop=True)
    table.insert(2, "class_name", [class_names[i] for i in table["label"]])
    table.insert(4, "pred_name", [class_names[i] for i in table["pred"]])
    logit_cols = pd.DataFrame(logits[rows].numpy(), columns=[f"logit_{k}" for k in range(logits.shape[1])])
    table = pd.concat([table, logit_cols], axis=1)
    return table, shortfall
