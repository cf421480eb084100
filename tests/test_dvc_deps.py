"""Every module a stage runs is a DVC dependency of that stage (reproducibility).

For each stage of ``dvc.yaml`` the test computes the import closure of its stage module
(``inviz.stages.<module>``: every ``inviz`` import, also those inside functions, followed
recursively, with the packages' ``__init__`` files) plus the packaged resources those modules
read, and fails when a file of that closure is not covered by the stage's ``deps`` (a file
dependency, or a folder dependency containing it). A stage whose code changes must re-run.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest
import yaml

from inviz.cli import STAGES

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
#: a packaged resource a module reads: "resources/<file>" or "resources/<folder>/{name}"
RESOURCE = re.compile(r"""["']resources/([^"'{}]+)""")


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (``inviz.a.b``), or None when it is not a module of inviz."""
    base = SRC.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def imported_modules(path: Path, package: str) -> set[str]:
    """The ``inviz`` modules ``path`` imports anywhere in its body (``from x import sub`` included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "inviz"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.split(".")[0] != "inviz":
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}") is not None}
    return out


@cache
def closure(module: str) -> frozenset[Path]:
    """Files executed when ``module`` is imported and run: its import closure and parent packages."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # parent packages run their __init__
        path = module_file(name)
        if path is None:
            continue
        package = name if path.name == "__init__.py" else ".".join(parts[:-1])
        todo += sorted(imported_modules(path, package) - seen)
    files = {module_file(n) for n in seen} - {None}
    for f in list(files):
        for res in RESOURCE.findall(f.read_text(encoding="utf-8")):
            files.add(SRC / "inviz" / "resources" / res.rstrip("/"))
    return frozenset(files)


def stage_module(cmd: str) -> str:
    stage = cmd.split()[1]
    return f"inviz.stages.{STAGES[stage]}"


def dep_paths(deps: list, root: Path) -> list[Path]:
    out = []
    for d in deps:
        d = d if isinstance(d, str) else next(iter(d))
        if d.startswith("${root}/"):
            out.append((root / d[len("${root}/") :]).resolve())
    return out


def uncovered(files: frozenset[Path], deps: list[Path]) -> list[str]:
    return sorted(str(f.relative_to(ROOT)) for f in files if not any(f == d or d in f.parents for d in deps))


def dvc_stages(path: Path = ROOT / "dvc.yaml") -> dict:
    return yaml.safe_load(path.read_text())["stages"]


@pytest.mark.parametrize("stage", list(dvc_stages()))
def test_stage_deps_cover_its_import_closure(stage):
    spec = dvc_stages()[stage]
    cmd = " ".join(spec["cmd"].split()) if isinstance(spec["cmd"], str) else spec["cmd"][0]
    files = closure(stage_module(cmd))
    assert files, stage
    missing = uncovered(files, dep_paths(spec.get("deps", []), ROOT))
    assert not missing, (
        f"dvc.yaml stage '{stage}' runs code it does not depend on: add to its deps: {missing}"
    )


def test_code_deps_exist():
    """A dependency on a file that no longer exists would make DVC fail (or hide a rename)."""
    for stage, spec in dvc_stages().items():
        for d in dep_paths(spec.get("deps", []), ROOT):
            assert d.exists(), f"dvc.yaml stage '{stage}': dependency {d.relative_to(ROOT)} does not exist"


def test_closure_detects_a_missing_dependency():
    """The check itself can fail: drop a module the extract stage runs from its deps."""
    spec = dvc_stages()["extract"]
    files = closure(stage_module(spec["cmd"]))
    deps = dep_paths(spec["deps"], ROOT)
    gradients = SRC / "inviz" / "fmaps" / "gradients.py"
    assert gradients in files
    narrowed = [d for d in deps if d != gradients and d != gradients.parent]
    assert "src/inviz/fmaps/gradients.py" in uncovered(files, narrowed)


def test_closure_follows_function_level_and_submodule_imports(tmp_path):
    """Stage modules import inside ``run``; ``from pkg import module`` imports the module."""
    files = closure("inviz.stages.data")
    rel = {str(f.relative_to(SRC)) for f in files}
    assert {
        "inviz/data/dataset.py",
        "inviz/core/io.py",
        "inviz/__init__.py",
        "inviz/stages/__init__.py",
    } <= rel


def test_run_settings_are_never_params_deps():
    """A section's ``run:`` sub-section (execution settings) must not be a DVC dependency."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    with_run = {s for s, v in params.items() if isinstance(v, dict) and "run" in v}
    assert {"data", "train", "select", "extract", "masks", "figures"} <= with_run
    for stage, spec in dvc_stages().items():
        for key in spec.get("params", []):
            key = key if isinstance(key, str) else next(iter(key))
            assert key not in with_run, f"stage '{stage}' depends on all of '{key}', including {key}.run"
            assert ".run" not in f".{key}", f"stage '{stage}' depends on the run setting {key}"
