"""Execute a notebook of notebooks/ with nbclient (a real Jupyter kernel), as a user would open it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
#: the notebooks that read a pipeline's outputs (``INVIZ_PIPELINE``); own_model_inv.ipynb brings its
#: own model and photo and runs in tests/test_inv_api.py
PIPELINE_NOTEBOOKS = [p for p in NOTEBOOKS if "INVIZ_PIPELINE" in p.read_text()]

#: imports a notebook may make (notebooks only call the library; no logic of their own)
ALLOWED_IMPORTS = ("import os", "from pathlib", "import pandas", "from inviz", "import inviz", "import json")


def library_only(path: Path) -> list[str]:
    """List the import lines of ``path``'s code cells that are not allowed in a notebook."""
    nb = json.loads(path.read_text())
    lines = [ln for c in nb["cells"] if c["cell_type"] == "code" for ln in "".join(c["source"]).splitlines()]
    return [ln for ln in lines if ln.startswith(("import ", "from ")) and not ln.startswith(ALLOWED_IMPORTS)]


def execute_notebook(path: Path, probe: str | None = None, timeout: int = 900) -> tuple[Any, dict | None]:
    """Run every cell of ``path`` in a fresh ``python3`` kernel (working folder: the notebook's).

    The kernel inherits the environment (set ``INVIZ_PIPELINE`` before calling). ``probe``, if
    given, is run after the notebook's cells in the same kernel and must print one JSON object:
    it is returned parsed, so a test can check the notebook's variables. A failing cell raises
    ``nbclient.exceptions.CellExecutionError`` naming the cell and the error.
    """
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    n_cells = len(nb.cells)
    if probe:
        nb.cells.append(nbformat.v4.new_code_cell(probe))
    NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    facts = None
    if probe:
        text = "".join(
            o.get("text", "") for o in nb.cells[n_cells].outputs if o.get("output_type") == "stream"
        )
        facts = json.loads(text.strip().splitlines()[-1])
    return nb, facts
