"""Closed-loop check of label analysis on the synthetic demo (docs/method.md §3; ground-truth parts known).

Simulated players describe the parts they saw; label analysis should therefore give a cluster
map a top label that *names a part the map actually covers*. For each cluster map with labels:

- covered parts: parts of its image whose coverage at reveal level ``level`` (mean soft mask
  over the part's pixels, :func:`inviz.game.coverage.part_coverage`) is at least
  ``min_coverage``;
- named parts of a label: parts with an English phrase containing a word of the same lemma
  (``"lines"`` names stripes and zigzag, ``"moon"`` crescent); colour and vague words name none;
  words found in the phrases of more than ``max_parts_per_word`` parts ("shape", "pattern") name none;
- hit: the map's top label names a covered part. Tied best labels share the credit (a map with
  best labels {wheel, sky} and a covered wheel scores 0.5).

``accuracy`` is the mean hit over labelled maps (``accuracy_rank1``: the rank-1 label alone, ties
broken alphabetically); ``baseline`` the same after shuffling the best labels across maps
(seeded), i.e. what labels unrelated to the map would score.

:func:`closed_loop` is the whole check in one call (the ``labels_analyze`` stage runs it); the
words that name parts come from the players' vocabulary (:mod:`inviz.game.simulate.vocabulary`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from inviz.data.parts import PartMasks
from inviz.game.coverage import maps_part_coverage
from inviz.game.reveal import RevealConfig
from inviz.game.simulate.vocabulary import COLOUR_PHRASES, PART_PHRASES
from inviz.labels.cluster import lemma
from inviz.labels.text import words

#: Columns of the closed-loop table (one row per labelled cluster map).
TABLE_COLUMNS = ["cluster_id", "layer", "labels", "named_parts", "covered_parts", "hit_share", "hit_rank1"]

#: The metrics when there is nothing to check (no part masks, no labelled map).
SKIPPED: dict[str, Any] = {"accuracy": None, "accuracy_rank1": None, "baseline": None, "n_maps": 0}


@dataclass(frozen=True)
class ClosedLoopConfig:
    """``labels_analyze.closed_loop`` (demo only; skipped when there are no part masks).

    level : reveal level whose coverage decides what a map covers (-1 = the last, 30 %).
    min_coverage : coverage from which a part counts as covered.
    max_parts_per_word : a word found in the phrases of more parts than this is generic
        ("shape", "pattern") and names none.
    seed : shuffles the best labels across maps for the baseline.
    """

    level: int = -1
    min_coverage: float = 0.3
    max_parts_per_word: int = 2
    seed: int = 432


def part_lexicon(
    phrases: Mapping[str, Mapping[str, Sequence[str]]],
    lang: str = "en",
    max_parts_per_word: int = 2,
    exclude: Iterable[str] = (),
) -> dict[str, set[str]]:
    """Map each lemma to the parts whose ``lang`` phrases contain a word with that lemma.

    Generic words (in more than ``max_parts_per_word`` parts) and the words of ``exclude``
    (e.g. colour names: "red" of "red cross" does not name a cross) are dropped.

    Parameters
    ----------
    phrases : mapping
        Part -> language -> phrases (:data:`inviz.game.simulate.vocabulary.PART_PHRASES`).
    lang : str
        The language of the labels.
    max_parts_per_word : int
        Words of more parts' phrases name none.
    exclude : iterable of str
        Words that name no part.

    Returns
    -------
    dict of str to set of str
        Lemma -> parts.
    """
    out: dict[str, set[str]] = {}
    for part, by_lang in phrases.items():
        for phrase in by_lang.get(lang, []):
            for w in words(phrase.lower()):
                for piece in {w, *w.split("-"), w.replace("-", "")}:
                    if piece:
                        out.setdefault(lemma(piece), set()).add(part)
    banned = {lemma(p) for e in exclude for w in words(str(e).lower()) for p in {w, *w.split("-")} if p}
    return {k: v for k, v in out.items() if len(v) <= max_parts_per_word and k not in banned}


def named_parts(label: str, lexicon: Mapping[str, set[str]]) -> set[str]:
    """Find the parts a label names (see the module docstring).

    Parameters
    ----------
    label : str
        The label (one or more words).
    lexicon : mapping of str to set of str
        From :func:`part_lexicon`.

    Returns
    -------
    set of str
    """
    out: set[str] = set()
    for w in words(str(label).lower()):
        for piece in {w, *w.split("-"), w.replace("-", "")}:
            out |= lexicon.get(lemma(piece), set())
    return out


def evaluate(
    best: pd.DataFrame,
    coverage: Mapping[int, tuple[Sequence[str], np.ndarray]],
    lexicon: Mapping[str, set[str]],
    cfg: ClosedLoopConfig = ClosedLoopConfig(),
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Closed-loop accuracy.

    Parameters
    ----------
    best : the best labels of every labelled cluster map, one row per label: ``cluster_id,
        layer, label, rank`` (ties: several rows; ``rank`` orders them).
    coverage : cluster id -> (parts, coverage array (L, P)) from ``part_coverage``.
    lexicon : from :func:`part_lexicon`.

    Returns
    -------
    metrics : ``accuracy`` (mean over maps of the share of its tied best labels that name a
        covered part), ``accuracy_rank1`` (the rank-1 label only, ties broken alphabetically),
        ``baseline`` (``accuracy`` with the best-label sets shuffled across maps), ``n_maps``,
        ``by_layer``.
    table : per map ``cluster_id, layer, labels, named_parts, covered_parts, hit_share, hit_rank1``.
    """
    groups = [(cid, g.sort_values("rank")) for cid, g in best.groupby("cluster_id", sort=True)]
    covered_of: dict[int, set[str]] = {}
    for cid, _ in groups:
        parts, cov = coverage[cid]
        covered_of[cid] = {p for p, c in zip(parts, cov[cfg.level], strict=True) if c >= cfg.min_coverage}

    def share(labels: Sequence[str], covered: set[str]) -> float:
        hits = [bool(named_parts(lab, lexicon) & covered) for lab in labels]
        return float(np.mean(hits)) if labels else 0.0

    rows = []
    for cid, g in groups:
        labels = g["label"].tolist()
        covered = covered_of[cid]
        rows.append(
            {
                "cluster_id": cid,
                "layer": g["layer"].iloc[0],
                "labels": "|".join(labels),
                "named_parts": "|".join(sorted(set().union(*(named_parts(lab, lexicon) for lab in labels)))),
                "covered_parts": "|".join(sorted(covered)),
                "hit_share": share(labels, covered),
                "hit_rank1": bool(named_parts(labels[0], lexicon) & covered),
            }
        )
    table = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    if table.empty:
        return {**SKIPPED, "by_layer": {}}, table
    rng = np.random.default_rng(cfg.seed)
    label_sets = [g["label"].tolist() for _, g in groups]
    order = rng.permutation(len(label_sets))
    base = [share(label_sets[j], covered_of[cid]) for j, (cid, _) in zip(order, groups, strict=True)]
    metrics = {
        "accuracy": float(table["hit_share"].mean()),
        "accuracy_rank1": float(table["hit_rank1"].mean()),
        "baseline": float(np.mean(base)),
        "n_maps": int(len(table)),
        "n_maps_covering_a_part": int((table["covered_parts"] != "").sum()),
        "by_layer": {
            str(k): float(v) for k, v in table.groupby("layer", sort=False)["hit_share"].mean().items()
        },
    }
    return metrics, table


def closed_loop(
    cluster_labels: pd.DataFrame,
    clusters: pd.DataFrame,
    maps: Mapping[int, np.ndarray],
    parts: PartMasks,
    reveal_cfg: RevealConfig,
    cfg: ClosedLoopConfig = ClosedLoopConfig(),
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Run the closed loop: check whether the labelled maps' best labels name parts the maps cover.

    Parameters
    ----------
    cluster_labels : DataFrame
        Ranked labels per cluster map (``cluster_id, layer, label, rank, is_best``;
        :attr:`inviz.labels.analyze.Analysis.cluster_labels`).
    clusters : DataFrame
        One row per cluster map (``cluster_id, image``).
    maps : mapping of int to ndarray of shape (h, h)
        Cluster id -> the cluster map the game masked.
    parts : PartMasks
        Ground-truth part masks; empty (real data): the check is skipped.
    reveal_cfg : RevealConfig
        The game's reveal settings (coverage is measured with the game's soft masks).
    cfg : ClosedLoopConfig
        ``labels_analyze.closed_loop``.

    Returns
    -------
    metrics : dict
        As :func:`evaluate`; ``accuracy``, ``accuracy_rank1``, ``baseline`` None and ``n_maps`` 0
        without part masks.
    table : DataFrame
        One row per labelled map (:data:`TABLE_COLUMNS`); empty without part masks.
    """
    if not len(parts):
        return dict(SKIPPED), pd.DataFrame(columns=TABLE_COLUMNS)
    best = cluster_labels[cluster_labels["is_best"].eq(True)][["cluster_id", "layer", "label", "rank"]]
    images = clusters.set_index("cluster_id").loc[best["cluster_id"].unique(), "image"]
    coverage = maps_part_coverage(maps, dict(images.items()), parts, reveal_cfg)
    return evaluate(best, coverage, demo_lexicon(cfg), cfg)


def demo_lexicon(cfg: ClosedLoopConfig = ClosedLoopConfig()) -> dict[str, set[str]]:
    """Return the lexicon of the simulated players' English part phrases, colour words excluded.

    Parameters
    ----------
    cfg : ClosedLoopConfig
        ``max_parts_per_word`` (generic words name no part).

    Returns
    -------
    dict of str to set of str
        Lemma -> parts (:func:`part_lexicon`).
    """
    colours = [w for by_lang in COLOUR_PHRASES.values() for w in by_lang.get("en", [])]
    return part_lexicon(PART_PHRASES, max_parts_per_word=cfg.max_parts_per_word, exclude=colours)
