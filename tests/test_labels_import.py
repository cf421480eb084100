"""Game-export import: both layouts, every validation problem, screening, strict mode, determinism."""

import json

import pandas as pd
import pytest

from inviz.game.export import (
    REASONS,
    GameExportError,
    ImportConfig,
    ImportFiles,
    cluster_table,
    game_classes_frame,
    import_game,
    load_class_map,
    read_guesses,
    read_table,
)

CLASSES = [
    {"label": 0, "class_folder": "n01", "class_name": "tench"},
    {"label": 1, "class_folder": "n02", "class_name": "English springer"},
    {"label": 2, "class_folder": "n03", "class_name": "church"},
]
CLASS_MAP = "game_id,game_name,class_folder,class_name\n1,Church,n03,church\n2,Dog,n02,English springer\n3,Fish,n01,tench\n"
MANIFEST = pd.DataFrame(
    {
        "cluster_id": [1, 2, 3],
        "image": ["test/n01/img_a", "test/n01/img_a", "test/n02/img_b"],
        "layer": ["block5_conv3", "block5_conv3", "block4_conv1"],
        "cluster": [0, 1, 0],
        "label": [0, 0, 1],
        "true_class": ["tench", "tench", "English springer"],
        "weight": [40.0, 20.0, 30.0],
    }
)

FEATURES_HEADER = "characteristic,guess_id,percentile,guessed_label_id,layer,cluster,cluster_id,image,label_en,language_en,player_id\n"
GOOD_FEATURES = (
    "fins,g1,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n"
    "scales,g1,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n"
    "pinne,g2,2,3,block5_conv3,1,2,img_a.JPEG,Fish,Italian,p2\n"
    "ears,g3,1,2,block4_conv1,0,3,img_b.JPEG,Dog,English,p1\n"
    "tower,g4,5,1,block4_conv1,0,3,img_b.JPEG,Dog,English,p3\n"
)


@pytest.fixture
def class_map(tmp_path):
    p = tmp_path / "game_classes.csv"
    p.write_text(CLASS_MAP, encoding="utf-8")
    return load_class_map(p, CLASSES)


def authors_dir(
    tmp_path,
    features=GOOD_FEATURES,
    resigns="cluster_id,number_of_resigns\n2,2\n",
    no_text="cluster_id,label,guessed_label_id,percentile\n3,2,2,3\n1,3,1,0\n",
    players=None,
    header=FEATURES_HEADER,
):
    d = tmp_path / "game"
    d.mkdir(exist_ok=True)
    if isinstance(features, bytes):
        (d / "features.csv").write_bytes(header.encode() + features)
    else:
        (d / "features.csv").write_text(header + features, encoding="utf-8")
    if resigns is not None:
        (d / "resigns.csv").write_text(resigns, encoding="utf-8")
    if no_text is not None:
        (d / "guesses_without_text.csv").write_text(no_text, encoding="utf-8")
    if players is not None:
        (d / "players.csv").write_text(players, encoding="utf-8")
    return d


def run(tmp_path, class_map, cfg=None, **files):
    return import_game(
        authors_dir(tmp_path, **files), class_map, cluster_table(MANIFEST), cfg or ImportConfig()
    )


def problems_of(result, reason):
    return result.problems[result.problems["reason"] == reason]


def test_authors_layout_to_canonical(tmp_path, class_map):
    res = run(tmp_path, class_map)
    g = res.guesses
    assert res.report["format"] == "authors" and res.problems.empty
    assert res.report["kept"] == {"rows": 9, "feature": 5, "guess": 2, "resign": 2}
    f = g[g["kind"] == "feature"].set_index("text")
    assert f.loc["fins", "guessed_class"] == "tench" and bool(f.loc["fins", "correct"])
    assert f.loc["tower", "guessed_class"] == "church" and not f.loc["tower", "correct"]
    assert f.loc["pinne", "language"] == "it" and f.loc["pinne", "hints"] == 2
    assert f.loc["ears", "image"] == "test/n02/img_b" and f.loc["ears", "source_row"] == 5
    nt = g[g["kind"] == "guess"]
    assert sorted(nt["correct"]) == [False, True]
    rs = g[g["kind"] == "resign"]
    assert len(rs) == 2 and set(rs["cluster_id"]) == {2} and rs["hints"].isna().all()
    assert res.report["n_guesses"] == 6 and res.report["n_cluster_maps_played"] == 3


def test_canonical_layout(tmp_path, class_map):
    d = tmp_path / "canon"
    d.mkdir()
    (d / "guesses.csv").write_text(
        "guess_id,player_id,cluster_id,true_class,kind,guessed_class,hints,text,language,text_en\n"
        "g1,p1,1,tench,feature,Fish,0,fins,en,\n"
        "g1,p1,1,tench,feature,3,0,pinne dorsali,it,dorsal fins\n"
        "g2,p2,3,Dog,guess,Church,4,,,\n"
        "g3,p2,3,English springer,resign,,,,,\n",
        encoding="utf-8",
    )
    res = import_game(d, class_map, cluster_table(MANIFEST))
    assert res.report["format"] == "canonical" and res.problems.empty
    g = res.guesses
    assert g["kind"].tolist() == ["feature", "feature", "guess", "resign"]
    assert g.loc[1, "text_en"] == "dorsal fins" and g.loc[1, "language"] == "it"
    assert g["correct"].tolist() == [True, True, False, False]


def test_read_back_round_trip(tmp_path, class_map):
    res = run(tmp_path, class_map)
    path = tmp_path / "guesses.csv"
    res.guesses.to_csv(path, index=False)
    back = read_guesses(path)
    pd.testing.assert_frame_equal(
        back.reset_index(drop=True), res.guesses.reset_index(drop=True), check_dtype=False
    )


# --- structural problems stop the import ----------------------------------------------------


def test_missing_column_is_an_error_naming_file_and_column(tmp_path, class_map):
    header = FEATURES_HEADER.replace("percentile,", "")
    rows = (
        "\n".join(",".join(r.split(",")[:2] + r.split(",")[3:]) for r in GOOD_FEATURES.strip().split("\n"))
        + "\n"
    )
    with pytest.raises(GameExportError, match=r"features.csv: missing column 'percentile'"):
        run(tmp_path, class_map, header=header, features=rows)


def test_misspelt_column_is_an_error_with_a_suggestion(tmp_path, class_map):
    with pytest.raises(
        GameExportError, match=r"missing column 'guessed_label_id' \(found 'guesed_label_id': misspelt\?\)"
    ):
        run(tmp_path, class_map, header=FEATURES_HEADER.replace("guessed_label_id", "guesed_label_id"))
    with pytest.raises(
        GameExportError, match=r"unknown column 'charactristic_en' \(did you mean 'characteristic_en'\?\)"
    ):
        run(tmp_path, class_map, header=FEATURES_HEADER.replace("player_id", "charactristic_en"))


def test_unrelated_extra_columns_are_ignored_and_reported(tmp_path, class_map):
    header = FEATURES_HEADER.replace("player_id", "timestamp")
    res = run(tmp_path, class_map, header=header)
    assert res.report["ignored_columns"] == {"features.csv": ["timestamp"]}


def test_missing_files_and_empty_tables(tmp_path, class_map):
    with pytest.raises(GameExportError, match="no game export in .* yet"):
        import_game(tmp_path, class_map, cluster_table(MANIFEST))
    with pytest.raises(GameExportError, match="no data rows"):
        run(tmp_path, class_map, features="")
    other = tmp_path / "other"
    other.mkdir()
    res = run(other, class_map, resigns=None, no_text=None)  # the two smaller tables are optional
    assert res.report["warnings"] == [
        "guesses_without_text.csv: not found; treated as empty",
        "resigns.csv: not found; treated as empty",
    ]


def test_bad_class_map(tmp_path):
    p = tmp_path / "map.csv"
    p.write_text("game_id,game_name,class_folder,class_name\n1,Church,n99,church\n", encoding="utf-8")
    with pytest.raises(GameExportError, match="class_folder 'n99' is not a dataset class"):
        load_class_map(p, CLASSES)
    p.write_text("game_id,game_name,class_folder,class_name\n1,Church,n03,church\n", encoding="utf-8")
    with pytest.raises(GameExportError, match="missing from the game's class list"):
        load_class_map(p, CLASSES)
    p.write_text("game_id,name,class_folder,class_name\n", encoding="utf-8")
    with pytest.raises(GameExportError, match="missing column 'game_name'"):
        load_class_map(p, CLASSES)


# --- row problems are dropped and counted ---------------------------------------------------

BAD_ROWS = {
    "unknown_cluster": ("fins,g9,0,3,block5_conv3,0,99,img_a.JPEG,Fish,English,p1\n", "cluster_id"),
    "bad_value": ("fins,g9,0,3,block5_conv3,0,one,img_a.JPEG,Fish,English,p1\n", "cluster_id"),
    "cluster_mismatch": ("fins,g9,0,3,block4_conv1,0,1,img_a.JPEG,Fish,English,p1\n", "layer"),
    "hints_out_of_range": ("fins,g9,6,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n", "percentile"),
    "unknown_class": ("fins,g9,0,11,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n", "guessed_label_id"),
    "true_class_mismatch": ("fins,g9,0,3,block5_conv3,0,1,img_a.JPEG,Dog,English,p1\n", "label_en"),
    "empty_text": ("  ,g9,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n", "characteristic"),
    "text_too_long": (
        ("x" * 201) + ",g9,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n",
        "characteristic",
    ),
    "missing_value": ("fins,,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n", "guess_id"),
    "duplicate_row": ("fins,g1,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n", ""),
    "inconsistent_guess": ("gills,g1,3,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n", "guess_id"),
    "malformed_row": ("fins,g9,0,3\n", ""),
    "bad_encoding": ("pinne Ã¨ belle,g9,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n", "characteristic"),
}


@pytest.mark.parametrize("reason", sorted(BAD_ROWS))
def test_each_row_problem_is_dropped_counted_and_located(tmp_path, class_map, reason):
    row, column = BAD_ROWS[reason]
    res = run(tmp_path, class_map, features=GOOD_FEATURES + row)
    probs = problems_of(res, reason)
    assert len(probs) == 1, res.problems
    p = probs.iloc[0]
    assert (
        p["file"] == "features.csv" and p["row"] == 7 and p["column"] == column
    )  # header = line 1, 5 good rows
    assert res.report["dropped_by_reason"] == {reason: 1}
    assert res.report["kept"]["feature"] == 5  # the good rows all survive
    with pytest.raises(GameExportError, match=f"features.csv row 7 column {column or '-'}: {reason}"):
        run(tmp_path, class_map, ImportConfig(strict=True), features=GOOD_FEATURES + row)


def test_every_reason_is_covered_by_a_test():
    assert set(BAD_ROWS) == set(REASONS)


def test_undecodable_bytes_are_a_row_problem(tmp_path, class_map):
    res = run(
        tmp_path,
        class_map,
        features=GOOD_FEATURES.encode()
        + b"pinne \xe8 belle,g9,0,3,block5_conv3,0,1,img_a.JPEG,Fish,English,p1\n",
    )
    p = problems_of(res, "bad_encoding").iloc[0]
    assert p["row"] == 7 and p["column"] == "characteristic" and "undecodable" in p["message"]
    # a Latin-1 file is fine when its encoding is declared
    d = authors_dir(
        tmp_path,
        features=GOOD_FEATURES.encode()
        + "pinne \u00e8 belle,g9,0,3,block5_conv3,0,1,img_a.JPEG,Fish,Italian,p1\n".encode("latin-1"),
    )
    ok = import_game(d, class_map, cluster_table(MANIFEST), ImportConfig(encoding="latin-1"))
    assert ok.problems.empty and "pinne \u00e8 belle" in set(ok.guesses["text"])


def test_problems_in_the_other_tables(tmp_path, class_map):
    res = run(
        tmp_path,
        class_map,
        resigns="cluster_id,number_of_resigns\n2,two\n7,1\n",
        no_text="cluster_id,label,guessed_label_id,percentile\n3,2,2,9\n3,1,2,0\n",
    )
    got = set(zip(res.problems["file"], res.problems["row"], res.problems["reason"], strict=False))
    assert got == {
        ("resigns.csv", 2, "bad_value"),
        ("resigns.csv", 3, "unknown_cluster"),
        ("guesses_without_text.csv", 2, "hints_out_of_range"),
        ("guesses_without_text.csv", 3, "true_class_mismatch"),
    }
    assert res.report["kept"]["resign"] == 0 and res.report["kept"]["guess"] == 0


def test_cluster_identity_check_can_be_switched_off(tmp_path, class_map):
    row = BAD_ROWS["cluster_mismatch"][0]
    res = run(tmp_path, class_map, ImportConfig(check_cluster_identity=False), features=GOOD_FEATURES + row)
    assert res.problems.empty and res.report["kept"]["feature"] == 6


def test_max_text_length_and_hints_are_params(tmp_path, class_map):
    res = run(tmp_path, class_map, ImportConfig(max_text_length=5, max_hints=1), features=GOOD_FEATURES)
    feats = res.problems[res.problems["file"] == "features.csv"]
    assert set(feats.loc[feats["reason"] == "text_too_long", "row"]) == {3}  # 'scales' has 6 characters
    assert set(feats.loc[feats["reason"] == "hints_out_of_range", "row"]) == {4, 6}  # hints 2 and 5


# --- screening ------------------------------------------------------------------------------


def test_screening_by_param_and_by_export_flag(tmp_path, class_map):
    res = run(tmp_path, class_map, ImportConfig(failed_players=["p2"]))
    assert res.report["screening"]["excluded_players"] == 1 and res.report["screening"]["excluded_rows"] == 1
    assert "p2" not in set(res.guesses["player_id"])
    res = run(tmp_path, class_map, players="player_id,passed_screening\np1,false\np2,true\np3,true\n")
    s = res.report["screening"]
    assert s["excluded_players"] == 1 and s["excluded_rows"] == 3 and s["excluded_by_kind"]["feature"] == 3
    assert s["rows_without_player"] == 4  # no-text guesses and resigns carry no player id here
    res = run(
        tmp_path,
        class_map,
        ImportConfig(use_export_screening=False),
        players="player_id,passed_screening\np1,false\n",
    )
    assert res.report["screening"]["excluded_rows"] == 0


def test_players_table_problems_are_reported(tmp_path, class_map):
    res = run(tmp_path, class_map, players="player_id,passed_screening\np1,maybe\n,true\n")
    assert set(zip(res.problems["file"], res.problems["reason"], strict=False)) == {
        ("players.csv", "bad_value"),
        ("players.csv", "missing_value"),
    }


def test_import_is_deterministic(tmp_path, class_map):
    a = run(tmp_path, class_map, features=GOOD_FEATURES + BAD_ROWS["duplicate_row"][0])
    b = run(tmp_path, class_map, features=GOOD_FEATURES + BAD_ROWS["duplicate_row"][0])
    pd.testing.assert_frame_equal(a.guesses, b.guesses)
    pd.testing.assert_frame_equal(a.problems, b.problems)
    assert json.dumps(a.report, sort_keys=True) == json.dumps(b.report, sort_keys=True)


def test_manual_translations_are_passed_on(tmp_path, class_map):
    d = authors_dir(tmp_path)
    (d / "translations.csv").write_text("text,language,translation\npinne,Italian,fins\n", encoding="utf-8")
    res = import_game(d, class_map, cluster_table(MANIFEST))
    assert res.translations.to_dict("records") == [
        {"text": "pinne", "language": "it", "translation": "fins", "context": ""}
    ]


def test_paper_class_map_resource_matches_imagenette():
    from importlib.resources import files

    from inviz.data.imagenette import IMAGENETTE_CLASSES

    path = files("inviz") / "resources" / "game_classes_imagenette.csv"
    classes = [
        {"label": i, "class_folder": w, "class_name": n}
        for i, (w, n) in enumerate(sorted(IMAGENETTE_CLASSES.items()))
    ]
    cm = load_class_map(path, classes)
    assert cm.resolve("Dog") == 1 and cm.resolve("4") == 1 and cm.resolve("Fish") == 0 and cm.resolve(10) == 0
    assert cm.resolve("chainsaw") == 3 and cm.resolve("chain saw") == 3 and cm.resolve("nothing") is None


def test_game_classes_are_alphabetical():
    t = game_classes_frame(["night sky", "bicycle", "castle"], ["c00_night_sky", "c01_bicycle", "c02_castle"])
    assert t["game_name"].tolist() == ["Bicycle", "Castle", "Night Sky"] and t["game_id"].tolist() == [
        1,
        2,
        3,
    ]


def test_read_table_keeps_line_numbers_across_blank_lines(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n\n3,4\n", encoding="utf-8")
    t = read_table(p)
    assert t.lines == [2, 4] and t.frame["a"].tolist() == ["1", "3"]


def test_custom_file_names(tmp_path, class_map):
    d = tmp_path / "g"
    d.mkdir()
    (d / "feats.csv").write_text(FEATURES_HEADER + GOOD_FEATURES, encoding="utf-8")
    cfg = ImportConfig(files=ImportFiles(features="feats.csv"))
    assert import_game(d, class_map, cluster_table(MANIFEST), cfg).report["kept"]["feature"] == 5


def test_a_near_copy_of_a_present_column_is_ignored_not_swallowed(tmp_path, class_map):
    res = run(tmp_path, class_map, header=FEATURES_HEADER.replace("player_id", "guess_idx"))
    assert res.report["ignored_columns"] == {"features.csv": ["guess_idx"]}


def _layouts():
    from inviz.game.export import layouts

    return {name: v for name, v in vars(layouts).items() if isinstance(v, layouts.Layout)}


@pytest.mark.parametrize("name", sorted(_layouts()))
def test_every_column_map_drives_the_header_check(tmp_path, name):
    from inviz.game.export.tables import check_columns

    layout = _layouts()[name]
    fields = {**layout.required, **layout.optional}
    assert set(layout.nonempty) | set(layout.nonempty_unless_resign) <= set(fields)
    for col in layout.required_columns:
        header = [c for c in layout.required_columns if c != col] + list(layout.optional_columns)
        p = tmp_path / f"{name}.csv"
        p.write_text(",".join(header) + "\n" + ",".join("x" for _ in header) + "\n", encoding="utf-8")
        with pytest.raises(
            GameExportError,
            match=f"missing column '{col}'.*Expected columns: {', '.join(layout.required_columns)}",
        ):
            check_columns(read_table(p), layout, p)
    p.write_text(",".join(layout.required_columns) + ",zzz_unrelated\n", encoding="utf-8")
    assert check_columns(read_table(p), layout, p) == ["zzz_unrelated"]
    assert layout.present(layout.required_columns) == dict(layout.required)
