"""Labels for the cluster maps of new images, merged as the INV merges them (docs/method.md §9, §3.8).

:func:`transfer_labels` runs a :class:`inviz.transfer.model.LabelModel` over the kept (unpruned)
cluster maps of explained images (:class:`inviz.fmaps.records.ImageExplanation`) and returns
:class:`Transferred`: four tables shaped like ``labels_analyze``'s (one row per cluster map, their
label shares, the merged maps, their label shares). Cluster maps of one image and layer whose
transferred best labels overlap are merged transitively, exactly as the game's are (§3.8:
:func:`inviz.labels.scoring.merge_groups` / ``merge_scores``); a merged map's confidence and
coverage are the weight-averages of its members'.

:func:`image_cards` turns one image's rows into :class:`inviz.views.records.Card` objects
(``source="transfer"``), so figures, narratives and TCAV treat transferred INVs like played ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from inviz.fmaps.records import ImageExplanation
from inviz.fmaps.store import cluster_id as extract_id
from inviz.transfer.config import TransferConfig
from inviz.transfer.maps import cluster_vectors
from inviz.transfer.model import LabelModel
from inviz.views.records import Card, cards_by_layer, ranked_labels

#: columns of :attr:`Transferred.maps` (one row per transferred cluster map)
MAP_COLUMNS = [
    "cluster_id",
    "sample_id",
    "layer",
    "cluster",
    "extract_id",
    "weight",
    "n_fmaps",
    "confidence",
    "coverage",
    "coverage_weight",
    "best_labels",
    "merged_id",
]


@dataclass(frozen=True, eq=False)
class Transferred:
    """Transferred labels of a set of explained images.

    Attributes
    ----------
    maps : DataFrame
        :data:`MAP_COLUMNS`: one row per kept cluster map (``cluster_id`` numbers them 1, 2, …;
        ``extract_id`` is ``"<sample_id>|<layer>|<cluster>"`` of the extraction).
    scores : DataFrame
        ``cluster_id, label, score, rank, is_best``: every transferred label's share.
    inv : DataFrame
        The merged maps (as ``inv.csv``): ``merged_id, image, layer, members, n_members, weight,
        confidence, coverage, best_labels, label_i, score_i``.
    merged_scores : DataFrame
        ``merged_id, label, score, rank, is_best``.
    variant : str
        The label model variant used.
    """

    maps: pd.DataFrame
    scores: pd.DataFrame
    inv: pd.DataFrame
    merged_scores: pd.DataFrame
    variant: str


def _rows(
    explanations: Sequence[ImageExplanation], model: LabelModel, layers: Sequence[str], variant: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Cluster-map rows and label-share rows (unranked) of every image and layer."""
    maps, scores = [], []
    for ex in explanations:
        for layer in layers:
            rec = ex.layers[layer]
            kept = list(rec.kept_clusters)
            if not kept:
                continue
            pred = model.predict(layer, cluster_vectors(rec, kept), variant)
            for i, c in enumerate(kept):
                cid = len(maps) + 1
                maps.append(
                    {
                        "cluster_id": cid,
                        "sample_id": ex.sample_id,
                        "layer": layer,
                        "cluster": c.cluster,
                        "extract_id": extract_id(ex.sample_id, layer, c.cluster),
                        "weight": c.weight,
                        "n_fmaps": c.n_fmaps,
                        "confidence": float(pred.confidence[i]),
                        "coverage": float(pred.coverage[i]),
                        "coverage_weight": float(pred.coverage_weight[i]),
                    }
                )
                ranked, _ = pred.ranked(i, len(pred.labels), model.cfg.tie_tolerance)
                scores += [{"cluster_id": cid, "label": lab, "score": p} for lab, p in ranked]
    return maps, scores


def transfer_labels(
    explanations: Sequence[ImageExplanation],
    model: LabelModel,
    layers: Sequence[str] | None = None,
    variant: str | None = None,
) -> Transferred:
    """Transfer labels to the kept cluster maps of ``explanations`` and merge them (§3.8).

    Parameters
    ----------
    explanations : sequence of ImageExplanation
        Images explained with the label model's extraction settings and CNN.
    model : LabelModel
    layers : sequence of str, optional
        Layers to label (default: the label model's layers present in the explanations).
    variant : str, optional
        Label model variant (default ``model.cfg.variant``).

    Returns
    -------
    Transferred
    """
    from inviz.labels.scoring import ScoreConfig, best_label_sets, merge_groups, merge_scores, rank_labels

    cfg: TransferConfig = model.cfg
    variant = variant or cfg.variant
    if layers is None:
        present = set().union(*(ex.layers for ex in explanations)) if explanations else set()
        layers = [ly for ly in model.layers if ly in present]
    model.check_layers(layers)
    rows, score_rows = _rows(explanations, model, layers, variant)
    maps = pd.DataFrame(rows, columns=[c for c in MAP_COLUMNS if c not in ("best_labels", "merged_id")])
    scores = pd.DataFrame(score_rows, columns=["cluster_id", "label", "score"])
    scores = (
        rank_labels(scores, "cluster_id", cfg.tie_tolerance)
        if len(scores)
        else scores.assign(rank=[], is_best=[])
    )
    best = best_label_sets(scores) if len(scores) else {}
    maps["best_labels"] = ["|".join(sorted(best.get(int(c), ()))) for c in maps["cluster_id"]]
    table = maps.rename(columns={"sample_id": "image"})
    groups = merge_groups(table[["cluster_id", "image", "layer"]], best, cfg.merge)
    maps["merged_id"] = maps["cluster_id"].map(groups)
    score_cfg = ScoreConfig(top_n=cfg.top_n, tie_tolerance=cfg.tie_tolerance, merge=cfg.merge)
    inv, merged_scores = merge_scores(
        table[["cluster_id", "image", "layer", "weight"]], scores, groups, score_cfg
    )
    if len(inv):
        inv = _with_weighted(inv, maps)
    return Transferred(maps[MAP_COLUMNS], scores, inv, merged_scores, variant)


def _with_weighted(inv: pd.DataFrame, maps: pd.DataFrame) -> pd.DataFrame:
    """Add the merged maps' feature-map counts, weight-averaged confidence and coverage."""
    g = maps.assign(wc=maps["weight"] * maps["confidence"], wv=maps["weight"] * maps["coverage"]).groupby(
        "merged_id"
    )
    agg = pd.DataFrame(
        {"n_fmaps": g["n_fmaps"].sum(), "wc": g["wc"].sum(), "wv": g["wv"].sum(), "w": g["weight"].sum()}
    )
    w = agg["w"].where(agg["w"] > 0, 1.0)
    extra = pd.DataFrame(
        {"n_fmaps": agg["n_fmaps"], "confidence": agg["wc"] / w, "coverage": agg["wv"] / w}, index=agg.index
    )
    out = inv.join(extra, on="merged_id")
    cols = [
        "merged_id",
        "image",
        "layer",
        "members",
        "n_members",
        "weight",
        "n_fmaps",
        "confidence",
        "coverage",
    ]
    return out[cols + [c for c in out.columns if c not in cols]]


def image_cards(
    t: Transferred,
    sample_id: str,
    layer_order: Sequence[str],
    map_of: Callable[[str], np.ndarray],
    min_confidence: float = 0.0,
) -> tuple[dict[str, list[Card]], dict[str, list[Card]]]:
    """Build the cards of one image: merged and single transferred cluster maps per layer.

    Parameters
    ----------
    t : Transferred
    sample_id : str
        The image.
    layer_order : sequence of str
        The layers, shallow to deep (every one gets a list, maybe empty).
    map_of : callable
        ``extract_id`` -> the cluster map to show, ndarray of shape (h, w).
    min_confidence : float
        Labels of cards below this confidence are dropped (the card stays, unlabelled).

    Returns
    -------
    merged, clusters : dict of str to list of Card
        Layer -> cards, heaviest first (``source="transfer"``; game evidence all 0).
    """
    from inviz.labels.scoring import merge_maps

    lidx = {ly: i for i, ly in enumerate(layer_order)}
    mine = t.maps[t.maps["sample_id"] == sample_id]
    ranked = ranked_labels(t.scores[t.scores["cluster_id"].isin(mine["cluster_id"])], "cluster_id")
    single = {int(r.cluster_id): map_of(r.extract_id) for r in mine.itertuples()}
    clusters = [
        _card(
            "cluster",
            int(r.cluster_id),
            (int(r.cluster_id),),
            r,
            lidx,
            single[int(r.cluster_id)],
            ranked.get(int(r.cluster_id), ((), ())),
            min_confidence,
        )
        for r in mine.itertuples()
    ]
    inv = t.inv[t.inv["image"] == sample_id] if len(t.inv) else t.inv
    mranked = (
        ranked_labels(t.merged_scores[t.merged_scores["merged_id"].isin(inv["merged_id"])], "merged_id")
        if len(inv)
        else {}
    )
    weights = dict(zip(mine["cluster_id"].astype(int), mine["weight"].astype(float), strict=True))
    mmaps = merge_maps(
        single, weights, dict(zip(mine["cluster_id"].astype(int), mine["merged_id"].astype(int), strict=True))
    )
    merged = [
        _card(
            "merged",
            int(r.merged_id),
            tuple(int(m) for m in str(r.members).split(";")),
            r,
            lidx,
            mmaps[int(r.merged_id)].astype(np.float32),
            mranked.get(int(r.merged_id), ((), ())),
            min_confidence,
        )
        for r in inv.itertuples()
    ]
    return cards_by_layer(merged, sample_id, layer_order), cards_by_layer(clusters, sample_id, layer_order)


def _card(
    kind: str,
    cid: int,
    members: tuple[int, ...],
    r: Any,
    lidx: Mapping[str, int],
    cmap: np.ndarray,
    ranked: tuple[tuple[tuple[str, float], ...], tuple[str, ...]],
    min_confidence: float,
) -> Card:
    labels, best = ranked if float(r.confidence) >= min_confidence else ((), ())
    return Card(
        kind=kind,  # type: ignore[arg-type]
        id=cid,
        members=members,
        image=str(getattr(r, "sample_id", getattr(r, "image", ""))),
        layer=str(r.layer),
        layer_index=lidx[str(r.layer)],
        weight=float(r.weight),
        n_fmaps=int(r.n_fmaps),
        labels=labels,
        best=best,
        plays=0,
        wins=0,
        losses=0,
        resigns=0,
        mean_hints=float("nan"),
        map=np.asarray(cmap, dtype=np.float32),
        source="transfer",
        confidence=float(r.confidence),
        coverage=float(r.coverage),
    )
