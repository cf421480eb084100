"""Ablation sweeps: the dvc commands they become and the report built from `dvc exp show --json`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from inviz.comparison.ablations import (
    SWEEPS,
    collect,
    experiment_name,
    queue_commands,
    report_markdown,
    set_arguments,
    write_report,
)
from inviz.core.config import from_dict
from inviz.fmaps.explain import ExtractConfig

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]


def test_every_variant_is_a_valid_extract_config():
    base = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())["extract"]
    for sweep, (_, variants) in SWEEPS.items():
        for v in variants:
            section = json.loads(json.dumps(base))
            for key, value in v.overrides.items():
                node = section
                parts = key.split(".")[1:]
                for p in parts[:-1]:
                    node = node[p]
                assert parts[-1] in node, (sweep, key)  # only existing keys are swept
                node[parts[-1]] = yaml.safe_load(json.dumps(value) if not isinstance(value, str) else value)
            from_dict(ExtractConfig, section, "extract")


def test_commands():
    v = SWEEPS["k_range"][1][0]
    assert experiment_name("k_range", v) == "abl-k_range-2-6"
    assert set_arguments(v) == ["-S", "extract.k_min=2", "-S", "extract.k_max=6"]
    thr = SWEEPS["threshold"][1][0]
    assert (
        set_arguments(thr)[1]
        == "extract.threshold.by_channels=[[512, 0.0875], [256, 0.175], [128, 0.35], [64, 0.7]]"
    )
    cmds = queue_commands(["prune", "k_range"])
    assert cmds[0] == [
        "dvc",
        "exp",
        "run",
        "--queue",
        "-n",
        "abl-prune-off",
        "-S",
        "extract.prune=false",
        "labels_analyze",
        "evaluate",
    ]
    assert len(cmds) == 3 and queue_commands(["prune"], None)[0][-1] == "extract.prune=false"
    assert queue_commands(["prune"], "labels_analyze")[0][-1] == "labels_analyze"


def exp_record(name, rev, k_min, clusters, labelled):
    table1 = {
        "block4_conv1": {"leftover_clusters": clusters, "leftover_fmaps": 40.0, "leftover_weight": 70.0},
        "block5_conv3": {"leftover_clusters": clusters + 1, "leftover_fmaps": 20.0, "leftover_weight": 80.0},
    }
    return {
        "rev": rev,
        "name": name,
        "data": {
            "rev": rev,
            "params": {
                "params.yaml": {"data": {"extract": {"k_min": 99}}},  # the other pipeline's
                "demo/params.yaml": {"data": {"extract": {"k_min": k_min, "k_max": 8, "prune": True}}},
            },
            "metrics": {
                "demo/metrics/extract.json": {"data": {"table1": table1, "n_cluster_maps_kept": 100 + k_min}},
                "demo/metrics/labels_analyze.json": {
                    "data": {
                        "n_cluster_maps_labelled": labelled,
                        "n_merged_maps": 50,
                        "closed_loop": {"accuracy": 0.8},
                    }
                },
                "demo/metrics/evaluate.json": {
                    "data": {"headline": {"concept_rho": 0.1 * k_min, "deletion_auc": 0.5 - 0.01 * k_min}}
                },
            },
        },
    }


def exp_show():
    """The shape of DVC 3's `dvc exp show --json`: baseline commits with nested experiments."""
    base = exp_record(None, "workspace", 3, 3.0, 90)
    commit = exp_record("main", "abc123", 3, 3.0, 90)
    commit["experiments"] = [
        {"revs": [exp_record("abl-k_range-2-6", "e1", 2, 2.5, 88)], "name": "abl-k_range-2-6"},
        {"revs": [exp_record("abl-k_range-4-10", "e2", 4, 4.0, 91)], "name": "abl-k_range-4-10"},
        {"revs": [{"rev": "e3", "name": "failed", "data": {"params": {}, "metrics": {}}}]},
        {"revs": [{"rev": "e4", "name": "broken", "data": None, "error": {"msg": "x"}}]},
    ]
    return [base, commit]


def test_collect():
    frame = collect(exp_show(), folder="demo/")
    assert list(frame["sweep"]) == ["baseline", "k_range", "k_range"]  # workspace == commit: one baseline
    row = frame.set_index("name").loc["abl-k_range-2-6"]
    assert row["variant"] == "2-6" and row["extract.k_min"] == 2
    assert (
        row["leftover_clusters"] == 3.0 and row["leftover_fmaps"] == 30.0 and row["leftover_weight"] == 75.0
    )
    assert row["block5_conv3.leftover_clusters"] == 3.5 and row["n_cluster_maps_kept"] == 102
    assert row["n_cluster_maps_labelled"] == 88 and row["closed_loop_accuracy"] == 0.8
    assert row["concept_rho"] == pytest.approx(0.2) and row["deletion_auc"] == pytest.approx(0.48)
    assert pd.isna(row["pointing_game"])  # not measured (no evaluate value)
    assert collect([]).empty


def test_report(tmp_path):
    frame = collect(exp_show(), folder="demo/")
    md = report_markdown(frame)
    assert "## k_range" in md and "| 4-10 | `abl-k_range-4-10` | 4.5 (+1) |" in md
    assert md.index("`abl-k_range-2-6`") < md.index("`abl-k_range-4-10`")  # in the sweep's order
    assert "| 104 (+1) |" in md  # counts as integers
    assert "## Which variant explains best" in md
    assert (
        "concept deletion rho (w_C vs logit drop) (higher is better): best k_range 4-10 (0.4); baseline 0.3"
        in md
    )
    assert "deletion AUC of INV (lower is better): best k_range 4-10 (0.46); baseline 0.47" in md
    files = write_report(frame, tmp_path / "abl")
    assert [f.name for f in files] == ["ablations.csv", "ablations.md", "k_range.png"]
    assert (tmp_path / "abl" / "k_range.pdf").is_file()
    assert len(pd.read_csv(tmp_path / "abl" / "ablations.csv")) == 3


def _lock(extract_model_md5):
    """A dvc.lock whose extract recorded model ``extract_model_md5`` (stale unless ``M``)."""
    return {
        "stages": {
            "train": {"outs": [{"path": "models/m.pt", "md5": "M"}]},
            "extract": {
                "deps": [{"path": "models/m.pt", "md5": extract_model_md5}],
                "outs": [
                    {"path": "data/extract", "md5": "E.dir"},
                    {"path": "metrics/extract.json", "md5": "e"},
                ],
            },
            "labels_analyze": {
                "deps": [{"path": "data/extract", "md5": "OLD.dir"}],  # ran before extract ran again
                "outs": [{"path": "metrics/labels_analyze.json", "md5": "l"}],
            },
            "evaluate": {
                "deps": [{"path": "data/extract", "md5": "E.dir"}],
                "outs": [{"path": "metrics/evaluate.json", "md5": "q"}],
            },
        }
    }


def test_collect_blanks_outcomes_of_stages_the_experiment_did_not_run():
    frame = collect(exp_show(), folder="demo/", locks={"e1": _lock("M")})
    row = frame.set_index("name").loc["abl-k_range-2-6"]
    assert row["stale"] == "labels_analyze: its input data/extract changed when extract ran again"
    assert pd.isna(row["n_cluster_maps_labelled"]) and pd.isna(row["closed_loop_accuracy"])
    assert row["n_cluster_maps_kept"] == 102 and row["concept_rho"] == pytest.approx(0.2)  # these ran
    other = frame.set_index("name").loc["abl-k_range-4-10"]  # no lock given: nothing blanked
    assert other["stale"] == "" and other["n_cluster_maps_labelled"] == 91
    md = report_markdown(frame)
    assert "| 2-6 | `abl-k_range-2-6` | 3 (-0.5) | 30 (+0) | 75 (+0) | 102 (-1) | — | — | — |" in md
    assert (
        "- `abl-k_range-2-6`: the outcomes of labels_analyze are left blank (—): that stage did not run on "
        "this run's inputs (labels_analyze: its input data/extract changed when extract ran again), so its "
        "metrics file is an older run's. Run with it among the targets to fill them." in md
    )
    # an experiment whose train ran again: every outcome is an older run's, the row stays (all blank)
    frame = collect(exp_show(), folder="demo/", locks={"e1": _lock("M0")})
    row = frame.set_index("name").loc["abl-k_range-2-6"]
    assert row["stale"].startswith(
        "extract: its input models/m.pt changed when train ran again; labels_analyze:"
    )
    assert all(
        pd.isna(row[c]) for c in ("leftover_clusters", "block5_conv3.leftover_clusters", "concept_rho")
    )


def test_collect_keeps_the_current_baseline_and_its_experiments():
    shown = exp_show()
    same = exp_record(None, "same42", 3, 3.0, 90)  # an older commit with the same results
    same["experiments"] = [{"revs": [exp_record("abl-prune-off", "e5", 3, 4.0, 95)]}]
    old = exp_record(None, "old999aaaa", 3, 5.0, 70)  # another model's baseline
    old["experiments"] = [
        {"revs": [exp_record("abl-k_range-2-6", "e6", 2, 1.0, 10)]},
        {"revs": [exp_record("abl-k_range-4-10", "e7", 4, 9.0, 11)]},
    ]
    shown += [same, old]
    frame = collect(shown, folder="demo/")
    assert list(frame["name"]) == ["workspace", "abl-k_range-2-6", "abl-k_range-4-10", "abl-prune-off"]
    assert list(frame["baseline"]) == ["workspace", "abc123", "abc123", "same42"]
    assert frame.attrs["left_out"] == [
        "2 experiment(s) run on commit old999a (abl-k_range-2-6, abl-k_range-4-10): that baseline's "
        "results differ from the current one (workspace)"
    ]
    assert "- Left out: 2 experiment(s) run on commit old999a" in report_markdown(frame)
    everything = collect(shown, folder="demo/", current_only=False)
    assert len(everything) == 7 and "old999aaaa" in set(everything["rev"])  # workspace == abc123 == same42
    # a workspace left stale by `dvc exp run <stage>` is not the reference: the commit is
    frame = collect(shown, folder="demo/", locks={"workspace": _lock("M")})
    assert frame["name"].iloc[0] == "main" and frame["stale"].iloc[0] == ""


def test_failed_and_running_experiments_are_left_out():
    shown = exp_show()
    shown[1]["experiments"] += [
        {
            "executor": {"state": "failed"},
            "name": "abl-prune-off",
            "revs": [
                {**exp_record("abl-prune-off", "e8", 3, 3.0, 90), "error": {"msg": "Experiment run failed"}}
            ],
        },
        {
            "executor": {"state": "running"},
            "name": "abl-pca-10",
            "revs": [exp_record("abl-pca-10", "e9", 3, 1.0, 5)],
        },
    ]
    frame = collect(shown, folder="demo/")
    assert list(frame["name"]) == ["workspace", "abl-k_range-2-6", "abl-k_range-4-10"]
    assert frame.attrs["left_out"] == [
        "`abl-prune-off`: failed (Experiment run failed); its metrics files are not its own",
        "`abl-pca-10`: running (running); its metrics files are not its own",
    ]


def test_experiments_of_a_head_with_other_results_are_left_out():
    shown = exp_show()
    shown[0] = exp_record(None, "workspace", 3, 7.0, 10)  # the workspace re-ran: other results than HEAD
    frame = collect(shown, folder="demo/")
    assert list(frame["name"]) == ["workspace"]
    assert frame.attrs["left_out"] == [
        "2 experiment(s) run on commit abc123 (abl-k_range-2-6, abl-k_range-4-10): that baseline's results "
        "differ from the current one (workspace)"
    ]
    shown[0] = {
        "rev": "workspace",
        "name": None,
        "data": {"params": {}, "metrics": {}},
    }  # nothing measured yet
    del shown[1]["data"]["metrics"]  # nor at HEAD: its experiments are kept
    frame = collect(shown, folder="demo/")
    assert list(frame["name"]) == ["abl-k_range-2-6", "abl-k_range-4-10"] and frame.attrs["left_out"] == []
    shown[0] = exp_record(None, "workspace", 3, 3.0, 90)  # results in the workspace only (not committed)
    frame = collect(shown, folder="demo/")
    assert list(frame["name"]) == ["workspace", "abl-k_range-2-6", "abl-k_range-4-10"]
