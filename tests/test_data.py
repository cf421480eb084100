import tarfile

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import write_image_folder

from inviz.core.io import file_digest
from inviz.data.datamodule import (
    AugmentConfig,
    ImageDataModule,
    collate_skip_none,
    read_index,
    train_transform,
)
from inviz.data.imagenette import IMAGENETTE_CLASSES, DatasetUnavailable, ImagenetteConfig, fetch_imagenette
from inviz.data.index import DatasetLayoutError, SplitConfig, carve_test_pool, scan_image_folder


@pytest.fixture
def fake_imagenette(tmp_path):
    """An 'imagenette2-320' folder and .tgz with the 10 WNID folders and 3+2 images each."""
    folder = write_image_folder(
        tmp_path / "src" / "imagenette2-320", sorted(IMAGENETTE_CLASSES), {"train": 3, "val": 2}
    )
    archive = tmp_path / "imagenette2-320.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="imagenette2-320")
    return folder, archive


def test_local_folder_and_archive(fake_imagenette, tmp_path):
    folder, archive = fake_imagenette
    out = fetch_imagenette(ImagenetteConfig(local_path=str(folder)), tmp_path / "a")
    assert sorted(p.name for p in (out / "val").iterdir()) == sorted(IMAGENETTE_CLASSES)
    out = fetch_imagenette(
        ImagenetteConfig(local_path=str(archive), md5=file_digest(archive, "md5")), tmp_path / "b"
    )
    index, skipped = scan_image_folder(out, IMAGENETTE_CLASSES)
    assert len(index) == 50 and skipped.empty
    assert index.drop_duplicates("label").sort_values("label")["class_name"].tolist()[:3] == [
        "tench",
        "English springer",
        "cassette player",
    ]


def test_archive_checksum_mismatch(fake_imagenette, tmp_path):
    _, archive = fake_imagenette
    with pytest.raises(DatasetUnavailable, match="md5 checksum mismatch"):
        fetch_imagenette(ImagenetteConfig(local_path=str(archive), md5="0" * 32), tmp_path / "x")


def test_download_from_cached_archive(fake_imagenette, tmp_path, monkeypatch):
    """The real download path: an archive already in cache_dir is verified and used."""
    _, archive = fake_imagenette
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "imagenette2-320.tgz").write_bytes(archive.read_bytes())
    cfg = ImagenetteConfig(cache_dir=str(cache), md5=file_digest(archive, "md5"))
    out = fetch_imagenette(cfg, tmp_path / "dl")
    assert (out / "train" / "n01440764").is_dir()


def test_offline_error_says_what_to_download(tmp_path):
    cfg = ImagenetteConfig(cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DatasetUnavailable) as err:
        fetch_imagenette(cfg, tmp_path / "out")
    msg = str(err.value)
    assert cfg.url in msg and "local_path" in msg and str((tmp_path / "cache").resolve()) in msg
    assert not (tmp_path / "out").exists()


def test_missing_class_folder_names_it(fake_imagenette, tmp_path):
    folder, _ = fake_imagenette
    import shutil

    shutil.rmtree(folder / "val" / "n03888605")
    with pytest.raises(DatasetUnavailable, match=r"val: missing class folder\(s\) n03888605"):
        fetch_imagenette(ImagenetteConfig(local_path=str(folder)), tmp_path / "a")
    with pytest.raises(DatasetLayoutError, match=r"val: missing class folder\(s\) n03888605"):
        scan_image_folder(folder, IMAGENETTE_CLASSES)


def test_corrupt_and_foreign_files_are_listed_not_used(image_folder):
    bad = image_folder / "train" / "b_cls" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    good = image_folder / "train" / "a_cls" / "a_cls_train_000.png"
    truncated = image_folder / "val" / "a_cls" / "trunc.png"
    truncated.write_bytes(good.read_bytes()[:60])
    (image_folder / "val" / "c_cls" / "notes.txt").write_text("hello")
    (image_folder / "train" / "c_cls" / "empty.png").write_bytes(b"")
    index, skipped = scan_image_folder(image_folder)
    assert len(index) == 3 * 10
    assert set(skipped["path"]) == {
        "train/b_cls/broken.png",
        "val/a_cls/trunc.png",
        "val/c_cls/notes.txt",
        "train/c_cls/empty.png",
    }
    reasons = skipped.set_index("path")["reason"]
    assert reasons["val/c_cls/notes.txt"].startswith("not an image file")
    assert reasons["train/c_cls/empty.png"] == "empty file (0 bytes)"
    assert reasons["train/b_cls/broken.png"].startswith(("UnidentifiedImageError", "OSError", "SyntaxError"))
    assert index["sample_id"].str.match(r"^(train|val)/[abc]_cls/").all()


def test_split_folders_must_agree(image_folder):
    (image_folder / "val" / "d_cls").mkdir()
    with pytest.raises(DatasetLayoutError, match="differ"):
        scan_image_folder(image_folder)


def test_test_pool_is_stratified_and_seeded(image_folder):
    index, _ = scan_image_folder(image_folder)
    a = carve_test_pool(index, SplitConfig(test_fraction=0.5, seed=1))
    b = carve_test_pool(index, SplitConfig(test_fraction=0.5, seed=1))
    c = carve_test_pool(index, SplitConfig(test_fraction=0.5, seed=2))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    counts = a.groupby(["split", "label"]).size()
    assert (
        (counts.loc["test"] == 2).all()
        and (counts.loc["val"] == 2).all()
        and (counts.loc["train"] == 6).all()
    )
    # the test pool's ids say test/ (never val/), its paths are still the files'
    assert (a["sample_id"].str.split("/").str[0] == a["split"]).all()
    moved = a[a["split"] == "test"]
    assert moved["path"].str.startswith("val/").all() and a["sample_id"].is_unique
    assert set(moved["sample_id"].str.removeprefix("test/")) <= set(
        index["sample_id"].str.removeprefix("val/")
    )
    with pytest.raises(ValueError, match="test_fraction"):
        SplitConfig(test_fraction=1.0)


def test_datamodule_batches_and_drops_unreadable(image_folder, tmp_path):
    index, _ = scan_image_folder(image_folder)
    index = carve_test_pool(index, SplitConfig())
    index.to_csv(tmp_path / "index.csv", index=False)
    index = read_index(tmp_path / "index.csv")
    dm = ImageDataModule(index, image_folder, 32, (0.5,) * 3, (0.5,) * 3, batch_size=4)
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["label"].dtype == torch.long
    assert len(batch["sample_id"]) == 4 and batch["dropped"] == 0
    # an image deleted after indexing is dropped from its batch (and logged), not a crash
    first = index[index["split"] == "val"].iloc[0]
    (image_folder / first["path"]).unlink()
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape[0] == 3 and batch["dropped"] == 1
    assert collate_skip_none([None])["image"].numel() == 0


@pytest.mark.parametrize("augment", [True, False])
def test_cached_images_give_the_same_batches_and_are_decoded_once(image_folder, monkeypatch, augment):
    """``train.run.cache_images``: every epoch's shuffled batches (augmented or not) equal the uncached
    ones; each image is read from disk once, and without augmentation also transformed once."""
    import inviz.data.loading as loading

    index = carve_test_pool(scan_image_folder(image_folder)[0], SplitConfig())
    reads: list[str] = []
    load = loading.load_rgb

    def counting(path):
        reads.append(str(path))
        return load(path)

    monkeypatch.setattr(loading, "load_rgb", counting)

    transforms = []

    def epochs(cache):
        dm = ImageDataModule(
            index, image_folder, 32, (0.5,) * 3, (0.5,) * 3, AugmentConfig(enabled=augment), batch_size=4,
            seed=3, cache_images=cache,
        )  # fmt: skip
        torch.manual_seed(0)
        loader = dm.train_dataloader()
        tf = loader.dataset.transform
        loader.dataset.transform = lambda im: (transforms.append(1), tf(im))[1]
        return [(b["sample_id"], b["image"]) for _ in range(2) for b in loader]

    plain = epochs(False)
    transforms.clear()
    n_train = int((index["split"] == "train").sum())
    assert len(reads) == 2 * n_train
    reads.clear()
    cached = epochs(True)
    assert sorted(reads) == sorted(set(reads)) and len(reads) == n_train  # decoded once each
    assert len(transforms) == (2 * n_train if augment else n_train)  # a fixed transform runs once
    assert len(plain) == len(cached)
    for (ids_a, x_a), (ids_b, x_b) in zip(plain, cached, strict=True):
        assert ids_a == ids_b and torch.equal(x_a, x_b)


def test_read_index_checks_columns(tmp_path):
    pd.DataFrame({"path": ["x"]}).to_csv(tmp_path / "i.csv", index=False)
    with pytest.raises(ValueError, match=r"i.csv: missing column\(s\) sample_id"):
        read_index(tmp_path / "i.csv")


def test_augmentation_is_seeded_and_changes_the_image(image_folder):
    from PIL import Image

    img = Image.open(next((image_folder / "train" / "a_cls").iterdir())).convert("RGB")
    tf = train_transform(32, (0.5,) * 3, (0.5,) * 3, AugmentConfig())
    torch.manual_seed(0)
    a = tf(img)
    torch.manual_seed(0)
    b = tf(img)
    assert torch.equal(a, b)
    plain = train_transform(32, (0.5,) * 3, (0.5,) * 3, AugmentConfig(enabled=False))(img)
    assert not torch.allclose(a, plain)
    assert np.isfinite(a.numpy()).all()


# --- data-loader workers and shared memory -------------------------------------------------------


class _Items(torch.utils.data.Dataset):
    """``n`` items of one (3, 64, 64) float32 image (48 KiB); the first ``unreadable`` are None."""

    def __init__(self, n: int, unreadable: int = 0):
        self.n, self.unreadable = n, unreadable

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if i < self.unreadable:
            return None
        return {"image": torch.rand(3, 64, 64), "label": 0, "sample_id": str(i)}


@pytest.fixture
def shm(tmp_path, monkeypatch):
    """A shared-memory folder whose free space the test sets (MiB)."""
    import shutil

    import inviz.data.loading as loading

    free = {"mib": 0.0}
    real = shutil.disk_usage

    def usage(path):
        if path == tmp_path:
            return real(path)._replace(free=int(free["mib"] * 2**20))
        return real(path)

    monkeypatch.setattr(loading.shutil, "disk_usage", usage)
    monkeypatch.setattr(loading, "_WARNED", set())
    return tmp_path, free


def test_workers_fit_the_shared_memory_or_fewer_with_one_warning(shm, caplog):
    from inviz.data.loading import workers_for_shared_memory

    folder, free = shm
    batch = 8 * 48 * 2**10  # 8 items of 48 KiB: 0.375 MiB
    free["mib"] = 0.375 * (2 * 4 + 2)  # exactly what 4 workers need
    assert (
        workers_for_shared_memory(4, _Items(100), 8, "x.num_workers", item_bytes=batch // 8, shm=folder) == 4
    )
    assert not caplog.records
    free["mib"] = 0.375 * (2 * 4 + 2) - 0.01  # a little less: (free / batch - 2) // 2 = 3 workers
    got = workers_for_shared_memory(4, _Items(100), 8, "x.num_workers", item_bytes=batch // 8, shm=folder)
    assert got == 3
    (record,) = caplog.records
    assert record.levelname == "WARNING" and record.getMessage().startswith(
        "x.num_workers=4: the workers need"
    )
    assert "--shm-size" in record.getMessage() and "loading with 3 worker(s) instead" in record.getMessage()
    workers_for_shared_memory(4, _Items(100), 8, "x.num_workers", item_bytes=batch // 8, shm=folder)
    assert len(caplog.records) == 1  # once per process
    free["mib"] = 0.5  # not even one worker: load in the main process
    assert (
        workers_for_shared_memory(2, _Items(100), 8, "x.num_workers", item_bytes=batch // 8, shm=folder) == 0
    )
    # a dataset smaller than a batch makes one smaller batch: 2 workers' 2 items of 48 KiB need 0.56 MiB
    free["mib"] = 0.6
    assert workers_for_shared_memory(2, _Items(2), 8, "x.num_workers", item_bytes=batch // 8, shm=folder) == 2


def test_item_size_is_measured_without_drawing_random_numbers(shm):
    from inviz.data.loading import workers_for_shared_memory

    folder, free = shm
    free["mib"] = 0.048 * 4 * (2 * 1 + 2) * 1.01  # one worker's batches of 4 items of ~48 KiB (+1 %)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    # the first readable item (after two unreadable ones) is measured: 48 KiB x 4 x 4 fits, 2 workers do not
    assert workers_for_shared_memory(2, _Items(10, unreadable=2), 4, "y", shm=folder) == 1
    assert torch.equal(torch.rand(3), expected)


def test_no_workers_or_no_shared_memory_folder_is_left_alone(tmp_path):
    from inviz.data.loading import workers_for_shared_memory

    assert workers_for_shared_memory(0, _Items(10), 4, "z") == 0
    assert workers_for_shared_memory(3, _Items(10), 4, "z", shm=tmp_path / "absent") == 3
