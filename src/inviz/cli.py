"""``inviz <stage>``: one command line for every pipeline stage (see ``inviz.stages``)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from inviz.core.errors import InvizError
from inviz.core.tracking import mark_stage_start
from inviz.stages import add_paths

log = logging.getLogger("inviz")

#: stage name -> module (in ``inviz.stages``), in pipeline order.
STAGES: dict[str, str] = {
    "data": "data",
    "train": "train",
    "select": "select",
    "extract": "extract",
    "masks": "masks",
    "labels_simulate": "labels_simulate",
    "labels_import": "labels_import",
    "labels_analyze": "labels_analyze",
    "transfer": "transfer",
    "figures": "figures",
    "global": "global_explain",
    "explorer": "explorer",
    "survey": "survey",
    "survey_import": "survey_import",
    "table2": "table2",
    "compare": "compare",
}

#: commands that are not pipeline stages (no ``--params`` / path protocol): name -> module in ``inviz.stages``
COMMANDS: dict[str, str] = {
    "explain": "explain",
}


def setup_logging(verbose: bool = False) -> None:
    """Log to the console through rich (DEBUG with ``verbose``), quieting chatty libraries."""
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(rich_tracebacks=True, show_path=False)],
        force=True,
    )
    for noisy in (
        "matplotlib",
        "fontTools",
        "PIL",
        "urllib3",
        "httpx",
        "alembic",
        "numba",
        "git",
        "filelock",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``inviz`` parser: one sub-command per stage of :data:`STAGES` and per :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(prog="inviz", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="stage", required=True, metavar="<stage>")
    for name, module in STAGES.items():
        mod = importlib.import_module(f"inviz.stages.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        p.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
        add_paths(p, getattr(mod, "PATHS", {}))
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    for name, module in COMMANDS.items():
        mod = importlib.import_module(f"inviz.stages.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one stage from the command line.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, or 2 after an :class:`inviz.core.errors.InvizError` (logged).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    mark_stage_start()
    try:
        args._run(args)
    except InvizError as err:
        log.error("%s", err)
        print(f"inviz {args.stage}: error: {err}", file=sys.stderr)
        return 2
    return 0
