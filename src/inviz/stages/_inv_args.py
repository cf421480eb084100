"""Paths and loading shared by the stages that read an assembled INV (figures, global, explorer, survey)."""

from __future__ import annotations

import argparse
from typing import Any

#: the INV's paths (from ``dvc.yaml``), first among each INV stage's paths: option -> help
INV_PATHS = {
    "--selected": "selected images CSV ('inviz select')",
    "--images": "image folder ('inviz data')",
    "--extract": "extraction folder ('inviz extract')",
    "--manifest": "masks manifest CSV ('inviz masks')",
    "--cluster-labels": "ranked labels per cluster map CSV ('inviz labels_analyze')",
    "--inv": "merged INV table CSV ('inviz labels_analyze')",
    "--merged-scores": "label scores per merged map CSV ('inviz labels_analyze')",
    "--merged-maps": "merged maps folder ('inviz labels_analyze')",
}


def load_stage_inv(args: argparse.Namespace, map_kind: str) -> tuple[Any, list[Any]]:
    """Load the model (``--model``) and the INV of every explained image (the :data:`INV_PATHS`).

    Parameters
    ----------
    args : argparse.Namespace
        The stage's arguments.
    map_kind : str
        Which cluster maps to read (``masks.map_kind``).

    Returns
    -------
    loaded : :class:`inviz.models.checkpoint.LoadedModel`
    invs : list of :class:`inviz.views.records.ImageINV`
    """
    from inviz.models.checkpoint import load_checkpoint
    from inviz.views.records import INVPaths, load_inv

    loaded = load_checkpoint(args.model)
    return loaded, load_inv(INVPaths.from_args(args), loaded.config.input_size, map_kind)
