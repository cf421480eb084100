import json

import numpy as np
import pandas as pd
import pytest

from inviz.core.io import atomic_path, file_digest, read_json, save_npz, write_csv, write_json


def test_atomic_file_is_untouched_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_atomic_directory_replaces_whole(tmp_path):
    target = tmp_path / "d"
    with atomic_path(target, directory=True) as tmp:
        (tmp / "x").write_text("1")
    with atomic_path(target, directory=True) as tmp:
        (tmp / "y").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["y"]
    with pytest.raises(ValueError):
        with atomic_path(target, directory=True) as tmp:
            (tmp / "z").write_text("3")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["y"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_json_handles_numpy_and_nan(tmp_path):
    write_json(tmp_path / "m.json", {"a": np.float32(0.5), "b": np.arange(2), "c": float("nan")})
    assert read_json(tmp_path / "m.json") == {"a": 0.5, "b": [0, 1], "c": None}
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_json(tmp_path / "nope.json")


def test_csv_npz_and_hash(tmp_path):
    write_csv(tmp_path / "t.csv", pd.DataFrame({"a": [1, 2]}))
    assert (tmp_path / "t.csv").read_text() == "a\n1\n2\n"
    save_npz(tmp_path / "a.npz", x=np.ones(3))
    assert np.load(tmp_path / "a.npz")["x"].sum() == 3
    (tmp_path / "h").write_bytes(b"abc")
    assert file_digest(tmp_path / "h") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
