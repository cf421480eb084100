"""``inviz game serve|export|report``: run Deep Reveal, export its answers, report on it.

The flow (README "The label game"): ``dvc repro masks`` → ``inviz game serve`` (people play) →
``inviz game export`` (writes ``labels_import.source_dir``) → ``dvc repro`` (labels and
everything after). Paths default to the pipeline's outputs next to the params file; module-level
imports stay light (the ``inviz`` parser imports this module).
"""

from __future__ import annotations

import argparse
import gc
import logging
from pathlib import Path
from typing import Any

HELP = "Deep Reveal, the label game, as a web application: serve | export | report"
log = logging.getLogger(__name__)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    p.add_argument(
        "--db-url", default=None, help="SQLAlchemy URL of the game database (default: game.db_url)"
    )
    where = "relative to the params file's folder"
    p.add_argument("--manifest", default=None, help=f"masks manifest (default: data/masks.csv, {where})")
    p.add_argument(
        "--masks", default=None, help=f"folder of the per-layer zips (default: data/masks, {where})"
    )
    p.add_argument("--classes", default=None, help=f"class list JSON (default: data/classes.json, {where})")
    p.add_argument(
        "--model",
        default=None,
        help=f"model checkpoint (what-if; default: models/model.safetensors, {where})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``serve``, ``export`` and ``report`` sub-commands."""
    sub = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    serve_p = sub.add_parser("serve", help="serve the game (FastAPI on uvicorn)", description=serve.__doc__)
    _common(serve_p)
    serve_p.add_argument("--host", default=None, help="address to listen on (default: game.run.host)")
    serve_p.add_argument("--port", type=int, default=None, help="port (default: game.run.port)")
    serve_p.set_defaults(_run=serve)
    export_p = sub.add_parser("export", help="write the answers as a game export", description=export.__doc__)
    _common(export_p)
    export_p.add_argument("--out", default=None, help="export folder (default: labels_import.source_dir)")
    export_p.set_defaults(_run=export)
    report_p = sub.add_parser(
        "report", help="report plays, outcomes, SUS and TLX", description=report.__doc__
    )
    _common(report_p)
    report_p.add_argument("--out", default="reports/game", help="report folder (default: reports/game)")
    report_p.set_defaults(_run=report)


def _settings(args: argparse.Namespace) -> Any:
    from inviz.game.web.settings import Settings

    paths = {"manifest": args.manifest, "masks_dir": args.masks, "classes": args.classes, "model": args.model}
    return Settings.from_params(args.params, paths, db_url=args.db_url)


def _existing_game(args: argparse.Namespace) -> Any:
    """Open a game whose database exists already (export and report never create one)."""
    from sqlalchemy.engine import make_url

    from inviz.game.web.db import GameDatabaseError
    from inviz.game.web.settings import open_game

    settings = _settings(args)
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").is_file():
        raise GameDatabaseError(
            f"{url.database}: no game database yet; run 'inviz game serve --params {args.params}' "
            "and let people play"
        )
    return open_game(settings)


def serve(args: argparse.Namespace) -> dict[str, Any]:
    """Serve Deep Reveal on ``--host``:``--port`` until interrupted (Ctrl-C)."""
    import uvicorn

    from inviz.game.web.app import create_app
    from inviz.game.web.settings import open_game

    settings = _settings(args)
    state = open_game(settings)
    run = settings.game.run
    host, port = args.host or run.host, args.port or run.port
    log.info(
        "Deep Reveal: %d cluster maps of %d images, %d classes; database %s",
        len(state.content.maps),
        state.content.maps["image"].nunique(),
        len(state.content.classes),
        state.db.safe_url,
    )
    if settings.admin_token is None:
        log.info(
            "admin page off: set %s to a secret to open http://%s:%d/admin",
            settings.game.admin_token_env,
            host,
            port,
        )
    log.info("play at http://%s:%d/", host, port)
    app = create_app(state)
    # The ~150 000 objects loaded so far (libraries, content) live as long as the server: move them
    # out of the garbage collector's reach, so a full collection no longer stalls every request for
    # a tenth of a second (it then only walks what requests create).
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=run.access_log, workers=1)
    return {}


def export(args: argparse.Namespace) -> dict[str, Any]:
    """Write the game's answers as a game export (``guesses.csv``, ``players.csv``, …) and check it.

    The check reads the export back through ``labels_import`` (in memory) and reports its dropped
    rows (there should be none).
    """
    from inviz.core.io import read_json
    from inviz.game.export import ImportConfig, cluster_table, import_game, load_class_map
    from inviz.game.manifest import read_manifest
    from inviz.game.web.export import export_tables, write_export
    from inviz.stages import load_params

    state = _existing_game(args)
    try:
        tables = export_tables(state.db, state.content)
        out = Path(args.out) if args.out else state.settings.export_dir
        write_export(out, tables)
    finally:
        state.close()
    imp, _ = load_params(args.params, ("labels_import", ImportConfig))
    s = state.settings
    check = import_game(
        out, load_class_map(s.class_map, read_json(s.classes)), cluster_table(read_manifest(s.manifest)), imp
    )
    r = check.report
    log.info(
        "game export: %d rows (%d guesses, %d players) -> %s; labels_import reads %d rows, drops %d",
        len(tables.guesses),
        tables.guesses["guess_id"].nunique(),
        len(tables.players),
        out,
        r["rows_read"],
        r["rows_dropped"],
    )
    log.info("next: dvc repro (labels_import reads %s)", out)
    return {"rows": len(tables.guesses), "rows_dropped": r["rows_dropped"], "out": str(out)}


def report(args: argparse.Namespace) -> dict[str, Any]:
    """Write the game report (Markdown, figure, tables) into ``--out`` and log it to MLflow."""
    from inviz.core.config import load_section
    from inviz.core.io import save_figure, write_csv, write_text
    from inviz.core.plotting import close
    from inviz.core.tracking import TrackingConfig, stage_run
    from inviz.game.web.progress import progress
    from inviz.game.web.report import make_report

    state = _existing_game(args)
    try:
        p = progress(state.db, state.content, state.settings.game.plays_per_map)
    finally:
        state.close()
    rep = make_report(p, state.settings.game.title)
    out = Path(args.out)
    write_text(out / "report.md", rep.markdown)
    save_figure(rep.figure, out / "report.png", formats=("png", "pdf"))
    close(rep.figure)
    for name, frame in rep.tables.items():
        write_csv(out / f"{name}.csv", frame)
    tracking = load_section(args.params, "mlflow", TrackingConfig)
    with stage_run("game_report", tracking, {"game": state.settings.game}) as tr:
        tr.log_metrics(rep.metrics)
        tr.log_artifact(out)
    log.info(
        "game report: %s (SUS %s, TLX %s)",
        out / "report.md",
        rep.metrics.get("sus_mean"),
        rep.metrics.get("tlx_mean"),
    )
    return rep.metrics
