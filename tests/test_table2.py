"""Table 2 (docs/method.md §5): hand-computed tests and corrections, the paper's claims, validation, CLI."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from inviz.cli import main
from inviz.core.config import ParamsError, from_dict
from inviz.core.stats import adjust_pvalues
from inviz.survey import table2 as t2
from inviz.survey.table2 import Claim, Table2Config, Table2Error, Table2InputError

ROOT = Path(__file__).resolve().parents[1]
HEADER_A = "participant,ai_background,method,aspect,rating"
HEADER_B = "method,aspect,mean,sd,n"


def free(**kw) -> Table2Config:
    """Config accepting any method/aspect name, with no claims (tiny hand-made tables)."""
    return Table2Config(methods=None, aspects=None, claims=(), **kw)


def responses(
    ratings: dict[str, dict[str, list[float]]], background: list[str] | None = None
) -> pd.DataFrame:
    """Long responses from ``{aspect: {method: [rating of participant 0, 1, ...]}}``."""
    rows = []
    for aspect, by_method in ratings.items():
        for method, values in by_method.items():
            for p, r in enumerate(values):
                bg = background[p] if background else "yes"
                rows.append(
                    {
                        "participant": f"p{p}",
                        "ai_background": bg,
                        "method": method,
                        "aspect": aspect,
                        "rating": r,
                    }
                )
    return pd.DataFrame(rows)


def write(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def paper_responses(n: int = 30, seed: int = 0) -> pd.DataFrame:
    """Simulated raw responses with the paper's names (INV clearly best on informativeness).

    Every other participant has an AI background. Groups keep at least 14 participants, so the
    Wilcoxon tests take the normal approximation (up to 13 they are exhaustive permutation tests).
    """
    rng = np.random.default_rng(seed)
    base = {
        "Grad-CAM": 5.5,
        "LIME": 4.0,
        "SHAP (Gradient Explainer)": 4.0,
        "INV (Simplified)": 5.5,
        "INV": 5.5,
    }
    rows = []
    for p in range(n):
        person = rng.normal(0, 0.5)
        for aspect in t2.PAPER_ASPECTS:
            for method, mu in base.items():
                mu = mu + (1.2 if (aspect == "Informativeness" and method == "INV") else 0)
                r = float(np.clip(np.round(mu + person + rng.normal(0, 0.6)), 1, 7))
                rows.append(
                    {
                        "participant": f"s{p:02d}",
                        "ai_background": "yes" if p % 2 else "no",
                        "method": method,
                        "aspect": aspect,
                        "rating": r,
                    }
                )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------
# hand-computed statistics


def test_paired_t_by_hand_three_participants():
    # differences 2, 1, 3: mean 2, sd 1 -> t = 2 / (1 / sqrt 3), df 2; for df = 2, p = 1 - |t| / sqrt(t^2 + 2)
    frame = responses({"clarity": {"A": [5, 6, 7], "B": [3, 5, 4]}})
    tests = t2.paired_tests(frame, free())
    t_row = tests[tests["test"] == t2.PAIRED_T].iloc[0]
    t = 2 / (1 / math.sqrt(3))
    assert (t_row["method_a"], t_row["method_b"]) == ("A", "B")
    assert t_row["statistic"] == pytest.approx(t)
    assert t_row["df"] == 2
    assert t_row["p_value"] == pytest.approx(1 - t / math.sqrt(t**2 + 2))
    assert t_row["effect_size"] == pytest.approx(2.0)  # d_z = mean / sd of the differences
    assert t_row["n_a"] == t_row["n_b"] == 3 and t_row["mean_diff"] == pytest.approx(2.0)
    # a single comparison per family: Holm leaves it unchanged
    assert t_row["p_adjusted"] == pytest.approx(t_row["p_value"]) and t_row["family_size"] == 1
    w_row = tests[tests["test"] == t2.WILCOXON].iloc[0]
    # all three differences positive: W- = 0; exact two-sided p = 2 / 2^3
    assert w_row["statistic"] == 0 and w_row["p_value"] == pytest.approx(0.25)
    assert w_row["effect_size"] == pytest.approx(1.0) and w_row["effect_size_name"] == "rank_biserial"


def test_paired_d_av_effect_size():
    a, b = np.array([5.0, 6, 7]), np.array([3.0, 5, 4])
    res = t2.paired_pair_tests(a, b, free(paired_effect_size="d_av"))[0]
    assert res["effect_size"] == pytest.approx(2.0 / ((1.0 + 1.0) / 2))  # sd(a) = sd(b) = 1


@pytest.mark.parametrize(
    ("diff", "zero_method", "expected"),
    [
        ([1, -2, 3, 4], "wilcox", (8 - 2) / 10),
        ([0, 1, -2], "wilcox", (1 - 2) / 3),  # zero dropped, then ranks 1, 2
        ([0, 1, -2], "pratt", (2 - 3) / 5),  # ranked with the zero (1, 2, 3), zero's rank dropped
        ([0, 1, -2], "zsplit", (2.5 - 3.5) / 6),
        ([0, 0], "wilcox", float("nan")),
    ],
)
def test_rank_biserial_by_hand(diff, zero_method, expected):
    got = t2.rank_biserial(np.array(diff, float), zero_method)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected)


@pytest.mark.parametrize("zero_method", ["wilcox", "pratt", "zsplit"])
def test_wilcoxon_matches_scipy_for_every_zero_method(zero_method):
    rng = np.random.default_rng(1)
    a = rng.integers(1, 8, 20).astype(float)
    b = np.clip(a - rng.integers(-1, 3, 20), 1, 7)
    res = t2.paired_pair_tests(a, b, free(wilcoxon_zero_method=zero_method))[1]
    ref = stats.wilcoxon(a, b, zero_method=zero_method)
    assert res["statistic"] == pytest.approx(ref.statistic) and res["p_value"] == pytest.approx(ref.pvalue)


def test_wilcoxon_test_equals_scipy_exactly_on_small_samples():
    """Up to 13 participants with ties or zeros scipy flips signs one call at a time; the vectorized
    test gives the same statistic and p-value, bit for bit, for every zero method and path."""
    rng = np.random.default_rng(7)
    paths = {"exhaustive": 0, "scipy": 0}
    cases = [(n, draw) for n in range(2, 10) for draw in range(5)] + [(11, 1)]
    for n, draw in cases:
        a = rng.integers(1, 8, n).astype(float)
        b = a - rng.integers(-2, 3, n) if draw % 2 else rng.permutation(n) + 0.5 * (draw == 4)
        if np.all(a == b):
            continue
        d = np.abs((a - b)[a != b])
        paths["exhaustive" if (d.size < n or np.unique(d).size < d.size) else "scipy"] += 1
        for zero_method in ("wilcox", "pratt", "zsplit"):
            cfg = free(wilcoxon_zero_method=zero_method, wilcoxon_correction=bool(draw % 3))
            got = t2.wilcoxon_test(a, b, cfg)
            ref = stats.wilcoxon(a, b, zero_method=zero_method, correction=bool(draw % 3))
            assert got == (float(ref.statistic), float(ref.pvalue)), (n, draw, zero_method, a, b)
    assert paths["exhaustive"] >= 20 and paths["scipy"] >= 5, paths


def test_all_zero_differences_are_undefined_not_significant():
    frame = responses({"x": {"A": [4, 5, 6], "B": [4, 5, 6], "C": [1, 2, 1]}})
    tests = t2.paired_tests(frame, free())
    same = tests[(tests["method_a"] == "A") & (tests["method_b"] == "B")]
    assert same["p_value"].isna().all() and not same["significant"].any()
    assert (same["note"] == "all differences are zero").all()
    assert (tests.loc[tests["test"] == t2.PAIRED_T, "family_size"] == 2).all()  # the NaN is left out


def test_welch_from_summary_by_formula():
    m1, s1, n1, m2, s2, n2 = 5.0, 1.0, 10, 4.0, 2.0, 12
    v1, v2 = s1**2 / n1, s2**2 / n2
    t = (m1 - m2) / math.sqrt(v1 + v2)
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    p = 2 * stats.t.sf(abs(t), df)
    pooled = math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / (n1 + n2 - 2))
    d = (m1 - m2) / pooled
    g = d * (1 - 3 / (4 * (n1 + n2) - 9))
    res = t2.welch_from_summary(m1, s1, n1, m2, s2, n2, "hedges_g")
    assert res["statistic"] == pytest.approx(t) and res["df"] == pytest.approx(df)
    assert res["p_value"] == pytest.approx(p) and res["effect_size"] == pytest.approx(g)
    assert t2.welch_from_summary(m1, s1, n1, m2, s2, n2, "cohens_d")["effect_size"] == pytest.approx(d)
    # the table function gives the same numbers
    summary = pd.DataFrame(
        {"method": ["A", "B"], "aspect": ["x", "x"], "mean": [m1, m2], "sd": [s1, s2], "n": [n1, n2]}
    )
    row = t2.welch_tests(t2.validate_summary(summary, free()), free()).iloc[0]
    assert (
        row["test"] == t2.WELCH_T
        and row["statistic"] == pytest.approx(t)
        and row["p_value"] == pytest.approx(p)
    )


def test_holm_and_bonferroni_by_hand():
    p = [0.01, 0.04, 0.03]
    # Holm: sorted 0.01*3, 0.03*2, 0.04*1 -> running max -> 0.03, 0.06, 0.06
    np.testing.assert_allclose(adjust_pvalues(p, "holm"), [0.03, 0.06, 0.06])
    np.testing.assert_allclose(adjust_pvalues(p, "bonferroni"), [0.03, 0.12, 0.09])
    out = adjust_pvalues([0.01, float("nan"), 0.04], "holm")  # NaN stays out of the family
    np.testing.assert_allclose(out, [0.02, np.nan, 0.04])


def test_correction_method_is_passed_explicitly(monkeypatch):
    import statsmodels.stats.multitest as smm

    seen = []
    real = smm.multipletests

    def spy(p, alpha=0.05, method="hs", **kw):
        seen.append(method)
        return real(p, alpha=alpha, method=method, **kw)

    monkeypatch.setattr(smm, "multipletests", spy)
    t2.analyse_summary(t2.paper_table2(), Table2Config(correction="bonferroni"))
    assert seen and set(seen) == {"bonferroni"}
    seen.clear()  # Holm (the default) is computed here, statsmodels' own default (Holm-Sidak) never
    t2.analyse_summary(t2.paper_table2())
    assert seen == []


def test_holm_equals_statsmodels_bit_for_bit():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for k in (1, 7, 200):
        for p in (
            rng.uniform(0, 1, k),
            rng.choice([0.001, 0.02, 0.02, 0.3, 1.0], k),
            rng.uniform(0, 0.02, k),
        ):
            np.testing.assert_array_equal(adjust_pvalues(p, "holm"), multipletests(p, method="holm")[1])


def test_family_aspect_vs_all():
    summary = pd.DataFrame(
        {
            "method": ["A", "B", "A", "B"],
            "aspect": ["x", "x", "y", "y"],
            "mean": [5.0, 4.6, 5.0, 4.0],
            "sd": [1.0, 1.0, 1.0, 1.0],
            "n": [40, 40, 40, 40],
        }
    )
    per_aspect = t2.welch_tests(summary, free(correction="bonferroni"))
    whole = t2.welch_tests(summary, free(correction="bonferroni", family="all"))
    assert (per_aspect["family_size"] == 1).all() and (whole["family_size"] == 2).all()
    np.testing.assert_allclose(per_aspect["p_adjusted"], per_aspect["p_value"])
    np.testing.assert_allclose(whole["p_adjusted"], np.minimum(2 * whole["p_value"], 1))


def test_significance_uses_adjusted_p_and_alpha():
    summary = pd.DataFrame(
        {
            "method": ["A", "B", "C"],
            "aspect": ["x"] * 3,
            "mean": [5.0, 4.5, 4.45],
            "sd": [1.0] * 3,
            "n": [60] * 3,
        }
    )
    tests = t2.welch_tests(summary, free())
    np.testing.assert_array_equal(tests["significant"], tests["p_adjusted"] < 0.05)
    strict = t2.welch_tests(summary, free(alpha=0.001))
    np.testing.assert_array_equal(strict["significant"], strict["p_adjusted"] < 0.001)


# ------------------------------------------------------------------------------------------
# the paper's published summaries


def test_packaged_paper_table_is_method_md():
    paper = t2.paper_table2()
    assert len(paper) == 25 and (paper["n"] == 165).all()
    assert list(dict.fromkeys(paper["method"])) == list(t2.PAPER_METHODS)
    row = paper[(paper["method"] == "INV") & (paper["aspect"] == "Informativeness")].iloc[0]
    assert (row["mean"], row["sd"]) == (5.82, 1.50)
    row = paper[(paper["method"] == "SHAP (Gradient Explainer)") & (paper["aspect"] == "Satisfaction")].iloc[
        0
    ]
    assert (row["mean"], row["sd"]) == (4.18, 2.06)


def test_paper_summaries_welch_holm_claims():
    """What the published numbers say under Welch + Holm per aspect (computed, not forced)."""
    result = t2.analyse_summary(t2.paper_table2())
    tests = result.tests
    assert set(tests["test"]) == {t2.WELCH_T} and len(tests) == 50
    assert (tests["family_size"] == 10).all()
    verdict = {c.claim.name: c.holds for c in result.claims}
    assert verdict == {
        "inv_best_informativeness": True,
        "inv_simplified_informativeness": False,  # fails on Grad-CAM only after Holm
        "top3_tied_other_aspects": True,
        "lime_shap_trail_other_aspects": True,
    }

    def row(a, b, aspect="Informativeness"):
        sub = tests[(tests["aspect"] == aspect) & (tests["method_a"] == a) & (tests["method_b"] == b)]
        return sub.iloc[0]

    inv_vs_simplified = row("INV (Simplified)", "INV")
    assert inv_vs_simplified["p_value"] == pytest.approx(0.0142, abs=5e-4)
    assert (
        inv_vs_simplified["p_adjusted"] == pytest.approx(0.0425, abs=5e-4)
        and inv_vs_simplified["significant"]
    )
    gc_vs_simplified = row("Grad-CAM", "INV (Simplified)")
    assert gc_vs_simplified["p_value"] == pytest.approx(0.0293, abs=5e-4)  # significant uncorrected ...
    assert gc_vs_simplified["p_adjusted"] == pytest.approx(0.0585, abs=5e-4)  # ... but not after Holm
    assert not gc_vs_simplified["significant"]
    failing = [c for c in result.claims if c.holds is False][0]
    assert [(x.higher, x.lower) for x in failing.comparisons if not x.holds] == [
        ("INV (Simplified)", "Grad-CAM")
    ]
    assert int(tests["significant"].sum()) == 32
    # LIME vs SHAP never differ; every top-3 vs LIME/SHAP comparison does
    assert not tests[(tests["method_a"] == "LIME") & (tests["method_b"] == "SHAP (Gradient Explainer)")][
        "significant"
    ].any()
    # best mean per aspect (bold)
    best = result.table[result.table["best"]].set_index("aspect")["method"].to_dict()
    assert best == {
        "Understandability": "INV (Simplified)",
        "Usefulness": "INV",
        "Trustworthiness": "INV (Simplified)",
        "Informativeness": "INV",
        "Satisfaction": "INV",
    }


def test_paper_claims_depend_on_the_correction():
    # Bonferroni (x10) makes INV vs INV (Simplified) on informativeness non-significant (p 0.014 -> 0.14)
    result = t2.analyse_summary(t2.paper_table2(), Table2Config(correction="bonferroni"))
    assert {c.claim.name: c.holds for c in result.claims}["inv_best_informativeness"] is False


def test_claims_text_states_verdicts_and_the_pairing_caveat():
    result = t2.analyse_summary(t2.paper_table2())
    text = t2.claims_markdown(result, "paper_table2.csv")
    assert "ignores the pairing" in text and "ttest_ind_from_stats" in text and "`holm`" in text
    assert text.count("**does not hold**") == 2  # in the table and in the evidence list
    assert "p = 0.029, p_adj (holm) = 0.059" in text
    assert "fails only because of the `holm` correction" in text


# ------------------------------------------------------------------------------------------
# paired vs Welch by input type


def test_input_type_chooses_the_test():
    raw = paper_responses()
    a = t2.analyse(raw, Table2Config())
    assert a.kind == "responses" and set(a.tests["test"]) == {t2.PAIRED_T, t2.WILCOXON}
    assert a.test_name == t2.PAIRED_T
    summary = a.table[["method", "aspect", "mean", "sd", "n"]]
    b = t2.analyse(summary, Table2Config())
    assert b.kind == "summary" and set(b.tests["test"]) == {t2.WELCH_T}
    with pytest.raises(Table2InputError, match="expected the columns of raw responses"):
        t2.analyse(pd.DataFrame({"foo": [1]}))


def test_pairing_gains_power_on_correlated_ratings():
    rng = np.random.default_rng(3)
    person = rng.normal(4, 1.2, 30)
    frame = responses(
        {
            "x": {
                "A": list(np.clip(person + 0.3 + rng.normal(0, 0.2, 30), 1, 7)),
                "B": list(np.clip(person + rng.normal(0, 0.2, 30), 1, 7)),
            }
        }
    )
    paired = t2.analyse_responses(frame, free())
    welch = t2.analyse_summary(paired.table[["method", "aspect", "mean", "sd", "n"]], free())
    p_paired = paired.tests.loc[paired.tests["test"] == t2.PAIRED_T, "p_value"].iloc[0]
    p_welch = welch.tests["p_value"].iloc[0]
    assert p_paired < 0.001 < p_welch


def test_responses_claims_both_tests_and_by_background():
    raw = paper_responses(n=30)
    raw = raw[raw["participant"] != "s00"]  # 29 left: 15 yes, 14 no
    result = t2.analyse_responses(raw)
    assert {c.claim.name: c.holds for c in result.claims}["inv_best_informativeness"] is True
    assert len(result.claims_other) == len(result.claims)
    assert result.n_participants == 29 and result.ai_background_share == pytest.approx(15 / 29)
    by = result.by_background_table
    assert set(by["group"]) == {"yes", "no"}
    assert by.groupby("group")["n"].max().to_dict() == {"no": 14, "yes": 15}
    bt = result.by_background_tests
    assert list(bt.columns[:4]) == ["group", "aspect", "method_a", "method_b"]
    assert (bt["family_size"] == 10).all()  # families per group, test and aspect
    # the group table equals describing the group alone
    yes_only = t2.analyse_responses(raw[raw["ai_background"] == "yes"])
    pd.testing.assert_frame_equal(
        by[by["group"] == "yes"].drop(columns="group").reset_index(drop=True),
        yes_only.table,
        check_dtype=False,
    )


# ------------------------------------------------------------------------------------------
# validation: every path names file, row and column


def _valid_a_lines() -> list[str]:
    return [
        f"p{p},yes,{m},clarity,{r}"
        for p, (ra, rb) in enumerate([(5, 3), (6, 5), (7, 4)])
        for m, r in (("A", ra), ("B", rb))
    ]


@pytest.mark.parametrize(
    ("line_no", "line", "message"),
    [
        (7, "p2,yes,B,clarity,9", "responses.csv: row 7, column rating: 9 is outside 1-7"),
        (7, "p2,yes,B,clarity,0.5", "responses.csv: row 7, column rating: 0.5 is outside 1-7"),
        (7, "p2,yes,B,clarity,good", "responses.csv: row 7, column rating: expected a number, got 'good'"),
        (7, "p2,yes,B,clarity,", "responses.csv: row 7, column rating: missing value"),
        (
            7,
            "p2,yes,B,clarity,nan",
            "responses.csv: row 7, column rating: expected a finite number, got 'nan'",
        ),
        (7, ",yes,B,clarity,4", "responses.csv: row 7, column participant: missing value"),
        (
            7,
            "p2,maybe,B,clarity,4",
            "responses.csv: row 7, column ai_background: expected yes or no, got 'maybe'",
        ),
        (7, "p2,yes,B,clarity,4,extra", "responses.csv: row 7: expected 5 fields (as in the header), got 6"),
    ],
)
def test_response_cell_errors(tmp_path, line_no, line, message):
    lines = _valid_a_lines()
    lines[line_no - 2] = line
    path = write(tmp_path / "responses.csv", HEADER_A, lines)
    with pytest.raises(Table2InputError) as err:
        t2.read_responses(path, free())
    assert message in str(err.value)


def test_unknown_method_and_aspect_names(tmp_path):
    lines = [f"p{p},yes,{m},Informativeness,5" for p in range(3) for m in ("Grad-CAM", "INV")]
    lines[3] = "p1,yes,GradCAM,Informativeness,5"
    lines[4] = "p2,yes,Grad-CAM,Informative,5"
    path = write(tmp_path / "responses.csv", HEADER_A, lines)
    with pytest.raises(Table2InputError) as err:
        t2.read_responses(path, Table2Config())
    msg = str(err.value)
    assert "responses.csv: row 5, column method: unknown method 'GradCAM' (did you mean 'Grad-CAM'?)" in msg
    assert (
        "responses.csv: row 6, column aspect: unknown aspect 'Informative' (did you mean 'Informativeness'?)"
        in msg
    )
    assert "set table2.methods: null to accept any name" in msg
    # methods/aspects null: any name is accepted
    assert len(t2.read_responses(path, free())) == 6


def test_duplicate_responses_name_their_rows(tmp_path):
    lines = _valid_a_lines() + ["p0,yes,A,clarity,4"]
    path = write(tmp_path / "responses.csv", HEADER_A, lines)
    with pytest.raises(
        Table2InputError,
        match=r"responses.csv: rows 2, 8: duplicate rows for participant='p0', method='A', aspect='clarity'",
    ):
        t2.read_responses(path, free())


def test_participant_with_two_backgrounds(tmp_path):
    lines = _valid_a_lines()
    lines[1] = "p0,no,B,clarity,3"
    path = write(tmp_path / "responses.csv", HEADER_A, lines)
    with pytest.raises(
        Table2InputError, match=r"participant 'p0' is both 'yes' \(row 2\) and 'no' \(row 3\)"
    ):
        t2.read_responses(path, free())


def test_background_is_case_insensitive():
    frame = responses({"x": {"A": [5, 6, 7], "B": [3, 5, 4]}}, background=["Yes", "NO", " yes "])
    assert list(t2.validate_responses(frame, free())["ai_background"].unique()) == ["yes", "no"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "participant,ai_background,method,aspect,ratings",
            "responses.csv: missing column(s) rating; expected header columns participant, ai_background, method, aspect, rating "
            "(found: participant, ai_background, method, aspect, ratings); found 'ratings' for 'rating'",
        ),
        (HEADER_B, "this file looks like summaries (use --summary)"),
    ],
)
def test_missing_or_misspelt_columns(tmp_path, header, message):
    path = write(tmp_path / "responses.csv", header, ["a,b,c,d,e"])
    with pytest.raises(Table2InputError) as err:
        t2.read_responses(path, free())
    assert message in str(err.value)


def test_empty_missing_and_header_only_files(tmp_path):
    with pytest.raises(Table2InputError, match="responses.csv: file not found"):
        t2.read_responses(tmp_path / "responses.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(Table2InputError, match="empty.csv: empty file"):
        t2.read_summary(tmp_path / "empty.csv")
    write(tmp_path / "head.csv", HEADER_B, [])
    with pytest.raises(Table2InputError, match="head.csv: no data rows"):
        t2.read_summary(tmp_path / "head.csv")


def test_blank_lines_keep_row_numbers(tmp_path):
    lines = _valid_a_lines()
    lines.insert(2, "")  # blank line 4: the bad rating below is on line 8
    lines[6] = "p2,yes,B,clarity,9"
    path = write(tmp_path / "responses.csv", HEADER_A, lines)
    with pytest.raises(Table2InputError, match="row 8, column rating: 9 is outside 1-7"):
        t2.read_responses(path, free())


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("B,x,4.0,1.0,1", "summary.csv: row 3, column n: n = 1, but at least 2 ratings are needed"),
        ("B,x,4.0,1.0,2.5", "summary.csv: row 3, column n: 2.5 is not a whole number"),
        ("B,x,4.0,-1,30", "summary.csv: row 3, column sd: -1 is negative"),
        ("B,x,8.0,1.0,30", "summary.csv: row 3, column mean: 8 is outside the rating scale 1-7"),
        ("B,x,high,1.0,30", "summary.csv: row 3, column mean: expected a number, got 'high'"),
        ("B,x,4.0,,30", "summary.csv: row 3, column sd: missing value"),
        ("A,x,4.0,1.0,30", "summary.csv: rows 2, 3: duplicate rows for method='A', aspect='x'"),
        (",x,4.0,1.0,30", "summary.csv: row 3, column method: missing value"),
    ],
)
def test_summary_errors(tmp_path, line, message):
    path = write(tmp_path / "summary.csv", HEADER_B, ["A,x,5.0,1.0,30", line])
    with pytest.raises(Table2InputError) as err:
        t2.read_summary(path, free())
    assert message in str(err.value)


def test_summary_unknown_names_and_several_problems(tmp_path):
    path = write(
        tmp_path / "summary.csv",
        HEADER_B,
        ["Grad-CAM,Usefulness,5,1,0", "LIME,Usefulness,5,-1,30", "Lime,Usefulness,5,1,30"],
    )
    with pytest.raises(Table2InputError) as err:
        t2.read_summary(path)
    msg = str(err.value).splitlines()
    assert any("row 4, column method: unknown method 'Lime' (did you mean 'LIME'?)" in m for m in msg)
    assert any("row 2, column n: n = 0" in m for m in msg)
    assert any("row 3, column sd: -1 is negative" in m for m in msg)
    assert all(m.startswith("summary.csv: ") for m in msg)


def test_participants_missing_a_method_are_dropped_and_counted():
    frame = responses(
        {
            "x": {"A": [5, 6, 7, 4], "B": [3, 5, 4, 4]},
            "y": {"A": [5, 6, 7, 4], "B": [3, 5, 4, 4]},
        }
    )
    frame = frame[~((frame["participant"] == "p3") & (frame["aspect"] == "y") & (frame["method"] == "B"))]
    result = t2.analyse_responses(frame, free())
    assert result.dropped.to_dict("records") == [{"participant": "p3", "aspect": "y", "missing": "B"}]
    assert result.metrics()["dropped_participants"] == {"x": 0, "y": 1}
    assert result.metrics()["dropped_total"] == 1
    n = result.table.set_index(["aspect", "method"])["n"]
    assert n[("x", "A")] == 4 and n[("y", "A")] == 3  # the table describes the tested participants
    y_t = result.tests[(result.tests["aspect"] == "y") & (result.tests["test"] == t2.PAIRED_T)].iloc[0]
    assert y_t["n_a"] == 3 and y_t["statistic"] == pytest.approx(2 / (1 / math.sqrt(3)))


def test_fewer_than_two_complete_participants_is_an_error():
    frame = responses({"x": {"A": [5, 6], "B": [3, 5]}})
    frame = frame.drop(index=frame.index[-1])  # p1 lacks B
    with pytest.raises(
        Table2Error, match=r"responses: aspect 'x': 1 participant\(s\) rated every method \(A, B\), 1 dropped"
    ):
        t2.analyse_responses(frame, free())


def test_small_background_group_is_skipped_and_counted():
    frame = responses({"x": {"A": [5, 6, 7], "B": [3, 5, 4]}}, background=["yes", "yes", "no"])
    result = t2.analyse_responses(frame, free())
    assert result.skipped_groups == (("no", "x"),)
    assert set(result.by_background_tests["group"]) == {"yes"}
    assert result.metrics()["skipped_group_aspects"] == 1


# ------------------------------------------------------------------------------------------
# claims


def test_claim_kinds_and_untestable():
    summary = pd.DataFrame(
        {
            "method": ["A", "B", "C"],
            "aspect": ["x"] * 3,
            "mean": [6.0, 4.0, 5.9],
            "sd": [1.0] * 3,
            "n": [50] * 3,
        }
    )
    claims = (
        Claim("a_top", "A above B and C", "greater", ("x",), ("A",), ("B", "C")),
        Claim("b_low", "B above A", "greater", ("x",), ("B",), ("A",)),
        Claim("ac_tie", "A and C tie", "no_difference", ("x",), ("A", "C")),
        Claim("ab_tie", "A and B tie", "no_difference", ("x",), ("A", "B")),
        Claim("d_missing", "D above A", "greater", ("x",), ("D",), ("A",)),
    )
    cfg = Table2Config(methods=None, aspects=None, claims=claims)
    verdict = {c.claim.name: c for c in t2.analyse_summary(summary, cfg).claims}
    assert verdict["a_top"].holds is False and "A > C" in verdict["a_top"].evidence
    assert verdict["b_low"].holds is False and "(lower mean)" in verdict["b_low"].evidence
    assert verdict["ac_tie"].holds is True
    assert verdict["ab_tie"].holds is False
    assert verdict["d_missing"].holds is None and "not testable" in verdict["d_missing"].evidence
    metrics = t2.analyse_summary(summary, cfg).metrics()
    assert (metrics["claims_hold"], metrics["claims_fail"], metrics["claims_untestable"]) == (1, 3, 1)


def test_config_validation():
    with pytest.raises(ValueError, match="unknown method"):
        Table2Config(claims=(Claim("c", "t", "greater", ("Usefulness",), ("INV",), ("GradCam",)),))
    with pytest.raises(ValueError, match="needs a 'versus' list"):
        Claim("c", "t", "greater", ("x",), ("A",))
    with pytest.raises(ParamsError, match="table2.correction: expected"):
        from_dict(Table2Config, {"correction": "hs"}, "table2", "params.yaml")
    with pytest.raises(ParamsError, match="table2.family"):
        from_dict(Table2Config, {"family": "method"}, "table2", "params.yaml")


@pytest.mark.parametrize("params_file", ["params.yaml", "demo/params.yaml"])
def test_params_files_hold_the_paper_defaults(params_file):
    section = yaml.safe_load((ROOT / params_file).read_text())["table2"]
    assert from_dict(Table2Config, section, "table2", params_file) == Table2Config()


@pytest.mark.parametrize(
    "correction",
    ["bonferroni", "sidak", "holm-sidak", "holm", "simes-hochberg", "hommel", "fdr_bh", "fdr_by"],
)
def test_every_correction_is_monotone_and_bounded(correction):
    p = np.array([0.001, 0.01, 0.02, 0.2, 0.5])
    adj = adjust_pvalues(p, correction)
    assert np.all(adj >= p - 1e-12) and np.all(adj <= 1) and np.all(np.diff(adj) >= -1e-12)


# ------------------------------------------------------------------------------------------
# rendering


def test_markdown_and_latex_bold_best_with_ties_and_escaping():
    table = t2.mark_best(
        pd.DataFrame(
            {
                "method": ["A&B", "C", "A&B", "C"],
                "aspect": ["x_1", "x_1", "y", "y"],
                "mean": [5.004, 5.0, 4.0, 6.0],
                "sd": [1.0, 1.25, 1.5, 0.5],
                "n": [10, 10, 10, 10],
            }
        )
    )
    md = t2.table_markdown(table, free())
    assert "| A&B | **5.00 ± 1.00** | 4.00 ± 1.50 |" in md
    assert "| C | **5.00 ± 1.25** | **6.00 ± 0.50** |" in md  # 5.004 and 5.0 tie at 2 decimals
    tex = t2.table_latex(table, free())
    assert r"\toprule" in tex and r"x\_1" in tex
    assert r"A\&B & \textbf{5.00 $\pm$ 1.00} & 4.00 $\pm$ 1.50 \\" in tex


def test_figures_show_the_table_and_the_tests():
    from inviz.core.plotting import close

    result = t2.analyse_summary(t2.paper_table2())
    fig = t2.ratings_figure(result.table)
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(t2.PAPER_METHODS)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(t2.PAPER_ASPECTS)
    assert len(ax.containers) == len(t2.PAPER_METHODS)
    for method, bars in zip(t2.PAPER_METHODS, ax.containers, strict=True):  # points at the table's means
        means = result.table[result.table["method"] == method].set_index("aspect")["mean"]
        np.testing.assert_allclose(bars.lines[0].get_ydata(), means.loc[list(t2.PAPER_ASPECTS)].to_numpy())
    close(fig)

    fig = t2.pvalue_figure(result.tests, t2.WELCH_T)
    heatmaps = fig.axes[: len(t2.PAPER_ASPECTS)]
    assert len(fig.axes) == len(t2.PAPER_ASPECTS) + 1  # + colour bar
    for ax, aspect in zip(heatmaps, t2.PAPER_ASPECTS, strict=True):
        assert ax.get_title() == aspect
        texts = [t.get_text() for t in ax.texts]
        sub = result.tests[result.tests["aspect"] == aspect]
        assert len(texts) == len(sub) == 10  # lower triangle of 5 methods
        assert sum(t.endswith("*") for t in texts) == int(sub["significant"].sum())
    close(fig)


# ------------------------------------------------------------------------------------------
# command line


def test_cli_default_is_the_paper_table(tmp_path, tracking_uri, monkeypatch):
    import mlflow

    monkeypatch.chdir(tmp_path)  # no params.yaml here: defaults
    assert main(["table2", "--out", "out", "--metrics", "m.json"]) == 0
    out = tmp_path / "out"
    for name in (
        "table2.csv",
        "table2.md",
        "table2.tex",
        "table2_tests.csv",
        "table2_claims.md",
        "table2_ratings.png",
        "table2_ratings.pdf",
        "table2_pvalues.png",
        "table2_pvalues.pdf",
    ):
        assert (out / name).is_file(), name
    assert not (out / "table2_by_background.csv").exists()
    tests = pd.read_csv(out / "table2_tests.csv")
    assert {
        "aspect",
        "method_a",
        "method_b",
        "test",
        "statistic",
        "p_value",
        "p_adjusted",
        "significant",
    } <= set(tests.columns)
    assert len(tests) == 50 and set(tests["test"]) == {"welch_t"}
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["claims"]["inv_simplified_informativeness"] == 0 and metrics["claims_hold"] == 3
    assert "**6.05 ± 1.17**" in (out / "table2.md").read_text()
    client = mlflow.MlflowClient(tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("inviz").experiment_id])
    assert len(runs) == 1 and runs[0].data.tags["stage"] == "table2"
    assert runs[0].data.tags["table2_input"] == "summary"
    assert runs[0].data.params["table2.correction"] == "holm"
    assert runs[0].data.metrics["claims.inv_best_informativeness"] == 1.0
    arts = {a.path for a in client.list_artifacts(runs[0].info.run_id, "table2")}
    assert "table2/table2_claims.md" in arts


def test_cli_responses_with_params(tmp_path, tracking_uri):
    raw = paper_responses(n=30)
    raw = raw[~((raw["participant"] == "s03") & (raw["method"] == "LIME") & (raw["aspect"] == "Usefulness"))]
    raw.to_csv(tmp_path / "responses.csv", index=False)
    params = tmp_path / "p.yaml"
    params.write_text("table2:\n  correction: bonferroni\nmlflow:\n  enabled: false\n")
    code = main(
        [
            "table2",
            "--params",
            str(params),
            "--responses",
            str(tmp_path / "responses.csv"),
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 0
    out = tmp_path / "out"
    for name in (
        "table2_by_background.csv",
        "table2_by_background.md",
        "table2_by_background_tests.csv",
        "table2_dropped.csv",
    ):
        assert (out / name).is_file(), name
    tests = pd.read_csv(out / "table2_tests.csv")
    assert set(tests["test"]) == {"paired_t", "wilcoxon"} and set(tests["correction"]) == {"bonferroni"}
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["dropped_participants"]["Usefulness"] == 1 and metrics["n_participants"] == 30
    assert "paired t-test" in (out / "table2_claims.md").read_text()
    assert not (tmp_path / "mlflow.db").exists()


def test_cli_bad_input_is_a_clear_error(tmp_path, capsys):
    write(tmp_path / "summary.csv", HEADER_B, ["INV,Usefulness,5.9,1.3,165", "LIME,Usefulness,4.9,1.5,1"])
    params = tmp_path / "p.yaml"
    params.write_text("mlflow:\n  enabled: false\n")
    code = main(
        [
            "table2",
            "--params",
            str(params),
            "--summary",
            str(tmp_path / "summary.csv"),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "summary.csv: row 3, column n: n = 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # an explicit params file that does not exist is an error (only the implicit default may be absent)
    code = main(["table2", "--params", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "out")])
    assert code == 2 and "parameter file not found" in capsys.readouterr().err


def test_cli_inputs_are_exclusive(tmp_path):
    with pytest.raises(SystemExit):
        main(["table2", "--responses", "a.csv", "--summary", "b.csv", "--out", str(tmp_path)])


def test_dvc_stage_declares_the_outputs():
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["table2"]
    outs = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]}
    always = {"table_csv", "table_md", "table_tex", "tests", "claims", "ratings_fig", "pvalues_fig"}
    expected = {f"reports/table2/{t2.OUTPUTS[k]}" for k in always}
    expected |= {p.replace(".png", ".pdf") for p in expected if p.endswith(".png")}
    assert outs == expected
    assert stage["params"] == ["table2"] and "${root}/src/inviz/resources/paper_table2.csv" in stage["deps"]


def test_every_pair_once_in_table_order():
    result = t2.analyse_summary(t2.paper_table2())
    pairs = (
        result.tests[result.tests["aspect"] == "Usefulness"][["method_a", "method_b"]]
        .apply(tuple, axis=1)
        .tolist()
    )
    assert pairs == list(itertools.combinations(t2.PAPER_METHODS, 2))
