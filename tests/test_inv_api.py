"""The Python API of README "INV on your own model": explain -> image_inv -> inv_figure, and its notebook."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from notebook_runner import execute_notebook
from own_models import small_cnn

from inviz.core.plotting import close
from inviz.fmaps.explain import ExtractConfig, explain
from inviz.views.figures import inv_figure
from inviz.views.records import image_inv

ROOT = Path(__file__).resolve().parents[1]


def card_gids(fig) -> list[str]:
    return [ax.get_gid() for ax in fig.axes if (ax.get_gid() or "").startswith("card:")]


def test_image_inv_holds_every_kept_cluster_map_heaviest_first():
    model = small_cnn(3).eval()
    x = torch.randn(1, 3, 32, 32)
    [ex] = explain(
        model, x, cfg=ExtractConfig(layers=("body.2", "late"), k_min=2, k_max=3), sample_ids=["img"]
    )
    photo = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    inv = image_inv(ex, photo, 32, class_names=["ant", "bee", "cow"], true_label=2)
    assert inv.image.shape == (32, 32, 3) and inv.layers == ("body.2", "late")
    assert inv.pred_name == ["ant", "bee", "cow"][ex.pred] and inv.true_class == "cow"
    assert inv.confidence == pytest.approx(ex.confidence)
    for name, le in ex.layers.items():
        cards = inv.clusters[name]
        assert [c.weight for c in cards] == sorted((c.weight for c in le.kept_clusters), reverse=True)
        assert sum(c.n_fmaps for c in cards) == le.fmaps_kept
        assert all(not c.labels for c in cards)
        np.testing.assert_array_equal(cards[0].map, le.kept_clusters[0].map)
    fig = inv_figure(inv)  # default settings; unlabelled: no label rows
    assert len(card_gids(fig)) == sum(len(le.kept_clusters) for le in ex.layers.values())
    texts = " ".join(" ".join(t.get_text().replace("\u00a0", " ").split()) for t in fig.texts)
    assert "no labels yet" in texts and "true class: cow" in texts and "INV of img" in texts
    close(fig)
    unknown = inv_figure(image_inv(ex, photo, 32))
    assert "true\u00a0class:\u00a0unknown\u00a0(not\u00a0in\u00a0the\u00a0dataset)" in " ".join(
        t.get_text() for t in unknown.texts
    )
    close(unknown)


def code_cells(notebook: Path) -> list[str]:
    nb = json.loads(notebook.read_text())
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## INV on your own model") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_example_is_the_notebook():
    """The README's ten lines and notebooks/own_model_inv.ipynb run the same code."""
    cells = code_cells(ROOT / "notebooks" / "own_model_inv.ipynb")
    readme = [ln for ln in readme_example().splitlines() if ln.strip()]
    notebook = [ln for ln in "\n".join(cells[:3]).splitlines() if ln.strip()]
    assert readme == notebook


NOTEBOOK_PROBE = """import json, os
print(json.dumps({"pred_name": inv.pred_name, "layers": list(ex.layers), "clusters": clusters,
                  "png_bytes": os.path.getsize("chelsea_inv.png")}))"""


@pytest.mark.slow
def test_notebook_runs_offline(tmp_path):
    """notebooks/own_model_inv.ipynb, run as a user opens it (nbclient, a real kernel), offline: a cat's INV."""
    notebook = tmp_path / "own_model_inv.ipynb"  # run in a scratch folder: the notebook writes its figure
    shutil.copy(ROOT / "notebooks" / "own_model_inv.ipynb", notebook)
    _, facts = execute_notebook(notebook, NOTEBOOK_PROBE, timeout=600)
    assert facts["pred_name"] in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"}
    assert facts["png_bytes"] > 10_000 and (tmp_path / "chelsea_inv.png").is_file()
    assert facts["layers"] == ["_blocks.10", "_blocks.15", "_conv_head"]
    weights = [c[1] for c in facts["clusters"]]
    assert weights and weights[0] >= weights[-1]
