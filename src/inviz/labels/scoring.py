"""Label scores, best labels and the merge of cluster maps (docs/method.md §3.7-§3.8).

Score of label ``L`` on cluster map ``C``::

    score(L, C) = sum over the texts of L on C of (1 - hint_penalty * hints)
                  / wrong_only_divisor   if no player who gave L on C guessed the class right

(paper: ``hint_penalty = 0.1``, divisor 4 — "label frequency minus 0.1 per hint, one fourth when
only wrong guessers gave it"). With ``count_per: guess`` a guess that typed two texts with the
same label counts once. The *best labels* of a map are those within ``tie_tolerance`` of its
highest score (ties included).

Merge (per image and layer): cluster maps whose best-label sets overlap are merged,
transitively (union-find): ``{a, b}``, ``{b, c}``, ``{c}`` end in one group even though the first
and last share no label. A merged map has weight ``sum_m w_m``, map ``sum_m w_m A_m / sum_m w_m``
and label scores ``sum_m w_m s_(m,L) / sum_m w_m`` (a label absent from a member scores 0 there);
its top ``top_n`` labels are shown. Maps without labels are never merged.

Evidence per cluster map: plays (guesses + resigns), guesses, wins, losses, resigns, mean hints
of the guesses, and mean hints counting each resign as ``resign_hints`` (paper: 5).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class ScoreConfig:
    """``labels_analyze.score``: label scoring and merging.

    hint_penalty : subtracted per hint used from a text's unit count (paper: 0.1).
    wrong_only_divisor : divisor of a label's score when only wrong guessers gave it (paper: 4).
    resign_hints : hints a resign counts as in reported hint averages (paper: 5).
    count_per : ``text`` (every typed text counts, docs/method.md) or ``guess`` (once per guess).
    top_n : labels shown per (merged) cluster map (paper: 3).
    tie_tolerance : scores closer than this to the best score are ties (best labels).
    merge : merge cluster maps with overlapping best labels (§3.8); off: every map alone.
    """

    hint_penalty: float = 0.1
    wrong_only_divisor: float = 4.0
    resign_hints: float = 5.0
    count_per: Literal["text", "guess"] = "text"
    top_n: int = 3
    tie_tolerance: float = 1e-9
    merge: bool = True

    def __post_init__(self) -> None:
        if self.hint_penalty < 0:
            raise ValueError(f"hint_penalty: expected >= 0, got {self.hint_penalty}")
        if self.wrong_only_divisor <= 0:
            raise ValueError(f"wrong_only_divisor: expected > 0, got {self.wrong_only_divisor}")
        if self.top_n < 1:
            raise ValueError(f"top_n: expected >= 1, got {self.top_n}")
        if self.tie_tolerance < 0:
            raise ValueError(f"tie_tolerance: expected >= 0, got {self.tie_tolerance}")


SCORE_COLUMNS = [
    "cluster_id",
    "label",
    "score",
    "raw_score",
    "n_texts",
    "n_correct",
    "n_wrong",
    "wrong_only",
    "mean_hints",
]


def score_labels(features: pd.DataFrame, cfg: ScoreConfig = ScoreConfig()) -> pd.DataFrame:
    """Score every (cluster map, label) pair.

    Parameters
    ----------
    features : one row per labelled text: ``cluster_id, guess_id, label, hints, correct``
        (rows with a missing label are ignored).

    Returns
    -------
    DataFrame with :data:`SCORE_COLUMNS` plus ``rank`` (1 = best; order score desc, label asc)
    and ``is_best`` (within ``tie_tolerance`` of the map's best score), sorted by cluster and rank.
    """
    f = features[features["label"].notna()][["cluster_id", "guess_id", "label", "hints", "correct"]].copy()
    if cfg.count_per == "guess":
        f = f.drop_duplicates(["cluster_id", "guess_id", "label"])
    if f.empty:
        return pd.DataFrame(columns=[*SCORE_COLUMNS, "rank", "is_best"])
    f["hints"] = f["hints"].astype(float)
    f["correct"] = f["correct"].astype(bool)
    f["unit"] = 1.0 - cfg.hint_penalty * f["hints"]
    g = f.groupby(["cluster_id", "label"], sort=True)
    out = pd.DataFrame(
        {
            "raw_score": g["unit"].sum(),
            "n_texts": g.size(),
            "n_correct": g["correct"].sum().astype(int),
            "mean_hints": g["hints"].mean(),
        }
    ).reset_index()
    out["n_wrong"] = out["n_texts"] - out["n_correct"]
    out["wrong_only"] = out["n_correct"] == 0
    out["score"] = np.where(out["wrong_only"], out["raw_score"] / cfg.wrong_only_divisor, out["raw_score"])
    return rank_labels(out[SCORE_COLUMNS], "cluster_id", cfg.tie_tolerance)


def rank_labels(scores: pd.DataFrame, key: str, tie_tolerance: float = 1e-9) -> pd.DataFrame:
    """Add ``rank`` (1-based; score desc, label asc) and ``is_best`` per ``key`` group."""
    out = scores.sort_values(
        [key, "score", "label"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
    out["rank"] = out.groupby(key, sort=False).cumcount() + 1
    best = out.groupby(key, sort=False)["score"].transform("max")
    out["is_best"] = out["score"] >= best - tie_tolerance
    return out


def best_label_sets(scores: pd.DataFrame, key: str = "cluster_id") -> dict[int, frozenset[str]]:
    """``{map id: frozenset of best labels}`` from a ranked score table."""
    best = scores[scores["is_best"]]
    return {k: frozenset(g["label"]) for k, g in best.groupby(key, sort=True)}


def evidence(guesses: pd.DataFrame, cfg: ScoreConfig = ScoreConfig()) -> pd.DataFrame:
    """Per cluster map: plays, guesses, wins, losses, resigns, mean hints, texts.

    Parameters
    ----------
    guesses : the canonical table (``cluster_id, guess_id, kind, correct, hints``; ``kind`` in
        ``feature`` / ``guess`` / ``resign``). Feature rows of one guess count once as a guess.

    Returns
    -------
    DataFrame indexed by nothing, columns ``cluster_id, plays, guesses, wins, losses, resigns,
    mean_hints, mean_hints_with_resigns, n_texts``.
    """
    cols = [
        "cluster_id",
        "plays",
        "guesses",
        "wins",
        "losses",
        "resigns",
        "mean_hints",
        "mean_hints_with_resigns",
        "n_texts",
    ]
    if guesses.empty:
        return pd.DataFrame(columns=cols)
    answered = guesses[guesses["kind"] != "resign"].drop_duplicates(["cluster_id", "guess_id"])
    resigns = guesses[guesses["kind"] == "resign"]
    ids = sorted(set(guesses["cluster_id"]))
    a = answered.groupby("cluster_id")
    n_guess = a.size().reindex(ids, fill_value=0)
    wins = a["correct"].sum().reindex(ids, fill_value=0).astype(int)
    hint_sum = a["hints"].sum().reindex(ids, fill_value=0.0).astype(float)
    n_res = resigns.groupby("cluster_id").size().reindex(ids, fill_value=0)
    texts = guesses[guesses["kind"] == "feature"].groupby("cluster_id").size().reindex(ids, fill_value=0)
    plays = n_guess + n_res
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_h = np.where(n_guess > 0, hint_sum / n_guess.where(n_guess > 0, 1), np.nan)
        mean_hr = np.where(
            plays > 0, (hint_sum + cfg.resign_hints * n_res) / plays.where(plays > 0, 1), np.nan
        )
    return pd.DataFrame(
        {
            "cluster_id": ids,
            "plays": plays.to_numpy(),
            "guesses": n_guess.to_numpy(),
            "wins": wins.to_numpy(),
            "losses": (n_guess - wins).to_numpy(),
            "resigns": n_res.to_numpy(),
            "mean_hints": mean_h,
            "mean_hints_with_resigns": mean_hr,
            "n_texts": texts.to_numpy(),
        }
    )[cols]


class UnionFind:
    """Disjoint sets over hashable items (path halving, union by size)."""

    def __init__(self, items: Sequence = ()):
        self.parent = {x: x for x in items}
        self.size = {x: 1 for x in items}

    def find(self, x):
        """Return the representative of ``x``'s set (``x`` joins as a singleton if new)."""
        self.parent.setdefault(x, x)
        self.size.setdefault(x, 1)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a, b) -> None:
        """Join the sets of ``a`` and ``b``."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def merge_groups(
    clusters: pd.DataFrame, best: Mapping[int, frozenset[str]], merge: bool = True
) -> dict[int, int]:
    """Assign every cluster map a merged id.

    Maps of one image and layer whose best labels overlap share it, transitively.

    Parameters
    ----------
    clusters : ``cluster_id, image, layer`` (order = output order of merged ids).
    best : best-label sets per cluster id (maps without labels are absent or empty).
    merge : ``False`` gives every map its own group.

    Returns
    -------
    dict cluster_id -> merged id (1, 2, … in the order of each group's first member).
    """
    ids = clusters["cluster_id"].tolist()
    uf = UnionFind(ids)
    if merge:
        for _, grp in clusters.groupby(["image", "layer"], sort=False):
            owner: dict[str, int] = {}
            for cid in grp["cluster_id"]:
                for lab in sorted(best.get(cid, frozenset())):
                    if lab in owner:
                        uf.union(owner[lab], cid)
                    else:
                        owner[lab] = cid
    out: dict[int, int] = {}
    number: dict[int, int] = {}
    for cid in ids:
        root = uf.find(cid)
        if root not in number:
            number[root] = len(number) + 1
        out[cid] = number[root]
    return out


def merge_scores(
    clusters: pd.DataFrame, scores: pd.DataFrame, groups: Mapping[int, int], cfg: ScoreConfig = ScoreConfig()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Weights and weight-averaged label scores of merged cluster maps.

    Parameters
    ----------
    clusters : ``cluster_id, image, layer, weight`` (plus any columns to carry, e.g. ``true_class``).
    scores : from :func:`score_labels`. groups : from :func:`merge_groups`.

    Returns
    -------
    inv : one row per merged map — ``merged_id, image, layer, members`` (``;``-joined cluster
        ids), ``n_members, weight, best_labels`` (``|``-joined ties) and ``label_i, score_i`` for
        i = 1..top_n.
    merged_scores : ``merged_id, label, score, rank, is_best`` (long format, every label).
    """
    c = clusters.copy()
    c["merged_id"] = c["cluster_id"].map(groups)
    w = c.set_index("cluster_id")["weight"].astype(float)
    norm_of: dict[Any, float] = {}  # each member's share of its merged map's weight
    for _, grp in c.groupby("merged_id", sort=True):
        members = grp["cluster_id"].tolist()
        ws = w.loc[members].to_numpy()
        total = ws.sum()
        norm_of.update(
            zip(members, ws / total if total > 0 else np.full(len(ws), 1.0 / len(ws)), strict=True)
        )
    # one grouped sum over every score row (rows of a group in the order of ``scores``)
    sub = scores[scores["cluster_id"].isin(norm_of)]
    contrib = pd.DataFrame(
        {
            "merged_id": sub["cluster_id"].map(groups).to_numpy(),
            "label": sub["label"].to_numpy(),
            "score": sub["score"].to_numpy() * sub["cluster_id"].map(norm_of).to_numpy(),
        }
    )
    merged = contrib.groupby(["merged_id", "label"], sort=True)["score"].sum().reset_index()
    merged["score"] = merged["score"].astype(float)
    merged = (
        rank_labels(merged, "merged_id", cfg.tie_tolerance)
        if len(merged)
        else merged.assign(rank=[], is_best=[])
    )
    best = best_label_sets(merged, "merged_id") if len(merged) else {}
    inv_rows = []
    extra = [
        col
        for col in c.columns
        if col not in ("cluster_id", "image", "layer", "weight", "merged_id", "cluster")
    ]
    tops = (
        {mid: g.head(cfg.top_n) for mid, g in merged.groupby("merged_id", sort=False)} if len(merged) else {}
    )
    for mid, grp in c.groupby("merged_id", sort=True):
        row = {
            "merged_id": int(mid),
            "image": grp["image"].iloc[0],
            "layer": grp["layer"].iloc[0],
            "members": ";".join(str(x) for x in grp["cluster_id"]),
            "n_members": len(grp),
            "weight": float(grp["weight"].astype(float).sum()),
        }
        for col in extra:
            row[col] = grp[col].iloc[0]
        top = tops.get(mid, merged.iloc[:0])
        row["best_labels"] = "|".join(sorted(best.get(mid, frozenset())))
        for i in range(cfg.top_n):
            row[f"label_{i + 1}"] = top["label"].iloc[i] if i < len(top) else None
            row[f"score_{i + 1}"] = float(top["score"].iloc[i]) if i < len(top) else np.nan
        inv_rows.append(row)
    return pd.DataFrame(inv_rows), merged.reset_index(drop=True)


def merge_maps(
    maps: Mapping[int, np.ndarray], weights: Mapping[int, float], groups: Mapping[int, int]
) -> dict[int, np.ndarray]:
    """Weight-averaged maps per merged id: ``sum_m w_m A_m / sum_m w_m``.

    Parameters
    ----------
    maps : cluster id -> ndarray (h, w) (members of one group share a shape: same layer).
    weights : cluster id -> weight. groups : cluster id -> merged id.
    """
    acc: dict[int, tuple[np.ndarray, float]] = {}
    for cid, mid in groups.items():
        if cid not in maps:
            continue
        wm = float(weights[cid])
        a = np.asarray(maps[cid], dtype=np.float64) * wm
        if mid in acc:
            s, t = acc[mid]
            acc[mid] = (s + a, t + wm)
        else:
            acc[mid] = (a, wm)
    return {mid: (s / t if t > 0 else s) for mid, (s, t) in acc.items()}
