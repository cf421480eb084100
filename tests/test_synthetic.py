"""Tests of the synthetic demo dataset (``inviz.data.synthetic``): layout, determinism, masks."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from inviz.core.config import ParamsError, from_dict
from inviz.data import synthetic
from inviz.data.index import scan_image_folder
from inviz.data.synthetic import (
    VOCABULARY,
    PartMasks,
    PartMasksError,
    SyntheticConfig,
    class_names,
    classes,
    empty_parts,
    generate_dataset,
)

SMALL = dict(image_size=128, n_train_per_class=2, n_val_per_class=1)


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[SyntheticConfig, Path, PartMasks]:
    cfg = SyntheticConfig(seed=7, **SMALL)
    dest = tmp_path_factory.mktemp("syn") / "images"
    return cfg, dest, generate_dataset(cfg, dest)


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=float)


# --- layout -------------------------------------------------------------------------------


def test_layout_matches_scan_image_folder(dataset):
    cfg, dest, parts = dataset
    index, skipped = scan_image_folder(dest, class_names(cfg), workers=1)
    assert skipped.empty
    assert index["label"].nunique() == len(cfg.classes) == 10
    assert sorted(index["sample_id"]) == sorted(parts.sample_ids.tolist())
    assert len(parts) == len(cfg.classes) * (cfg.n_train_per_class + cfg.n_val_per_class)
    # class order = sorted folder order = the configured order, readable names carried along
    specs = classes(cfg)
    assert [s.folder for s in specs] == sorted(s.folder for s in specs)
    by_label = index.drop_duplicates("label").set_index("label")
    for s in specs:
        assert by_label.loc[s.label, "class_folder"] == s.folder
        assert by_label.loc[s.label, "class_name"] == s.name
    assert class_names(cfg)["c03_night_sky"] == "night sky"
    with Image.open(dest / index["path"].iloc[0]) as im:
        assert im.size == (cfg.image_size, cfg.image_size) and im.mode == "RGB"


def test_parts_are_shared_and_classes_distinct():
    cfg = SyntheticConfig()
    specs = classes(cfg)
    assert all(2 <= len(s.parts) <= 3 for s in specs)
    assert len({frozenset(s.parts) for s in specs}) == len(specs)
    uses = {p: sum(p in s.parts for s in specs) for p in VOCABULARY}
    assert all(n >= 1 for n in uses.values())  # every vocabulary part is used
    assert sum(n >= 2 for n in uses.values()) >= len(VOCABULARY) // 2  # most parts are shared
    for s in specs:  # every class shares at least one part with another class
        assert any(uses[p] >= 2 for p in s.parts)


# --- determinism ---------------------------------------------------------------------------


def test_same_seed_same_bytes_different_seed_different(dataset, tmp_path):
    cfg, dest, parts = dataset
    again = generate_dataset(cfg, tmp_path / "again", workers=2)  # processes render class folders
    assert tree_digest(dest) == tree_digest(tmp_path / "again")
    np.testing.assert_array_equal(again.masks, parts.masks)
    np.testing.assert_array_equal(again.sample_ids, parts.sample_ids)

    other = generate_dataset(dataclasses.replace(cfg, seed=cfg.seed + 1), tmp_path / "other")
    a, b = tree_digest(dest), tree_digest(tmp_path / "other")
    assert a.keys() == b.keys()
    assert all(a[k] != b[k] for k in a)
    assert not np.array_equal(other.masks, parts.masks)


def test_generation_replaces_destination_atomically(tmp_path):
    cfg = SyntheticConfig(seed=1, **SMALL)
    dest = tmp_path / "images"
    dest.mkdir()
    (dest / "stale.txt").write_text("old")
    generate_dataset(cfg, dest)
    assert not (dest / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["images"]  # no temporary left behind


# --- masks ---------------------------------------------------------------------------------


def test_masks_hold_exactly_the_class_parts(dataset):
    cfg, dest, parts = dataset
    parts_of_folder = {s.folder: s.parts for s in classes(cfg)}
    allowed_bits = 0
    for sid, m in zip(parts.sample_ids, parts.masks, strict=True):
        expected = parts_of_folder[str(sid).split("/")[1]]
        assert parts.parts_of(str(sid)) == [p for p in VOCABULARY if p in expected]
        class_bits = sum(parts.bit(p) for p in expected)
        assert int(np.bitwise_or.reduce(m, axis=None)) == class_bits  # no bit of another part
        for p in expected:
            assert parts.mask(str(sid), p).sum() > 0
        allowed_bits |= class_bits
    assert parts.masks.dtype == np.uint16
    assert parts.masks.shape[1:] == (cfg.image_size, cfg.image_size)


def test_parts_do_not_overlap(dataset):
    _, _, parts = dataset
    m = parts.masks
    n_bits = sum(((m >> i) & 1).astype(int) for i in range(len(VOCABULARY)))
    assert n_bits.max() <= 1


def test_masks_align_with_drawn_pixels(dataset):
    """Re-render sampled images without noise, and once more without parts (same RNG, so the same
    background and clutter): the pixels the parts changed are exactly the masked pixels, each part
    is painted in one or two flat colours, and the saved PNG is the clean image plus small noise."""
    cfg, dest, parts = dataset
    clean_cfg = dataclasses.replace(cfg, noise_std=0.0)
    spec_of = {s.folder: s for s in classes(cfg)}
    for row in range(0, len(parts), max(1, len(parts) // 10)):
        sid = str(parts.sample_ids[row])
        split, folder, stem = sid.split("/")
        spec, i = spec_of[folder], int(stem.rsplit("_", 1)[1])
        clean, mask = synthetic.render_image(
            clean_cfg, spec.parts, synthetic.image_rng(cfg, split, spec.label, i)
        )
        bare, bare_mask = synthetic.render_image(
            clean_cfg, (), synthetic.image_rng(cfg, split, spec.label, i)
        )
        np.testing.assert_array_equal(mask, parts.masks[row])
        assert bare_mask.max() == 0

        saved = read_rgb(dest / split / folder / f"{stem}.png")
        assert np.abs(saved - clean).mean() < 255 * cfg.noise_std  # clean image + zero-mean noise

        changed = np.any(clean != bare, axis=-1)
        assert not changed[mask == 0].any()  # nothing outside the masks was painted by a part
        for p in parts.parts_of(sid):
            inside = parts.mask(sid, p)
            assert changed[inside].mean() > 0.95
            assert 1 <= len(np.unique(clean[inside], axis=0)) <= 2  # flat part colours
            # the part stands out from its surroundings: mean colour inside vs the background there
            assert np.abs(clean[inside].astype(float) - bare[inside].astype(float)).sum(-1).mean() > 30


@pytest.mark.parametrize("part", VOCABULARY)
def test_every_part_draws_inside_its_disk(part):
    cfg = SyntheticConfig(**SMALL, n_distractors=(0, 0), noise_std=0.0, part_rotation=0.0)
    rng = np.random.default_rng(3)
    _, mask = synthetic.render_image(cfg, (part,), rng)
    ys, xs = np.nonzero(mask)
    assert len(ys) > 0
    extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
    assert extent <= cfg.part_scale[1] * cfg.image_size + 2


# --- PartMasks I/O -------------------------------------------------------------------------


def test_save_load_round_trip(dataset, tmp_path):
    _, _, parts = dataset
    path = parts.save(tmp_path / "parts.npz")
    back = PartMasks.load(path)
    np.testing.assert_array_equal(back.masks, parts.masks)
    np.testing.assert_array_equal(back.sample_ids, parts.sample_ids)
    assert back.vocabulary == parts.vocabulary
    assert back.class_folders == parts.class_folders
    assert back.class_parts == parts.class_parts
    sid = str(parts.sample_ids[-1])
    assert back.parts_of(sid) == parts.parts_of(sid)


def test_empty_parts_round_trip(tmp_path):
    empty = empty_parts()
    assert len(empty) == 0 and empty.vocabulary == ()
    back = PartMasks.load(empty.save(tmp_path / "empty.npz"))
    assert len(back) == 0 and back.vocabulary == () and back.class_folders == ()


def test_load_bad_files_name_the_file(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(PartMasksError, match="bad.npz"):
        PartMasks.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, something=np.zeros(3))
    with pytest.raises(PartMasksError, match="other.npz.*missing"):
        PartMasks.load(other)
    with pytest.raises(PartMasksError, match="missing.npz"):
        PartMasks.load(tmp_path / "missing.npz")


def test_lookup_errors(dataset):
    _, _, parts = dataset
    with pytest.raises(KeyError, match="nope"):
        parts.mask("nope", "star")
    with pytest.raises(KeyError, match="unicorn"):
        parts.mask(str(parts.sample_ids[0]), "unicorn")


# --- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change, key",
    [
        ({"image_size": 64}, "image_size"),
        ({"n_train_per_class": 0}, "n_train_per_class"),
        ({"n_val_per_class": 0}, "n_val_per_class"),
        ({"part_scale": (0.5, 0.3)}, "part_scale"),
        ({"classes": {"a": ["star"], "b": ["star"]}}, "classes.b"),
        ({"classes": {"a": ["star"], "b": ["unicorn"]}}, "classes.b"),
        ({"distractor_kinds": ("cloud",)}, "distractor_kinds"),
    ],
)
def test_config_validation_names_the_key(change, key):
    with pytest.raises(ValueError, match=key):
        SyntheticConfig(**change)


def test_config_from_params_mapping():
    cfg = from_dict(
        SyntheticConfig, {"image_size": 160, "part_scale": [0.3, 0.4], "geometry": {"star_points": 6}}
    )
    assert cfg.image_size == 160 and cfg.part_scale == (0.3, 0.4) and cfg.geometry.star_points == 6
    with pytest.raises(ParamsError, match="data.synthetic.*image_size"):
        from_dict(SyntheticConfig, {"image_size": 100}, "data.synthetic")
    with pytest.raises(ParamsError, match="geometry.star_points"):
        from_dict(SyntheticConfig, {"geometry": {"star_points": 2}}, "data.synthetic")


def test_prepared_dataset_keys_part_masks_by_the_index_ids(tmp_path):
    """The test pool's images get ``test/`` ids; their part masks follow them (same pixels)."""
    from inviz.data.dataset import DataConfig, prepare_dataset

    cfg = DataConfig(source="synthetic", synthetic={"seed": 7, **SMALL, "n_val_per_class": 2})
    ds = prepare_dataset(cfg, tmp_path / "images")
    assert set(ds.index["sample_id"]) == set(ds.parts.sample_ids.tolist())
    test = ds.index[ds.index["split"] == "test"]
    assert len(test) == 10 and test["sample_id"].str.startswith("test/").all()
    raw = generate_dataset(SyntheticConfig(seed=7, **{**SMALL, "n_val_per_class": 2}), tmp_path / "again")
    for sid, path in zip(test["sample_id"], test["path"], strict=True):
        old = path.rsplit(".", 1)[0]  # val/<class>/<stem>: the generator's id
        assert ds.parts.parts_of(sid) == raw.parts_of(old)
        np.testing.assert_array_equal(ds.parts.masks[ds.parts._index(sid)], raw.masks[raw._index(old)])
