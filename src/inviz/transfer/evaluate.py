"""Leave-one-image-out evaluation of the label models against simple baselines (docs/method.md §9).

For every labelled image ``i`` and layer, each label model is fitted on the labelled maps of the
*other* images and transfers labels to image ``i``'s game cluster maps (what a new image brings:
single cluster maps, no game). A transferred label agrees when it is among the game's best labels of
that map (ties included): **top-1** looks at the transferred rank-1 label, **top-k** (``k =
evaluation.top``, 3) at any of the first ``k``. A map without a transferred label (coverage 0) is a
miss. Baselines, fitted on the same folds:

``class_prior``
    the layer's most frequent best labels among the other images' maps of the map's predicted class
    (every layer's maps when the class has none);
``random``
    a uniformly random label of the fold's vocabulary: its *expected* agreement, computed exactly
    (``h / |V|`` for top-1 and ``1 - C(|V| - h, k) / C(|V|, k)`` for top-k, ``h`` = best labels in
    the vocabulary ``V``).

:func:`leave_one_image_out` returns one row per (map, method); :func:`summarise` the table per
method and layer (and ``all`` layers); :func:`calibration` the agreement by confidence bin;
:func:`closed_loop_accuracy` the demo's closed loop (does the transferred top label name a part the
map covers? :mod:`inviz.labels.closed_loop`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from math import comb
from typing import Any

import numpy as np
import pandas as pd

from inviz.transfer.config import TransferConfig
from inviz.transfer.maps import LabelledMap, LayerData
from inviz.transfer.model import VARIANTS

#: baseline methods of the table, after the variants
BASELINES = ("class_prior", "random")

#: columns of :func:`leave_one_image_out`'s rows
ROW_COLUMNS = [
    "method",
    "layer",
    "key",
    "image",
    "pred",
    "game_best",
    "labels",
    "hit_top1",
    "hit_topk",
    "answered",
    "confidence",
    "coverage",
]

#: columns of :func:`summarise`'s table
TABLE_COLUMNS = ["method", "layer", "n_maps", "answered", "coverage", "confidence", "top1", "topk"]


def class_prior(data: LayerData, pred: int, k: int) -> list[str]:
    """Return the ``k`` most frequent best labels of ``data``'s maps of class ``pred`` (all maps if none).

    Parameters
    ----------
    data : LayerData
        The training maps of one layer.
    pred : int
        The class.
    k : int
        Labels returned at most.

    Returns
    -------
    list of str
        By count desc, then label asc.
    """
    of_class = [b for b, c in zip(data.best, data.classes, strict=True) if c == pred] or data.best
    counts = Counter(lab for b in of_class for lab in b)
    return sorted(counts, key=lambda lab: (-counts[lab], lab))[:k]


def random_agreement(best: frozenset[str], vocabulary: Sequence[str], k: int) -> tuple[float, float]:
    """Return the expected top-1 and top-``k`` agreement of uniformly random labels (no replacement).

    Parameters
    ----------
    best : frozenset of str
        The game's best labels of the map.
    vocabulary : sequence of str
        The labels a random guess draws from.
    k : int

    Returns
    -------
    top1, topk : float
    """
    n = len(vocabulary)
    h = len(best & set(vocabulary))
    if n == 0:
        return 0.0, 0.0
    kk = min(k, n)
    return h / n, 1.0 - comb(n - h, kk) / comb(n, kk)


def _row(method: str, target: LabelledMap, labels: Sequence[str], k: int, **extra: Any) -> dict[str, Any]:
    best = set(target.best)
    return {
        "method": method,
        "layer": target.layer,
        "key": target.key,
        "image": target.image,
        "pred": target.pred,
        "game_best": "|".join(target.best),
        "labels": "|".join(labels),
        "hit_top1": float(bool(labels) and labels[0] in best),
        "hit_topk": float(any(lab in best for lab in labels[:k])),
        "answered": bool(labels),
        **extra,
    }


def _fold(train: LayerData, targets: Sequence[LabelledMap], cfg: TransferConfig) -> list[dict[str, Any]]:
    """Rows of one held-out image at one layer: every variant and the baselines."""
    k = cfg.evaluation.top
    vectors = np.stack([t.vector(train.n_channels) for t in targets])
    rows = []
    for variant in cfg.evaluation.variants:
        pred = VARIANTS[variant](cfg).fit(train).predict(vectors)
        for i, t in enumerate(targets):
            ranked, _ = pred.ranked(i, k, cfg.tie_tolerance)
            rows.append(
                _row(
                    variant,
                    t,
                    [lab for lab, _ in ranked],
                    k,
                    confidence=float(pred.confidence[i]),
                    coverage=float(pred.coverage[i]),
                )
            )
    for t in targets:
        rows.append(
            _row("class_prior", t, class_prior(train, t.pred, k), k, confidence=np.nan, coverage=np.nan)
        )
        top1, topk = random_agreement(frozenset(t.best), train.present_labels, k)
        rows.append(
            {
                **_row("random", t, [], k, confidence=np.nan, coverage=np.nan),
                "hit_top1": top1,
                "hit_topk": topk,
            }
        )
        rows[-1]["answered"] = True
    return rows


def leave_one_image_out(
    train: Mapping[str, LayerData],
    targets: Sequence[LabelledMap],
    cfg: TransferConfig,
    progress: bool = False,
) -> pd.DataFrame:
    """Run the leave-one-image-out evaluation.

    Parameters
    ----------
    train : mapping of str to LayerData
        Layer -> the labelled maps the label models learn from (``transfer.train_on``).
    targets : sequence of LabelledMap
        The game's labelled cluster maps to transfer labels to (each held out with its image).
    cfg : TransferConfig
        ``evaluation.variants``, ``evaluation.top``, the variants' settings.
    progress : bool
        Show a progress bar over images.

    Returns
    -------
    DataFrame
        :data:`ROW_COLUMNS`, one row per (target map, method): variants, then :data:`BASELINES`.
    """
    from tqdm.auto import tqdm

    by_image: dict[str, dict[str, list[LabelledMap]]] = {}
    for t in targets:
        by_image.setdefault(t.image, {}).setdefault(t.layer, []).append(t)
    rows: list[dict[str, Any]] = []
    for image in tqdm(sorted(by_image), desc="leave one image out", unit="image", disable=not progress):
        for layer, maps in by_image[image].items():
            if layer in train:
                rows += _fold(train[layer].without_image(image), maps, cfg)
    return pd.DataFrame(rows, columns=ROW_COLUMNS)


def summarise(rows: pd.DataFrame, layers: Sequence[str]) -> pd.DataFrame:
    """Aggregate :func:`leave_one_image_out`'s rows per method and layer, plus ``all`` layers.

    Parameters
    ----------
    rows : DataFrame
        From :func:`leave_one_image_out`.
    layers : sequence of str
        Layer order (shallow to deep).

    Returns
    -------
    DataFrame
        :data:`TABLE_COLUMNS`: maps, share answered, mean coverage and confidence (variants only),
        mean top-1 and top-k agreement; methods in row order of ``rows``, layers in ``layers`` order
        then ``all``.
    """
    if rows.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    out = []
    for method in dict.fromkeys(rows["method"]):
        sub = rows[rows["method"] == method]
        groups = [(ly, sub[sub["layer"] == ly]) for ly in layers if (sub["layer"] == ly).any()]
        for layer, g in [*groups, ("all", sub)]:
            out.append(
                {
                    "method": method,
                    "layer": layer,
                    "n_maps": int(len(g)),
                    "answered": float(g["answered"].mean()),
                    "coverage": float(g["coverage"].mean()) if g["coverage"].notna().any() else np.nan,
                    "confidence": float(g["confidence"].mean()) if g["confidence"].notna().any() else np.nan,
                    "top1": float(g["hit_top1"].mean()),
                    "topk": float(g["hit_topk"].mean()),
                }
            )
    return pd.DataFrame(out, columns=TABLE_COLUMNS)


def calibration(rows: pd.DataFrame, edges: Sequence[float]) -> pd.DataFrame:
    """Measure each variant's agreement by confidence bin (are confident labels more often right?).

    Parameters
    ----------
    rows : DataFrame
        From :func:`leave_one_image_out`.
    edges : sequence of float
        Inner bin edges in (0, 1); bins are ``[0, e1), [e1, e2), …, [e_last, 1]``.

    Returns
    -------
    DataFrame
        ``method, bin`` (``"[a, b)"``), ``n_maps, top1, topk`` over every layer; variants only.
    """
    bounds = [0.0, *edges, 1.0 + 1e-12]
    names = [
        f"[{a:g}, {min(b, 1.0):g}{']' if b > 1 else ')'}" for a, b in zip(bounds, bounds[1:], strict=False)
    ]
    out = []
    for method in dict.fromkeys(rows["method"]):
        sub = rows[(rows["method"] == method) & rows["confidence"].notna()]
        if sub.empty:
            continue
        idx = np.digitize(sub["confidence"].to_numpy(), bounds[1:-1])
        for i, name in enumerate(names):
            g = sub[idx == i]
            out.append(
                {
                    "method": method,
                    "bin": name,
                    "n_maps": int(len(g)),
                    "top1": float(g["hit_top1"].mean()) if len(g) else np.nan,
                    "topk": float(g["hit_topk"].mean()) if len(g) else np.nan,
                }
            )
    return pd.DataFrame(out, columns=["method", "bin", "n_maps", "top1", "topk"])


def closed_loop_accuracy(
    rows: pd.DataFrame,
    coverage: Mapping[int, tuple[Sequence[str], np.ndarray]],
    lexicon: Mapping[str, set[str]],
    cfg: Any,
) -> dict[str, float]:
    """Score each method's closed loop: the share of maps whose top label names a part the map covers.

    The game's labels (``human``, tied best labels sharing the credit as in ``labels_analyze``)
    are scored on the same maps; a map without a transferred label is a miss.

    Parameters
    ----------
    rows : DataFrame
        From :func:`leave_one_image_out` (keys ``c<cluster_id>``).
    coverage : mapping of int to (parts, ndarray of shape (levels, P))
        Part coverage of each game cluster map (:func:`inviz.game.coverage.maps_part_coverage`).
    lexicon : mapping of str to set of str
        :func:`inviz.labels.closed_loop.demo_lexicon`.
    cfg : ClosedLoopConfig
        ``labels_analyze.closed_loop``.

    Returns
    -------
    dict of str to float
        ``human`` and every method except ``random``.
    """
    from inviz.labels.closed_loop import evaluate

    def score(best: pd.DataFrame, n: int) -> float:
        if best.empty or not n:
            return 0.0
        _, table = evaluate(best, coverage, lexicon, cfg)
        return float(table["hit_share"].sum() / n)

    methods = [m for m in dict.fromkeys(rows["method"]) if m != "random"]
    first = rows[rows["method"] == methods[0]] if methods else rows.iloc[:0]
    human = [
        {"cluster_id": int(r.key[1:]), "layer": r.layer, "label": lab, "rank": i + 1}
        for r in first.itertuples()
        for i, lab in enumerate(str(r.game_best).split("|"))
    ]
    out = {"human": score(pd.DataFrame(human), len(first))}
    for m in methods:
        sub = rows[(rows["method"] == m) & rows["answered"]]
        best = pd.DataFrame(
            {
                "cluster_id": [int(k[1:]) for k in sub["key"]],
                "layer": sub["layer"].to_numpy(),
                "label": [str(v).split("|")[0] for v in sub["labels"]],
                "rank": 1,
            }
        )
        out[m] = score(best, int((rows["method"] == m).sum()))
    return out
