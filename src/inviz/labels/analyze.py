"""Label analysis, end to end (docs/method.md §3): canonical guesses in, labelled cluster maps out.

:func:`analyze` runs the steps in order, each from its own module:

1. translation of non-English texts (:mod:`~inviz.labels.translate`), grouped by guessed class;
2. cleaning and class-name removal (:mod:`~inviz.labels.text`);
3-6. Sentence-BERT embeddings, text clusters, names, lemma unification
   (:mod:`~inviz.labels.embed`, :mod:`~inviz.labels.cluster`);
7. label scores and evidence (:mod:`~inviz.labels.scoring`);
8. transitive merge of cluster maps with overlapping best labels, merged weights and scores.

Texts lost on the way are counted per reason (``untranslated`` when dropped, ``empty_after_cleaning``
— e.g. the text was only the class name —, ``no_label`` — its text cluster had no usable word).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from inviz.labels.closed_loop import ClosedLoopConfig
from inviz.labels.cluster import ClusterConfig, label_texts
from inviz.labels.embed import EmbedConfig
from inviz.labels.scoring import (
    ScoreConfig,
    best_label_sets,
    evidence,
    merge_groups,
    merge_scores,
    score_labels,
)
from inviz.labels.text import TextConfig, clean_text
from inviz.labels.translate import (
    TranslateConfig,
    TranslationCache,
    TranslationResult,
    Translator,
    translate_texts,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnalyzeConfig:
    """``labels_analyze`` section: one sub-section per step.

    text : cleaning (:class:`~inviz.labels.text.TextConfig`).
    translate : translation (:class:`~inviz.labels.translate.TranslateConfig`).
    sbert : embedding model (:class:`~inviz.labels.embed.EmbedConfig`).
    cluster : text clustering and naming (:class:`~inviz.labels.cluster.ClusterConfig`).
    score : scores and merging (:class:`~inviz.labels.scoring.ScoreConfig`).
    closed_loop : demo check against part masks (:class:`~inviz.labels.closed_loop.ClosedLoopConfig`).
    progress : show progress bars.
    """

    text: TextConfig = field(default_factory=TextConfig)
    translate: TranslateConfig = field(default_factory=TranslateConfig)
    sbert: EmbedConfig = field(default_factory=EmbedConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    score: ScoreConfig = field(default_factory=ScoreConfig)
    closed_loop: ClosedLoopConfig = field(default_factory=ClosedLoopConfig)
    progress: bool = True


@dataclass(frozen=True)
class Analysis:
    """Output of :func:`analyze`.

    texts : audit table, one row per distinct (guessed class, typed text, language): the
        translation and its status, the cleaned text, its text cluster, name and final label,
        and how often it was typed.
    features : the feature rows with ``text_translated, text_clean, label``.
    scores : per (cluster map, label) scores (:func:`~inviz.labels.scoring.score_labels`).
    cluster_labels : per cluster map (all maps, also unplayed ones) its ranked labels with
        scores and evidence counts; one row per label, or one empty row for a map without labels.
        Map columns: ``cluster_id, image, layer, cluster, weight, true_label, true_class, plays,
        guesses, wins, losses, resigns, mean_hints, mean_hints_with_resigns, n_texts, merged_id``;
        label columns: ``label, score, raw_score, label_texts, label_correct, label_wrong,
        wrong_only, label_mean_hints, rank, is_best``.
    inv : merged INV table (:func:`~inviz.labels.scoring.merge_scores`).
    merged_scores : per merged map every label's score and rank.
    groups : cluster id -> merged id.
    counts : texts dropped per reason and translation statuses.
    """

    texts: pd.DataFrame
    features: pd.DataFrame
    scores: pd.DataFrame
    cluster_labels: pd.DataFrame
    inv: pd.DataFrame
    merged_scores: pd.DataFrame
    groups: dict[int, int]
    counts: dict[str, Any]


def _cluster_labels(
    order: pd.DataFrame, ev: pd.DataFrame, scores: pd.DataFrame, groups: dict[int, int]
) -> pd.DataFrame:
    """Join each cluster map (game order) with its evidence, merged id and ranked label scores."""
    base = order.merge(ev, on="cluster_id", how="left")
    base["merged_id"] = base["cluster_id"].map(groups)
    for c in ("plays", "guesses", "wins", "losses", "resigns", "n_texts"):
        base[c] = base[c].fillna(0).astype(int)
    label_cols = {
        "n_texts": "label_texts",
        "n_correct": "label_correct",
        "n_wrong": "label_wrong",
        "mean_hints": "label_mean_hints",
    }
    cluster_labels = base.merge(scores.rename(columns=label_cols), on="cluster_id", how="left")
    return cluster_labels.sort_values(["cluster_id", "rank"], kind="stable", na_position="last").reset_index(
        drop=True
    )


def _audit(feats: pd.DataFrame, labelled: pd.DataFrame) -> pd.DataFrame:
    """Count each distinct text with its translation and cleaning, joined with its text cluster and label."""
    audit = (
        feats.groupby(
            ["guessed_class", "text", "language", "translation_status", "text_translated", "text_clean"],
            dropna=False,
        )
        .size()
        .rename("count")
        .reset_index()
    )
    audit = audit.merge(
        labelled.rename(columns={"text": "text_clean", "count": "clean_count"}),
        on=["guessed_class", "text_clean"],
        how="left",
    )
    return audit.sort_values(
        ["guessed_class", "label", "text_cluster", "text"], kind="stable", na_position="last"
    ).reset_index(drop=True)


def _translate_and_clean(
    feats: pd.DataFrame,
    aliases: dict[int, list[str]],
    translator: Translator,
    cfg: AnalyzeConfig,
    cache: TranslationCache | None,
) -> tuple[pd.DataFrame, TranslationResult, dict[str, int]]:
    """Translate the feature texts, drop the untranslated ones if asked, clean them (§3.1-§3.2).

    Returns the table with ``text_translated, translation_status, text_clean``, the
    :class:`~inviz.labels.translate.TranslationResult` and the dropped counts so far.
    """
    tr = translate_texts(
        feats["text"].tolist(),
        feats["language"].tolist(),
        feats["guessed_class"].tolist(),
        cfg.translate,
        translator,
        cache,
        provided=feats["text_en"].tolist() if "text_en" in feats else None,
    )
    feats["text_translated"] = tr.texts
    feats["translation_status"] = tr.status
    dropped: dict[str, int] = {"untranslated": 0, "empty_after_cleaning": 0, "no_label": 0}
    if cfg.translate.untranslated == "drop":
        bad = feats["translation_status"] == "untranslated"
        dropped["untranslated"] = int(bad.sum())
        feats = feats[~bad]
    feats["text_clean"] = [
        clean_text(t, aliases.get(int(g), []), cfg.text)
        for t, g in zip(feats["text_translated"], feats["guessed_label"], strict=False)
    ]
    return feats, tr, dropped


def analyze(
    guesses: pd.DataFrame,
    clusters: pd.DataFrame,
    aliases: dict[int, list[str]],
    embed: Callable[[list[str]], np.ndarray],
    translator: Translator,
    cfg: AnalyzeConfig = AnalyzeConfig(),
    cache: TranslationCache | None = None,
) -> Analysis:
    """Run label analysis.

    Parameters
    ----------
    guesses : the canonical table (:func:`inviz.game.export.read_guesses`).
    clusters : one row per cluster map, game order: ``cluster_id, image, layer, cluster, weight``
        (+ ``label, true_class``; :func:`inviz.game.export.cluster_table`).
    aliases : dataset label -> names of the class removed from texts (class name, game name).
    embed : fn(list of str) -> normalised embeddings (n, D) (texts and single words).
    translator : from :func:`~inviz.labels.translate.make_translator`. cache : translation cache.
    """
    feats = guesses[guesses["kind"] == "feature"].copy()
    n_in = len(feats)
    feats, tr, dropped = _translate_and_clean(feats, aliases, translator, cfg, cache)
    empty = feats["text_clean"] == ""
    dropped["empty_after_cleaning"] = int(empty.sum())
    usable = feats[~empty]
    labelled = label_texts(
        usable[["guessed_class", "text_clean"]].rename(columns={"text_clean": "text"}),
        embed,
        cfg.cluster,
        progress=cfg.progress,
    )
    key = labelled.set_index(["guessed_class", "text"])
    idx = pd.MultiIndex.from_arrays([feats["guessed_class"], feats["text_clean"]])
    for col in ("text_cluster", "name", "label"):
        feats[col] = key[col].reindex(idx).to_numpy() if len(key) else None
    feats["label"] = feats["label"].where(feats["label"].notna(), None)
    dropped["no_label"] = int((feats["label"].isna() & ~empty).sum())

    scores = score_labels(feats, cfg.score)
    ev = evidence(guesses, cfg.score)
    best = best_label_sets(scores) if len(scores) else {}
    order = clusters.reset_index(drop=True).rename(columns={"label": "true_label"})
    groups = merge_groups(order[["cluster_id", "image", "layer"]], best, cfg.score.merge)
    carry = [c for c in ("true_label", "true_class") if c in order.columns]
    inv, merged_scores = merge_scores(
        order[["cluster_id", "image", "layer", "weight", *carry]], scores, groups, cfg.score
    )

    cluster_labels = _cluster_labels(
        order[["cluster_id", "image", "layer", "cluster", "weight", *carry]], ev, scores, groups
    )
    audit = _audit(feats, labelled)
    counts = {
        "texts_in": int(n_in),
        "texts_labelled": int(feats["label"].notna().sum()),
        "dropped": dropped,
        "translation": tr.counts,
        "distinct_texts": int(len(labelled)),
        "distinct_labels": int(labelled["label"].nunique()) if len(labelled) else 0,
        "text_clusters": int(labelled.groupby("guessed_class")["text_cluster"].nunique().sum())
        if len(labelled)
        else 0,
    }
    return Analysis(audit, feats, scores, cluster_labels, inv, merged_scores, groups, counts)
