"""End to end: the demo pipeline through DVC, at a reduced size, in a fresh git+DVC repository.

Checks that every stage runs offline, metrics reach `dvc metrics show`, runs reach MLflow,
a second `dvc repro` re-runs nothing and `dvc exp run -S train.seed=…` works.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from paper_world import failure, pipeline_env, set_key

ROOT = Path(__file__).resolve().parents[1]

#: demo/params.yaml values replaced to keep the run short (dotted keys)
OVERRIDES = {
    "data.synthetic.n_train_per_class": 24,
    "data.synthetic.n_val_per_class": 12,
    "train.phases": [{"name": "all", "trainable": ["all"], "lr": 5.0e-4, "max_epochs": 2, "patience": 2}],
    "select.per_class": 1,
    "select.on_shortfall": "warn",
    # the 2-epoch model selects few images: one survey image, few LIME/SHAP samples
    "survey.n_images": 1,
    "survey.lime_samples": 40,
    "survey.shap_samples": 8,
    "survey.shap_background": 8,
    "global.tcav.n_runs": 5,
    # labels_simulate plays the web game over in-process HTTP: fewer plays per map keep it short
    "game.plays_per_map": 3,
    "transfer.more_images.max_per_class": 2,
    "figures.dpi": 60,
    # explanation quality on a few images, short curves (the measures are tested in tests/test_quality_*)
    "evaluate.concept.n_images": 3,
    "evaluate.pixel.n_images": 2,
    "evaluate.pixel.steps": 10,
    "evaluate.road.n_images": 2,
    "evaluate.sanity.n_images": 1,
    "evaluate.localization.n_images": 2,
}


def run(cmd: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, failure(cmd, proc)
    return proc


def copy_code(repo: Path) -> None:
    """Copy src/ into ``repo`` and link the Sentence-BERT model of `make install` (labels_analyze's dependency)."""
    shutil.copytree(ROOT / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (repo / "models").mkdir()
    (repo / "models" / "sbert").symlink_to(ROOT / "models" / "sbert", target_is_directory=True)


def init_repo(repo: Path, env: dict) -> None:
    """Make ``repo`` a git + DVC repository with everything committed."""
    (repo / ".gitignore").write_text("mlflow.db\n")
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "config", "core.analytics", "false"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "init"], repo, env)


@pytest.fixture(scope="module")
def demo_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("e2e")
    env = pipeline_env(repo)
    copy_code(repo)
    shutil.copy(ROOT / "dvc.yaml", repo / "dvc.yaml")
    params = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())
    params["root"] = "."
    for key, value in OVERRIDES.items():
        set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    init_repo(repo, env)
    first = run(["dvc", "repro"], repo, env)
    return repo, env, first


@pytest.mark.e2e
@pytest.mark.slow
def test_demo_pipeline_runs_offline(demo_repo):
    import pandas as pd

    repo, env, first = demo_repo
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for stage in stages:
        assert f"Running stage '{stage}'" in first.stdout, stage
    for path in [
        "data/index.csv",
        "data/parts.npz",
        "models/model.safetensors",
        "data/selected.csv",
        "reports/train/confusion.png",
        "reports/train/history.csv",
        "reports/table1.csv",
        "data/masks.csv",
        "data/labels/inv.csv",
        "reports/table2/table2_tests.csv",
        "reports/inv/index.csv",
        "reports/global/global.csv",
        "reports/transfer/loio.md",
        "data/transfer/label_model.json",
        "reports/explorer/index.html",
        "reports/survey/questionnaire.md",
        "reports/paper_comparison.md",
    ]:
        assert (repo / path).is_file(), path
    metrics = json.loads(run(["dvc", "metrics", "show", "--json"], repo, env).stdout)
    flat = json.dumps(metrics)
    for key in (
        "n_images",
        "val_accuracy",
        "n_selected",
        "n_clusters",
        "n_files",
        "n_cluster_maps_labelled",
        "n_figures",
        "n_labels",
        "n_cards",
        "n_panels",
    ):
        assert f'"{key}"' in flat, key
    # a 2-epoch model classifies few test images right: selection takes only correct ones, at most
    # one per class, and reports the shortfall of the rest
    sel = pd.read_csv(repo / "data/selected.csv")
    report = json.loads((repo / "metrics/select.json").read_text())
    assert len(sel) == report["n_selected"] >= 1
    assert (sel["pred"] == sel["label"]).all() and sel["label"].is_unique
    assert report["n_selected"] + report["shortfall"] == 10
    # every selected image was explained on every layer
    ext = json.loads((repo / "metrics/extract.json").read_text())
    assert ext["n_images"] == len(sel) and sum(ext["status_counts"].values()) == 9 * len(sel)


@pytest.mark.e2e
@pytest.mark.slow
def test_second_repro_reruns_nothing(demo_repo):
    repo, env, _ = demo_repo
    status = run(["dvc", "status"], repo, env).stdout
    assert status.split() == ["inputs:", "always", "changed"], status  # only the outside-input fingerprint
    again = run(["dvc", "repro"], repo, env).stdout
    assert re.findall(r"Running stage '(\w+)'", again) == ["inputs"], again


@pytest.mark.e2e
@pytest.mark.slow
def test_runs_are_in_mlflow(demo_repo):
    import mlflow

    repo, env, _ = demo_repo
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(
        yaml.safe_load((repo / "params.yaml").read_text())["mlflow"]["experiment"]
    )
    runs = client.search_runs([exp.experiment_id])
    stages = {r.data.tags.get("stage") for r in runs}
    assert {"data", "train", "select"} <= stages
    train = next(r for r in runs if r.data.tags["stage"] == "train")
    assert "val_accuracy" in train.data.metrics and train.data.tags.get("git_commit")
    assert train.data.params["train.seed"] == str(
        yaml.safe_load((repo / "params.yaml").read_text())["train"]["seed"]
    )
    # the stage runs of the first `dvc repro` form one pipeline execution, nested under one parent run
    stage_runs = [r for r in runs if r.data.tags.get("inviz.kind") != "pipeline"]
    first = [r for r in stage_runs if r.data.tags.get("dvc_exp_name", "") == ""]
    pipeline_ids = {r.data.tags.get("inviz.pipeline_run") for r in first}
    assert len(pipeline_ids) == 1 and None not in pipeline_ids, pipeline_ids
    parent_ids = {r.data.tags.get("mlflow.parentRunId") for r in first}
    assert len(parent_ids) == 1
    parent = client.get_run(parent_ids.pop())
    assert (
        parent.data.tags["inviz.kind"] == "pipeline"
        and parent.data.tags["inviz.pipeline_run"] in pipeline_ids
    )
    # a stage run lasts as long as its stage (it starts with the stage, not at the logging step)
    tr = next(r for r in first if r.data.tags["stage"] == "train")
    assert tr.info.end_time - tr.info.start_time > 1000


@pytest.mark.e2e
@pytest.mark.slow
def test_dvc_experiment_with_other_seed(demo_repo):
    import pandas as pd

    repo, env, _ = demo_repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "lock"], repo, env)
    base = yaml.safe_load((repo / "params.yaml").read_text())["train"]["seed"]  # before exp run applies 7
    out = run(["dvc", "exp", "run", "-S", "train.seed=7", "train"], repo, env).stdout
    assert "Running stage 'train'" in out and "Running stage 'data'" not in out
    shown = json.loads(run(["dvc", "exp", "show", "--json"], repo, env).stdout)
    seeds = [data["params"]["params.yaml"]["data"]["train"]["seed"] for data in _exp_data(shown)]
    assert 7 in seeds and base in seeds and base != 7, seeds
    # the ablation report on it: the experiment ran only `train`, so every outcome it shows is stale
    from inviz.comparison.ablations import OUTCOMES, collect, exp_records
    from inviz.comparison.staleness import cache_listing, read_locks

    frame = collect(
        shown, locks=read_locks((r["rev"] for r in exp_records(shown)), repo), listing=cache_listing(repo)
    )
    exp = frame[frame["kind"] == "experiment"].iloc[0]
    assert exp["stale"].startswith(
        "extract: its input models/model.safetensors changed when train ran again; labels_analyze:"
    ), exp["stale"]
    assert all(pd.isna(exp[c]) for c in OUTCOMES if c in frame)
    ref = frame[
        frame["kind"] != "experiment"
    ]  # the workspace holds the experiment: the commit is the baseline
    assert (
        list(ref["kind"]) == ["commit"]
        and ref["stale"].iloc[0] == ""
        and ref["leftover_clusters"].notna().all()
    )


def _exp_data(node):
    """Every ``data`` record (workspace, baseline, experiments) of ``dvc exp show --json``."""
    if isinstance(node, dict):
        if "params" in node and isinstance(node["params"], dict):
            yield node
        for value in node.values():
            yield from _exp_data(value)
    elif isinstance(node, list):
        for value in node:
            yield from _exp_data(value)


# --- the README, followed as a user would, against the finished reduced demo ---------------------------

#: every shell command of the README's ```bash blocks, by the folder it is typed in ("root" = the
#: project root, "demo" = after `cd demo`): run (in that folder; the finished reduced demo stands in
#: for demo/), or skipped with the reason. A README command missing here fails the test, so the
#: README cannot drift from what is tested.
SKIP = "skip"
README_COMMANDS: dict[tuple[str, str], str] = {
    ("root", "make demo"): f"{SKIP}: the whole demo (the fixture ran it, reduced, with dvc repro)",
    ("root", "make test"): f"{SKIP}: this test-suite",
    ("root", "make reproduce"): f"{SKIP}: the paper configuration (tests/test_paper_e2e.py, reduced)",
    ("root", "make mlflow"): f"{SKIP}: starts a server",
    ("root", "source .venv/bin/activate"): f"{SKIP}: the tests run with the venv's PATH",
    ("root", "cd demo"): "cd",
    ("demo", "cd .."): "cd",
    ("root", "inviz --help"): "run",
    ("demo", "dvc metrics show"): "run",
    ("demo", "dvc plots show"): "run",
    ("demo", "dvc exp show --only-changed"): "run",
    ("demo", "dvc exp run -S train.seed=7"): f"{SKIP}: trains (test_dvc_experiment_with_other_seed)",
    ("demo", "dvc exp run --queue -S 'train.seed=1,2' && dvc queue start"): f"{SKIP}: trains twice",
    ("root", "dvc dag --md"): "run",
    ("root", "dvc status"): "run",
    ("root", "dvc metrics show"): "run",
    ("root", "dvc plots show"): f"{SKIP}: the paper pipeline has not run in the checkout",
    ("root", "cd demo && dvc metrics show && cd .."): "run",
    ("root", "inviz table2 --summary summary.csv --out out/"): "run",
    ("root", "inviz table2 --responses ratings.csv --out out/"): "run",
    (
        "root",
        "inviz survey_import --form questionnaire_form.csv --out responses.csv --missing missing.csv",
    ): "run",
    ("root", "inviz table2 --responses responses.csv --out table2/"): "run",
    (
        "root",
        'make demo && git add demo/dvc.lock demo/metrics && git commit -m "demo baseline (this machine)"',
    ): f"{SKIP}: commits",
    ("root", "python experiments/ablations.py list"): "run",
    ("root", "python experiments/ablations.py run --sweep k_range --sweep prune"): f"{SKIP}: trains",
    ("root", "python experiments/ablations.py report"): f"{SKIP}: needs finished sweeps",
    ("root", "python experiments/ablations.py run --profile paper --sweep weights"): f"{SKIP}: paper data",
    ("root", "jupyter lab notebooks/"): f"{SKIP}: starts a server",
    ("root", "jupyter execute notebooks/explore_inv.ipynb"): "run",
    ("root", "dvc repro extract"): f"{SKIP}: the paper pipeline (tests/test_paper_e2e.py, reduced)",
    ("root", "dvc repro masks"): f"{SKIP}: the paper pipeline (tests/test_paper_e2e.py, reduced)",
    ("root", "dvc repro"): f"{SKIP}: the paper pipeline (tests/test_paper_e2e.py, reduced)",
    **{
        ("root", line): f"{SKIP}: the extract stage's own command (the fixture's dvc repro runs it)"
        for line in (
            "inviz extract --params params.yaml --images data/images --selected data/selected.csv \\",
            "--model models/model.safetensors --out data/extract --table1-csv reports/table1.csv \\",
            "--table1-md reports/table1.md --table1-tex reports/table1.tex \\",
            "--comparison reports/table1_vs_paper.md --metrics metrics/extract.json",
        )
    },
    ("root", "torchrun --standalone --nproc_per_node 4 -m inviz extract --params params.yaml ..."): (
        f"{SKIP}: 4 processes (tests/test_distributed.py runs torchrun with 2)"
    ),
    (
        "root",
        "torchrun --nnodes 2 --nproc_per_node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 -m inviz extract ...",
    ): f"{SKIP}: two machines (tests/test_distributed.py starts two 'nodes' on one)",
    ("root", ".venv/bin/python experiments/bench_extract.py"): f"{SKIP}: a benchmark (minutes)",
    (
        "root",
        ".venv/bin/python experiments/bench_extract.py --gpu-images 256 --gpu-batch-size 32 --skip cpu",
    ): (f"{SKIP}: needs a GPU"),
    ("root", ".venv/bin/python experiments/bench_extract.py --reference --images 4"): f"{SKIP}: a benchmark",
    ("root", ".venv/bin/python experiments/bench_ward.py"): f"{SKIP}: a benchmark",
    ("root", "export INVIZ_GAME_ADMIN_TOKEN=<a long secret>"): f"{SKIP}: sets a variable of the user's shell",
    (
        "root",
        "inviz game serve --params params.yaml",
    ): f"{SKIP}: starts a server (tests/test_game_browser.py)",
    (
        "root",
        "inviz game export --params params.yaml",
    ): f"{SKIP}: needs a played game (tests/test_game_export.py)",
    (
        "root",
        "inviz game report --params params.yaml",
    ): f"{SKIP}: needs a played game (tests/test_game_export.py)",
    ("root", "inviz explain photo.jpg scan_*.png --model models/model.safetensors \\"): (
        f"{SKIP}: your photos (tests/test_transfer_stages.py explains new images with the same command)"
    ),
    ("root", "--labels data/transfer/label_model.json --out explained/"): (
        f"{SKIP}: the second line of the inviz explain command above"
    ),
}


def readme_commands(text: str) -> list[tuple[str, str]]:
    """The README's shell commands with the folder each is typed in (each block starts at the root)."""
    import re

    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        where = "root"
        for line in block.splitlines():
            cmd = re.split(r"\s{2,}#|\s#\s", line.strip())[0].strip()
            if not cmd or cmd.startswith("#"):
                continue
            out.append((where, cmd))
            if cmd == "cd demo":
                where = "demo"
            elif cmd == "cd ..":
                where = "root"
    return out


def _readme_inputs(work: Path, demo: Path) -> None:
    """The files the README's Table 2 examples read: a summary, raw ratings, a filled-in form."""
    import numpy as np
    import pandas as pd

    from inviz.survey.table2 import paper_table2

    paper_table2().to_csv(work / "summary.csv", index=False)
    rng = np.random.default_rng(0)
    form = pd.read_csv(demo / "reports" / "survey" / "questionnaire_form.csv")
    cols = [c for c in form.columns if " | " in c]
    rows = [{"participant": f"p{i}", "ai_background": "yes" if i % 2 else "no"} for i in range(8)]
    filled = pd.DataFrame([{**r, **{c: int(rng.integers(1, 8)) for c in cols}} for r in rows])
    filled.to_csv(work / "questionnaire_form.csv", index=False)
    long = filled.melt(["participant", "ai_background"], cols, "column", "rating")
    long[["method", "aspect"]] = long.pop("column").str.split(" | ", regex=False, expand=True)
    long.to_csv(work / "ratings.csv", index=False)


@pytest.mark.e2e
@pytest.mark.slow
def test_readme_commands_work(demo_repo, tmp_path):
    """Every cheap README command runs (against the finished demo) and says what the README promises."""
    repo, env, _ = demo_repo
    commands = readme_commands((ROOT / "README.md").read_text())
    unknown = [c for c in commands if c not in README_COMMANDS]
    assert not unknown, f"README commands this test does not know (add them to README_COMMANDS): {unknown}"
    work = tmp_path / "work"
    work.mkdir()
    _readme_inputs(work, repo)
    env = {**env, "INVIZ_PIPELINE": str(repo), "COLUMNS": "200"}
    outputs: dict[tuple[str, str], str] = {}
    for where, cmd in dict.fromkeys(commands):
        action = README_COMMANDS[(where, cmd)]
        if action != "run":
            continue
        if cmd.startswith("cd demo && "):  # the README's one-liner for the demo, typed at the root
            where, cmd = "demo", cmd.removeprefix("cd demo && ").removesuffix(" && cd ..")
        uses_checkout = cmd.startswith(("dvc", "python experiments", "jupyter"))
        cwd = repo if where == "demo" else ROOT if uses_checkout else work
        proc = subprocess.run(cmd, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, failure(f"[{where}] {cmd}", proc)
        outputs[(where, cmd)] = proc.stdout + proc.stderr
    helptext = outputs[("root", "inviz --help")]
    assert all(stage in helptext for stage in ("data", "extract", "labels_import", "compare")), helptext
    # the root shows the paper pipeline only; the demo folder shows the demo
    for key in (("root", "dvc dag --md"), ("root", "dvc status"), ("root", "dvc metrics show")):
        assert "demo/" not in outputs[key], key
    assert (
        "flowchart" in outputs[("root", "dvc dag --md")]
        and "labels_import" in outputs[("root", "dvc dag --md")]
    )
    shown = outputs[("demo", "dvc metrics show")]
    assert "metrics/train.json" in shown and "val_accuracy" in shown
    plots = (repo / "dvc_plots" / "index.html").read_text()
    assert "train_loss" in plots and "missing" not in outputs[("demo", "dvc plots show")].lower()
    for out in ("out/table2.csv", "responses.csv", "table2/table2_tests.csv"):
        assert (work / out).is_file(), out
    assert "threshold" in outputs[("root", "python experiments/ablations.py list")]
