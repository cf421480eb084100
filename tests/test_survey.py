"""The survey kit (docs/method.md §5): survey images, the three baseline explainers on a hand-built
network whose decision is known, the questionnaire, and the form importer feeding Table 2."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from inviz.survey.forms import form_columns, form_template, questionnaire_markdown, read_form
from inviz.survey.kit import slug, survey_images
from inviz.survey.panels import EXPLAINERS, ITEMS, SurveyConfig, SurveyError

SIZE = 32


class LeftRed(nn.Module):
    """Class 0 = mean red over the left half of the image, class 1 = mean green anywhere.

    ``features.0`` is a 1x1 convolution copying red (channel 0) and green (channel 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 2, 1), nn.ReLU(inplace=True))
        with torch.no_grad():
            w = torch.zeros(2, 3, 1, 1)
            w[0, 0] = w[1, 1] = 1.0
            self.features[0].weight.copy_(w)
            self.features[0].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.features(x)
        return torch.stack([4 * a[:, 0, :, : a.shape[-1] // 2].mean((1, 2)), a[:, 1].mean((1, 2))], 1)


def red_square_image() -> tuple[np.ndarray, np.ndarray]:
    """Dark noisy image, a red square on the left, a small green patch on the right; and the square's mask."""
    rng = np.random.default_rng(0)
    img = (rng.random((SIZE, SIZE, 3)) * 30).astype(np.uint8)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[8:20, 3:14] = True
    img[mask] = (230, 20, 20)
    img[24:28, 22:26] = (20, 200, 20)
    return img, mask


@pytest.fixture(scope="module")
def setting():
    img, mask = red_square_image()
    x = torch.as_tensor(img.astype(np.float32) / 255).permute(2, 0, 1)
    model = LeftRed().eval()
    assert int(model(x[None]).argmax()) == 0
    bg = torch.as_tensor(np.random.default_rng(1).random((8, 3, SIZE, SIZE)) * 0.1, dtype=torch.float32)
    ctx = {"image": img, "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0), "background": bg}
    cfg = SurveyConfig(
        gradcam_layer="features.0",
        lime_samples=150,
        lime_kernel_size=1.0,
        lime_max_dist=5.0,
        lime_features=2,
        shap_samples=64,
        shap_background=8,
    )
    return model, x, mask, ctx, cfg


@pytest.mark.parametrize("method", sorted(EXPLAINERS))
def test_explainers_point_at_what_the_network_uses(setting, method):
    model, x, mask, ctx, cfg = setting
    before = [p.clone() for p in model.parameters()]
    a = EXPLAINERS[method](model, x, 0, cfg, dict(ctx))
    assert a.shape == (SIZE, SIZE) and np.isfinite(a).all()
    inside, outside = a[mask].mean(), a[~mask].mean()
    assert inside > 0 and inside > 5 * abs(outside), (method, inside, outside)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))  # model untouched
    assert isinstance(model.features[1], nn.ReLU) and model.features[1].inplace


def test_explainers_are_seeded(setting):
    model, x, _, ctx, cfg = setting
    for method in ("LIME", "SHAP (Gradient Explainer)"):
        a = EXPLAINERS[method](model, x, 0, cfg, dict(ctx))
        b = EXPLAINERS[method](model, x, 0, cfg, dict(ctx))
        np.testing.assert_array_equal(a, b)


def test_survey_images_drawn_one_per_class_and_seeded(caplog):
    sel = pd.DataFrame({"sample_id": [f"s{i}" for i in range(20)], "label": [i // 4 for i in range(20)]})
    a = survey_images(sel, SurveyConfig(n_images=4, seed=1))
    assert (
        len(a) == 4
        and a["label"].is_unique
        and list(a["sample_id"]) == sorted(a["sample_id"], key=lambda s: int(s[1:]))
    )
    assert list(a["sample_id"]) == list(survey_images(sel, SurveyConfig(n_images=4, seed=1))["sample_id"])
    assert list(survey_images(sel, SurveyConfig(images=("s7", "s2")))["sample_id"]) == ["s7", "s2"]
    # too few classes: the kit adapts (one image per class there is) and names the params that fix it
    with caplog.at_level("WARNING"):
        six = survey_images(sel, SurveyConfig(n_images=6))
    assert len(six) == 5 and six["label"].is_unique
    assert "only 5 classes" in caplog.text and "select.per_class" in caplog.text
    assert "survey.one_per_class: false" in caplog.text and "uses 5 image(s)" in caplog.text
    with pytest.raises(SurveyError, match="survey.n_images: 4 images .* only 0 selected images"):
        survey_images(sel.iloc[:0], SurveyConfig(n_images=4, one_per_class=False))
    with pytest.raises(SurveyError, match="s99"):
        survey_images(sel, SurveyConfig(images=("s99",)))
    assert len(survey_images(sel, SurveyConfig(n_images=6, one_per_class=False))) == 6


def test_method_folders_are_distinct_slugs():
    assert slug("SHAP (Gradient Explainer)") == "shap_gradient_explainer"
    slugs = [slug(m) for m in SurveyConfig().methods]
    assert len(set(slugs)) == len(slugs) and all(s.replace("_", "").isalnum() for s in slugs)


def test_config_validation():
    with pytest.raises(ValueError, match="methods"):
        SurveyConfig(methods=("Grad-CAM", "Integrated Gradients"))
    with pytest.raises(ValueError, match="scale"):
        SurveyConfig(scale=1)


def test_questionnaire_and_form():
    cfg = SurveyConfig()
    md = questionnaire_markdown(cfg, pd.DataFrame({"sample_id": ["a", "b"]}), {"LIME": ["panels/lime/a.png"]})
    for m in cfg.methods:
        assert f". {m}" in md
    for aspect, text in ITEMS.items():
        assert md.count(f"**{aspect}** — {text}") == len(cfg.methods)
    assert "![LIME](panels/lime/a.png)" in md and "background in AI" in md
    cols = list(form_template(cfg).columns)
    assert (
        cols[:2] == ["participant", "ai_background"]
        and len(cols) == 2 + 25
        and "INV | Informativeness" in cols
    )


def write_form(path, rows):
    cfg = SurveyConfig()
    cols = form_columns(cfg.methods, list(cfg.items))
    pd.DataFrame([{c: r.get(c, "") for c in cols} for r in rows], columns=cols).to_csv(path, index=False)
    return cols


def test_read_form_to_long_responses_and_table2(tmp_path):
    from inviz.survey.table2 import analyse_responses

    rng = np.random.default_rng(0)
    cfg = SurveyConfig()
    cols = form_columns(cfg.methods, list(cfg.items))
    rows = []
    for p in range(12):
        r = {"participant": f"p{p}", "ai_background": "yes" if p % 3 else "no"}
        for c in cols[2:]:
            base = 6 if c.startswith("INV |") and c.endswith("Informativeness") else 4
            r[c] = str(int(np.clip(base + rng.integers(-1, 2), 1, 7)))
        rows.append(r)
    rows[3]["LIME | Usefulness"] = ""  # a missing answer
    write_form(tmp_path / "form.csv", rows)
    responses, missing = read_form(tmp_path / "form.csv", cfg)
    assert len(responses) == 12 * 25 - 1 and list(responses.columns) == [
        "participant",
        "ai_background",
        "method",
        "aspect",
        "rating",
    ]
    assert missing.to_dict("records") == [
        {"participant": "p3", "method": "LIME", "aspect": "Usefulness", "line": 5}
    ]
    assert responses["rating"].between(1, 7).all() and set(responses["ai_background"]) == {"yes", "no"}
    result = analyse_responses(responses)
    # feeds Table 2's paired tests directly; the participant with a missing answer is dropped from that aspect
    assert set(result.tests["test"]) == {"paired_t", "wilcoxon"}
    assert result.dropped[["participant", "aspect"]].values.tolist() == [["p3", "Usefulness"]]


@pytest.mark.parametrize(
    ("cell", "column", "message"),
    [
        ("8", "Grad-CAM | Usefulness", "expected an integer 1..7, got '8'"),
        ("good", "INV | Satisfaction", "expected an integer 1..7, got 'good'"),
        ("maybe", "ai_background", "expected yes or no"),
    ],
)
def test_read_form_errors_name_row_and_column(tmp_path, cell, column, message):
    cfg = SurveyConfig()
    cols = form_columns(cfg.methods, list(cfg.items))
    row = {"participant": "p1", "ai_background": "no", **{c: "4" for c in cols[2:]}}
    row[column] = cell
    write_form(tmp_path / "form.csv", [row])
    with pytest.raises(SurveyError, match="form.csv") as err:
        read_form(tmp_path / "form.csv", cfg)
    assert "row 2" in str(err.value) and column in str(err.value) and message in str(err.value)


def test_read_form_structure_errors(tmp_path):
    cfg = SurveyConfig()
    pd.DataFrame({"participant": ["p"], "ai_background": ["no"]}).to_csv(tmp_path / "f.csv", index=False)
    with pytest.raises(SurveyError, match="missing column"):
        read_form(tmp_path / "f.csv", cfg)
    with pytest.raises(SurveyError, match="not found"):
        read_form(tmp_path / "none.csv", cfg)
    cols = form_columns(cfg.methods, list(cfg.items))
    write_form(
        tmp_path / "d.csv", [{"participant": "p", "ai_background": "no", **{c: "3" for c in cols[2:]}}] * 2
    )
    with pytest.raises(SurveyError, match="more than one row"):
        read_form(tmp_path / "d.csv", cfg)


def test_survey_import_command(tmp_path, capsys):
    from inviz.cli import main

    cfg = SurveyConfig()
    cols = form_columns(cfg.methods, list(cfg.items))
    write_form(
        tmp_path / "form.csv", [{"participant": "p1", "ai_background": "yes", **{c: "5" for c in cols[2:]}}]
    )
    assert (
        main(
            [
                "survey_import",
                "--form",
                str(tmp_path / "form.csv"),
                "--out",
                str(tmp_path / "r.csv"),
                "--missing",
                str(tmp_path / "m.csv"),
            ]
        )
        == 0
    )
    assert len(pd.read_csv(tmp_path / "r.csv")) == 25 and len(pd.read_csv(tmp_path / "m.csv")) == 0
    (tmp_path / "bad.csv").write_text("participant,ai_background\np,no\n")
    assert main(["survey_import", "--form", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "x.csv")]) == 2
    assert "missing column" in capsys.readouterr().err
