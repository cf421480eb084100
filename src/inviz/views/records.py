"""The assembled INV (docs/method.md §3.8): per image and layer its labelled cluster maps, merged or not.

Everything people look at (the INV figures, the global explanations, the explorer, the survey
panels) starts from the same records, read back from the outputs of ``extract``, ``masks`` and
``labels_analyze`` by :func:`load_inv`:

- :class:`Card` — one cluster map as shown: weight (% of the layer's weight), channel count,
  ranked labels with scores, best labels (ties included), game evidence, and the map itself at
  the layer's native resolution. A *merged* card (``kind="merged"``) is a merged cluster map
  (§3.8: members' weights summed, maps weight-averaged, label scores weight-averaged); an
  *unmerged* card (``kind="cluster"``) is one cluster map of the game.
- :class:`ImageINV` — one explained image: the network input (uint8, input size), its true and
  predicted class with confidence, and the cards per layer, shallow to deep, heaviest first.

How a card is drawn over its image lives in :mod:`inviz.views.overlays`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)


class INVDataError(InvizError, ValueError):
    """The outputs of extract / masks / labels_analyze do not fit together."""


# ----------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True, eq=False)
class Card:
    """One cluster map as people see it.

    kind : ``merged`` (a merged cluster map, id = ``merged_id``) or ``cluster`` (one cluster map
        of the game, id = ``cluster_id`` of ``masks.csv``).
    id : the id above. members : the game cluster ids it is made of (``(id,)`` for a cluster).
    image, layer : the explained image (sample id) and layer. layer_index : 0 = shallowest.
    weight : cluster weight w_C in % of the layer's weight (merged: the members' sum).
    n_fmaps : feature maps in it (merged: the members' sum).
    labels : every label with its score, best first: ``((label, score), ...)``.
    best : the best labels (ties included; empty when nobody labelled it).
    plays, wins, losses, resigns : game evidence (merged: summed over members).
    mean_hints : mean hints used over guesses (NaN without guesses; merged: play-weighted).
    map : ndarray of shape (h, w), the cluster map at the layer's native resolution.
    source : ``game`` (labels from the label game) or ``transfer`` (labels transferred by a label
        model, :mod:`inviz.transfer`; ``labels`` then hold shares of a label distribution).
    confidence, coverage : a transferred card's confidence and the share of its channels the label
        model has seen (docs/method.md §9); NaN for game cards.
    """

    kind: Literal["merged", "cluster"]
    id: int
    members: tuple[int, ...]
    image: str
    layer: str
    layer_index: int
    weight: float
    n_fmaps: int
    labels: tuple[tuple[str, float], ...]
    best: tuple[str, ...]
    plays: int
    wins: int
    losses: int
    resigns: int
    mean_hints: float
    map: np.ndarray = field(repr=False)
    source: Literal["game", "transfer"] = "game"
    confidence: float = float("nan")
    coverage: float = float("nan")

    @property
    def key(self) -> str:
        """Unique over kinds and sources: ``m<id>``, ``c<id>`` (``tm<id>`` / ``tc<id>`` when transferred)."""
        kind = "m" if self.kind == "merged" else "c"
        return f"t{kind}{self.id}" if self.source == "transfer" else f"{kind}{self.id}"

    def top(self, n: int) -> tuple[tuple[str, float], ...]:
        """Return the ``n`` best labels with their scores."""
        return self.labels[:n]


@dataclass(frozen=True, eq=False)
class ImageINV:
    """The INV of one image.

    sample_id, path : the image (``selected.csv``). image : ndarray of uint8, shape (S, S, 3),
    the network input (S = model input size). true_label/true_class, pred/pred_name : class
    index and name; confidence : softmax probability of the prediction.
    layers : explained layers, shallow to deep. merged / clusters : layer -> cards, heaviest first.
    """

    sample_id: str
    path: str
    true_label: int
    true_class: str
    pred: int
    pred_name: str
    confidence: float
    image: np.ndarray = field(repr=False)
    layers: tuple[str, ...]
    merged: dict[str, list[Card]]
    clusters: dict[str, list[Card]]

    def cards(self, merged: bool = True) -> dict[str, list[Card]]:
        """Return the cards per layer: merged cluster maps (default) or the single cluster maps."""
        return self.merged if merged else self.clusters

    @property
    def n_merged(self) -> int:
        """Number of merged cluster maps over all layers."""
        return sum(len(v) for v in self.merged.values())


@dataclass(frozen=True)
class INVPaths:
    """Where the pieces of an INV are (the ``dvc.yaml`` paths of the stages that wrote them)."""

    selected: Path
    images: Path
    extract: Path
    manifest: Path
    cluster_labels: Path
    inv: Path
    merged_scores: Path
    merged_maps: Path

    @classmethod
    def from_args(cls, args: Any) -> INVPaths:
        """Build from an ``argparse`` namespace with the options of ``inviz.stages._inv_args.INV_PATHS``."""
        return cls(
            *(
                Path(getattr(args, f))
                for f in (
                    "selected",
                    "images",
                    "extract",
                    "manifest",
                    "cluster_labels",
                    "inv",
                    "merged_scores",
                    "merged_maps",
                )
            )
        )


# ----------------------------------------------------------------------------------------------
# loading


def load_images(rows: pd.DataFrame, images_dir: str | Path, size: int) -> list[np.ndarray]:
    """Load the images of index/selected ``rows`` (column ``path``) as the network saw them.

    Parameters
    ----------
    rows : DataFrame
        Rows with a ``path`` column, relative to ``images_dir``.
    images_dir : str or Path
        The dataset folder.
    size : int
        The network input size.

    Returns
    -------
    list of ndarray of uint8, shape (size, size, 3), one per row.
    """
    from PIL import Image

    from inviz.game.reveal import game_image

    out = []
    for path in rows["path"]:
        with Image.open(Path(images_dir) / path) as im:
            out.append(game_image(np.asarray(im.convert("RGB")), size, size))
    return out


def read_table(path: Path, what: str, need: Sequence[str]) -> pd.DataFrame:
    """Read a CSV a stage wrote, checking that it exists and has the columns ``need`` (errors name the file).

    Parameters
    ----------
    path : Path
        The CSV.
    what : str
        What it is (for the error message).
    need : sequence of str
        Columns it must have.

    Returns
    -------
    DataFrame
        Ids (``image``, ``sample_id``) as strings.
    """
    if not path.is_file():
        raise INVDataError(f"{path}: {what} not found (run the stage that writes it first)")
    frame = pd.read_csv(path, dtype={"image": str, "sample_id": str, "label": object})
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise INVDataError(f"{path}: missing column(s) {', '.join(missing)} of the {what}")
    return frame


def ranked_labels(
    scores: pd.DataFrame, key: str
) -> dict[int, tuple[tuple[tuple[str, float], ...], tuple[str, ...]]]:
    """Key id -> (ranked (label, score), best labels) from a long (id, label, score, rank, is_best) table.

    Parameters
    ----------
    scores : DataFrame
        ``<key>, label, score, rank, is_best`` (``cluster_labels.csv`` or ``merged_scores.csv``);
        rows without a label are ignored.
    key : str
        The id column (``cluster_id`` or ``merged_id``).

    Returns
    -------
    dict of int to ((label, score), ...), (best label, ...)
        Labels best first; the best labels (ties included).
    """
    have = scores[scores["label"].notna()].sort_values([key, "rank"], kind="stable")
    acc: dict[int, tuple[list[tuple[str, float]], list[str]]] = {}
    for kid, lab, score, best in zip(
        have[key].to_numpy(int),
        have["label"].astype(str),
        have["score"].to_numpy(float),
        have["is_best"].astype(bool),
        strict=True,
    ):
        labels, bests = acc.setdefault(int(kid), ([], []))
        labels.append((lab, float(score)))
        if best:
            bests.append(lab)
    return {k: (tuple(v[0]), tuple(v[1])) for k, v in acc.items()}


def _merged_cards(
    paths: INVPaths,
    inv: pd.DataFrame,
    merged_scores: pd.DataFrame,
    cluster_cards: dict[int, Card],
    lidx: dict[str, int],
    wanted: set[str] | None,
) -> dict[int, Card]:
    """Build the merged cards (§3.8): members' evidence summed, maps from the merged-maps folder."""
    from inviz.labels.merged_maps import read_merged_maps

    mranked = ranked_labels(merged_scores, "merged_id")
    mmaps = read_merged_maps(paths.merged_maps, dict.fromkeys(inv["layer"].astype(str)))
    merged_cards: dict[int, Card] = {}
    for r in inv.itertuples():
        if wanted is not None and str(r.image) not in wanted:
            continue
        mid = int(r.merged_id)
        members = tuple(int(m) for m in str(r.members).split(";") if m)
        parts = [cluster_cards[m] for m in members if m in cluster_cards]
        if len(parts) != len(members):
            raise INVDataError(
                f"{paths.inv}: merged map {mid} lists cluster ids missing from {paths.manifest}"
            )
        if mid not in mmaps:
            raise INVDataError(f"{paths.merged_maps}: no map for merged id {mid}")
        plays = sum(p.plays for p in parts)
        hints = [(p.mean_hints, p.plays) for p in parts if p.plays and np.isfinite(p.mean_hints)]
        lab, best = mranked.get(mid, ((), ()))
        merged_cards[mid] = Card(
            kind="merged",
            id=mid,
            members=members,
            image=str(r.image),
            layer=str(r.layer),
            layer_index=lidx[str(r.layer)],
            weight=float(r.weight),
            n_fmaps=sum(p.n_fmaps for p in parts),
            labels=lab,
            best=best,
            plays=plays,
            wins=sum(p.wins for p in parts),
            losses=sum(p.losses for p in parts),
            resigns=sum(p.resigns for p in parts),
            mean_hints=float(sum(h * n for h, n in hints) / sum(n for _, n in hints))
            if hints
            else float("nan"),
            map=mmaps[mid],
        )
    return merged_cards


def _cluster_cards(
    manifest: pd.DataFrame,
    labels: pd.DataFrame,
    results: Any,
    lidx: dict[str, int],
    map_kind: Literal["map", "raw"],
    wanted: set[str] | None,
) -> dict[int, Card]:
    """Make the unmerged cards: one per cluster map of the manifest (of the ``wanted`` images), by id."""
    n_fmaps = dict(
        zip(results.clusters["cluster_id"].astype(str), results.clusters["n_fmaps"].astype(int), strict=False)
    )
    evidence = labels.drop_duplicates("cluster_id").set_index("cluster_id")[
        ["plays", "wins", "losses", "resigns", "mean_hints"]
    ]
    evidence = {int(k): v for k, v in evidence.to_dict("index").items()}
    ranked = ranked_labels(labels, "cluster_id")
    cluster_cards: dict[int, Card] = {}
    for r in manifest.itertuples():
        if wanted is not None and str(r.image) not in wanted:
            continue
        cid = int(r.cluster_id)
        ev = evidence.get(cid)
        lab, best = ranked.get(cid, ((), ()))
        cluster_cards[cid] = Card(
            kind="cluster",
            id=cid,
            members=(cid,),
            image=str(r.image),
            layer=str(r.layer),
            layer_index=lidx[str(r.layer)],
            weight=float(r.weight),
            n_fmaps=int(n_fmaps.get(str(r.extract_id), 0)),
            labels=lab,
            best=best,
            plays=int(ev["plays"]) if ev is not None else 0,
            wins=int(ev["wins"]) if ev is not None else 0,
            losses=int(ev["losses"]) if ev is not None else 0,
            resigns=int(ev["resigns"]) if ev is not None else 0,
            mean_hints=float(ev["mean_hints"])
            if ev is not None and pd.notna(ev["mean_hints"])
            else float("nan"),
            map=np.asarray(results.cluster_map(str(r.extract_id), map_kind), dtype=np.float32),
        )
    return cluster_cards


def cards_by_layer(
    cards: Iterable[Card], sample_id: str, layer_order: Sequence[str]
) -> dict[str, list[Card]]:
    """Group the cards of ``sample_id`` by layer (every layer of ``layer_order`` present), heaviest first.

    Parameters
    ----------
    cards : iterable of Card
    sample_id : str
        Only this image's cards are kept.
    layer_order : sequence of str
        The layers, shallow to deep.

    Returns
    -------
    dict of str to list of Card
        Layer -> cards by decreasing weight (ties by id).
    """
    out: dict[str, list[Card]] = {name: [] for name in layer_order}
    for c in cards:
        if c.image == sample_id:
            out[c.layer].append(c)
    return {k: sorted(v, key=lambda c: (-c.weight, c.id)) for k, v in out.items()}


#: the columns :func:`load_inv` needs in ``cluster_labels.csv``
_LABEL_COLUMNS = [
    "cluster_id",
    "label",
    "score",
    "rank",
    "is_best",
    "plays",
    "wins",
    "losses",
    "resigns",
    "mean_hints",
    "merged_id",
]


def load_inv(
    paths: INVPaths,
    input_size: int,
    map_kind: Literal["map", "raw"] = "map",
    images: Iterable[str] | None = None,
) -> list[ImageINV]:
    """Read the INVs of the selected images back from the pipeline's outputs.

    Parameters
    ----------
    paths : the outputs (:class:`INVPaths`).
    input_size : the model's input side (images are resized to it, as the network saw them).
    map_kind : unmerged cards show the extraction's ``map`` (as ``extract.map_scaling``) or
        ``raw`` map; use the ``masks.map_kind`` the game used, which the merged maps also used.
    images : sample ids to load (default: every selected image), in ``selected.csv`` order.

    Returns
    -------
    list of :class:`ImageINV`, in ``selected.csv`` order.
    """
    from inviz.fmaps.store import load_results
    from inviz.game.manifest import read_manifest

    selected = read_table(
        paths.selected, "selected images", ["sample_id", "path", "label", "class_name", "pred", "pred_name"]
    )
    selected["sample_id"] = selected["sample_id"].astype(str)
    wanted = None if images is None else set(map(str, images))
    if wanted is not None:
        unknown = sorted(wanted - set(selected["sample_id"]))
        if unknown:
            raise INVDataError(
                f"{paths.selected}: image(s) {', '.join(unknown[:5])} are not among the selected images"
            )
    manifest = read_manifest(paths.manifest).drop_duplicates("cluster_id")
    labels = read_table(paths.cluster_labels, "cluster labels", _LABEL_COLUMNS)
    inv = read_table(paths.inv, "merged INV table", ["merged_id", "image", "layer", "members", "weight"])
    merged_scores = read_table(
        paths.merged_scores, "merged label scores", ["merged_id", "label", "score", "rank", "is_best"]
    )
    results = load_results(paths.extract)
    layer_order = list(results.manifest.get("layers") or dict.fromkeys(manifest["layer"]))
    lidx = {name: i for i, name in enumerate(layer_order)}
    cluster_cards = _cluster_cards(manifest, labels, results, lidx, map_kind, wanted)
    merged_cards = _merged_cards(paths, inv, merged_scores, cluster_cards, lidx, wanted)

    images_out = []
    rows = selected if wanted is None else selected[selected["sample_id"].isin(wanted)]
    for r, arr in zip(rows.itertuples(), load_images(rows, paths.images, input_size), strict=True):
        sid = str(r.sample_id)
        images_out.append(
            ImageINV(
                sample_id=sid,
                path=str(r.path),
                true_label=int(r.label),
                true_class=str(r.class_name),
                pred=int(r.pred),
                pred_name=str(r.pred_name),
                confidence=float(getattr(r, "confidence", float("nan"))),
                image=arr,
                layers=tuple(layer_order),
                merged=cards_by_layer(merged_cards.values(), sid, layer_order),
                clusters=cards_by_layer(cluster_cards.values(), sid, layer_order),
            )
        )
    log.info(
        "INV of %d image(s): %d cluster maps, %d merged maps",
        len(images_out),
        len(cluster_cards),
        len(merged_cards),
    )
    return images_out


def image_inv(
    explanation: Any,
    image: Any,
    input_size: int,
    class_names: Sequence[str] | None = None,
    true_label: int | None = None,
    map_kind: Literal["map", "raw"] = "map",
) -> ImageINV:
    """Assemble the INV of one image straight from :func:`inviz.fmaps.explain.explain`, before any labels.

    Every kept (unpruned) cluster map becomes a card (weight, feature-map count, no labels yet),
    heaviest first per layer; with no labels nothing merges, so the merged cards are the same.

    Parameters
    ----------
    explanation : :class:`inviz.fmaps.records.ImageExplanation`
        One image's analysis.
    image : PIL image or ndarray of uint8, shape (H, W, 3)
        The original image; resized (squashed, bilinear) to the network input as the model saw it.
    input_size : int
        The network's input side.
    class_names : sequence of str, optional
        Names of the model's outputs (default: the output indices).
    true_label : int, optional
        The image's class, when known.
    map_kind : ``map`` (the stored, display-scaled map) or ``raw`` (``A_C``).

    Returns
    -------
    ImageINV
    """
    from inviz.game.reveal import game_image

    def name(i: int) -> str:
        return str(class_names[i]) if class_names is not None else str(i)

    cards: dict[str, list[Card]] = {}
    next_id = 0
    for li, (layer, le) in enumerate(explanation.layers.items()):
        cards[layer] = []
        for c in le.kept_clusters:
            cards[layer].append(
                Card(
                    kind="cluster",
                    id=next_id,
                    members=(next_id,),
                    image=explanation.sample_id,
                    layer=layer,
                    layer_index=li,
                    weight=float(c.weight),
                    n_fmaps=c.n_fmaps,
                    labels=(),
                    best=(),
                    plays=0,
                    wins=0,
                    losses=0,
                    resigns=0,
                    mean_hints=float("nan"),
                    map=np.asarray(c.map if map_kind == "map" else c.raw_map, dtype=np.float32),
                )
            )
            next_id += 1
        cards[layer].sort(key=lambda c: (-c.weight, c.id))
    return ImageINV(
        sample_id=explanation.sample_id,
        path="",
        true_label=-1 if true_label is None else int(true_label),
        true_class="" if true_label is None else name(int(true_label)),
        pred=explanation.pred,
        pred_name=name(explanation.pred),
        confidence=float(explanation.confidence),
        image=game_image(np.asarray(image), input_size, input_size),
        layers=tuple(explanation.layers),
        merged=cards,
        clusters=cards,
    )


def safe_name(text: str) -> str:
    """Make a sample id or class name file-name-safe (``val/c00_x/img_1`` -> ``val__c00_x__img_1``)."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text).replace("/", "__")).strip("_") or "_"
