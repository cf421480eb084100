"""data.source: folder — your own image-folder dataset (inviz.data.folder)."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import write_image_folder

from inviz.core.config import ParamsError, from_dict
from inviz.data.dataset import DataConfig, prepare_dataset
from inviz.data.folder import FolderFractions, assign_fractions
from inviz.data.imagenette import imagenette_game_classes
from inviz.data.index import DatasetLayoutError


def folder_cfg(**folder) -> DataConfig:
    return from_dict(DataConfig, {"source": "folder", "folder": folder}, "data", "params.yaml")


def test_split_folders_with_own_names_and_a_test_folder(tmp_path):
    root = write_image_folder(tmp_path / "ds", ["owl", "cat"], {"training": 3, "validation": 2, "test": 2})
    (root / "training" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "README.md").write_text("about my data")
    (root / "validation" / "notes.txt").write_text("x")
    cfg = folder_cfg(path=str(root), splits={"train": "training", "val": "validation", "test": "test"})
    ds = prepare_dataset(cfg, tmp_path / "images")
    assert ds.index.groupby("split").size().to_dict() == {"test": 4, "train": 6, "val": 4}
    # canonical layout and ids, classes in sorted folder order, files linked into the image folder
    assert [c["class_folder"] for c in ds.classes] == ["cat", "owl"]
    row = ds.index[ds.index["sample_id"] == "train/owl/owl_training_001"].iloc[0]
    assert row["path"] == "train/owl/owl_training_001.png" and row["label"] == 1
    assert (tmp_path / "images" / row["path"]).is_file()
    assert set(ds.skipped["path"]) == {"training/cat/broken.jpg", "README.md", "validation/notes.txt"}
    assert ds.skipped.set_index("path").loc["training/cat/broken.jpg", "split"] == "train"
    assert ds.skipped.set_index("path").loc["README.md", "reason"] == "not inside a class folder"


def test_without_a_test_folder_val_gives_the_test_pool(tmp_path):
    root = write_image_folder(tmp_path / "ds", ["a", "b"], {"train": 2, "val": 4})
    ds = prepare_dataset(folder_cfg(path=str(root)), tmp_path / "images")
    counts = ds.index.groupby(["split", "class_folder"]).size().to_dict()
    assert counts == {(s, c): n for s, n in (("test", 2), ("train", 2), ("val", 2)) for c in ("a", "b")}
    # as for Imagenette, the carved test images keep their val path
    assert ds.index.loc[ds.index["split"] == "test", "path"].str.startswith("val/").all()


def test_single_folder_is_split_by_seeded_stratified_fractions(tmp_path):
    root = write_image_folder(tmp_path / "ds", ["x", "y", "z"], {"all": 10}) / "all"
    cfg = folder_cfg(path=str(root), fractions={"train": 0.6, "val": 0.2, "test": 0.2})
    a = prepare_dataset(cfg, tmp_path / "a")
    assert a.index.groupby(["class_folder", "split"]).size().unstack().to_dict("index") == {
        c: {"test": 2, "train": 6, "val": 2} for c in ("x", "y", "z")
    }
    assert a.index["sample_id"].str.startswith(tuple(f"{s}/" for s in ("train", "val", "test"))).all()
    b = prepare_dataset(cfg, tmp_path / "b")
    pd.testing.assert_frame_equal(a.index, b.index)
    other = from_dict(DataConfig, {"source": "folder", "folder": {"path": str(root)}, "split": {"seed": 1}})
    assert set(prepare_dataset(other, tmp_path / "c").index["sample_id"]) != set(a.index["sample_id"])


def test_fraction_rule_exact_counts():
    index = pd.DataFrame({"sample_id": [f"s{i}" for i in range(7)], "label": 0, "class_folder": "k"})
    split = assign_fractions(index, FolderFractions(0.7, 0.15, 0.15), seed=0)
    assert split.value_counts().to_dict() == {"train": 5, "val": 1, "test": 1}
    with pytest.raises(DatasetLayoutError, match="class folder 'k' has 2 usable image"):
        assign_fractions(index.head(2), FolderFractions(), seed=0)
    with pytest.raises(ParamsError, match="fractions: expected three shares in \\(0, 1\\) summing to 1"):
        folder_cfg(path=".", fractions={"train": 0.7, "val": 0.2, "test": 0.2})


def test_class_names_file_and_game_class_list(tmp_path):
    root = write_image_folder(tmp_path / "ds", ["n01", "n02"], {"train": 2, "val": 2})
    names = tmp_path / "names.csv"
    names.write_text("class_folder,class_name\nn02,night sky\nn01,apple tree\n")
    ds = prepare_dataset(folder_cfg(path=str(root), class_names=str(names)), tmp_path / "images")
    assert [c["class_name"] for c in ds.classes] == ["apple tree", "night sky"]
    assert ds.game_classes.to_dict("records") == [
        {"game_id": 1, "game_name": "Apple Tree", "class_folder": "n01", "class_name": "apple tree"},
        {"game_id": 2, "game_name": "Night Sky", "class_folder": "n02", "class_name": "night sky"},
    ]


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("folder,name\nn01,a\n", "missing column(s) class_folder, class_name"),
        ("class_folder,class_name\nn01,a\nn01,b\n", "class_folder 'n01' appears more than once"),
        ("class_folder,class_name\nn01,\n", "row 2: empty class_folder or class_name"),
        ("class_folder,class_name\nn01,a\n", "no class_name for class folder(s) n02"),
        (
            "class_folder,class_name\nn01,a\nn02,b\nn03,c\n",
            "class folder(s) not in the dataset: n03 (expected: n01, n02)",
        ),
    ],
)
def test_class_names_file_errors_name_the_file(tmp_path, content, fragment):
    root = write_image_folder(tmp_path / "ds", ["n01", "n02"], {"train": 2, "val": 2})
    names = tmp_path / "names.csv"
    names.write_text(content)
    with pytest.raises(DatasetLayoutError) as err:
        prepare_dataset(folder_cfg(path=str(root), class_names=str(names)), tmp_path / "images")
    assert fragment in str(err.value) and "names.csv" in str(err.value)


def test_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match="data.folder.path: set it"):
        prepare_dataset(folder_cfg(), tmp_path / "i")
    with pytest.raises(DatasetLayoutError, match="is not a folder"):
        prepare_dataset(folder_cfg(path=str(tmp_path / "nope")), tmp_path / "i")
    root = write_image_folder(tmp_path / "ds", ["a"], {"train": 2})
    with pytest.raises(DatasetLayoutError, match="missing split folder\\(s\\) val"):
        prepare_dataset(folder_cfg(path=str(root), layout="splits"), tmp_path / "i")


def test_imagenette_game_classes_are_the_papers():
    table = imagenette_game_classes()
    assert len(table) == 10 and table.set_index("class_folder").loc["n01440764", "game_name"] == "Fish"
