"""The paper comparison report: configuration, Table 1 / Table 2 next to the paper's, deviations."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from inviz.comparison.paper import DEVIATIONS, deviations_table, paper_comparison, profile, read_claims
from inviz.fmaps.table1 import PAPER_TABLE1
from inviz.survey.table2 import paper_table2

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def paper_table1_csv() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "layer": k,
                "threshold_label": f"<{v[0]}%",
                "leftover_clusters": v[1],
                "leftover_fmaps": v[2],
                "leftover_weight": v[3],
            }
            for k, v in PAPER_TABLE1.items()
        ]
    )


def test_every_deviation_key_exists_in_both_profiles_with_its_default():
    for f in ("params.yaml", "demo/params.yaml"):
        params = yaml.safe_load((ROOT / f).read_text())
        table = deviations_table(params)
        assert len(table) == len(DEVIATIONS)
        keyed = table[table["param"] != "—"]
        assert keyed["ours"].notna().all(), keyed[keyed["ours"].isna()]
        assert keyed["is_default"].all(), keyed[~keyed["is_default"]][["param", "ours", "default"]]


def test_changed_choices_are_flagged():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["extract"]["weights"] = "gradcam"
    table = deviations_table(params).set_index("param")
    assert (
        not table.loc["extract.weights", "is_default"] and table.loc["extract.weights", "ours"] == "gradcam"
    )
    text = paper_comparison(params, None, None, [], {})
    assert "| `extract.weights` | `guided` | `gradcam` ⚠ changed |" in text


def test_profiles():
    paper = yaml.safe_load((ROOT / "params.yaml").read_text())
    demo = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())
    assert profile(paper)["paper_setting"] and not profile(demo)["paper_setting"]
    assert "- profile: **the paper configuration**" in paper_comparison(paper, None, None, [], {})
    text = paper_comparison(demo, None, None, [], {})
    assert "differs from the paper in 12 setting(s)** — the offline demo" in text
    assert "| `model.width` | `1.0` | `0.125` |" in text and "NOT the paper" not in text
    # the paper profile at reduced size: Imagenette and VGG-16 width 1.0, but other settings differ;
    # the report names exactly those (no "offline demo", no contradiction with the dataset line)
    reduced = yaml.safe_load((ROOT / "params.yaml").read_text())
    reduced["model"]["weights"] = "none"
    reduced["select"]["per_class"] = 1
    for phase in reduced["train"]["phases"]:
        phase["max_epochs"] = 1
        phase["name"] = "renamed"  # names are labels, not settings
    diffs = profile(reduced)["differences"]
    assert [d[0] for d in diffs] == ["model.weights", "train.phases", "select.per_class"], diffs
    text = paper_comparison(reduced, None, None, [], {})
    assert "- dataset: **Imagenette (320 px)**" in text and "offline demo" not in text
    assert "differs from the paper in 3 setting(s)**:" in text
    assert "| `select.per_class` | `5` | `1` |" in text and "max_epochs: 1" in text


def test_tables_next_to_the_paper():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    t2 = paper_table2().assign(best=False)
    claims = [("On informativeness INV is significantly above every other method.", "holds")]
    metrics = {"extract": {"n_cluster_maps_kept": 1954, "n_images": 50}, "train": {"val_accuracy": 0.9}}
    text = paper_comparison(params, paper_table1_csv(), t2, claims, metrics)
    assert (
        "| block5_conv3 | <0.175% / <0.175% | 3.3 | 3.3 | 0.0 | 14.6 | 14.6 | 0.0 | 78.4 | 78.4 | 0.0 |"
        in text
    )
    assert "Mean absolute difference over layers: clusters 0.00, fmaps 0.00, weight 0.00" in text
    assert "| INV | 5.92 ± 1.40 (5.92, +0.00) |" in text
    assert "| On informativeness INV is significantly above every other method. | holds |" in text
    assert "| 1954 | 1954 kept cluster maps over 50 images |" in text
    shifted = paper_table1_csv()
    shifted["leftover_clusters"] += 1.0
    assert "clusters 1.00" in paper_comparison(params, shifted, None, [], {})


def test_read_claims():
    md = "| # | claim | verdict |\n|---|---|---|\n| 1 | A holds. | holds |\n| 2 | B. | **does not hold** |\n"
    assert read_claims(md) == [("A holds.", "holds"), ("B.", "does not hold")]


@pytest.mark.slow
def test_compare_stage(tmp_path, tracking_uri):
    import json

    from inviz.cli import main

    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "extract.json").write_text(json.dumps({"n_cluster_maps_kept": 10, "n_images": 2}))
    paper_table1_csv().to_csv(tmp_path / "table1.csv", index=False)
    (tmp_path / "t2").mkdir()
    paper_table2().assign(best=False).to_csv(tmp_path / "t2" / "table2.csv", index=False)
    (tmp_path / "t2" / "table2_claims.md").write_text("| 1 | C. | holds |\n")
    assert (
        main(
            [
                "compare",
                "--params",
                str(ROOT / "demo" / "params.yaml"),
                "--table1",
                str(tmp_path / "table1.csv"),
                "--table2",
                str(tmp_path / "t2"),
                "--metrics-dir",
                str(tmp_path / "metrics"),
                "--out",
                str(tmp_path / "cmp.md"),
            ]
        )
        == 0
    )
    text = (tmp_path / "cmp.md").read_text()
    assert "## Table 1" in text and "| C. | holds |" in text and "10 kept cluster maps over 2 images" in text
