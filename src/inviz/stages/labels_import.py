"""``inviz labels_import``: read, validate and screen a Deep Reveal game export (docs/method.md §3, input).

Both the canonical long format and the authors' export layout are accepted (see
:mod:`inviz.game.export` and the README). Structural problems stop the stage; row problems
drop the row and are counted in the report (``--report``, the stage's metrics) and listed in
``--problems`` (file, row, column, reason, value); ``labels_import.strict`` makes them errors.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from inviz.stages import load_params

HELP = "import a Deep Reveal export (canonical or the authors' layout): validate, screen, report dropped rows"
log = logging.getLogger(__name__)

#: the stage's paths, all required (see :mod:`inviz.stages`): option -> help
PATHS = {
    "--game-dir": "folder holding the game export (labels_import.source_dir)",
    "--class-map": "game class list CSV (game_id, game_name, class_folder, class_name)",
    "--manifest": "masks manifest written by 'inviz masks' (known cluster ids)",
    "--classes": "class list JSON written by 'inviz data'",
    "--out": "output: canonical guesses CSV",
    "--classes-out": "output: class names CSV used to clean texts",
    "--translations-out": "output: manual translations CSV (may be empty)",
    "--problems": "output: CSV of every row problem",
    "--report": "output: import report JSON (the stage's metrics)",
}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from inviz.core.io import read_json, write_csv, write_json
    from inviz.core.tracking import stage_run
    from inviz.game.export import GameExportError, ImportConfig, cluster_table, import_game, load_class_map
    from inviz.game.manifest import read_manifest

    cfg, tracking = load_params(args.params, ("labels_import", ImportConfig))
    class_map = load_class_map(args.class_map, read_json(args.classes), cfg.encoding)
    clusters = cluster_table(read_manifest(args.manifest))
    try:
        result = import_game(args.game_dir, class_map, clusters, cfg)
    except GameExportError as err:
        if err.problems is not None:  # strict mode: leave the list for the user
            write_csv(args.problems, err.problems)
        raise
    r = result.report
    write_csv(args.out, result.guesses)
    write_csv(args.classes_out, result.class_names)
    write_csv(args.translations_out, result.translations)
    write_csv(args.problems, result.problems)
    write_json(args.report, r)
    with stage_run("labels_import", tracking, {"labels_import": cfg}) as tr:
        tr.log_metrics(
            {
                "rows_read": r["rows_read"],
                "rows_dropped": r["rows_dropped"],
                "rows_kept": r["kept"]["rows"],
                "n_guesses": r["n_guesses"],
                "n_players": r["n_players"],
                "excluded_players": r["screening"]["excluded_players"],
                "excluded_rows": r["screening"]["excluded_rows"],
            }
        )
        tr.log_metrics(r["dropped_by_reason"], prefix="dropped")
        tr.log_artifact(args.problems)
        tr.log_artifact(args.report)
    log.info(
        "labels_import: kept %d of %d rows (%d dropped, %d excluded by screening)",
        r["kept"]["rows"],
        r["rows_read"],
        r["rows_dropped"],
        r["screening"]["excluded_rows"],
    )
    return r
