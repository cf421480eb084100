"""Global explanations of the classes, validated with TCAV (docs/method.md §4, paper Figure 4).

:func:`explain_classes` is the whole step: per class and layer the top labels by importance
(:func:`inviz.concepts.importance.global_explanations`); per class and TCAV layer a TCAV test
(:func:`inviz.concepts.tcav.run_tcav`) of each top label on concept examples made of the revealed
regions of the maps that carry it (:func:`inviz.concepts.importance.concept_cards`), against
masked random counter-sets drawn from the dataset index. The CAV cache is keyed by the model
checkpoint's sha256: a re-trained model never reuses stale CAVs. It returns a
:class:`GlobalResult`; :mod:`inviz.concepts.report` renders it (Markdown, Figure 4).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from inviz.concepts.importance import (
    GlobalConfig,
    concept_cards,
    concept_examples,
    draw,
    global_explanations,
    random_examples,
    to_input,
)
from inviz.core.config import ParamsError
from inviz.game.reveal import RevealConfig
from inviz.models.checkpoint import LoadedModel
from inviz.views.records import Card, ImageINV, load_images

log = logging.getLogger(__name__)

#: TCAV columns added to the global table (``status`` renamed ``tcav_status``), in order
TCAV_COLUMNS = [
    "tcav_status",
    "n_examples",
    "n_candidates",
    "tcav_score",
    "tcav_std",
    "random_score_mean",
    "p_value",
    "p_adjusted",
    "significant",
    "direction",
    "n_candidates_game",
    "n_transferred",
]


@dataclass(frozen=True, eq=False)
class GlobalResult:
    """Output of :func:`explain_classes`.

    Attributes
    ----------
    table : DataFrame
        The global explanations (``global.csv``): :data:`inviz.concepts.importance.GLOBAL_COLUMNS`
        and, per (class, layer, label), :data:`TCAV_COLUMNS` (empty where not tested).
    tcav : DataFrame
        The TCAV tables of every tested class and layer (``tcav.csv``):
        :data:`inviz.concepts.tcav.TABLE_COLUMNS` with ``class_label`` first and ``n_candidates``
        (concept examples available before ``max_examples``), ``n_candidates_game`` (of them from
        the game's maps), ``n_transferred`` (examples used that carry transferred labels,
        ``global.transfer``), ``layer_name`` (the tested layer) last; empty without TCAV.
    runs : DataFrame
        Per-run scores (``tcav_runs.csv``): :data:`inviz.concepts.tcav.RUN_COLUMNS` and
        ``class_label``; empty without TCAV.
    cavs_trained, cavs_cached : int
        CAVs trained / loaded from the cache.
    figure_layers : tuple of str
        Layers drawn as Figure 4 (``global.figure_layers`` or the deepest explained layer).
    cards : mapping card key -> (ImageINV, Card)
        The example maps that Figure 4 of ``figure_layers`` shows.
    """

    table: pd.DataFrame
    tcav: pd.DataFrame
    runs: pd.DataFrame
    cavs_trained: int
    cavs_cached: int
    figure_layers: tuple[str, ...]
    cards: Mapping[str, tuple[ImageINV, Card]]
    min_examples: int = 0

    @property
    def too_few_without_transfer(self) -> int:
        """Tested labels that would have too few concept examples from the game's maps alone."""
        t = self.tcav
        if not len(t) or "n_candidates_game" not in t:
            return 0
        return int((t["n_candidates_game"] < self.min_examples).sum())

    @property
    def metrics(self) -> dict[str, Any]:
        """Counts of classes, layers and labels, and the TCAV summary (``metrics/global.json``).

        TCAV: ``n_candidates`` top labels of the TCAV layers, of which ``n_tested`` were tested (enough
        concept and random examples: a CAV was trained and scored), ``n_significant`` of those
        significant; ``n_too_few_examples`` candidates were not tested (too few examples).
        """
        table = self.table
        candidates = table[table["tcav_status"].notna()] if "tcav_status" in table else table.iloc[:0]
        ok = candidates[candidates["tcav_status"] == "ok"]  # tested: a CAV was trained and scored
        return {
            "n_classes": int(table["class_label"].nunique()) if len(table) else 0,
            "n_layers": int(table["layer"].nunique()) if len(table) else 0,
            "n_labels": int(len(table)),
            "mean_labels_per_class_layer": (
                float(table.groupby(["class_label", "layer"]).size().mean()) if len(table) else 0.0
            ),
            "tcav": {
                "n_candidates": int(len(candidates)),
                "n_tested": int(len(ok)),
                "n_significant": int(ok["significant"].astype(bool).sum()) if len(ok) else 0,
                "n_too_few_examples": int((candidates["tcav_status"] == "too_few_examples").sum()),
                "n_too_few_examples_without_transfer": self.too_few_without_transfer,
                "n_with_transferred_examples": int((candidates["n_transferred"].fillna(0) > 0).sum())
                if "n_transferred" in candidates
                else 0,
                "share_significant": float(ok["significant"].astype(bool).mean()) if len(ok) else None,
                "mean_score": float(ok["tcav_score"].mean()) if len(ok) else None,
                "cavs_trained": self.cavs_trained,
                "cavs_cached": self.cavs_cached,
            },
        }


def explain_classes(
    invs: Sequence[ImageINV],
    cfg: GlobalConfig,
    reveal_cfg: RevealConfig,
    loaded: LoadedModel,
    index: str | Path,
    images_dir: str | Path,
    cav_cache: str | Path,
    source: str = "params",
    extra: Sequence[ImageINV] = (),
) -> GlobalResult:
    """Global explanations of every class and layer, with the TCAV validation of their top labels.

    Parameters
    ----------
    invs : sequence of ImageINV
        The explained images' INVs (:func:`inviz.views.records.load_inv`).
    cfg : GlobalConfig
        The ``global`` section.
    reveal_cfg : RevealConfig
        The ``masks`` section (the reveal masks of concept and random examples).
    loaded : LoadedModel
        The classifier (``loaded.model``), its input size and normalisation, and its sha256
        (keys the CAV cache).
    index : str or Path
        The dataset index CSV (``inviz data``): random pool and class images; read only when
        TCAV runs.
    images_dir : str or Path
        The image folder the index's paths are relative to.
    cav_cache : str or Path
        The CAV cache folder (created, even when nothing is tested: a DVC output).
    source : str
        The params file, named in error messages.
    extra : sequence of ImageINV
        Unplayed images with transferred labels (``global.transfer``, :mod:`inviz.transfer`): their
        maps are extra concept examples, after the game's; they never change the importance ranking.

    Returns
    -------
    GlobalResult
    """
    layers = list(invs[0].layers) if invs else []
    for key, chosen in (
        ("global.layers", cfg.layers),
        ("global.figure_layers", cfg.figure_layers),
        ("global.tcav.layers", cfg.tcav.layers if cfg.tcav_enabled else ()),
    ):
        bad = sorted(set(chosen or ()) - set(layers))
        if bad:
            raise ParamsError(
                f"{source}: {key}: {', '.join(bad)} not among the explained layers ({', '.join(layers)})"
            )
    table = global_explanations(invs, cfg)
    Path(cav_cache).mkdir(parents=True, exist_ok=True)
    tcav, runs, trained, cached = pd.DataFrame(), pd.DataFrame(), 0, 0
    if cfg.tcav_enabled and len(table):
        tcav, runs, trained, cached = _validate(
            invs, table, cfg, reveal_cfg, loaded, index, images_dir, cav_cache, extra
        )
    table = _merge_tcav(table, tcav)
    figure_layers = tuple(cfg.figure_layers or layers[-1:])
    by_key = {
        card.key: (inv, card) for inv in invs for cards in inv.cards(cfg.merged).values() for card in cards
    }
    shown = table[table["layer"].isin(figure_layers)]["examples"].dropna()
    keys = {k for ex in shown for k in str(ex).split(";") if k}
    cards = {k: by_key[k] for k in keys if k in by_key}
    return GlobalResult(table, tcav, runs, trained, cached, figure_layers, cards, cfg.tcav.min_examples)


def _validate(
    invs: Sequence[ImageINV],
    table: pd.DataFrame,
    cfg: GlobalConfig,
    reveal_cfg: RevealConfig,
    loaded: LoadedModel,
    index_path: str | Path,
    images_dir: str | Path,
    cav_cache: str | Path,
    extra: Sequence[ImageINV] = (),
) -> tuple[pd.DataFrame, pd.DataFrame, int, int]:
    """TCAV of the top labels of every class at every TCAV layer: tables, runs, CAVs trained, cached."""
    from tqdm.auto import tqdm

    from inviz.concepts.tcav import run_tcav
    from inviz.core.compute import exact_float32, resolve_device
    from inviz.data.loading import read_index

    model = loaded.model.to(resolve_device(cfg.run.device))  # global.run.device (TCAV's passes)
    c = cfg.concepts
    size, mean, std = loaded.config.input_size, loaded.config.mean, loaded.config.std
    index = read_index(index_path)
    random_x = _random_pool(invs, index, cfg, reveal_cfg, images_dir, size, mean, std, extra)
    pool = [*invs, *extra]
    tables, runs, trained, cached = [], [], 0, 0
    jobs = [(int(cl), ly) for cl in table["class_label"].unique() for ly in cfg.tcav.layers]
    for class_label, layer in tqdm(jobs, desc="TCAV", unit="class"):
        of_class = index[(index["split"] == c.class_split) & (index["label"] == class_label)]
        rows = draw(of_class, c.class_images, c.seed)
        if rows.empty:
            log.warning("TCAV: no '%s' images of class %d: skipped", c.class_split, class_label)
            continue
        class_x = torch.stack([to_input(im, mean, std) for im in load_images(rows, images_dir, size)])
        concepts, counts = {}, {}
        for lab in table[(table["class_label"] == class_label) & (table["layer"] == layer)]["label"]:
            pairs = concept_cards(pool, lab, class_label, layer, cfg)
            used = pairs[: cfg.tcav.max_examples]
            counts[lab] = (
                len(pairs),
                sum(1 for _, c in pairs if c.source == "game"),
                sum(1 for _, c in used if c.source == "transfer"),
            )
            concepts[lab] = concept_examples(used, cfg, reveal_cfg, mean, std, size)
        if not concepts:
            continue
        layer_cfg = dataclasses.replace(cfg.tcav, layers=(layer,))
        with exact_float32():  # no TF32: the same activations, CAVs and scores on every device
            res = run_tcav(
                model,
                class_label,
                concepts,
                random_x,
                class_x,
                layer_cfg,
                cav_cache,
                loaded.sha256,
                workers=cfg.run.cav_workers,
            )
        trained, cached = trained + res.n_trained, cached + res.n_cached
        runs.append(res.runs.assign(class_label=class_label))
        t = res.table
        t.insert(0, "class_label", class_label)
        for i, col in enumerate(("n_candidates", "n_candidates_game", "n_transferred")):
            t[col] = t["concept"].map({k: v[i] for k, v in counts.items()})
        t["layer_name"] = layer
        tables.append(t)
    tcav = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    return tcav, pd.concat(runs, ignore_index=True) if runs else pd.DataFrame(), trained, cached


def _random_pool(
    invs: Sequence[ImageINV],
    index: pd.DataFrame,
    cfg: GlobalConfig,
    reveal_cfg: RevealConfig,
    images_dir: str | Path,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    extra: Sequence[ImageINV] = (),
) -> torch.Tensor:
    """Build the random counter-examples, Tensor of shape (m, 3, size, size): never an explained image."""
    c = cfg.concepts
    explained = {inv.sample_id for inv in [*invs, *extra]}
    candidates = index[(index["split"] == c.random_split) & ~index["sample_id"].isin(explained)]
    pool_rows = draw(candidates, c.random_pool, c.seed)
    if len(pool_rows) < 2 * cfg.tcav.min_examples:
        log.warning(
            "random pool: only %d images in split '%s' (TCAV wants two sets of %d)",
            len(pool_rows),
            c.random_split,
            cfg.tcav.random_set_size,
        )
    all_cards = [card for inv in invs for cards in inv.cards(cfg.merged).values() for card in cards]
    return random_examples(load_images(pool_rows, images_dir, size), all_cards, cfg, reveal_cfg, mean, std)


def _merge_tcav(table: pd.DataFrame, tcav: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the :data:`TCAV_COLUMNS` of its tested labels (``None`` everywhere without TCAV)."""
    if not len(tcav):
        for col in TCAV_COLUMNS:
            table[col] = None
        return table
    merged = tcav.rename(columns={"concept": "label", "status": "tcav_status"})
    merged = merged[["class_label", "layer_name", "label", *[c for c in TCAV_COLUMNS if c in merged.columns]]]
    merged = merged.rename(columns={"layer_name": "layer"})
    return table.merge(merged, on=["class_label", "layer", "label"], how="left")
