"""Pipeline stages: thin glue between ``dvc.yaml`` (paths, params) and the library.

Each stage module defines ``HELP``, ``PATHS`` (its path options, all required: option -> help;
added by :func:`add_paths`), optionally ``add_arguments(parser)`` for other options, and
``run(args) -> dict`` (the stage's metrics). Paths come from the command line (``dvc.yaml`` owns
them); parameters from the ``--params`` file (:func:`load_params`). Add a stage by adding a module
here and its name to :data:`inviz.cli.STAGES` (the registry lives there, so adding a stage does
not change a file every stage imports, which would make DVC re-run them all).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


def add_paths(parser: Any, paths: Mapping[str, str]) -> None:
    """Add one required option per path (``dvc.yaml`` passes every path a stage reads or writes).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The stage's parser.
    paths : mapping of str to str
        Option (``--images``) -> help text, in the order ``--help`` lists them.
    """
    for option, text in paths.items():
        parser.add_argument(option, required=True, help=text)


def load_params(params: str | Path, *sections: tuple[str, type]) -> tuple[Any, ...]:
    """Load the stage's params sections and the ``mlflow`` section.

    Parameters
    ----------
    params : str or Path
        The params file (``--params``).
    *sections : (key, dataclass) pairs
        The sections to load, e.g. ``("masks", RevealConfig)``.

    Returns
    -------
    tuple
        One config per section, in the order given, then the
        :class:`inviz.core.tracking.TrackingConfig`.
    """
    from inviz.core.config import load_section
    from inviz.core.tracking import TrackingConfig

    configs = [load_section(params, key, cls) for key, cls in sections]
    return (*configs, load_section(params, "mlflow", TrackingConfig))
