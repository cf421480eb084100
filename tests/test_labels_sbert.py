"""Label analysis with the real Sentence-BERT model (all-mpnet-base-v2, installed by `make install`).

The model is loaded once per session and embeddings are cached under a session temp dir.
"""

from __future__ import annotations

import pandas as pd
import pytest

from inviz.labels.cluster import ClusterConfig, label_texts
from inviz.labels.embed import (
    SBERT_DEFAULT,
    EmbedConfig,
    EmbeddingCache,
    LazyEncoder,
    embed_texts,
    model_id,
    resolve_model,
)
from inviz.labels.text import clean_text

pytestmark = pytest.mark.slow

LOCAL = resolve_model(SBERT_DEFAULT)


@pytest.fixture(scope="session")
def sbert_embed(tmp_path_factory):
    if LOCAL == SBERT_DEFAULT:
        pytest.skip("all-mpnet-base-v2 is not installed (run `make install`)")
    encoder = LazyEncoder(EmbedConfig())
    cache = EmbeddingCache(tmp_path_factory.mktemp("sbert") / "embeddings.parquet", model_id(SBERT_DEFAULT))

    def embed(texts):
        return embed_texts(texts, encoder, cache, progress=False)

    embed.cache = cache
    embed.encoder = encoder
    return embed


GROUPS = {
    "wheel": ["wheel", "wheels", "round wheel", "tyre", "spoked wheel", "wheel rim"],
    "stripes": ["stripes", "striped pattern", "zebra stripes"],
    "moon": ["moon", "crescent moon", "half moon"],
    "grass": ["grass", "green grass"],
}


def labels_of(out):
    return dict(zip(out["text"], out["label"], strict=False))


def test_known_synonyms_end_in_one_label_and_unrelated_words_do_not(sbert_embed):
    table = pd.DataFrame(
        [("bicycle", t) for ts in GROUPS.values() for t in ts], columns=["guessed_class", "text"]
    )
    lab = labels_of(label_texts(table, sbert_embed, ClusterConfig(), progress=False))
    per_group = {g: {lab[t] for t in ts} for g, ts in GROUPS.items()}
    assert all(len(v) == 1 for v in per_group.values()), per_group
    assert len({next(iter(v)) for v in per_group.values()}) == len(GROUPS), per_group
    assert per_group["wheel"] == {"wheel"} and per_group["moon"] == {"moon"}


def test_class_name_removal_before_embedding_groups_features_not_the_class(sbert_embed):
    typed = [
        "the dog's ears",
        "ears of the dog",
        "Dog ear",
        "dog paws",
        "paws",
        "the tail of the dog",
        "dog tail",
    ]
    cleaned = [clean_text(t, ["English springer", "Dog"]) for t in typed]
    table = pd.DataFrame({"guessed_class": "English springer", "text": cleaned})
    lab = labels_of(label_texts(table, sbert_embed, ClusterConfig(), progress=False))
    assert lab["the ears"] == lab["ears of the"] == lab["ear"]
    assert lab["paws"] != lab["ear"] and lab["tail"] != lab["ear"] and lab["paws"] != lab["tail"]


def test_labels_are_unified_across_guessed_classes(sbert_embed):
    table = pd.DataFrame(
        {
            "guessed_class": ["tractor"] * 4 + ["bicycle"] * 4,
            "text": ["wheels", "big wheels", "grid", "windows", "wheel", "spoked wheel", "triangle", "frame"],
        }
    )
    out = label_texts(table, sbert_embed, ClusterConfig(), progress=False)
    wheel = out[out["text"].str.contains("wheel")]
    assert wheel["label"].nunique() == 1


def test_embeddings_are_cached_and_deterministic(sbert_embed, tmp_path):
    a = sbert_embed(["striped pattern", "lines"])
    b = sbert_embed(["lines", "striped pattern"])
    assert (a[0] == b[1]).all() and (a[1] == b[0]).all()
    path = tmp_path / "e.parquet"
    sbert_embed.cache.save(path)
    replay = EmbeddingCache(path, model_id(LOCAL))  # the same key for a directory and for the name
    again = embed_texts(["striped pattern", "lines"], None, replay)  # no model needed: all cached
    assert (again == a).all()


def test_resolve_model_finds_the_installed_folder():
    if LOCAL == SBERT_DEFAULT:
        pytest.skip("all-mpnet-base-v2 is not installed")
    assert resolve_model(f"sentence-transformers/{SBERT_DEFAULT}") == LOCAL
    assert resolve_model(LOCAL) == LOCAL
    assert resolve_model("some-org/other-model") == "some-org/other-model"
