"""Text clusters → one-word labels (docs/method.md §3.4-§3.6).

Per guessed class, the distinct cleaned texts are embedded (Sentence-BERT) and grouped:

4. agglomerative clustering, cosine distance, complete linkage, the number of clusters ``k``
   chosen in ``[k_min, min(k_max, N - 1)]`` by the best mean silhouette (ties: smaller k).
   One linkage tree serves every ``k``. With N <= ``k_min`` texts there is no ``k`` to choose:
   every text is its own cluster (names and lemma unification still group synonyms);
5. each text cluster is named by the single word among the cluster's words — not a stop-word,
   at least ``min_word_length`` letters — whose embedding is closest (cosine) to the cluster's
   frequency-weighted centroid (ties: more frequent word, then alphabetical);
6. names with the same lemma (``simplemma``, data shipped with the package) are unified to the
   most frequent surface form (ties: alphabetical). Unification runs over all guessed classes,
   so "wheel" from one class and "wheels" from another become one label.

Stop-words come from packages that ship their data (no downloads): scikit-learn's
``ENGLISH_STOP_WORDS`` (``sklearn``, the default) and the ``stop-words`` package
(``stop-words:<lang>``; its English list is long and also drops "ring", "line", "face", "top").
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

from inviz.labels.text import words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterConfig:
    """``labels_analyze.cluster``: text clustering and naming.

    linkage : agglomerative linkage on cosine distances (paper: ``complete``).
    k_min, k_max : range of cluster counts tried (paper: 2 .. N-1; ``k_max: null`` = N - 1).
    stop_words : stop-word sources, from :data:`STOP_WORD_SOURCES` (``sklearn``,
        ``stop-words:<lang>``); their union is used.
    extra_stop_words : more words never used as names. keep_words : words never treated as
        stop-words (overrides the sources).
    min_word_length : shortest name candidate, in letters.
    lemma_language : ``simplemma`` language of the lemma unification.
    weighted_centroid : weight texts by their frequency in the cluster centroid (paper); off:
        plain mean of the distinct texts.
    """

    linkage: Literal["complete", "average", "single"] = "complete"
    k_min: int = 2
    k_max: int | None = None
    stop_words: tuple[str, ...] = ("sklearn",)
    extra_stop_words: tuple[str, ...] = ()
    keep_words: tuple[str, ...] = ()
    min_word_length: int = 2
    lemma_language: str = "en"
    weighted_centroid: bool = True

    def __post_init__(self) -> None:
        if self.k_min < 2:
            raise ValueError(f"k_min: expected >= 2, got {self.k_min}")
        if self.k_max is not None and self.k_max < self.k_min:
            raise ValueError(f"k_max: expected null or >= k_min ({self.k_min}), got {self.k_max}")
        for src in self.stop_words:
            if src.split(":", 1)[0] not in STOP_WORD_SOURCES:
                raise ValueError(
                    f"stop_words: unknown source {src!r}; expected {', '.join(STOP_WORD_SOURCES)}[:<lang>]"
                )
        if self.min_word_length < 1:
            raise ValueError(f"min_word_length: expected >= 1, got {self.min_word_length}")


def _sklearn_stop_words(lang: str) -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS) if lang == "en" else frozenset()


def _package_stop_words(lang: str) -> frozenset[str]:
    from stop_words import get_stop_words

    return frozenset(get_stop_words(lang))


#: Stop-word source registry: name -> fn(language) -> words. Entries are ``name[:lang]`` (default en).
STOP_WORD_SOURCES: dict[str, Callable[[str], frozenset[str]]] = {
    "sklearn": _sklearn_stop_words,
    "stop-words": _package_stop_words,
}


@lru_cache(maxsize=32)
def stop_word_set(
    sources: tuple[str, ...], extra: tuple[str, ...] = (), keep: tuple[str, ...] = ()
) -> frozenset[str]:
    """Union of the listed sources plus ``extra``, minus ``keep`` (all lower case)."""
    out: set[str] = set()
    for src in sources:
        name, _, lang = src.partition(":")
        out |= STOP_WORD_SOURCES[name](lang or "en")
    out |= {w.lower() for w in extra}
    return frozenset(w.lower() for w in out) - {w.lower() for w in keep}


class TextClusterer:
    """Agglomerative clustering of embeddings with ``k`` chosen by silhouette.

    Parameters
    ----------
    k_min, k_max : range of k tried (``k_max=None``: N - 1).
    linkage : ``complete`` (paper), ``average`` or ``single``; distance is cosine.

    Attributes (after :meth:`fit`)
    ------------------------------
    labels_ : ndarray of int, shape (N,) — cluster of each row, numbered by first appearance.
    n_clusters_ : int. silhouette_scores_ : dict k -> mean silhouette (empty when N <= k_min).
    """

    def __init__(self, k_min: int = 2, k_max: int | None = None, linkage: str = "complete"):
        self.k_min = k_min
        self.k_max = k_max
        self.linkage = linkage

    def fit(self, X: np.ndarray) -> TextClusterer:
        """Cluster the rows of ``X`` (shape (N, D); need not be normalised)."""
        from scipy.cluster.hierarchy import cut_tree, linkage
        from scipy.spatial.distance import squareform
        from sklearn.metrics import silhouette_score

        X = np.asarray(X, dtype=np.float64)
        n = len(X)
        self.silhouette_scores_: dict[int, float] = {}
        k_hi = n - 1 if self.k_max is None else min(self.k_max, n - 1)
        if n <= self.k_min or k_hi < self.k_min:
            self.labels_ = np.arange(n, dtype=int)
            self.n_clusters_ = n
            return self
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        U = X / np.where(norms > 0, norms, 1.0)
        D = np.clip(1.0 - U @ U.T, 0.0, 2.0)
        D = (D + D.T) / 2
        np.fill_diagonal(D, 0.0)
        Z = linkage(squareform(D, checks=False), method=self.linkage)
        best_k, best_s, best_labels = None, -np.inf, None
        ks = list(range(self.k_min, k_hi + 1))
        cuts = cut_tree(Z, n_clusters=ks)  # (n, len(ks)): one tree, every k at once
        for j, k in enumerate(ks):
            labels = cuts[:, j]
            if len(np.unique(labels)) < 2:
                continue
            s = float(silhouette_score(D, labels, metric="precomputed"))
            self.silhouette_scores_[k] = s
            if s > best_s + 1e-12:
                best_k, best_s, best_labels = k, s, labels
        if best_labels is None:  # every distance 0: one cluster
            best_labels, best_k = np.zeros(n, dtype=int), 1
        _, first = np.unique(best_labels, return_index=True)
        order = {lab: i for i, lab in enumerate(best_labels[np.sort(first)])}
        self.labels_ = np.array([order[lab] for lab in best_labels], dtype=int)
        self.n_clusters_ = int(best_k)
        return self


def name_cluster(
    texts: Sequence[str],
    counts: Sequence[float],
    text_vectors: np.ndarray,
    word_vector: Callable[[list[str]], np.ndarray],
    stop_words: frozenset[str],
    min_word_length: int = 2,
    weighted: bool = True,
) -> str | None:
    """Name one text cluster by its word nearest to the (frequency-weighted) centroid.

    Parameters
    ----------
    texts : the cluster's distinct cleaned texts. counts : how often each was typed.
    text_vectors : ndarray of shape (n, D), normalised embeddings of ``texts``.
    word_vector : fn(list of words) -> ndarray (m, D) of normalised word embeddings.
    stop_words : words never used as a name.

    Returns
    -------
    The name, or ``None`` when the cluster has no candidate word (only stop-words).
    """
    freq: Counter[str] = Counter()
    for t, c in zip(texts, counts, strict=False):
        for w in words(t):
            if len(w) >= min_word_length and w.lower() not in stop_words:
                freq[w] += c
    if not freq:
        return None
    cand = sorted(freq)
    w = np.asarray(counts, dtype=np.float64) if weighted else np.ones(len(texts))
    centroid = (w[:, None] * np.asarray(text_vectors, dtype=np.float64)).sum(0) / w.sum()
    norm = np.linalg.norm(centroid)
    centroid = centroid / norm if norm > 0 else centroid
    sims = np.asarray(word_vector(cand), dtype=np.float64) @ centroid
    best = min(range(len(cand)), key=lambda i: (-round(float(sims[i]), 9), -freq[cand[i]], cand[i]))
    return cand[best]


def lemma(word: str, lang: str = "en") -> str:
    """Lemma of ``word`` with ``simplemma`` (lower case; unknown words are returned as they are)."""
    import simplemma

    return str(simplemma.lemmatize(word.lower(), lang=lang)).lower()


def unify_lemmas(names: Sequence[str | None], counts: Sequence[float], lang: str = "en") -> dict[str, str]:
    """Map each name to the most frequent surface form sharing its lemma.

    Parameters
    ----------
    names : one name per text (``None`` skipped). counts : the text's frequency.

    Returns
    -------
    dict name -> unified label (ties between surface forms: alphabetical).
    """
    total: Counter[str] = Counter()
    for n, c in zip(names, counts, strict=False):
        if isinstance(n, str):  # None / NaN: no name
            total[n] += c
    groups: dict[str, list[str]] = {}
    for n in total:
        groups.setdefault(lemma(n, lang), []).append(n)
    out: dict[str, str] = {}
    for members in groups.values():
        winner = sorted(members, key=lambda m: (-total[m], m))[0]
        for m in members:
            out[m] = winner
    return out


def label_texts(
    table: pd.DataFrame,
    embed: Callable[[list[str]], np.ndarray],
    cfg: ClusterConfig = ClusterConfig(),
    progress: bool = True,
) -> pd.DataFrame:
    """Cluster, name and unify the texts of every guessed class.

    Parameters
    ----------
    table : DataFrame with columns ``guessed_class`` and ``text`` (cleaned), one row per typed
        text (repeats count as frequency).
    embed : fn(list of strings) -> ndarray (n, D) of normalised embeddings (texts and words).

    Returns
    -------
    DataFrame, one row per (guessed_class, distinct text): ``guessed_class, text, count,
    text_cluster, n_text_clusters, silhouette, name, label`` (``label`` after lemma
    unification; ``None`` when the cluster had no usable word).
    """
    from tqdm.auto import tqdm

    stops = stop_word_set(tuple(cfg.stop_words), tuple(cfg.extra_stop_words), tuple(cfg.keep_words))
    counts = table.groupby(["guessed_class", "text"], sort=True).size().rename("count").reset_index()
    parts = []
    classes = sorted(counts["guessed_class"].unique())
    for cls in tqdm(classes, desc="text clusters", unit="class", disable=not progress):
        sub = counts[counts["guessed_class"] == cls].reset_index(drop=True)
        texts = sub["text"].tolist()
        vecs = embed(texts)
        model = TextClusterer(cfg.k_min, cfg.k_max, cfg.linkage).fit(vecs)
        # embed every candidate word of the class at once; naming looks them up
        cand = sorted(
            {w for t in texts for w in words(t) if len(w) >= cfg.min_word_length and w.lower() not in stops}
        )
        table_w = dict(zip(cand, embed(cand), strict=False)) if cand else {}

        def word_vector(ws: list[str], table_w: dict = table_w) -> np.ndarray:
            return np.stack([table_w[w] for w in ws])

        names: dict[int, str | None] = {}
        for c in range(model.n_clusters_):
            idx = np.flatnonzero(model.labels_ == c)
            names[c] = name_cluster(
                [texts[i] for i in idx],
                sub["count"].to_numpy()[idx],
                vecs[idx],
                word_vector,
                stops,
                cfg.min_word_length,
                cfg.weighted_centroid,
            )
        sil = model.silhouette_scores_.get(model.n_clusters_, np.nan)
        parts.append(
            sub.assign(
                text_cluster=model.labels_,
                n_text_clusters=model.n_clusters_,
                silhouette=sil,
                name=[names[c] for c in model.labels_],
            )
        )
    cols = [
        "guessed_class",
        "text",
        "count",
        "text_cluster",
        "n_text_clusters",
        "silhouette",
        "name",
        "label",
    ]
    if not parts:
        return pd.DataFrame(columns=cols)
    out = pd.concat(parts, ignore_index=True)
    mapping = unify_lemmas(out["name"].tolist(), out["count"].tolist(), cfg.lemma_language)
    out["name"] = [n if isinstance(n, str) else None for n in out["name"]]
    out["label"] = [mapping.get(n) if n is not None else None for n in out["name"]]
    return out[cols]
