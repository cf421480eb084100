"""Table 1 (inviz.fmaps.table1): per-layer averages, paper values, comparison, CSV/Markdown/LaTeX."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from inviz.fmaps.table1 import (
    PAPER_TABLE1,
    compare_with_paper,
    comparison_markdown,
    display_rows,
    paper_table1,
    table1,
    threshold_label,
    to_latex,
    to_markdown,
)


def stats() -> pd.DataFrame:
    rows = []
    for sid, (clusters, fmaps, weight, kept_w) in {
        "a": (4, 50.0, 70.0, 80.0),
        "b": (2, 30.0, 60.0, 90.0),
    }.items():
        rows.append(
            {
                "sample_id": sid,
                "layer": "block5_conv3",
                "n_channels": 512,
                "threshold": 0.175,
                "n_clusters_kept": clusters,
                "leftover_fmaps_pct": fmaps,
                "leftover_weight_pct": weight,
                "leftover_weight_of_kept_pct": kept_w,
            }
        )
    rows.append(
        {
            "sample_id": "a",
            "layer": "block3_conv1",
            "n_channels": 256,
            "threshold": 0.35,
            "n_clusters_kept": 5,
            "leftover_fmaps_pct": 40.0,
            "leftover_weight_pct": 65.0,
            "leftover_weight_of_kept_pct": 75.0,
        }
    )
    return pd.DataFrame(rows)


def test_table1_exact_values():
    t = table1(stats(), ["block3_conv1", "block5_conv3"])
    assert list(t.index) == ["block3_conv1", "block5_conv3"]
    r = t.loc["block5_conv3"]
    assert (r["n_images"], r["n_channels"], r["fmaps_threshold"], r["threshold_label"]) == (
        2,
        512,
        0.175,
        "<0.175%",
    )
    assert (r["leftover_clusters"], r["leftover_fmaps"], r["leftover_weight"]) == (3.0, 40.0, 65.0)
    assert r["leftover_clusters_sd"] == pytest.approx(math.sqrt(2))
    assert math.isnan(t.loc["block3_conv1", "leftover_fmaps_sd"])  # one image: no sd
    assert table1(stats(), weight_base="kept").loc["block5_conv3", "leftover_weight"] == 85.0


def test_paper_values_and_comparison():
    assert len(PAPER_TABLE1) == 9 and PAPER_TABLE1["block5_conv3"] == (0.175, 3.3, 14.6, 78.4)
    assert paper_table1().loc["block3_conv1", "threshold_label"] == "<0.35%"
    cmp = compare_with_paper(table1(stats()))
    assert cmp.loc["block5_conv3", "leftover_weight_paper"] == 78.4
    assert cmp.loc["block5_conv3", "leftover_weight_diff"] == pytest.approx(65.0 - 78.4)
    assert cmp.loc["block3_conv1", "leftover_clusters_diff"] == pytest.approx(5 - 4.3)
    other = compare_with_paper(table1(stats().assign(layer="features.28")))
    assert math.isnan(other.loc["features.28", "leftover_fmaps_paper"])
    text = comparison_markdown(cmp, 2, 7)
    assert "| block5_conv3 | <0.175% / <0.175% |" in text and "1954" in text


def test_formats():
    header, rows = display_rows(table1(stats(), ["block3_conv1", "block5_conv3"]))
    assert rows[1] == ["block5_conv3", "<0.175%", "3.0 ± 1.4", "40.0% ± 14.1%", "65.0% ± 7.1%"]
    assert rows[0][2] == "5.0"  # no sd for one image
    md = to_markdown(header, rows)
    assert md.splitlines()[1] == "|---|---|---|---|---|"
    tex = to_latex(header, rows, caption="50% of it")
    assert r"block5\_conv3 & $<$0.175\% & 3.0 $\pm$ 1.4" in tex
    assert r"\caption{50\% of it}" in tex and tex.strip().endswith(r"\end{table}")
    assert threshold_label(float("nan")) == "none" and threshold_label(1.2) == "<1.2%"
