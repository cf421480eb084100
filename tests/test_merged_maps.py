"""The merged-maps folder (docs/method.md §3.8): one writer, one reader, one layout."""

import numpy as np
import pandas as pd
import pytest

from inviz.labels.merged_maps import MergedMapsError, read_merged_maps, write_merged_maps


def test_write_then_read_gives_every_map_back_per_layer(tmp_path):
    rng = np.random.default_rng(0)
    inv = pd.DataFrame({"merged_id": [3, 1, 2], "layer": ["b5", "b4", "b5"], "weight": [10.0, 60.0, 30.0]})
    maps = {1: rng.random((16, 16)), 2: rng.random((8, 8)), 3: rng.random((8, 8))}
    write_merged_maps(tmp_path / "mm", inv, maps)
    assert sorted(p.name for p in (tmp_path / "mm").iterdir()) == ["b4.npz", "b5.npz"]
    with np.load(tmp_path / "mm" / "b5.npz") as z:  # rows in the INV table's order
        assert z["merged_id"].tolist() == [3, 2] and z["weight"].tolist() == [10.0, 30.0]
        assert z["maps"].dtype == np.float32 and z["maps"].shape == (2, 8, 8)
    back = read_merged_maps(tmp_path / "mm", ["b4", "b5"])
    assert sorted(back) == [1, 2, 3]
    for mid, m in maps.items():
        np.testing.assert_array_equal(back[mid], m.astype(np.float32))
    assert sorted(read_merged_maps(tmp_path / "mm", ["b4"])) == [1]


def test_a_missing_layer_names_the_file_and_the_stage(tmp_path):
    (tmp_path / "mm").mkdir()
    with pytest.raises(
        MergedMapsError, match=r"b4\.npz: merged maps of layer b4 not found \('inviz labels_analyze'"
    ):
        read_merged_maps(tmp_path / "mm", ["b4"])
