"""Label models: which channels carry which labels, per layer (docs/method.md §9).

Two estimators share one interface (:class:`LabelTransfer`: ``fit(LayerData)``,
``predict(vectors) -> LayerPrediction``) and the registry :data:`VARIANTS`:

``channel_vote``
    Each labelled map spreads its label scores over its member channels in proportion to their
    weights: ``M[c, L] = sum_m s_(m,L) v_(m,c) / sum_c' v_(m,c')``; each channel's row is then
    normalised to a label distribution ``P[c]`` (a channel seen in many maps must not outvote one
    seen in few). A new map ``u`` gets ``D = sum_c u_c P[c] / sum_c u_c``: a distribution over the
    labels plus the share of its weight on unseen channels, which votes for nothing.
``nearest_maps``
    The ``k`` labelled maps of the layer most similar to ``u`` (:data:`SIMILARITIES`: cosine of
    the channel-weight vectors by default; only positive similarities) vote with their label
    distributions, weighted by similarity.

Every prediction carries a label distribution (``probs``, rows summing to 1, or 0 without a
label), a ``confidence`` in [0, 1] and the ``coverage``: the share of the map's channels the model
has seen (``coverage_weight``: the share of its weight). Confidence is the top label's share times
the evidence behind it: the seen share of the weight (``channel_vote``) or the mean similarity of
the neighbours (``nearest_maps``). A map made only of unseen channels gets coverage 0, confidence 0
and no label.

:class:`LabelModel` holds the labelled maps of every layer, the checkpoint hash of the CNN they come
from and the extraction settings that made them; it is saved as one JSON file (:meth:`LabelModel.save`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from inviz.core.errors import InvizError
from inviz.transfer.config import TransferConfig
from inviz.transfer.maps import LabelledMap, LayerData

FORMAT = "inviz-label-model/1"


class LabelModelError(InvizError, ValueError):
    """A label model file is unreadable, or does not fit the CNN or the layers asked for."""


# ----------------------------------------------------------------------------------------------
# predictions


@dataclass(frozen=True, eq=False)
class LayerPrediction:
    """Transferred labels of ``N`` maps of one layer.

    Attributes
    ----------
    labels : tuple of str
        The vocabulary ``L`` (columns of ``probs``).
    probs : ndarray of shape (N, L)
        Label distribution per map (rows sum to 1; all zero for a map without a label).
    confidence : ndarray of shape (N,)
        In [0, 1] (see the module docstring).
    coverage : ndarray of shape (N,)
        Share of each map's channels the model has seen.
    coverage_weight : ndarray of shape (N,)
        Share of each map's weight on seen channels.
    """

    labels: tuple[str, ...]
    probs: np.ndarray
    confidence: np.ndarray
    coverage: np.ndarray
    coverage_weight: np.ndarray

    def ranked(
        self, i: int, top_n: int, tie_tolerance: float = 1e-9
    ) -> tuple[tuple[tuple[str, float], ...], tuple[str, ...]]:
        """Map ``i``'s top labels and its best labels.

        Parameters
        ----------
        i : int
            The map (row).
        top_n : int
            Labels kept (share desc, then label asc).
        tie_tolerance : float
            Labels within this of the top share are best labels.

        Returns
        -------
        ranked : tuple of (label, share)
            Up to ``top_n`` labels with a positive share, best first (empty: no label).
        best : tuple of str
            The tied best labels (empty: no label).
        """
        p = self.probs[i]
        order = sorted((j for j in range(len(p)) if p[j] > 0), key=lambda j: (-p[j], self.labels[j]))
        if not order:
            return (), ()
        top = p[order[0]]
        best = tuple(self.labels[j] for j in order if p[j] >= top - tie_tolerance)
        return tuple((self.labels[j], float(p[j])) for j in order[:top_n]), best


def coverage(vectors: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Share of each map's channels (and of its weight) on ``seen`` channels.

    Parameters
    ----------
    vectors : ndarray of shape (N, C)
        Channel-weight vectors (non-negative).
    seen : ndarray of bool, shape (C,)

    Returns
    -------
    by_count, by_weight : ndarray of shape (N,)
        0 for an empty map.
    """
    member = vectors > 0
    n = member.sum(1)
    total = vectors.sum(1)
    by_count = np.divide((member & seen).sum(1), n, out=np.zeros(len(vectors)), where=n > 0)
    by_weight = np.divide((vectors * seen).sum(1), total, out=np.zeros(len(vectors)), where=total > 0)
    return by_count, by_weight


def _rows_normalised(a: np.ndarray) -> np.ndarray:
    """Divide each row by its sum (rows summing to 0 stay 0)."""
    s = a.sum(1, keepdims=True)
    return np.divide(a, s, out=np.zeros_like(a, dtype=float), where=s > 0)


# ----------------------------------------------------------------------------------------------
# similarities (nearest_maps)


def _cosine(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    nu = np.linalg.norm(u, axis=1, keepdims=True)
    nv = np.linalg.norm(v, axis=1, keepdims=True)
    a = np.divide(u, nu, out=np.zeros_like(u), where=nu > 0)
    b = np.divide(v, nv, out=np.zeros_like(v), where=nv > 0)
    return a @ b.T


def _jaccard(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a, b = (u > 0).astype(float), (v > 0).astype(float)
    inter = a @ b.T
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _weighted_jaccard(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    out = np.zeros((len(u), len(v)))
    for i, row in enumerate(u):
        lo, hi = np.minimum(row, v).sum(1), np.maximum(row, v).sum(1)
        out[i] = np.divide(lo, hi, out=np.zeros(len(v)), where=hi > 0)
    return out


#: similarity name -> fn(U (N, C), V (M, C)) -> (N, M), in [0, 1] for non-negative weights
SIMILARITIES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "cosine": _cosine,
    "jaccard": _jaccard,
    "weighted_jaccard": _weighted_jaccard,
}


# ----------------------------------------------------------------------------------------------
# estimators


class LabelTransfer:
    """Base of the label models: ``fit`` on one layer's labelled maps, ``predict`` new maps' labels.

    Parameters
    ----------
    cfg : TransferConfig
        The ``transfer`` section (each variant reads its own sub-section).

    Attributes
    ----------
    labels_ : tuple of str
        The vocabulary learnt.
    seen_ : ndarray of bool, shape (C,)
        Channels seen in some labelled map.
    """

    name: ClassVar[str] = ""

    def __init__(self, cfg: TransferConfig) -> None:
        self.cfg = cfg

    def fit(self, data: LayerData) -> LabelTransfer:
        """Learn from the labelled maps of one layer; returns ``self``."""
        self.labels_ = data.labels
        self.seen_ = data.seen
        self._fit(data)
        return self

    def predict(self, vectors: np.ndarray) -> LayerPrediction:
        """Transfer labels to maps given by their channel-weight vectors, shape (N, C)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=float))
        if vectors.shape[1] != len(self.seen_):
            raise LabelModelError(
                f"expected channel vectors of {len(self.seen_)} channels, got {vectors.shape[1]}"
            )
        by_count, by_weight = coverage(vectors, self.seen_)
        if not len(self.labels_):
            zeros = np.zeros(len(vectors))
            return LayerPrediction((), np.zeros((len(vectors), 0)), zeros, by_count, by_weight)
        probs, evidence = self._predict(vectors, by_weight)
        confidence = probs.max(1) * evidence if probs.shape[1] else np.zeros(len(vectors))
        return LayerPrediction(self.labels_, probs, confidence, by_count, by_weight)

    def _fit(self, data: LayerData) -> None:
        raise NotImplementedError

    def _predict(self, vectors: np.ndarray, seen_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the label distributions (N, L) and the evidence factor in [0, 1] (N,)."""
        raise NotImplementedError


class ChannelVote(LabelTransfer):
    """Labels voted by the map's channels (see the module docstring)."""

    name = "channel_vote"

    def _fit(self, data: LayerData) -> None:
        scores = _rows_normalised(data.scores) if self.cfg.channel_vote.score_norm else data.scores
        per_map = _rows_normalised(data.vectors)  # (M, C): each map's weight shares
        self.channel_labels_ = _rows_normalised(per_map.T @ scores)  # (C, L)

    def _predict(self, vectors: np.ndarray, seen_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _rows_normalised(vectors @ self.channel_labels_), seen_weight


class NearestMaps(LabelTransfer):
    """Labels of the ``k`` most similar labelled maps of the layer (see the module docstring)."""

    name = "nearest_maps"

    def _fit(self, data: LayerData) -> None:
        c = self.cfg.nearest_maps
        self.vectors_ = data.vectors
        self.scores_ = _rows_normalised(data.scores) if c.score_norm else data.scores

    def _predict(self, vectors: np.ndarray, seen_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = self.cfg.nearest_maps
        sim = SIMILARITIES[c.similarity](vectors, self.vectors_)  # (N, M)
        probs = np.zeros((len(vectors), len(self.labels_)))
        evidence = np.zeros(len(vectors))
        for i, row in enumerate(sim):
            order = np.argsort(-row, kind="stable")[: c.k]
            order = order[row[order] > 0]
            if len(order):
                probs[i] = row[order] @ self.scores_[order]
                evidence[i] = float(row[order].mean())
        return _rows_normalised(probs), evidence


#: variant name -> estimator class (``transfer.variant``; the evaluation compares them all)
VARIANTS: dict[str, type[LabelTransfer]] = {cls.name: cls for cls in (ChannelVote, NearestMaps)}


# ----------------------------------------------------------------------------------------------
# the label model of a pipeline


@dataclass(frozen=True, eq=False)
class LabelModel:
    """The labelled maps of every layer, from one CNN, ready to label new cluster maps.

    Attributes
    ----------
    cfg : TransferConfig
        The ``transfer`` section it was built with (``cfg.variant`` is used by default).
    model_sha256 : str
        The CNN checkpoint's sha256: the model a new image must be explained with.
    extract_config : dict
        The ``extract`` settings that made the labelled maps (new images are explained the same way).
    classes : list of str
        The CNN's class names, in label order.
    n_channels : dict of str to int
        Layer -> channel count.
    maps : dict of str to list of LabelledMap
        Layer -> its labelled maps.
    """

    cfg: TransferConfig
    model_sha256: str
    extract_config: dict[str, Any]
    classes: list[str]
    n_channels: dict[str, int]
    maps: dict[str, list[LabelledMap]]
    _fitted: dict[tuple[str, str], LabelTransfer] = field(default_factory=dict, repr=False)

    @property
    def layers(self) -> tuple[str, ...]:
        """The layers it can label, in extraction order."""
        return tuple(self.n_channels)

    def data(self, layer: str) -> LayerData:
        """Return the labelled maps of ``layer`` as matrices."""
        return LayerData.from_maps(layer, self.n_channels[layer], self.maps.get(layer, []))

    def estimator(self, layer: str, variant: str | None = None) -> LabelTransfer:
        """Return the fitted estimator of ``layer`` (``variant``: default ``cfg.variant``), cached."""
        variant = variant or self.cfg.variant
        key = (layer, variant)
        if key not in self._fitted:
            self.check_layers([layer])
            self._fitted[key] = VARIANTS[variant](self.cfg).fit(self.data(layer))
        return self._fitted[key]

    def predict(self, layer: str, vectors: np.ndarray, variant: str | None = None) -> LayerPrediction:
        """Transfer labels to maps of ``layer`` given by their channel vectors, shape (N, C)."""
        return self.estimator(layer, variant).predict(vectors)

    def check_model(self, sha256: str, source: str = "model") -> None:
        """Raise :class:`LabelModelError` unless the CNN ``sha256`` is the one the labels were learnt from."""
        if sha256 != self.model_sha256:
            raise LabelModelError(
                f"{source}: checkpoint sha256 {sha256[:12]}… does not match the label model's "
                f"({self.model_sha256[:12]}…): its labels were learnt from the maps of another CNN; "
                "use that model, or rebuild the label model with 'inviz transfer' for this one"
            )

    def check_layers(self, layers: Sequence[str]) -> None:
        """Raise :class:`LabelModelError` naming the layers it has no labelled maps for."""
        missing = [ly for ly in layers if ly not in self.n_channels]
        if missing:
            raise LabelModelError(
                f"the label model has no layer(s) {', '.join(missing)}; it knows {', '.join(self.layers)}"
            )

    def to_json(self) -> dict[str, Any]:
        """Return the JSON document :meth:`save` writes."""
        from inviz.core.config import to_dict

        return {
            "format": FORMAT,
            "model_sha256": self.model_sha256,
            "config": to_dict(self.cfg),
            "extract_config": self.extract_config,
            "classes": list(self.classes),
            "layers": {
                ly: {"n_channels": n, "maps": [m.to_json() for m in self.maps.get(ly, [])]}
                for ly, n in self.n_channels.items()
            },
        }

    def save(self, path: str | Path) -> Path:
        """Write the label model as one JSON file (atomically)."""
        from inviz.core.io import write_json

        return write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> LabelModel:
        """Read a file written by :meth:`save`; errors name the file and what was expected."""
        from inviz.core.config import from_dict
        from inviz.core.io import require_file

        path = require_file(path, "label model", "transfer", LabelModelError)
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise LabelModelError(f"{path}: not a readable label model ({err})") from err
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise LabelModelError(f"{path}: not an inviz label model (expected format '{FORMAT}')")
        return cls.from_json(doc, from_dict(TransferConfig, doc["config"], "config", str(path)))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], cfg: TransferConfig) -> LabelModel:
        """Rebuild from :meth:`to_json`'s document with its parsed config."""
        layers = doc["layers"]
        return cls(
            cfg,
            str(doc["model_sha256"]),
            dict(doc["extract_config"]),
            [str(c) for c in doc["classes"]],
            {ly: int(v["n_channels"]) for ly, v in layers.items()},
            {ly: [LabelledMap.from_json(ly, m) for m in v["maps"]] for ly, v in layers.items()},
        )
