"""Stale stages of a DVC run from its dvc.lock (what the ablation report blanks)."""

from __future__ import annotations

import subprocess

from inviz.comparison.ablations import SOURCES
from inviz.comparison.staleness import blank_stale, cache_listing, producers, read_locks, stale_stages

#: train ran again after extract (extract recorded the old model); labels reads a file inside
#: extract's output folder; evaluate recorded the new model; report reads evaluate's metrics
LOCK = {
    "schema": "2.0",
    "stages": {
        "train": {
            "params": {"params.yaml": {"train.seed": 1, "train.tol": "1e-07"}},
            "deps": [{"path": "data/x.csv", "md5": "d1"}],
            "outs": [{"path": "models/m.pt", "md5": "M2"}],
        },
        "extract": {
            "params": {"params.yaml": {"extract.k_min": 3}},
            "deps": [{"path": "models/m.pt", "md5": "M1"}],
            "outs": [{"path": "data/extract", "md5": "E1.dir"}, {"path": "metrics/extract.json", "md5": "x"}],
        },
        "labels": {
            "deps": [{"path": "data/extract/clusters.parquet", "md5": "c"}],
            "outs": [{"path": "metrics/labels_analyze.json", "md5": "l"}],
        },
        "evaluate": {
            "params": {"params.yaml": {"evaluate.n": 2, "masks.sigma": {8: 12}}},
            "deps": [{"path": "models/m.pt", "md5": "M2"}],
            "outs": [{"path": "metrics/evaluate.json", "md5": "q"}],
        },
        "report": {
            "deps": [{"path": "./metrics/evaluate.json", "md5": "q"}],
            "outs": [{"path": "reports/r.md", "md5": "r"}],
        },
    },
}
#: the run's params as `dvc exp show --json` has them (JSON: string keys, 1e-07 a float)
PARAMS = {
    "train": {"seed": 1, "tol": 1e-07},
    "extract": {"k_min": 3},
    "evaluate": {"n": 2},
    "masks": {"sigma": {"8": 12}},
}


def test_a_changed_input_makes_a_stage_and_its_descendants_stale():
    assert producers(LOCK)["data/extract"] == ("extract", "E1.dir")
    assert stale_stages(LOCK, PARAMS) == {
        "extract": "its input models/m.pt changed when train ran again",
        "labels": "it depends on the stale stage extract",
    }
    assert stale_stages(LOCK) == stale_stages(LOCK, PARAMS)  # params equal whichever parser read them


def test_a_changed_or_missing_parameter_makes_a_stage_stale():
    other = {**PARAMS, "evaluate": {"n": 3}}
    stale = stale_stages(LOCK, other)
    assert list(stale) == ["extract", "labels", "evaluate", "report"]  # the lock's order
    assert stale["evaluate"] == "it ran with another params.yaml value of evaluate.n"
    assert stale["report"] == "it depends on the stale stage evaluate"
    missing = {k: v for k, v in PARAMS.items() if k != "masks"}
    assert stale_stages(LOCK, missing)["evaluate"] == "it ran with another params.yaml value of masks.sigma"
    fresh = {"schema": "2.0", "stages": {k: v for k, v in LOCK["stages"].items() if k != "extract"}}
    assert stale_stages(fresh, PARAMS) == {}  # labels' folder has no producer left: nothing to compare


def test_blank_stale_blanks_only_what_stale_stages_wrote():
    row = {
        "leftover_clusters": 3.0,
        "block5_conv3.leftover_clusters": 2.5,
        "n_cluster_maps_kept": 100,
        "n_cluster_maps_labelled": 88,
        "concept_rho": 0.3,
        "extract.k_min": 3,
    }
    note = blank_stale(row, SOURCES, LOCK, PARAMS)
    assert note == (
        "extract: its input models/m.pt changed when train ran again; labels: it depends on the stale stage extract"
    )
    assert row == {
        "leftover_clusters": None,
        "block5_conv3.leftover_clusters": None,
        "n_cluster_maps_kept": None,
        "n_cluster_maps_labelled": None,
        "concept_rho": 0.3,  # evaluate ran on the new model
        "extract.k_min": 3,  # a parameter, not an outcome
    }


def test_read_locks_from_git_commits_and_the_workspace(tmp_path):
    def git(*args):
        return subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    git("config", "user.email", "t@example.org")
    git("config", "user.name", "t")
    (tmp_path / "README").write_text("x\n")
    git("add", "README")
    git("commit", "-qm", "before the first run")
    first = git("rev-parse", "HEAD").strip()
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  a:\n    outs:\n    - path: a.txt\n      md5: A1\n"
    )
    git("add", "dvc.lock")
    git("commit", "-qm", "run")
    second = git("rev-parse", "HEAD").strip()
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  a:\n    outs:\n    - path: a.txt\n      md5: A2\n"
    )
    locks = read_locks([second, "workspace", first, second], tmp_path)
    assert list(locks) == [second, "workspace"]  # the commit without a lock is absent
    assert locks[second]["stages"]["a"]["outs"][0]["md5"] == "A1"
    assert locks["workspace"]["stages"]["a"]["outs"][0]["md5"] == "A2"


def test_files_inside_folder_outputs_are_checked_in_the_cache_listing(tmp_path):
    lock = {
        "stages": {
            "game": {"outs": [{"path": "data/game", "md5": "ab12.dir"}]},
            "labels": {
                "deps": [{"path": "data/game/classes.csv", "md5": "c1"}],
                "outs": [{"path": "l.json"}],
            },
            "survey": {"deps": [{"path": "data", "md5": "whole.dir"}], "outs": [{"path": "s.json"}]},
        }
    }
    assert stale_stages(lock) == {}  # without the listing the file cannot be checked
    cache = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab"
    cache.mkdir(parents=True)
    (cache / "12.dir").write_text('[{"md5": "c2", "relpath": "classes.csv"}]')
    listing = cache_listing(tmp_path)
    assert listing("ab12.dir") == {"classes.csv": "c2"} and listing("ffff.dir") is None
    assert stale_stages(lock, listing=listing) == {
        "labels": "its input data/game/classes.csv changed when game ran again"
    }
    # a dependency on a folder holding another stage's output follows that stage upstream
    lock["stages"]["game"]["deps"] = [{"path": "x.txt", "md5": "old"}]
    lock["stages"]["make_x"] = {"outs": [{"path": "x.txt", "md5": "new"}]}
    stale = stale_stages(lock)
    assert stale["game"] == "its input x.txt changed when make_x ran again"
    assert stale["survey"] == "it depends on the stale stage game"


def test_locks_are_read_as_yaml_1_2_and_nan_equals_nan(tmp_path):
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  a:\n    params:\n      params.yaml:\n        a.flag: yes\n"
        "        a.s: on\n        a.x: .nan\n    outs:\n    - path: a.txt\n      md5: A1\n"
    )
    lock = read_locks(["workspace"], tmp_path)["workspace"]
    assert lock["stages"]["a"]["params"]["params.yaml"]["a.flag"] == "yes"  # PyYAML would read True
    assert stale_stages(lock, {"a": {"flag": "yes", "s": "on", "x": float("nan")}}) == {}
    assert stale_stages(lock, {"a": {"flag": True, "s": "on", "x": float("nan")}}) == {
        "a": "it ran with another params.yaml value of a.flag"
    }
