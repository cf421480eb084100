"""The figures / global / explorer stages on small real outputs of the pipeline (tiny world,
simulated players, Sentence-BERT replaced by the bag-of-words fake of test_labels_stages), and
the explorer driven by a real headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from labels_world import build_world, tiny_global, write_params
from notebook_runner import NOTEBOOKS, PIPELINE_NOTEBOOKS, execute_notebook, library_only
from test_labels_stages import FakeEncoder, run_analyze, run_import, run_masks, run_simulate

from inviz.cli import main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A tiny world run through masks -> labels_simulate -> labels_import -> labels_analyze."""
    import inviz.labels.embed as embed

    mp = pytest.MonkeyPatch()
    mp.setattr(embed, "load_model", lambda cfg, root=None: FakeEncoder())
    w = build_world(tmp_path_factory.mktemp("world"), n_train_per_class=3)
    out = tmp_path_factory.mktemp("run")
    demo = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())
    glob = tiny_global(demo["global"])
    params = write_params(
        out / "params.yaml",
        out / "game",
        out / "game" / "game_classes.csv",
        figures={**demo["figures"], "dpi": 50, "formats": ["png", "pdf"], "run": {"workers": 1}},
        explorer=demo["explorer"],
        **{"global": glob},
    )
    run_masks(w, params, out)
    assert run_simulate(w, params, out) == 0
    assert run_import(w, params, out) == 0
    assert run_analyze(w, params, out) == 0
    mp.undo()
    return w, out, params


def inv_args(w, out) -> list[str]:
    return [
        "--selected",
        str(w["selected"]),
        "--images",
        str(w["images"]),
        "--extract",
        str(w["extract"]),
        "--manifest",
        str(out / "masks.csv"),
        "--cluster-labels",
        str(out / "cluster_labels.csv"),
        "--inv",
        str(out / "inv.csv"),
        "--merged-scores",
        str(out / "merged_scores.csv"),
        "--merged-maps",
        str(out / "merged_maps"),
    ]


def run_global(w, out, params, cache, dest, model=None):
    return main(
        [
            "global",
            "--params",
            str(params),
            *inv_args(w, out),
            "--model",
            str(model or w["model"]),
            "--index",
            str(w["index"]),
            "--cav-cache",
            str(cache),
            "--transfer",
            str(cache.parent / "transfer"),
            "--out",
            str(dest),
            "--metrics",
            str(dest) + ".json",
        ]
    )


@pytest.fixture(scope="module")
def global_run(labelled):
    w, out, params = labelled
    assert run_global(w, out, params, out / "cavs", out / "global") == 0
    return out / "global"


def test_load_inv_matches_the_tables(labelled):
    from inviz.views.records import INVPaths, load_inv

    w, out, _ = labelled
    paths = INVPaths(
        w["selected"],
        w["images"],
        w["extract"],
        out / "masks.csv",
        out / "cluster_labels.csv",
        out / "inv.csv",
        out / "merged_scores.csv",
        out / "merged_maps",
    )
    invs = load_inv(paths, 128)
    inv = pd.read_csv(out / "inv.csv")
    manifest = pd.read_csv(out / "masks.csv").drop_duplicates("cluster_id")
    assert len(invs) == 5 and sum(i.n_merged for i in invs) == len(inv)
    assert sum(len(cs) for i in invs for cs in i.clusters.values()) == len(manifest)
    for i in invs:
        assert i.image.shape == (128, 128, 3) and i.layers == ("block4_conv1", "block5_conv3")
        for cards in i.merged.values():
            assert [c.weight for c in cards] == sorted((c.weight for c in cards), reverse=True)
    # a merged card sums its members' weights, feature maps and plays
    one = (
        next(c for i in invs for cs in i.merged.values() for c in cs if len(c.members) > 1)
        if (inv["n_members"] > 1).any()
        else None
    )
    if one is not None:
        members = [c for i in invs for cs in i.clusters.values() for c in cs if c.id in one.members]
        assert one.weight == pytest.approx(sum(m.weight for m in members))
        assert one.plays == sum(m.plays for m in members) and one.n_fmaps == sum(m.n_fmaps for m in members)
    row = inv.iloc[0]
    card = next(c for i in invs for cs in i.merged.values() for c in cs if c.id == row["merged_id"])
    assert card.labels[0][0] == row["label_1"] and card.labels[0][1] == pytest.approx(row["score_1"])
    with pytest.raises(Exception, match="not among the selected"):
        load_inv(paths, 128, images=["nope"])


def test_figure_contents(labelled):
    from inviz.core.config import load_section
    from inviz.core.plotting import close
    from inviz.game.reveal import RevealConfig
    from inviz.views.figures import FigureConfig, inv_figure, simplified_inv_figure
    from inviz.views.records import INVPaths, load_inv

    w, out, params = labelled
    paths = INVPaths(
        w["selected"],
        w["images"],
        w["extract"],
        out / "masks.csv",
        out / "cluster_labels.csv",
        out / "inv.csv",
        out / "merged_scores.csv",
        out / "merged_maps",
    )
    inv = load_inv(paths, 128)[0]
    cfg = load_section(params, "figures", FigureConfig)
    fig = inv_figure(inv, cfg, load_section(params, "masks", RevealConfig))
    gids = [a.get_gid() for a in fig.axes]
    assert gids.count("header") == 1
    assert sorted(g for g in gids if g.startswith("card:")) == sorted(
        f"card:{c.key}" for cs in inv.merged.values() for c in cs
    )
    texts = {t.get_text() for a in fig.axes for t in a.texts} | {t.get_text() for t in fig.texts}
    for cs in inv.merged.values():
        for c in cs:
            assert f"{c.weight:.1f} %  ·  {c.n_fmaps} fm" in texts
            assert all(lab in texts for lab, _ in c.top(3))
    assert any(inv.pred_name in t and "%" in t for t in texts) and set(inv.layers) <= texts
    close(fig)
    simp = simplified_inv_figure(inv, cfg, load_section(params, "masks", RevealConfig))
    deepest = inv.merged["block5_conv3"]
    assert sum(1 for a in simp.axes if (a.get_gid() or "").startswith("card:")) == len(deepest)
    stexts = {t.get_text() for a in simp.axes for t in a.texts}
    assert all(c.labels[0][0] in stexts for c in deepest if c.labels)
    assert not any(
        c.labels[1][0] in stexts and c.labels[1][0] not in {d.labels[0][0] for d in deepest}
        for c in deepest
        if len(c.labels) > 1
    )  # one label per card
    close(simp)


def test_figures_stage(labelled, tmp_path, tracking_uri):
    w, out, params = labelled
    dest = tmp_path / "inv"
    assert (
        main(
            [
                "figures",
                "--params",
                str(params),
                *inv_args(w, out),
                "--model",
                str(w["model"]),
                "--out",
                str(dest),
                "--metrics",
                str(tmp_path / "figures.json"),
            ]
        )
        == 0
    )
    index = pd.read_csv(dest / "index.csv")
    assert len(index) == 5
    inv = pd.read_csv(out / "inv.csv")
    assert index["n_cards"].sum() == len(inv)
    for r in index.itertuples():
        for f in (r.file, r.simplified_file):
            assert (dest / f).is_file() and (dest / f).with_suffix(".pdf").is_file()
            assert (dest / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = json.loads((tmp_path / "figures.json").read_text())
    assert m["n_figures"] == 5 and 0 < m["share_cards_labelled"] <= 1


def test_global_stage_tables_tcav_and_figures(labelled, global_run):
    w, out, params = labelled
    g = pd.read_csv(global_run / "global.csv")
    assert {
        "class_label",
        "layer",
        "rank",
        "label",
        "importance",
        "n_maps",
        "examples",
        "tcav_status",
        "tcav_score",
        "p_adjusted",
        "significant",
    } <= set(g.columns)
    assert (
        set(g["layer"]) == {"block4_conv1", "block5_conv3"}
        and g.groupby(["class_label", "layer"]).size().max() <= 5
    )
    for _, grp in g.groupby(["class_label", "layer"]):
        assert list(grp["rank"]) == list(range(1, len(grp) + 1))
        assert list(grp["importance"]) == sorted(grp["importance"], reverse=True)
    # TCAV on the TCAV layer only: every top label there is tested or reported as too few examples
    deep = g[g["layer"] == "block5_conv3"]
    assert deep["tcav_status"].isin(["ok", "too_few_examples", "too_few_random"]).all()
    assert g[g["layer"] == "block4_conv1"]["tcav_status"].isna().all()
    ok = deep[deep["tcav_status"] == "ok"]
    assert len(ok) and ok["tcav_score"].between(0, 1).all()
    # no p-value only where the t-test is undefined (concept and random scores constant: documented NaN)
    undefined = ok["p_value"].isna()
    assert ok.loc[~undefined, "p_adjusted"].between(0, 1).all()
    assert ok.loc[undefined, "p_adjusted"].isna().all() and not ok.loc[undefined, "significant"].any()
    assert (ok.loc[undefined, "tcav_std"] == 0).all()
    few = deep[deep["tcav_status"] == "too_few_examples"]
    assert (few["n_candidates"] < 4).all() and few["tcav_score"].isna().all()  # reported, not faked
    tcav = pd.read_csv(global_run / "tcav.csv")
    assert len(tcav) == len(deep)
    assert (tcav.loc[tcav["p_value"].isna() & (tcav["status"] == "ok"), "random_score_std"] == 0).all()
    runs = pd.read_csv(global_run / "tcav_runs.csv")
    assert set(runs["kind"]) == {"concept", "random"} and runs["run"].max() == 3
    figs = sorted(p.stem for p in (global_run / "figures").glob("*.png"))
    assert len(figs) == g[g["layer"] == "block5_conv3"]["class_label"].nunique() and all(
        f.endswith("__block5_conv3") for f in figs
    )
    assert "## " in (global_run / "global.md").read_text()
    m = json.loads(Path(f"{global_run}.json").read_text())
    t = m["tcav"]
    assert t["n_candidates"] == len(deep) and t["cavs_trained"] > 0
    assert t["n_tested"] == len(ok) and t["n_too_few_examples"] == len(few)  # tested = scored, not tried


def test_cav_cache_is_reused_and_keyed_by_the_model(labelled, global_run, tmp_path):
    import torch

    from inviz.core.io import file_digest

    w, out, params = labelled
    cache = out / "cavs"
    first = pd.read_csv(global_run / "global.csv")
    assert run_global(w, out, params, cache, tmp_path / "again") == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert again["tcav"]["cavs_trained"] == 0 and again["tcav"]["cavs_cached"] > 0
    pd.testing.assert_frame_equal(first, pd.read_csv(tmp_path / "again" / "global.csv"))
    assert [p.name for p in cache.iterdir()] == [file_digest(w["model"])[:16]]
    # a re-trained model (other weights) gets its own CAVs
    from inviz.models.checkpoint import load_checkpoint, save_checkpoint

    loaded = load_checkpoint(w["model"])
    with torch.no_grad():
        for v in loaded.model.parameters():
            v += 0.01
    other = save_checkpoint(tmp_path / "other.safetensors", loaded.model, loaded.classes)
    assert run_global(w, out, params, cache, tmp_path / "other", model=other) == 0
    assert json.loads((tmp_path / "other.json").read_text())["tcav"]["cavs_trained"] > 0
    assert len(list(cache.iterdir())) == 2


def test_global_bad_layer_is_a_clear_error(labelled, tmp_path, capsys):
    w, out, params = labelled
    p = yaml.safe_load(params.read_text())
    p["global"]["tcav"]["layers"] = ["block9_conv9"]
    bad = tmp_path / "params.yaml"
    bad.write_text(yaml.safe_dump(p))
    assert run_global(w, out, bad, tmp_path / "c", tmp_path / "g") == 2
    assert "global.tcav.layers: block9_conv9 not among the explained layers" in capsys.readouterr().err


@pytest.fixture(scope="module")
def site(labelled, global_run, tmp_path_factory):
    w, out, params = labelled
    dest = tmp_path_factory.mktemp("site") / "explorer"
    assert (
        main(
            [
                "explorer",
                "--params",
                str(params),
                *inv_args(w, out),
                "--model",
                str(w["model"]),
                "--global-table",
                str(global_run / "global.csv"),
                "--out",
                str(dest),
                "--metrics",
                str(dest) + ".json",
            ]
        )
        == 0
    )
    return dest


def test_explorer_files_and_data(labelled, site):
    w, out, _ = labelled
    assert {p.name for p in site.iterdir()} == {"index.html", "explorer.js", "style.css", "data.js", "img"}
    text = (site / "data.js").read_text()
    assert text.startswith("window.INVIZ = ")
    data = json.loads(text[len("window.INVIZ = ") :].rstrip().rstrip(";"))
    assert len(data["images"]) == 5 and len(list((site / "img").glob("*.jpg"))) == 5
    inv = pd.read_csv(out / "inv.csv")
    n_merged = sum(len(cs) for im in data["images"].values() for cs in im["cards"]["merged"].values())
    assert n_merged == len(inv)
    from PIL import Image

    for im in data["images"].values():
        with Image.open(site / im["sprite"]) as sprite:
            assert sprite.size == (im["n_tiles"] * data["tile"], data["tile"])
    assert sum(len(v) for gg in data["global"].values() for v in gg.values()) > 0
    # narratives: every image (merged and single maps), every card, every global class and layer
    assert all(set(im["narrative"]) == {"merged", "cluster"} for im in data["images"].values())
    cards = [
        c for im in data["images"].values() for by in im["cards"].values() for cs in by.values() for c in cs
    ]
    assert all(c["narrative"].startswith("This ") for c in cards)
    assert set(data["global_narratives"]) == set(data["global"])


def chromium() -> str | None:
    for cand in (os.environ.get("INVIZ_CHROMIUM"), str(ROOT / ".venv" / "bin" / "inviz-chromium")):
        if cand and Path(cand).is_file():
            return cand
    return shutil.which("chromium-headless-shell") or shutil.which("chromium")


def test_explorer_in_a_headless_browser(labelled, site):
    """Open the page from disk, pick a class and an image, click a cluster card, check what it shows,
    follow a deep link, toggle merged maps, open the global view; keep a screenshot."""
    from playwright.sync_api import sync_playwright

    exe = chromium()
    assert exe, (
        "no headless Chromium: `make install` puts one at .venv/bin/inviz-chromium (.ci/install-browser)"
    )
    data = json.loads((site / "data.js").read_text()[len("window.INVIZ = ") :].rstrip().rstrip(";"))
    cls = data["classes"][2]
    image_id = cls["images"][0]
    im = data["images"][image_id]
    layer = data["layers"][-1]
    card = im["cards"]["merged"][layer][0]
    artifacts = Path(os.environ.get("INVIZ_ARTIFACTS", ROOT / "build" / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto((site / "index.html").as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.select_option("[data-testid=class-select]", str(cls["label"]))
        page.click(f".thumb[data-image='{image_id}']")
        assert page.text_content("[data-testid=image-title]") == image_id
        cards = page.locator(f"section[data-layer='{layer}'] [data-testid=card]")
        assert cards.count() == len(im["cards"]["merged"][layer])
        cards.first.click()
        detail = page.text_content("[data-testid=detail]")
        assert f"{layer} — merged map {card['id']}" in detail and f"{card['weight']:.2f} %" in detail
        for lab, _ in card["labels"]:
            assert lab in detail
        # the narratives: the image's under its title, the card's in its detail
        shown = " ".join(page.locator("[data-testid=narrative]").all_text_contents())
        assert shown == " ".join(im["narrative"]["merged"].split("\n\n")) and "The model predicts" in shown
        assert page.text_content("[data-testid=card-narrative]") == card["narrative"]
        assert f"{card['weight']:.1f} % of {layer}'s weight" in card["narrative"]
        assert f"card={card['key']}" in page.url and "view=image" in page.url
        page.screenshot(path=str(artifacts / "explorer.png"), full_page=True)
        # the game's cluster maps instead of merged ones
        page.uncheck("[data-testid=toggle-merged]")
        n_clusters = sum(len(v) for v in im["cards"]["cluster"].values())
        assert page.locator("[data-testid=card]").count() == n_clusters and "maps=clusters" in page.url
        # a deep link opens the same card directly
        deep = page.url.split("#")[0] + f"#view=image&image={image_id}&card={card['key']}&layer={layer}"
        page.goto("about:blank")
        page.goto(deep)
        page.wait_for_selector("[data-testid=detail] h3")
        assert page.locator(f"[data-key='{card['key']}']").get_attribute("class").split() == [
            "card",
            "selected",
        ]
        # the global view with TCAV results
        page.click("[data-testid=tab-global]")
        rows = data["global"].get(str(cls["label"]), {}).get(layer, [])
        table = page.text_content("[data-testid=global-table]") if rows else ""
        for r in rows:
            assert r["label"] in table
            if r["tcav"] and r["tcav"]["status"] == "ok":
                assert f"{r['tcav']['score']:.2f}" in table
        if rows:
            story = page.text_content("[data-testid=global-narrative]")
            assert story.startswith(f"At {page.input_value('#layer-select')}, the images of {cls['name']}")
        page.screenshot(path=str(artifacts / "explorer_global.png"))
        browser.close()
    assert errors == []
    assert (artifacts / "explorer.png").stat().st_size > 10_000


def test_survey_stage_writes_every_panel_and_the_questionnaire(labelled, tmp_path, tracking_uri):
    from inviz.survey.kit import slug

    w, out, params = labelled
    p = yaml.safe_load(params.read_text())
    demo = yaml.safe_load((ROOT / "demo" / "params.yaml").read_text())
    p["survey"] = {
        **demo["survey"],
        "n_images": 2,
        "lime_samples": 30,
        "shap_samples": 8,
        "shap_background": 4,
        "dpi": 50,
        "formats": ["png", "pdf"],
        "gradcam_layer": "block5_conv3",
    }
    small = tmp_path / "params.yaml"
    small.write_text(yaml.safe_dump(p, sort_keys=False))
    dest = tmp_path / "survey"
    assert (
        main(
            [
                "survey",
                "--params",
                str(small),
                *inv_args(w, out),
                "--model",
                str(w["model"]),
                "--index",
                str(w["index"]),
                "--out",
                str(dest),
                "--metrics",
                str(tmp_path / "survey.json"),
            ]
        )
        == 0
    )
    chosen = pd.read_csv(dest / "survey_images.csv")
    assert len(chosen) == 2 and chosen["label"].is_unique
    for method in demo["survey"]["methods"]:
        files = sorted((dest / "panels" / slug(method)).glob("*.png"))
        assert len(files) == 2 and all(f.with_suffix(".pdf").is_file() for f in files), method
    with np.load(dest / "attributions.npz") as z:
        assert z["grad_cam"].shape == (2, 128, 128) and z["lime"].shape == (2, 128, 128)
        assert list(z["sample_id"]) == list(chosen["sample_id"])
    md = (dest / "questionnaire.md").read_text()
    assert md.count("![LIME](panels/lime/") == 2 and "INV (Simplified)" in md
    assert list(pd.read_csv(dest / "questionnaire_form.csv").columns)[:3] == [
        "participant",
        "ai_background",
        "Grad-CAM | Understandability",
    ]
    assert (dest / "survey_panels.png").is_file()
    m = json.loads((tmp_path / "survey.json").read_text())
    assert m["n_panels"] == 10 and set(m["seconds_per_image"]) == {
        "Grad-CAM",
        "LIME",
        "SHAP (Gradient Explainer)",
    }


EXPLORE_PROBE = """import json
print(json.dumps({"n_invs": len(invs), "n_cards": len(cards), "n_merged": invs[0].n_merged,
                  "layers": sorted(set(table["layer"])), "n_figure_axes": len(fig.axes)}))"""


def test_every_notebook_is_executed_by_a_test():
    """A notebook either reads a pipeline (run below) or is the own-model example (tests/test_inv_api.py)."""
    others = {p.name for p in NOTEBOOKS} - {p.name for p in PIPELINE_NOTEBOOKS}
    assert others == {"own_model_inv.ipynb"} and PIPELINE_NOTEBOOKS, others


@pytest.mark.slow
@pytest.mark.parametrize("notebook", PIPELINE_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_on_pipeline_outputs(notebook, labelled, tmp_path, monkeypatch):
    """Each notebook of notebooks/ runs, as a user opens it (nbclient, a real kernel), on a pipeline folder."""
    from inviz.fmaps.store import load_results
    from inviz.fmaps.table1 import table1

    assert not library_only(notebook), f"{notebook.name}: notebooks only call the library"
    w, out, params = labelled
    pipe = tmp_path / "pipe"
    for src, dst in [
        (w["selected"], "data/selected.csv"),
        (w["images"], "data/images"),
        (w["extract"], "data/extract"),
        (out / "masks.csv", "data/masks.csv"),
        (out / "cluster_labels.csv", "data/labels/cluster_labels.csv"),
        (out / "inv.csv", "data/labels/inv.csv"),
        (out / "merged_scores.csv", "data/labels/merged_scores.csv"),
        (out / "merged_maps", "data/labels/merged_maps"),
        (w["model"], "models/model.safetensors"),
        (params, "params.yaml"),
    ]:
        (pipe / dst).parent.mkdir(parents=True, exist_ok=True)
        (pipe / dst).symlink_to(src)
    (pipe / "reports").mkdir()
    table1(load_results(w["extract"]).layers).reset_index().to_csv(
        pipe / "reports" / "table1.csv", index=False
    )
    monkeypatch.setenv("INVIZ_PIPELINE", str(pipe))
    probe = EXPLORE_PROBE if notebook.name == "explore_inv.ipynb" else None
    _, facts = execute_notebook(notebook, probe)
    if facts is not None:
        assert facts["n_invs"] == 5 and facts["n_cards"] == facts["n_merged"] and facts["n_figure_axes"] > 0
        assert facts["layers"] == ["block4_conv1", "block5_conv3"]


def test_figure_images_first_n_then_per_class():
    """``figures.images`` takes the first N selected images, ``images_per_class`` then the first N of each class."""
    from types import SimpleNamespace

    from inviz.views.figures import FigureConfig, figure_images

    invs = [SimpleNamespace(sample_id=f"{c}{i}", true_label=c) for c in (0, 1, 2) for i in range(3)]
    ids = lambda cfg: [x.sample_id for x in figure_images(invs, cfg)]  # noqa: E731
    assert ids(FigureConfig()) == [x.sample_id for x in invs]
    assert ids(FigureConfig(images_per_class=2)) == ["00", "01", "10", "11", "20", "21"]
    assert ids(FigureConfig(images=4)) == ["00", "01", "02", "10"]
    assert ids(FigureConfig(images=5, images_per_class=1)) == ["00", "10"]
    with pytest.raises(ValueError, match="images_per_class"):
        FigureConfig(images_per_class=0)
