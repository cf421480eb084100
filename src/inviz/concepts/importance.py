"""Global (class-level) explanations, docs/method.md §4 / paper §5.2 and Figure 4.

For a class and a layer: collect each (merged) cluster map's best label across the class's
images; a label's **importance** is the mean weight of the cluster maps it tops; keep the top
``top_k``; show example cluster maps. Each top label is then validated with TCAV
(:mod:`inviz.concepts.tcav`, wired by :func:`inviz.concepts.explain.explain_classes`) on concept
examples built here from the maps that carry the label.

Pure functions over the records of :mod:`inviz.views.records`:

- :func:`global_explanations` — the table (one row per class, layer and ranked label);
- :func:`concept_cards` — the maps whose revealed regions are a label's TCAV concept examples,
  in priority order;
- :func:`concept_examples` / :func:`random_examples` — those regions (and matching random
  counter-examples) as network inputs.

Ties. A map whose best labels tie counts for each of them (``ties: all``, default) or only for
the first in rank order (``ties: first``). Unlabelled maps count for no label.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch

from inviz.concepts.tcav import TCAVConfig, reveal_region
from inviz.game.reveal import RevealConfig, reveal_mask
from inviz.views.records import Card, ImageINV

log = logging.getLogger(__name__)

GLOBAL_COLUMNS = [
    "class_label",
    "class_name",
    "layer",
    "rank",
    "label",
    "importance",
    "n_maps",
    "n_images",
    "weight_sum",
    "examples",
]


@dataclass(frozen=True)
class ConceptConfig:
    """How TCAV concept and random examples are built from cluster maps (``global.concepts``).

    Parameters
    ----------
    scope : str
        Maps of the class's images only (``class``) or of every explained image (``all``) give a
        label's examples; a concept is visual, so ``all`` finds more examples.
    layers : str
        Maps of the tested layer only (``same``) or of every layer (``all``).
    level : float
        Revealed percentage of the map that makes the example (the game's last level, 30).
    random_split : str
        Index split the random counter-examples come from (never an explained image).
    random_pool : int
        Images in the random pool (seeded draw).
    random_kind : str
        ``masked`` (each random image seen through the mask of a random cluster map: the
        counter-set has the concepts' masking statistics, so a CAV cannot separate "masked" from
        "whole image") or ``full`` (whole images, classic TCAV).
    class_split : str
        Split of the images the TCAV scores are computed on (the target class's).
    class_images : int
        At most this many of them (seeded draw).
    seed : int
        The draws above.
    """

    scope: Literal["class", "all"] = "all"
    layers: Literal["same", "all"] = "all"
    level: float = 30.0
    random_split: str = "train"
    random_pool: int = 200
    random_kind: Literal["masked", "full"] = "masked"
    class_split: str = "test"
    class_images: int = 50
    seed: int = 432

    def __post_init__(self) -> None:
        """Check the values (``ValueError`` naming the key)."""
        if not 0 < self.level <= 100:
            raise ValueError(f"level: expected a percentage in (0, 100], got {self.level}")
        if self.random_pool < 8 or self.class_images < 1:
            raise ValueError("random_pool: expected >= 8; class_images: expected >= 1")


@dataclass(frozen=True)
class GlobalRunConfig:
    """``global.run``: how the stage runs, not what it computes (not a DVC dependency).

    Parameters
    ----------
    device : str
        Where TCAV runs the model: ``auto`` (CUDA when available) | ``cpu`` | ``cuda`` | ``cuda:1`` …
    cav_workers : int
        Threads fitting the CAV classifiers (0: as many as torch uses, one per core). Each CAV's
        seed depends only on its concepts, so the CAVs and scores do not depend on it (tested).
    """

    device: str = "auto"
    cav_workers: int = 0

    def __post_init__(self) -> None:
        if self.cav_workers < 0:
            raise ValueError(f"cav_workers: expected >= 0 (0: one per core), got {self.cav_workers}")


@dataclass(frozen=True)
class GlobalTransferConfig:
    """``global.transfer``: transferred labels as extra TCAV concept examples (docs/method.md §9).

    Parameters
    ----------
    enabled : bool
        Add the cluster maps of the ``transfer`` stage's extra images whose transferred best
        labels include a tested label to its concept examples (after the game's maps: the
        played images' examples always come first). Importance (the ranking) stays the game's.
    min_confidence : float
        Only transferred labels of at least this confidence (docs/method.md §9) count.
    """

    enabled: bool = False
    min_confidence: float = 0.5

    def __post_init__(self) -> None:
        """Check the threshold."""
        if not 0 <= self.min_confidence <= 1:
            raise ValueError(
                f"transfer.min_confidence: expected a value in [0, 1], got {self.min_confidence}"
            )


@dataclass(frozen=True)
class GlobalConfig:
    """``global`` section: class-level explanations and their TCAV validation (docs/method.md §4).

    Parameters
    ----------
    layers : tuple of str or None
        Layers aggregated (``null``: every explained layer); figures and TCAV use
        ``figure_layers`` / ``tcav.layers``.
    figure_layers : tuple of str or None
        Layers drawn as Figure 4 per class (``null``: the deepest explained layer).
    top_k : int
        Labels kept per class and layer (paper: 5).
    merged : bool
        Aggregate merged cluster maps (§3.8, default) or the game's cluster maps.
    ties : str
        ``all`` (a map counts for each tied best label) or ``first``.
    min_maps : int
        A label must top at least this many maps to be ranked (1: the paper's rule).
    n_examples : int
        Example maps shown per label (heaviest first).
    tcav_enabled : bool
        Run the TCAV validation (needs the model and the dataset index).
    concepts : ConceptConfig
        Concept/random example construction.
    tcav : TCAVConfig
        TCAV settings (:class:`inviz.concepts.tcav.TCAVConfig`: layers, runs, example counts,
        test, correction).
    run : GlobalRunConfig
        Execution settings (the device of TCAV).
    transfer : GlobalTransferConfig
        Transferred labels of more images as extra concept examples (off by default).
    """

    layers: tuple[str, ...] | None = None
    figure_layers: tuple[str, ...] | None = None
    top_k: int = 5
    merged: bool = True
    ties: Literal["all", "first"] = "all"
    min_maps: int = 1
    n_examples: int = 4
    tcav_enabled: bool = True
    concepts: ConceptConfig = field(default_factory=ConceptConfig)
    tcav: TCAVConfig = field(default_factory=TCAVConfig)
    run: GlobalRunConfig = field(default_factory=GlobalRunConfig)
    transfer: GlobalTransferConfig = field(default_factory=GlobalTransferConfig)

    def __post_init__(self) -> None:
        """Check the values (``ValueError`` naming the key)."""
        if self.top_k < 1 or self.min_maps < 1 or self.n_examples < 0:
            raise ValueError("top_k and min_maps: expected >= 1; n_examples: expected >= 0")


def _best(card: Card, ties: str) -> tuple[str, ...]:
    return card.best[:1] if ties == "first" else card.best


def global_explanations(invs: Sequence[ImageINV], cfg: GlobalConfig) -> pd.DataFrame:
    """Top labels per class and layer by importance (docs/method.md §4).

    Parameters
    ----------
    invs : sequence of ImageINV
        The explained images' INVs; an image belongs to its **true** class (the selected images
        are correctly classified, so it is also the predicted one).
    cfg : GlobalConfig

    Returns
    -------
    DataFrame
        :data:`GLOBAL_COLUMNS`, one row per (class, layer, label) for the ``top_k`` labels:
        ``importance`` = mean weight (%) of the maps the label tops, ``n_maps`` their count,
        ``n_images`` how many images they come from, ``weight_sum``, and ``examples`` the card
        keys of up to ``n_examples`` of those maps, heaviest first (``;``-joined). Ranks are by
        importance, then map count, then label (deterministic).
    """
    rows = []
    for inv in invs:
        layers = cfg.layers or inv.layers
        for layer in layers:
            for card in inv.cards(cfg.merged).get(layer, []):
                for lab in _best(card, cfg.ties):
                    rows.append(
                        (inv.true_label, inv.true_class, layer, lab, card.weight, inv.sample_id, card.key)
                    )
    if not rows:
        return pd.DataFrame(columns=GLOBAL_COLUMNS)
    tops = pd.DataFrame(
        rows, columns=["class_label", "class_name", "layer", "label", "weight", "image", "key"]
    )
    out = []
    for (cl, cn, layer), grp in tops.groupby(["class_label", "class_name", "layer"], sort=False):
        agg = (
            grp.groupby("label")
            .agg(
                importance=("weight", "mean"),
                n_maps=("weight", "size"),
                n_images=("image", "nunique"),
                weight_sum=("weight", "sum"),
            )
            .reset_index()
        )
        agg = agg[agg["n_maps"] >= cfg.min_maps]
        agg = agg.sort_values(
            ["importance", "n_maps", "label"], ascending=[False, False, True], kind="stable"
        ).head(cfg.top_k)
        for rank, r in enumerate(agg.itertuples(), start=1):
            ex = grp[grp["label"] == r.label]
            ex = ex.sort_values(["weight", "key"], ascending=[False, True], kind="stable")
            out.append(
                {
                    "class_label": int(cl),
                    "class_name": cn,
                    "layer": layer,
                    "rank": rank,
                    "label": r.label,
                    "importance": float(r.importance),
                    "n_maps": int(r.n_maps),
                    "n_images": int(r.n_images),
                    "weight_sum": float(r.weight_sum),
                    "examples": ";".join(ex["key"].head(cfg.n_examples)),
                }
            )
    frame = pd.DataFrame(out, columns=GLOBAL_COLUMNS)
    all_layers = dict.fromkeys(ly for inv in invs for ly in (cfg.layers or inv.layers))
    frame["_l"] = frame["layer"].map({ly: i for i, ly in enumerate(all_layers)})
    frame = frame.sort_values(["class_label", "_l", "rank"], kind="stable")
    return frame.drop(columns="_l").reset_index(drop=True)


def concept_cards(
    invs: Sequence[ImageINV], label: str, class_label: int, layer: str, cfg: GlobalConfig
) -> list[tuple[ImageINV, Card]]:
    """Find the maps whose revealed regions are the TCAV examples of ``label`` for a class and layer.

    Every (merged) map with ``label`` among its best labels, from the images and layers that
    ``cfg.concepts.scope`` / ``layers`` allow, in priority order: the class's own images first,
    then the tested layer, then heavier maps; ties by image and card key (deterministic). Cards
    with transferred labels (``source="transfer"``, docs/method.md §9) come after every game card.

    Parameters
    ----------
    invs : sequence of ImageINV
    label : str
    class_label : int
        The class tested.
    layer : str
        The layer tested.
    cfg : GlobalConfig

    Returns
    -------
    list of (ImageINV, Card)
        The caller keeps the first ``tcav.max_examples``.
    """
    c = cfg.concepts
    found = []
    for inv in invs:
        if c.scope == "class" and inv.true_label != class_label:
            continue
        for ly, cards in inv.cards(cfg.merged).items():
            if c.layers == "same" and ly != layer:
                continue
            for card in cards:
                if label in _best(card, cfg.ties):
                    key = (
                        card.source == "transfer",
                        inv.true_label != class_label,
                        ly != layer,
                        -card.weight,
                        inv.sample_id,
                        card.key,
                    )
                    found.append((*key, inv, card))
    found.sort(key=lambda t: t[:6])
    return [(t[6], t[7]) for t in found]


def to_input(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Convert an image to a network input, normalised as ``eval_transform`` does.

    Parameters
    ----------
    image : ndarray of uint8 of shape (S, S, 3)
    mean, std : sequence of 3 floats
        Per-channel normalisation (``ModelConfig.mean``/``std``).

    Returns
    -------
    Tensor of float32 of shape (3, S, S)
    """
    x = torch.as_tensor(np.asarray(image, dtype=np.float32) / 255.0).permute(2, 0, 1)
    return (x - torch.as_tensor(mean).reshape(3, 1, 1)) / torch.as_tensor(std).reshape(3, 1, 1)


def concept_examples(
    pairs: Sequence[tuple[ImageINV, Card]],
    cfg: GlobalConfig,
    reveal_cfg: RevealConfig,
    mean: Sequence[float],
    std: Sequence[float],
    size: int,
) -> torch.Tensor:
    """Make the revealed regions of ``pairs`` (image, card) network inputs.

    Region = :func:`inviz.concepts.tcav.examples.reveal_region` of the image with the card's
    reveal mask at ``concepts.level`` % (:func:`inviz.game.reveal.reveal_mask`), hidden part
    filled as ``tcav.reveal_fill``.

    Parameters
    ----------
    pairs : sequence of (ImageINV, Card)
    cfg : GlobalConfig
    reveal_cfg : RevealConfig
    mean, std : sequence of 3 floats
        Per-channel normalisation.
    size : int
        Image side of the empty result when ``pairs`` is empty.

    Returns
    -------
    Tensor of shape (n, 3, S, S)
        S is the images' side (``size`` when ``pairs`` is empty).
    """
    if not pairs:
        return torch.zeros(0, 3, size, size)
    xs = []
    for inv, card in pairs:
        size = inv.image.shape[0]
        m = torch.as_tensor(reveal_mask(card.map, size, cfg.concepts.level, reveal_cfg))
        xs.append(reveal_region(to_input(inv.image, mean, std), m, cfg.tcav.reveal_fill, mean, std))
    return torch.stack(xs)


def random_examples(
    images: Sequence[np.ndarray],
    masks_from: Sequence[Card],
    cfg: GlobalConfig,
    reveal_cfg: RevealConfig,
    mean: Sequence[float],
    std: Sequence[float],
) -> torch.Tensor:
    """Make the random pool network inputs.

    ``random_kind: masked``: image ``i`` is seen through the reveal mask of a card drawn (seeded)
    from ``masks_from`` (maps of every explained image), like a concept example of random content;
    ``full``: the whole images.

    Parameters
    ----------
    images : sequence of ndarray of uint8 of shape (S, S, 3)
    masks_from : sequence of Card
    cfg : GlobalConfig
    reveal_cfg : RevealConfig
    mean, std : sequence of 3 floats
        Per-channel normalisation.

    Returns
    -------
    Tensor of shape (m, 3, S, S)
        (0, 3, 1, 1) without images.
    """
    rng = np.random.default_rng(cfg.concepts.seed)
    xs = []
    for img in images:
        x = to_input(img, mean, std)
        if cfg.concepts.random_kind == "masked" and masks_from:
            card = masks_from[int(rng.integers(len(masks_from)))]
            m = torch.as_tensor(reveal_mask(card.map, img.shape[0], cfg.concepts.level, reveal_cfg))
            x = reveal_region(x, m, cfg.tcav.reveal_fill, mean, std)
        xs.append(x)
    return torch.stack(xs) if xs else torch.zeros(0, 3, 1, 1)


def draw(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """Draw a seeded random subset of ``n`` rows of ``frame`` (all rows when it has fewer), in index order.

    Parameters
    ----------
    frame : DataFrame
    n : int
    seed : int

    Returns
    -------
    DataFrame of min(n, len(frame)) rows
    """
    if len(frame) <= n:
        return frame
    idx = np.sort(np.random.default_rng(seed).choice(len(frame), size=n, replace=False))
    return frame.iloc[idx]
