"""``inviz labels_simulate``: simulated Deep Reveal players (docs/method.md §2; offline demo only).

``mode: direct`` writes a game export in the authors' layout into ``--out`` (``features.csv``,
``guesses_without_text.csv``, ``resigns.csv``, ``players.csv``, ``translations.csv``,
``game_classes.csv``); ``mode: http`` lets the players play the Deep Reveal web application
(in-process) and writes the game's own export (``guesses.csv``, ``players.csv``, …, plus
``translations.csv`` and the game database); see :mod:`inviz.game.simulate`. With
``labels_simulate.enabled: false`` (the paper profile, which brings real exports) the folder only
holds a ``README.txt`` saying so.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = (
    "simulate Deep Reveal players on the synthetic data's masked images (demo) "
    "-> export in the authors' layout"
)
log = logging.getLogger(__name__)

DISABLED_NOTE = (
    "labels_simulate.enabled is false: no simulated game data. Real Deep Reveal exports are read by\n"
    "'inviz labels_import' from labels_import.source_dir.\n"
)


#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--extract": "extraction folder written by 'inviz extract'",
    "--manifest": "masks manifest written by 'inviz masks'",
    "--masks": "folder of the masked-image zips written by 'inviz masks' (http mode serves them)",
    "--selected": "selected images CSV (image paths)",
    "--images": "dataset folder written by 'inviz data'",
    "--parts": "ground-truth part masks written by 'inviz data'",
    "--classes": "class list JSON written by 'inviz data'",
    "--out": "output: game export folder",
    "--metrics": "output: metrics JSON",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    import shutil
    import tempfile
    from pathlib import Path

    import pandas as pd

    from inviz.core.config import load_section
    from inviz.core.errors import InvizError
    from inviz.core.io import atomic_path, read_json, write_json
    from inviz.core.tracking import stage_run
    from inviz.data.dataset import DataConfig, synthetic_config
    from inviz.data.parts import PartMasks
    from inviz.game.assets import load_cluster_maps
    from inviz.game.export import ImportConfig
    from inviz.game.manifest import read_manifest
    from inviz.game.reveal import RevealConfig
    from inviz.game.simulate.config import SimulateConfig
    from inviz.game.simulate.run import WebGame, simulate_game, write_simulation
    from inviz.game.web.config import GameConfig

    cfg, reveal_cfg, import_cfg, tracking = load_params(
        args.params,
        ("labels_simulate", SimulateConfig),
        ("masks", RevealConfig),
        ("labels_import", ImportConfig),
    )
    if not cfg.enabled:
        with atomic_path(args.out, directory=True) as tmp:
            (tmp / "README.txt").write_text(DISABLED_NOTE, encoding="utf-8")
        metrics: dict[str, Any] = {"enabled": False}
        write_json(args.metrics, metrics)
        log.info("labels_simulate: disabled (labels_import reads real exports)")
        return metrics

    parts = PartMasks.load(args.parts)
    if not len(parts):
        raise InvizError(
            f"{args.parts}: no part masks (real data); set labels_simulate.enabled: false "
            "and bring a game export"
        )
    palette = synthetic_config(load_section(args.params, "data", DataConfig), str(args.params)).palette
    manifest = read_manifest(args.manifest)
    maps = load_cluster_maps(args.extract, manifest, reveal_cfg.map_kind)
    selected = pd.read_csv(args.selected, dtype={"sample_id": str, "path": str})
    web = None
    if cfg.mode == "http":
        workdir = Path(tempfile.mkdtemp(prefix="inviz-sim-"))
        web = WebGame(Path(args.masks), load_section(args.params, "game", GameConfig), workdir)
    sim = simulate_game(
        manifest,
        maps,
        selected,
        args.images,
        parts,
        read_json(args.classes),
        palette,
        cfg,
        reveal_cfg,
        import_cfg.max_text_length,
        web,
    )
    write_simulation(args.out, sim, import_cfg.files)
    if web is not None:
        shutil.rmtree(web.workdir, ignore_errors=True)
    metrics = sim.metrics
    write_json(args.metrics, metrics)
    logged = {"labels_simulate": cfg, **({"game": web.game} if web is not None else {})}
    with stage_run("labels_simulate", tracking, logged) as tr:
        tr.log_metrics({k: v for k, v in metrics.items() if not isinstance(v, dict)})
        for key, value in metrics.items():
            if isinstance(value, dict):
                tr.log_metrics(value, prefix=key)
    log.info(
        "labels_simulate: %d players, %d games, %d texts (accuracy %.2f)",
        metrics["n_players"],
        metrics["n_games"],
        metrics["n_texts"],
        metrics["guess_accuracy"],
    )
    return metrics
