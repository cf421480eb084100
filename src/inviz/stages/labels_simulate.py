"""``inviz labels_simulate``: simulated Deep Reveal players (offline demo only).

Writes a game export in the authors' layout into ``--out`` (``features.csv``,
``guesses_without_text.csv``, ``resigns.csv``, ``players.csv``, ``translations.csv``,
``game_classes.csv``); see :mod:`inviz.game.simulate`. With ``labels_simulate.enabled: false``
(the paper profile, which brings real exports) the folder only holds a ``README.txt`` saying so.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "simulate Deep Reveal players on the synthetic data's masked images (demo) -> export in the authors' layout"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extract", required=True, help="extraction folder written by 'inviz extract'")
    p.add_argument("--manifest", required=True, help="masks manifest written by 'inviz masks'")
    p.add_argument("--selected", required=True, help="selected images CSV (image paths)")
    p.add_argument("--images", required=True, help="dataset folder written by 'inviz data'")
    p.add_argument("--parts", required=True, help="ground-truth part masks written by 'inviz data'")
    p.add_argument("--classes", required=True, help="class list JSON written by 'inviz data'")
    p.add_argument("--out", required=True, help="output: game export folder")
    p.add_argument("--metrics", required=True, help="output: metrics JSON")


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    import numpy as np
    import pandas as pd
    from PIL import Image
    from tqdm.auto import tqdm

    from inviz.core.config import from_dict, load_section
    from inviz.core.errors import InvizError
    from inviz.core.io import atomic_path, read_json, write_json
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.data import synthetic
    from inviz.fmaps.extraction import load_results
    from inviz.game.assets import read_manifest
    from inviz.game.export import ImportConfig, cluster_table, game_classes_frame
    from inviz.game.reveal import RevealConfig
    from inviz.game.simulate import (
        GameMap,
        SimulateConfig,
        part_colour,
        part_coverage,
        play,
        summary,
        to_export,
    )
    from inviz.data.dataset import DataConfig

    cfg = load_section(args.params, "labels_simulate", SimulateConfig)
    reveal_cfg = load_section(args.params, "masks", RevealConfig)
    import_cfg = load_section(args.params, "labels_import", ImportConfig)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    out = Path(args.out)
    if not cfg.enabled:
        with atomic_path(out, directory=True) as tmp:
            (tmp / "README.txt").write_text(
                "labels_simulate.enabled is false: no simulated game data. Real Deep Reveal exports are read by\n"
                "'inviz labels_import' from labels_import.source_dir.\n", encoding="utf-8")
        metrics: dict[str, Any] = {"enabled": False}
        write_json(args.metrics, metrics)
        log.info("labels_simulate: disabled (labels_import reads real exports)")
        return metrics

    parts = synthetic.PartMasks.load(args.parts)
    if not len(parts):
        raise InvizError(f"{args.parts}: no part masks (real data); set labels_simulate.enabled: false and bring a game export")
    data_cfg = load_section(args.params, "data", DataConfig)
    syn = from_dict(synthetic.SyntheticConfig, data_cfg.synthetic, "data.synthetic", str(args.params))
    palette = {k: v for k, v in syn.palette.items() if k in synthetic.COLOUR_PHRASES}
    classes = read_json(args.classes)
    names = [c["class_name"] for c in sorted(classes, key=lambda c: c["label"])]
    folders = [c["class_folder"] for c in sorted(classes, key=lambda c: c["label"])]
    class_parts = [parts.class_parts[parts.class_folders.index(f)] for f in folders]
    game_classes = game_classes_frame(names, folders)
    game_classes["label"] = [folders.index(f) for f in game_classes["class_folder"]]

    clusters = cluster_table(read_manifest(args.manifest))
    ext_ids = read_manifest(args.manifest).drop_duplicates("cluster_id").set_index("cluster_id")["extract_id"]
    results = load_results(args.extract)
    selected = pd.read_csv(args.selected, dtype={"sample_id": str, "path": str})
    paths = dict(zip(selected["sample_id"], selected["path"], strict=False))
    images: dict[str, np.ndarray] = {}
    maps: list[GameMap] = []
    for r in tqdm(clusters.itertuples(index=False), total=len(clusters), desc="part coverage", unit="map"):
        if r.image not in images:
            with Image.open(Path(args.images) / paths[r.image]) as im:
                images[r.image] = np.asarray(im.convert("RGB"))
        present = {p: parts.mask(r.image, p) for p in parts.parts_of(r.image)}
        cmap = np.asarray(results.cluster_map(ext_ids[r.cluster_id], reveal_cfg.map_kind), dtype=np.float64)
        names_p, cov = part_coverage(cmap, present, reveal_cfg)
        colours = {p: part_colour(images[r.image], present[p], palette) for p in names_p}
        maps.append(GameMap(int(r.cluster_id), r.image, Path(paths[r.image]).name, r.layer, int(r.cluster), int(r.label),
                            tuple(names_p), cov, colours))
    games, players = play(maps, class_parts, names, cfg, synthetic.PART_PHRASES, synthetic.COLOUR_PHRASES, parts.vocabulary)
    export = to_export(games, players, game_classes, cfg, import_cfg.max_text_length)
    files = import_cfg.files
    with atomic_path(out, directory=True) as tmp:
        export.features.to_csv(tmp / files.features, index=False)
        export.no_text.to_csv(tmp / files.no_text, index=False)
        export.resigns.to_csv(tmp / files.resigns, index=False)
        export.players.to_csv(tmp / files.players, index=False)
        export.translations.to_csv(tmp / files.translations, index=False)
        export.game_classes.to_csv(tmp / "game_classes.csv", index=False)
        games.to_csv(tmp / "truth.csv", index=False)  # what each simulated player really saw/typed (audit)
    metrics = summary(games, players, export)
    write_json(args.metrics, metrics)
    with stage_run("labels_simulate", tracking, {"labels_simulate": cfg}) as tr:
        tr.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        tr.log_metrics(metrics["defects"], prefix="defects")
    log.info("labels_simulate: %d players, %d games, %d texts (accuracy %.2f)", metrics["n_players"], metrics["n_games"],
             metrics["n_texts"], metrics["guess_accuracy"])
    return metrics
