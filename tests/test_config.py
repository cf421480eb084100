from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from inviz.core.config import ParamsError, flatten, from_dict, load_section, to_dict


@dataclass(frozen=True)
class Inner:
    lr: float
    name: str = "x"


@dataclass(frozen=True)
class Outer:
    seed: int = 1
    mode: Literal["a", "b"] = "a"
    maybe: str | None = None
    items: list[Inner] = field(default_factory=list)
    pair: tuple[float, float] = (0.0, 1.0)
    flag: bool = False


def test_defaults_and_nested_conversion():
    cfg = from_dict(Outer, {"items": [{"lr": 1}], "pair": [2, 3]})
    assert cfg.seed == 1 and cfg.items == [Inner(lr=1.0)] and isinstance(cfg.items[0].lr, float)
    assert cfg.pair == (2.0, 3.0)
    assert to_dict(cfg)["items"] == [{"lr": 1.0, "name": "x"}]


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"seed": "1"}, "train.seed: expected int, got '1'"),
        ({"seed": True}, "train.seed: expected int"),
        ({"mode": "c"}, "train.mode: expected 'a' | 'b'"),
        ({"items": [{"lr": "fast"}]}, "train.items[0].lr: expected float, got 'fast'"),
        ({"items": [{}]}, "missing required key train.items[0].lr"),
        ({"sede": 3}, "unknown key(s) train.sede"),
        ({"pair": [1]}, "train.pair: expected 2 items"),
        ({"flag": "yes"}, "train.flag: expected bool"),
    ],
)
def test_errors_name_the_key(data, fragment):
    with pytest.raises(ParamsError) as err:
        from_dict(Outer, data, "train", "params.yaml")
    assert fragment in str(err.value)
    assert str(err.value).startswith("params.yaml")


def test_load_section_names_the_file(tmp_path: Path):
    p = tmp_path / "params.yaml"
    p.write_text("train:\n  seed: 3\n")
    assert load_section(p, "train", Outer).seed == 3
    with pytest.raises(ParamsError, match="missing key other"):
        load_section(p, "other", Outer)
    with pytest.raises(ParamsError, match="not found"):
        load_section(tmp_path / "nope.yaml", "train", Outer)
    p.write_text("train: [unclosed\n")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_section(p, "train", Outer)


def test_post_init_errors_become_params_errors():
    from inviz.models.vgg import ModelConfig

    with pytest.raises(ParamsError, match="model: input_size: expected a positive multiple of 32"):
        from_dict(ModelConfig, {"input_size": 100}, "model", "params.yaml")


def test_flatten():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": [{"e": 1}]}) == {"a.b": 1, "a.c": [1, 2], "d.0.e": 1}


def test_demo_runs_the_same_pipeline_as_the_paper():
    """demo/dvc.yaml is a copy of dvc.yaml (DVC cannot read a symlinked dvc.yaml from git revisions)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert not (root / "demo" / "dvc.yaml").is_symlink()
    assert (root / "demo" / "dvc.yaml").read_text() == (root / "dvc.yaml").read_text(), (
        "demo/dvc.yaml differs from dvc.yaml: cp dvc.yaml demo/dvc.yaml"
    )


def test_exponent_floats_that_pyyaml_reads_as_strings_are_accepted():
    """``lr: 3e-4`` is a float in YAML 1.2 but a string to PyYAML: accepted; other strings are not."""
    assert yaml.safe_load("lr: 3e-4")["lr"] == "3e-4"  # the PyYAML behaviour this works around
    cfg = from_dict(Outer, {"items": [{"lr": "3e-4"}, {"lr": "1E5"}, {"lr": "-2.5e-3"}]}, "train")
    assert [i.lr for i in cfg.items] == [3e-4, 1e5, -2.5e-3]
    for bad in ("3e", "e-4", "0x10", "1e-4 fast"):
        with pytest.raises(ParamsError, match="expected float"):
            from_dict(Outer, {"items": [{"lr": bad}]}, "train")


def test_demo_recipe_docstring_override_parses():
    """``experiments/demo_recipe.py --set train.phases.0.lr=3e-4`` (its docstring example) gives a float."""
    import importlib.util

    from inviz.models.training import TrainConfig

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("demo_recipe", root / "experiments" / "demo_recipe.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    assert "--set train.phases.0.lr=3e-4" in recipe.__doc__
    params = yaml.safe_load((root / "demo" / "params.yaml").read_text())
    recipe.apply_override(params, "train.phases.0.lr=3e-4")
    assert from_dict(TrainConfig, params["train"], "train").phases[0].lr == 3e-4


def test_example_profiles_run_the_same_pipeline():
    """examples/<profile>/dvc.yaml are copies of dvc.yaml; their params hold every key dvc.yaml lists."""
    import yaml

    from inviz.core.config import get_key

    root = Path(__file__).resolve().parents[1]
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    keys = {k if isinstance(k, str) else next(iter(k)) for s in stages.values() for k in s.get("params", [])}
    for profile in ("resnet18_folder", "checkpoint"):
        folder = root / "examples" / profile
        assert (folder / "dvc.yaml").read_text() == (root / "dvc.yaml").read_text(), (
            f"examples/{profile}/dvc.yaml differs from dvc.yaml: cp dvc.yaml examples/{profile}/dvc.yaml"
        )
        params = yaml.safe_load((folder / "params.yaml").read_text())
        for key in sorted(keys):
            get_key(params, key, f"examples/{profile}/params.yaml")  # DVC fails on a missing key
        assert params["root"] == "../.."
        for section, cls in sections():
            load_section(folder / "params.yaml", section, cls)  # every section is a valid config


def sections():
    from inviz.data.dataset import DataConfig
    from inviz.fmaps.explain import ExtractConfig
    from inviz.game.export import ImportConfig
    from inviz.game.reveal import RevealConfig
    from inviz.models.config import ModelConfig
    from inviz.models.training import TrainConfig
    from inviz.views.figures import FigureConfig

    return [
        ("data", DataConfig),
        ("model", ModelConfig),
        ("train", TrainConfig),
        ("extract", ExtractConfig),
        ("masks", RevealConfig),
        ("labels_import", ImportConfig),
        ("figures", FigureConfig),
    ]


def test_every_other_pipeline_is_a_dvc_project_of_its_own():
    """demo/ and examples/*/ hold their own .dvc: DVC at the root sees the paper pipeline only."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    others = [
        p.parent
        for p in root.rglob("dvc.yaml")
        if p.parent != root and not {".venv", "build", ".dvc"} & set(p.relative_to(root).parts)
    ]
    assert {o.relative_to(root).as_posix() for o in others} >= {"demo", "examples/checkpoint"}
    for folder in others:
        assert (folder / ".dvc" / "config").is_file(), f"{folder}: run `dvc init --subdir` there"
    dvc = Path(sys.executable).with_name("dvc")
    dot = subprocess.run([dvc, "dag", "--dot"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert '"train"' in dot and "dvc.yaml:" not in dot, dot[:500]
