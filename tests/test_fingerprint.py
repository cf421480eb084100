"""Fingerprints of outside inputs (inviz.core.fingerprint) and the ``inputs`` stage."""

from __future__ import annotations

import json
import shutil

import pytest

from inviz.cli import main
from inviz.core.fingerprint import InputMissing, data_inputs, fingerprint_path, weights_inputs


def test_file_fingerprint_is_its_bytes_not_its_place(tmp_path):
    a, b = tmp_path / "a.pth", tmp_path / "sub" / "b.pth"
    b.parent.mkdir()
    a.write_bytes(b"weights-1")
    shutil.copy(a, b)
    import hashlib

    digest = hashlib.sha256(b"weights-1").hexdigest()
    assert fingerprint_path(a) == fingerprint_path(b) == {"kind": "file", "bytes": 9, "sha256": digest}
    b.write_bytes(b"weights-2")  # replaced file, same size
    assert fingerprint_path(b) != fingerprint_path(a)


def test_folder_fingerprint_sees_added_renamed_and_resized_files(tmp_path):
    root = tmp_path / "imagenette2-320"
    (root / "train" / "n01").mkdir(parents=True)
    (root / "train" / "n01" / "x.JPEG").write_bytes(b"1234")
    (root / "val").mkdir()
    base = fingerprint_path(root)
    assert base["kind"] == "folder" and base["files"] == 1 and base["bytes"] == 4
    copy = tmp_path / "elsewhere"
    shutil.copytree(root, copy)  # copy2 keeps modification times: the same data elsewhere
    assert fingerprint_path(copy) == base
    (root / "val" / "y.JPEG").write_bytes(b"")
    added = fingerprint_path(root)
    assert added != base and added["files"] == 2
    (root / "val" / "y.JPEG").rename(root / "val" / "z.JPEG")
    assert fingerprint_path(root) not in (base, added)


def test_inputs_of_each_profile_and_missing_paths_name_the_key(tmp_path):
    assert data_inputs("synthetic", "/ignored") == {"source": "synthetic", "local_path": None}
    assert data_inputs("imagenette", None) == {"source": "imagenette", "local_path": None}
    assert weights_inputs("imagenet") == {"weights": "imagenet"} and weights_inputs("none") == {
        "weights": "none"
    }
    with pytest.raises(InputMissing, match=r"data.imagenette.local_path: .*nope: no such file or folder"):
        data_inputs("imagenette", str(tmp_path / "nope"))
    with pytest.raises(InputMissing, match=r"model.weights: expected 'imagenet', 'none' or the path"):
        weights_inputs(str(tmp_path / "vgg.pth"))


def test_inputs_stage_writes_identical_files_until_an_input_changes(tmp_path, capsys):
    weights = tmp_path / "vgg.pth"
    weights.write_bytes(b"w1")
    params = tmp_path / "params.yaml"
    params.write_text(f"data:\n  source: imagenette\nmodel:\n  weights: {weights}\n")
    out_d, out_w = tmp_path / "d.json", tmp_path / "w.json"
    argv = ["inputs", "--params", str(params), "--data-out", str(out_d), "--weights-out", str(out_w)]
    assert main(argv) == 0
    first = (out_d.read_bytes(), out_w.read_bytes())
    assert json.loads(first[0]) == {"source": "imagenette", "local_path": None}
    assert json.loads(first[1])["weights"]["bytes"] == 2
    assert main(argv) == 0 and (out_d.read_bytes(), out_w.read_bytes()) == first  # DVC: nothing changed
    weights.write_bytes(b"w2")
    assert main(argv) == 0 and out_d.read_bytes() == first[0] and out_w.read_bytes() != first[1]
    weights.unlink()
    assert main(argv) == 2 and "model.weights" in capsys.readouterr().err
