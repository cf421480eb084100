"""Text clustering, naming and lemma unification (docs/method.md §3.4-§3.6) with hand-made vectors.

The real Sentence-BERT model is exercised in ``test_labels_sbert.py``.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import AgglomerativeClustering
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from inviz.core.config import ParamsError, from_dict
from inviz.labels.cluster import (
    STOP_WORD_SOURCES,
    ClusterConfig,
    TextClusterer,
    label_texts,
    lemma,
    name_cluster,
    stop_word_set,
    unify_lemmas,
)


def directions(n_groups, per_group, dim=16, spread=0.05, seed=0):
    """Points around ``n_groups`` random directions (cosine geometry)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dim))
    X = np.concatenate([c + spread * np.linalg.norm(c) * rng.normal(size=(per_group, dim)) for c in centres])
    return X, np.repeat(np.arange(n_groups), per_group)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_finds_known_groups(seed):
    X, y = directions(4, 6, seed=seed)
    model = TextClusterer().fit(X)
    assert model.n_clusters_ == 4
    assert adjusted_rand_score(y, model.labels_) == 1.0
    assert set(model.silhouette_scores_) == set(range(2, len(X)))  # k = 2 .. N-1
    assert max(model.silhouette_scores_, key=model.silhouette_scores_.get) == 4


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_agrees_with_scikit_learn_for_every_k(seed):
    X, _ = make_blobs(n_samples=30, centers=5, n_features=8, random_state=seed)
    model = TextClusterer().fit(X)
    ref = AgglomerativeClustering(n_clusters=model.n_clusters_, metric="cosine", linkage="complete").fit(X)
    assert adjusted_rand_score(ref.labels_, model.labels_) == 1.0


def test_small_inputs_and_k_range():
    assert TextClusterer().fit(np.eye(2)).labels_.tolist() == [0, 1]  # N <= k_min: no k to choose
    assert TextClusterer().fit(np.eye(1)).n_clusters_ == 1
    three = TextClusterer().fit(np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]]))
    assert three.n_clusters_ == 2 and three.labels_.tolist() == [0, 0, 1]
    X, _ = directions(5, 4)
    capped = TextClusterer(k_max=3).fit(X)
    assert set(capped.silhouette_scores_) == {2, 3} and capped.n_clusters_ <= 3


def test_labels_numbered_by_first_appearance_and_deterministic():
    X, _ = directions(3, 5, seed=4)
    perm = np.random.default_rng(0).permutation(len(X))
    a = TextClusterer().fit(X[perm]).labels_
    b = TextClusterer().fit(X[perm]).labels_
    np.testing.assert_array_equal(a, b)
    assert a[0] == 0 and list(dict.fromkeys(a)) == sorted(set(a))


# --- naming ---------------------------------------------------------------------------------

WORDS = {  # hand-made 3-d "embeddings"
    "wheel": [1.0, 0.0, 0.0],
    "spoked": [0.6, 0.8, 0.0],
    "round": [0.5, 0.0, 0.866],
    "tyre": [0.9, 0.1, 0.42],
    "the": [1.0, 0.0, 0.0],
    "of": [0.0, -1.0, 0.0],
}


def fake_embed(texts):
    out = []
    for t in texts:
        vecs = [np.asarray(WORDS[w]) for w in t.split() if w in WORDS] or [np.ones(3)]
        v = np.mean(vecs, axis=0)
        out.append(v / np.linalg.norm(v))
    return np.asarray(out)


def test_name_is_the_word_nearest_the_weighted_centroid_and_never_a_stop_word():
    texts = ["spoked wheel", "round wheel", "wheel"]
    vecs = fake_embed(texts)
    stops = frozenset({"the"})
    assert name_cluster(texts, [1, 1, 1], vecs, fake_embed, stops) == "wheel"
    # frequency weighting moves the centroid: 'spoked' vs 'round' flips with the counts
    two = ["spoked", "round"]
    assert name_cluster(two, [5, 1], fake_embed(two), fake_embed, stops) == "spoked"
    assert name_cluster(two, [1, 5], fake_embed(two), fake_embed, stops) == "round"
    assert (
        name_cluster(["the wheel"], [1], fake_embed(["the wheel"]), fake_embed, frozenset({"the", "wheel"}))
        is None
    )
    assert name_cluster(["the"], [1], fake_embed(["the"]), fake_embed, stops) is None


def test_name_ties_prefer_frequent_then_alphabetical():
    texts = ["wheel", "the"]  # 'the' has the same vector as 'wheel' but is a stop-word
    assert name_cluster(texts, [1, 1], fake_embed(texts), fake_embed, frozenset({"the"})) == "wheel"
    same = lambda ws: np.tile([1.0, 0.0, 0.0], (len(ws), 1))  # noqa: E731  every word equally near
    assert name_cluster(["bb aa", "bb"], [1, 1], same(["x", "y"]), same, frozenset()) == "bb"  # more frequent
    assert name_cluster(["bb aa"], [1], same(["x"]), same, frozenset()) == "aa"  # alphabetical
    assert name_cluster(["bb a"], [1], same(["x"]), same, frozenset(), min_word_length=2) == "bb"


def test_lemma_unification_keeps_most_frequent_surface_form():
    assert lemma("wheels") == "wheel" and lemma("Stripes") == "stripe"
    m = unify_lemmas(
        ["wheels", "wheel", "wheels", "stripes", None, "stripe", "stripes"], [1, 1, 1, 1, 5, 1, 1]
    )
    assert m == {"wheels": "wheels", "wheel": "wheels", "stripes": "stripes", "stripe": "stripes"}
    assert unify_lemmas(["dots", "dot"], [1, 1]) == {"dots": "dot", "dot": "dot"}  # tie: alphabetical


def test_stop_word_sources_ship_their_data():
    for name in STOP_WORD_SOURCES:
        assert "the" in stop_word_set((name,))
    assert "ring" in stop_word_set(("stop-words",)) and "ring" not in stop_word_set(("sklearn",))
    assert "ring" not in stop_word_set(("stop-words",), keep=("ring",))
    assert "foo" in stop_word_set(("sklearn",), extra=("Foo",))
    assert "la" in stop_word_set(("stop-words:it",))
    with pytest.raises(ParamsError, match="stop_words"):
        from_dict(ClusterConfig, {"stop_words": ["nltk"]}, "labels_analyze.cluster")


def test_label_texts_per_guessed_class_with_global_unification():
    table = pd.DataFrame(
        {
            "guessed_class": ["bike"] * 5 + ["car"] * 3,
            "text": ["spoked wheel", "round wheel", "tyre", "tyre", "of", "wheel", "wheel", "round"],
        }
    )
    out = label_texts(table, fake_embed, ClusterConfig(stop_words=("sklearn",)), progress=False)
    assert list(out.columns) == [
        "guessed_class",
        "text",
        "count",
        "text_cluster",
        "n_text_clusters",
        "silhouette",
        "name",
        "label",
    ]
    tyre = out[(out["guessed_class"] == "bike") & (out["text"] == "tyre")].iloc[0]
    assert tyre["count"] == 2
    of = out[out["text"] == "of"].iloc[0]  # a cluster of stop-words only has no name
    assert of["label"] is None or pd.isna(of["label"])
    assert set(out["guessed_class"]) == {"bike", "car"}
    assert label_texts(table.iloc[:0], fake_embed, progress=False).empty
