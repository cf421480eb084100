"""Command-line options shared by the stages that read an assembled INV."""

from __future__ import annotations

from typing import Any


def add_inv_arguments(p: Any) -> None:
    """The command-line options of every stage that reads an INV (paths from ``dvc.yaml``)."""
    p.add_argument("--selected", required=True, help="selected images CSV ('inviz select')")
    p.add_argument("--images", required=True, help="image folder ('inviz data')")
    p.add_argument("--extract", required=True, help="extraction folder ('inviz extract')")
    p.add_argument("--manifest", required=True, help="masks manifest CSV ('inviz masks')")
    p.add_argument(
        "--cluster-labels", required=True, help="ranked labels per cluster map CSV ('inviz labels_analyze')"
    )
    p.add_argument("--inv", required=True, help="merged INV table CSV ('inviz labels_analyze')")
    p.add_argument(
        "--merged-scores", required=True, help="label scores per merged map CSV ('inviz labels_analyze')"
    )
    p.add_argument("--merged-maps", required=True, help="merged maps folder ('inviz labels_analyze')")
