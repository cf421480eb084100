"""``inviz labels_analyze``: labels per cluster map from the imported game data (METHOD.md §3).

Translation (cached), cleaning, Sentence-BERT embeddings (cached), text clusters and names,
scores, best labels and the transitive merge of cluster maps; see :mod:`inviz.labels.analyze`.
On the synthetic demo (part masks available) it also measures the closed loop: how often a
cluster map's top label names a ground-truth part the map covers (:mod:`inviz.labels.closed_loop`).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "label analysis: translate, clean, Sentence-BERT text clusters, scores, merged INV table (+ closed loop on the demo)"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--guesses", required=True, help="canonical guesses CSV written by 'inviz labels_import'")
    p.add_argument("--classes", required=True, help="class names CSV written by 'inviz labels_import'")
    p.add_argument("--translations", required=True, help="manual translations CSV written by 'inviz labels_import'")
    p.add_argument("--manifest", required=True, help="masks manifest written by 'inviz masks'")
    p.add_argument("--extract", required=True, help="extraction folder (cluster maps to merge)")
    p.add_argument("--parts", required=True, help="ground-truth part masks ('inviz data'; empty for real data)")
    p.add_argument("--translation-cache", required=True, help="translation cache CSV (read if present, updated)")
    p.add_argument("--embedding-cache", required=True, help="embedding cache parquet (read if present, updated)")
    p.add_argument("--texts", required=True, help="output: text -> text cluster -> label audit table CSV")
    p.add_argument("--cluster-labels", required=True, help="output: ranked labels + evidence per cluster map CSV")
    p.add_argument("--inv", required=True, help="output: merged INV table CSV")
    p.add_argument("--merged-scores", required=True, help="output: every label score per merged cluster map CSV")
    p.add_argument("--merged-maps", required=True, help="output: folder of merged maps (one .npz per layer)")
    p.add_argument("--closed-loop", required=True, help="output: closed-loop check per cluster map CSV (demo)")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:

    import numpy as np
    import pandas as pd

    from inviz.core.config import load_section
    from inviz.core.io import atomic_path, write_csv, write_json
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.data.synthetic import COLOUR_PHRASES, PART_PHRASES, PartMasks
    from inviz.fmaps.extraction import load_results
    from inviz.game.assets import read_manifest
    from inviz.game.export import cluster_table, read_guesses
    from inviz.game.reveal import RevealConfig
    from inviz.game.simulate import part_coverage
    from inviz.labels.analyze import AnalyzeConfig, analyze
    from inviz.labels.closed_loop import evaluate, part_lexicon
    from inviz.labels.embed import EmbeddingCache, LazyEncoder, embed_texts, model_id
    from inviz.labels.scoring import merge_maps
    from inviz.labels.translate import TranslationCache, make_translator, read_dictionary

    cfg = load_section(args.params, "labels_analyze", AnalyzeConfig)
    reveal_cfg = load_section(args.params, "masks", RevealConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    guesses = read_guesses(args.guesses)
    classes = pd.read_csv(args.classes, dtype={"class_name": str, "game_name": str, "class_folder": str})
    aliases = {int(r.label): sorted({str(r.class_name), str(r.game_name)}) for r in classes.itertuples()}
    manifest = read_manifest(args.manifest)
    clusters = cluster_table(manifest)
    ext_ids = manifest.drop_duplicates("cluster_id").set_index("cluster_id")["extract_id"]

    translator = make_translator(cfg.translate, read_dictionary(args.translations))
    tcache = TranslationCache(args.translation_cache)
    ecache = EmbeddingCache(args.embedding_cache, model_id(cfg.sbert.model))
    encoder = LazyEncoder(cfg.sbert)

    def embed(texts: list[str]) -> np.ndarray:
        return embed_texts(texts, encoder, ecache, cfg.sbert.batch_size, cfg.progress)

    result = analyze(guesses, clusters, aliases, embed, translator, cfg, tcache)
    tcache.save()
    ecache.save()

    write_csv(args.texts, result.texts)
    write_csv(args.cluster_labels, result.cluster_labels)
    write_csv(args.inv, result.inv)
    write_csv(args.merged_scores, result.merged_scores)

    results = load_results(args.extract)
    maps = {int(c): np.asarray(results.cluster_map(ext_ids[c], reveal_cfg.map_kind), dtype=np.float64) for c in clusters["cluster_id"]}
    weights = dict(zip(clusters["cluster_id"].astype(int), clusters["weight"].astype(float), strict=False))
    merged = merge_maps(maps, weights, result.groups)
    inv = result.inv.set_index("merged_id")
    with atomic_path(args.merged_maps, directory=True) as tmp:
        for layer, grp in inv.groupby("layer", sort=False):
            ids = grp.index.to_numpy()
            np.savez_compressed(tmp / f"{layer}.npz", merged_id=ids, weight=grp["weight"].to_numpy(),
                                maps=np.stack([merged[int(i)] for i in ids]).astype(np.float32))

    # closed loop (synthetic data only)
    parts = PartMasks.load(args.parts)
    loop_metrics: dict[str, Any] = {"accuracy": None, "accuracy_rank1": None, "baseline": None, "n_maps": 0}
    loop_table = pd.DataFrame(columns=["cluster_id", "layer", "labels", "named_parts", "covered_parts", "hit_share", "hit_rank1"])
    if len(parts):
        cl = result.cluster_labels
        best = cl[cl["is_best"].eq(True)][["cluster_id", "layer", "label", "rank"]]
        cover = {}
        for cid, image in clusters.set_index("cluster_id").loc[best["cluster_id"].unique(), "image"].items():
            present = {p: parts.mask(image, p) for p in parts.parts_of(image)}
            cover[int(cid)] = part_coverage(maps[int(cid)], present, reveal_cfg)
        colours = [w for by_lang in COLOUR_PHRASES.values() for w in by_lang.get("en", [])]
        lexicon = part_lexicon(PART_PHRASES, max_parts_per_word=cfg.closed_loop.max_parts_per_word, exclude=colours)
        loop_metrics, loop_table = evaluate(best, cover, lexicon, cfg.closed_loop)
    write_csv(args.closed_loop, loop_table)

    cl = result.cluster_labels
    labelled = cl[cl["rank"] == 1]
    metrics = {
        **result.counts,
        "n_cluster_maps": int(len(clusters)),
        "n_cluster_maps_labelled": int(len(labelled)),
        "n_merged_maps": int(len(result.inv)),
        "n_merges": int((result.inv["n_members"] > 1).sum()) if len(result.inv) else 0,
        "mean_labels_per_map": float(cl["label"].notna().groupby(cl["cluster_id"]).sum().mean()) if len(cl) else 0.0,
        "share_best_ties": float((cl[cl["is_best"] == True].groupby("cluster_id").size() > 1).mean()) if len(labelled) else 0.0,  # noqa: E712
        "embedding_cache": {"entries": len(ecache), "added": ecache.added},
        "translation_cache": {"entries": len(tcache), "added": tcache.added},
        "closed_loop": loop_metrics,
    }
    write_json(args.metrics, metrics)
    with stage_run("labels_analyze", tracking, {"labels_analyze": cfg}) as tr:
        flat = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        tr.log_metrics(flat)
        tr.log_metrics(result.counts["dropped"], prefix="dropped")
        if loop_metrics.get("accuracy") is not None:
            tr.log_metrics({k: loop_metrics[k] for k in ("accuracy", "accuracy_rank1", "baseline")}, prefix="closed_loop")
        for path in (args.inv, args.cluster_labels, args.texts):
            tr.log_artifact(path)
    log.info("labels_analyze: %d of %d cluster maps labelled, %d merged maps; closed loop %s", len(labelled), len(clusters),
             len(result.inv), loop_metrics.get("accuracy"))
    return metrics
