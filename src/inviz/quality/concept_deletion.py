"""Concept deletion (§8): do cluster weights rank clusters as their removal hurts the decision.

INV claims that a cluster map's weight ``w_C`` is its importance for the decision. For one image
and layer (its record :class:`inviz.fmaps.records.LayerExplanation`) the member channels of each
cluster are zeroed at the layer (:func:`inviz.quality.intervention.masked_logits`: all masks of
the image and layer in batched forward passes) and the drop of the target's logit and of its
softmax probability is recorded. Rows per image and layer (column ``kind``):

- ``original`` (no channel zeroed) and ``none`` (every channel zeroed: the floor of the shares);
- ``cluster`` — one per cluster (pruned ones flagged);
- ``random`` — ``random_draws`` groups of the heaviest cluster's size drawn from ``random_pool``
  (seeded per image and layer, so a subset of images gets the same draws);
- ``keep_kept`` / ``keep_thresholded`` / ``keep_pruned`` — every channel zeroed **except** those of
  the kept (unpruned) clusters / those below the map threshold / those of the pruned clusters.

:func:`summarise_concepts` turns them into one row per image and layer:

- ``rho_logit`` / ``rho_prob``: Spearman rho between ``w_C`` and the drop over the clusters
  (``rank_over``), undefined (NaN) with fewer than ``min_clusters`` clusters or constant values;
- ``beat_rate``: share of the random groups whose drop is below the heaviest cluster's (ties count
  half); ``effect_size``: ``(drop_heaviest - mean(drop_random)) / sd(drop_random)`` (Glass's delta);
- ``share_<set>``: ``(z_keep - z_none) / (z_original - z_none)``, the part of the logit (above the
  all-zero floor) the channel set preserves alone.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from inviz.fmaps.records import ImageExplanation, LayerExplanation
from inviz.quality.config import ConceptConfig
from inviz.quality.intervention import masked_logits

#: the keep-only channel sets, in report order
KEEP_SETS: tuple[str, ...] = ("kept", "thresholded", "pruned")


def layer_rng(seed: int, sample_id: str, layer: str) -> np.random.Generator:
    """Return a generator seeded by ``(seed, sample_id, layer)``: the same draws in any image subset.

    Parameters
    ----------
    seed : the measure's seed.
    sample_id, layer : the image and layer.

    Returns
    -------
    numpy.random.Generator
    """
    return np.random.default_rng([seed, zlib.crc32(f"{sample_id}|{layer}".encode())])


@dataclass(frozen=True)
class MaskRow:
    """One intervention: which channels stay (1) and what the row is."""

    kind: str
    keep: np.ndarray  # (C,) float 0/1
    cluster: int = -1
    weight: float = float("nan")
    pruned: bool = False
    n_zeroed: int = 0


def layer_masks(rec: LayerExplanation, cfg: ConceptConfig, rng: np.random.Generator) -> list[MaskRow]:
    """Build the interventions of one image and layer (see the module docstring).

    Parameters
    ----------
    rec : the layer's INV record (clusters, kept channels).
    cfg : ``random_draws``, ``random_pool``.
    rng : the random groups' generator.

    Returns
    -------
    list of :class:`MaskRow`: original, none, clusters (heaviest first), random groups, keep-only sets.
    """
    c = rec.n_channels
    ones = np.ones(c)
    rows = [MaskRow("original", ones), MaskRow("none", np.zeros(c), n_zeroed=c)]
    for cl in rec.clusters:
        keep = ones.copy()
        keep[cl.channels] = 0.0
        rows.append(MaskRow("cluster", keep, cl.cluster, cl.weight, cl.pruned, cl.n_fmaps))
    if rec.clusters:
        size = rec.clusters[0].n_fmaps
        pool = np.arange(c) if cfg.random_pool == "layer" else np.asarray(rec.channels)
        for _ in range(cfg.random_draws):
            keep = ones.copy()
            keep[rng.choice(pool, size=min(size, len(pool)), replace=False)] = 0.0
            rows.append(MaskRow("random", keep, n_zeroed=min(size, len(pool))))
    sets = {
        "kept": np.concatenate([cl.channels for cl in rec.kept_clusters] or [np.zeros(0, np.int64)]),
        "thresholded": np.setdiff1d(np.arange(c), rec.channels),
        "pruned": np.concatenate(
            [cl.channels for cl in rec.clusters if cl.pruned] or [np.zeros(0, np.int64)]
        ),
    }
    for name in KEEP_SETS:
        keep = np.zeros(c)
        keep[sets[name].astype(np.int64)] = 1.0
        rows.append(MaskRow(f"keep_{name}", keep, n_zeroed=int(c - keep.sum())))
    return rows


def concept_deletion(
    model: nn.Module,
    images: torch.Tensor,
    records: Sequence[ImageExplanation],
    layers: Sequence[str],
    cfg: ConceptConfig,
    batch_size: int = 64,
    progress: bool = False,
) -> pd.DataFrame:
    """Zero channel groups at each layer and record the target's logit and probability.

    Parameters
    ----------
    model : the CNN (eval mode), logits of shape (N, K).
    images : Tensor of shape (N, 3, H, W), normalised, in the order of ``records``.
    records : N INV records (:func:`inviz.fmaps.explain.explain` or the extraction folder).
    layers : the layers to intervene at (names of the records' layers).
    cfg : the ``evaluate.concept`` settings.
    batch_size : masks per forward pass.
    progress : show a progress bar.

    Returns
    -------
    DataFrame, one row per intervention: ``sample_id, layer, kind, cluster, weight, pruned,
    n_zeroed, logit, prob, drop_logit, drop_prob`` (drops relative to the ``original`` row).
    """
    out = []
    bar = tqdm(total=len(records) * len(layers), desc="concept deletion", disable=not progress)
    for x, rec in zip(images, records, strict=True):
        for layer in layers:
            lrec = rec.layers[layer]
            rows = layer_masks(lrec, cfg, layer_rng(cfg.seed, rec.sample_id, layer))
            mult = torch.as_tensor(np.stack([r.keep for r in rows]), dtype=torch.float32)
            logits = masked_logits(model, x, layer, mult, batch_size)
            z = logits[:, rec.target].double().numpy()
            p = torch.softmax(logits.double(), 1)[:, rec.target].numpy()
            for i, r in enumerate(rows):
                out.append(
                    (rec.sample_id, layer, r.kind, r.cluster, r.weight, r.pruned, r.n_zeroed, z[i], p[i])
                )
            bar.update(1)
    bar.close()
    frame = pd.DataFrame(
        out,
        columns=["sample_id", "layer", "kind", "cluster", "weight", "pruned", "n_zeroed", "logit", "prob"],
    )
    orig = frame[frame["kind"] == "original"].set_index(["sample_id", "layer"])
    key = pd.MultiIndex.from_frame(frame[["sample_id", "layer"]])
    frame["drop_logit"] = orig["logit"].reindex(key).to_numpy() - frame["logit"].to_numpy()
    frame["drop_prob"] = orig["prob"].reindex(key).to_numpy() - frame["prob"].to_numpy()
    return frame


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rho of two vectors; NaN with fewer than 2 values or a constant one (no warning).

    Parameters
    ----------
    a, b : ndarray of shape (n,)

    Returns
    -------
    float
    """
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _share(z_keep: float, z_orig: float, z_none: float) -> float:
    return float((z_keep - z_none) / (z_orig - z_none)) if z_orig != z_none else float("nan")


def _image_layer(g: pd.DataFrame, cfg: ConceptConfig) -> dict[str, float]:
    by_kind = {k: part for k, part in g.groupby("kind", sort=False)}
    clusters = by_kind.get("cluster", g.iloc[:0])
    ranked = clusters if cfg.rank_over == "all" else clusters[~clusters["pruned"].astype(bool)]
    ok = len(ranked) >= cfg.min_clusters
    row: dict[str, float] = {
        "n_clusters": len(clusters),
        "n_ranked": len(ranked),
        "rho_logit": spearman(ranked["weight"], ranked["drop_logit"]) if ok else float("nan"),
        "rho_prob": spearman(ranked["weight"], ranked["drop_prob"]) if ok else float("nan"),
    }
    rand = by_kind.get("random", g.iloc[:0])["drop_logit"].to_numpy()
    heavy = clusters.sort_values("cluster")["drop_logit"].to_numpy()[:1]
    if len(rand) and len(heavy):
        h = heavy[0]
        sd = rand.std(ddof=1) if len(rand) > 1 else 0.0
        row |= {
            "drop_heaviest": h,
            "drop_random_mean": rand.mean(),
            "beat_rate": float(np.mean((h > rand) + 0.5 * (h == rand))),
            "effect_size": float((h - rand.mean()) / sd) if sd > 0 else float("nan"),
        }
    z = {k: float(v["logit"].iloc[0]) for k, v in by_kind.items() if k != "cluster" and k != "random"}
    for name in KEEP_SETS:
        row[f"share_{name}"] = _share(z[f"keep_{name}"], z["original"], z["none"])
    return row


def summarise_concepts(rows: pd.DataFrame, cfg: ConceptConfig) -> pd.DataFrame:
    """One row per image and layer: rho, beat rate, effect size and keep-only shares.

    Parameters
    ----------
    rows : the output of :func:`concept_deletion`.
    cfg : ``rank_over``, ``min_clusters``.

    Returns
    -------
    DataFrame with ``sample_id, layer, n_clusters, n_ranked, rho_logit, rho_prob, drop_heaviest,
    drop_random_mean, beat_rate, effect_size, share_kept, share_thresholded, share_pruned``.
    """
    out = [
        {"sample_id": s, "layer": layer, **_image_layer(g, cfg)}
        for (s, layer), g in rows.groupby(["sample_id", "layer"], sort=False)
    ]
    return pd.DataFrame(out)
