"""Label analysis of a game, in one call (docs/method.md §3): what the ``labels_analyze`` stage runs.

:func:`run_label_analysis` translates, cleans, embeds and clusters the typed texts and scores the
labels (:func:`inviz.labels.analyze.analyze`), averages the maps of merged cluster maps
(:func:`inviz.labels.scoring.merge_maps`) and, on the synthetic demo, runs the closed loop
(:func:`inviz.labels.closed_loop.closed_loop`); it returns everything the stage writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from inviz.data.parts import PartMasks
from inviz.game.export import cluster_table
from inviz.game.reveal import RevealConfig
from inviz.labels.analyze import Analysis, AnalyzeConfig, analyze
from inviz.labels.closed_loop import closed_loop
from inviz.labels.embed import EmbeddingCache, LazyEncoder, embed_texts
from inviz.labels.scoring import merge_maps
from inviz.labels.translate import TranslationCache, make_translator


@dataclass(frozen=True)
class LabelRun:
    """What :func:`run_label_analysis` produced.

    analysis : the label analysis (texts, cluster labels, merged INV table, merged scores).
    merged_maps : merged id -> merged map (h, h), float64.
    closed_loop : the closed-loop table (empty without part masks).
    metrics : counts of the ``labels_analyze`` stage (with the closed loop's metrics).
    """

    analysis: Analysis
    merged_maps: dict[int, np.ndarray]
    closed_loop: pd.DataFrame
    metrics: dict[str, Any]


def class_aliases(classes: pd.DataFrame) -> dict[int, list[str]]:
    """Map each dataset label to the names of its class that are removed from texts.

    Parameters
    ----------
    classes : DataFrame
        The class names table of ``labels_import`` (``label, class_name, game_name``).

    Returns
    -------
    dict of int to list of str
        Label -> its class name and game name, sorted.
    """
    return {int(r.label): sorted({str(r.class_name), str(r.game_name)}) for r in classes.itertuples()}


def _metrics(
    result: Analysis,
    clusters: pd.DataFrame,
    tcache: TranslationCache,
    ecache: EmbeddingCache,
    loop: dict[str, Any],
) -> dict[str, Any]:
    """Count what label analysis did (the ``labels_analyze`` metrics)."""
    cl = result.cluster_labels
    labelled = cl[cl["rank"] == 1]
    best = cl[cl["is_best"] == True]  # noqa: E712 (is_best holds True, False and NaN)
    return {
        **result.counts,
        "n_cluster_maps": int(len(clusters)),
        "n_cluster_maps_labelled": int(len(labelled)),
        "n_merged_maps": int(len(result.inv)),
        "n_merges": int((result.inv["n_members"] > 1).sum()) if len(result.inv) else 0,
        "mean_labels_per_map": float(cl["label"].notna().groupby(cl["cluster_id"]).sum().mean())
        if len(cl)
        else 0.0,
        "share_best_ties": float((best.groupby("cluster_id").size() > 1).mean()) if len(labelled) else 0.0,
        "embedding_cache": {"entries": len(ecache), "added": ecache.added},
        "translation_cache": {"entries": len(tcache), "added": tcache.added},
        "closed_loop": loop,
    }


def run_label_analysis(
    guesses: pd.DataFrame,
    classes: pd.DataFrame,
    dictionary: pd.DataFrame,
    manifest: pd.DataFrame,
    maps: Mapping[int, np.ndarray],
    parts: PartMasks,
    cfg: AnalyzeConfig,
    reveal_cfg: RevealConfig,
    translation_cache: TranslationCache,
    embedding_cache: EmbeddingCache,
) -> LabelRun:
    """Label the cluster maps of a game, merge them and (demo) check the labels against the parts.

    Parameters
    ----------
    guesses : DataFrame
        The canonical guesses (:func:`inviz.game.export.read_guesses`).
    classes : DataFrame
        The class names table of ``labels_import`` (``label, class_name, game_name``).
    dictionary : DataFrame
        Manual translations (:func:`inviz.labels.translate.read_dictionary`; may be empty).
    manifest : DataFrame
        The masks manifest (:func:`inviz.game.manifest.read_manifest`).
    maps : mapping of int to ndarray of shape (h, h)
        Cluster id -> the cluster map the game masked (:func:`inviz.game.assets.load_cluster_maps`).
    parts : PartMasks
        Ground-truth part masks (empty for real data: no closed loop).
    cfg : AnalyzeConfig
        The ``labels_analyze`` section.
    reveal_cfg : RevealConfig
        The ``masks`` section (the closed loop measures coverage with the game's masks).
    translation_cache, embedding_cache : TranslationCache, EmbeddingCache
        Read and extended here; the caller saves them.

    Returns
    -------
    LabelRun
    """
    clusters = cluster_table(manifest)
    translator = make_translator(cfg.translate, dictionary)
    embed = partial(
        embed_texts,
        encoder=LazyEncoder(cfg.sbert),
        cache=embedding_cache,
        batch_size=cfg.sbert.batch_size,
        progress=cfg.progress,
    )
    result = analyze(guesses, clusters, class_aliases(classes), embed, translator, cfg, translation_cache)
    weights = dict(zip(clusters["cluster_id"].astype(int), clusters["weight"].astype(float), strict=False))
    merged = merge_maps(maps, weights, result.groups)
    loop, loop_table = closed_loop(result.cluster_labels, clusters, maps, parts, reveal_cfg, cfg.closed_loop)
    metrics = _metrics(result, clusters, translation_cache, embedding_cache, loop)
    return LabelRun(result, merged, loop_table, metrics)
