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
    "inputs": "inputs",
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
    "evaluate": "evaluate",
}

#: Command groups next to the stages: name -> module with ``HELP`` and ``add_arguments(parser)``,
#: whose sub-commands set ``_run`` (``inviz game serve|export|report``).
COMMANDS: dict[str, str] = {
    "game": "inviz.game.web.cli",
    "explain": "inviz.stages.explain",
}


#: third-party loggers whose INFO lines are chatter, not progress or results (shown with -v only)
QUIET_LOGGERS = (
    "matplotlib",
    "fontTools",
    "PIL",
    "urllib3",
    "httpx",
    "alembic",
    "numba",
    "git",
    "filelock",
    "lightning",
    "lightning_fabric",
    "pytorch_lightning",
)

#: third-party warnings that are neither the user's to fix nor ours (message regexes)
QUIET_WARNINGS = (
    r".*isinstance\(treespec, LeafSpec\)` is deprecated",  # Lightning vs torch.utils._pytree
    r".*does not have many workers which may be a bottleneck",  # num_workers is a run setting
)


class _QuietThirdParty(logging.Filter):
    """Drop INFO and DEBUG records of :data:`QUIET_LOGGERS` (Lightning sets its own levels on import)."""

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: D102
        quiet = record.name.split(".")[0] in QUIET_LOGGERS
        return not quiet or record.levelno >= logging.WARNING


def _no_console_handler(handler: logging.Handler) -> None:
    """Refuse a handler: stands in for ``logging.getLogger("lightning").addHandler``.

    Lightning's plain console handler would print every message a second time next to rich's
    (records still reach the root handler).
    """


def setup_logging(verbose: bool = False) -> None:
    """Log once, through rich, to the console (DEBUG with ``verbose``); quiet chatty libraries.

    Lightning adds its own console handler to the ``lightning`` logger when imported (every message
    would appear twice, plain and rich) and logs tips and accelerator summaries at INFO: the
    handler is refused and third-party INFO records are dropped unless ``verbose``, so a stage
    prints progress, results and real warnings only.
    """
    import warnings

    from rich.logging import RichHandler

    handler = RichHandler(rich_tracebacks=True, show_path=False)
    if not verbose:
        handler.addFilter(_QuietThirdParty())
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[handler],
        force=True,
    )
    logging.captureWarnings(True)
    lightning_log = logging.getLogger("lightning")
    for old in list(lightning_log.handlers):  # already imported: remove its console handler
        lightning_log.removeHandler(old)
    lightning_log.addHandler = _no_console_handler  # imported later (inside a stage): refuse it
    for pattern in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)


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
        mod = importlib.import_module(module)
        p = sub.add_parser(name, help=mod.HELP, description=mod.__doc__ or mod.HELP)
        mod.add_arguments(p)
        if hasattr(mod, "run"):  # a single command; a command group sets _run per sub-command
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
    except InvizError as err:  # said once, plainly, on stderr (no traceback: the message says what to do)
        print(f"inviz {args.stage}: error: {err}", file=sys.stderr)
        return 2
    return 0
