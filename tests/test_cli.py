import pytest

from inviz.cli import COMMANDS, STAGES, build_parser, main


def test_every_stage_has_a_subcommand():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "stage")
    assert set(sub.choices) == set(STAGES) | set(COMMANDS)


def test_wrong_param_type_is_a_clear_error(tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(
        "data:\n  source: synthetic\n  split:\n    test_fraction: half\nmlflow:\n  enabled: false\n"
    )
    code = main(
        [
            "data",
            "--params",
            str(params),
            "--images",
            str(tmp_path / "i"),
            "--index",
            str(tmp_path / "x.csv"),
            "--skipped",
            str(tmp_path / "s.csv"),
            "--classes",
            str(tmp_path / "c.json"),
            "--parts",
            str(tmp_path / "p.npz"),
            "--game-classes",
            str(tmp_path / "g.csv"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 2
    out, err = capsys.readouterr()
    msg = f"{params}: data.split.test_fraction: expected float, got 'half'"
    assert msg in err
    assert (out + err).count("expected float, got 'half'") == 1, "the error is said once"
    assert not (tmp_path / "x.csv").exists()


def test_unknown_weights_value_via_cli(tmp_path, capsys, image_folder):
    params = tmp_path / "params.yaml"
    params.write_text(
        "model:\n  weights: imagenet1k\n  input_size: 32\ntrain: {}\nmlflow:\n  enabled: false\n"
    )
    (tmp_path / "classes.json").write_text('[{"label": 0, "class_folder": "a", "class_name": "a"}]')
    (tmp_path / "index.csv").write_text("sample_id,path,split,label,class_folder,class_name\n")
    code = main(
        [
            "train",
            "--params",
            str(params),
            "--images",
            str(image_folder),
            "--index",
            str(tmp_path / "index.csv"),
            "--classes",
            str(tmp_path / "classes.json"),
            "--model",
            str(tmp_path / "m.pt"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--reports",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert (
        "model.weights: expected 'imagenet', 'none' or the path of a state_dict file; 'imagenet1k'"
        in capsys.readouterr().err
    )


def test_missing_stage_is_usage_error():
    with pytest.raises(SystemExit):
        main([])
