"""``inviz labels_analyze``: labels per cluster map from the imported game data (docs/method.md §3).

Translation (cached), cleaning, Sentence-BERT embeddings (cached), text clusters and names,
scores, best labels and the transitive merge of cluster maps; see :mod:`inviz.labels.run`.
On the synthetic demo (part masks available) it also measures the closed loop: how often a
cluster map's top label names a ground-truth part the map covers (:mod:`inviz.labels.closed_loop`).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = (
    "label analysis: translate, clean, Sentence-BERT text clusters, scores, merged INV table "
    "(+ closed loop on the demo)"
)
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--guesses": "canonical guesses CSV written by 'inviz labels_import'",
    "--classes": "class names CSV written by 'inviz labels_import'",
    "--translations": "manual translations CSV written by 'inviz labels_import'",
    "--manifest": "masks manifest written by 'inviz masks'",
    "--extract": "extraction folder (cluster maps to merge)",
    "--parts": "ground-truth part masks ('inviz data'; empty for real data)",
    "--translation-cache": "translation cache CSV (read if present, updated)",
    "--embedding-cache": "embedding cache parquet (read if present, updated)",
    "--texts": "output: text -> text cluster -> label audit table CSV",
    "--cluster-labels": "output: ranked labels + evidence per cluster map CSV",
    "--inv": "output: merged INV table CSV",
    "--merged-scores": "output: every label score per merged cluster map CSV",
    "--merged-maps": "output: folder of merged maps (one .npz per layer)",
    "--closed-loop": "output: closed-loop check per cluster map CSV (demo)",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import pandas as pd

    from inviz.core.io import write_csv, write_json
    from inviz.core.tracking import stage_run
    from inviz.data.parts import PartMasks
    from inviz.game.assets import load_cluster_maps
    from inviz.game.export import read_guesses
    from inviz.game.manifest import read_manifest
    from inviz.game.reveal import RevealConfig
    from inviz.labels.analyze import AnalyzeConfig
    from inviz.labels.embed import EmbeddingCache, model_id
    from inviz.labels.merged_maps import write_merged_maps
    from inviz.labels.run import run_label_analysis
    from inviz.labels.translate import TranslationCache, read_dictionary

    cfg, reveal_cfg, tracking = load_params(
        args.params, ("labels_analyze", AnalyzeConfig), ("masks", RevealConfig)
    )
    manifest = read_manifest(args.manifest)
    tcache = TranslationCache(args.translation_cache)
    ecache = EmbeddingCache(args.embedding_cache, model_id(cfg.sbert.model))
    guesses = read_guesses(args.guesses)
    classes = pd.read_csv(args.classes, dtype={"class_name": str, "game_name": str, "class_folder": str})
    maps = load_cluster_maps(args.extract, manifest, reveal_cfg.map_kind)
    out = run_label_analysis(
        guesses,
        classes,
        read_dictionary(args.translations),
        manifest,
        maps,
        PartMasks.load(args.parts),
        cfg,
        reveal_cfg,
        tcache,
        ecache,
    )
    tcache.save()
    ecache.save()
    result, metrics = out.analysis, out.metrics
    write_csv(args.texts, result.texts)
    write_csv(args.cluster_labels, result.cluster_labels)
    write_csv(args.inv, result.inv)
    write_csv(args.merged_scores, result.merged_scores)
    write_merged_maps(args.merged_maps, result.inv, out.merged_maps)
    write_csv(args.closed_loop, out.closed_loop)
    write_json(args.metrics, metrics)
    loop = metrics["closed_loop"]
    with stage_run("labels_analyze", tracking, {"labels_analyze": cfg}) as tr:
        tr.log_metrics(
            {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        )
        tr.log_metrics(result.counts["dropped"], prefix="dropped")
        if loop.get("accuracy") is not None:
            tr.log_metrics(
                {k: loop[k] for k in ("accuracy", "accuracy_rank1", "baseline")}, prefix="closed_loop"
            )
        for path in (args.inv, args.cluster_labels, args.texts):
            tr.log_artifact(path)
    accuracy, chance = loop.get("accuracy"), loop.get("baseline")
    log.info(
        "labels_analyze: %d of %d cluster maps labelled, %d merged maps; closed loop: %s",
        metrics["n_cluster_maps_labelled"],
        metrics["n_cluster_maps"],
        metrics["n_merged_maps"],
        "not measured (no part masks)"
        if accuracy is None
        else f"{accuracy:.3f} of the labelled maps' top labels name a part the map covers"
        + (f" (chance {chance:.3f})" if chance is not None else ""),
    )
    return metrics
