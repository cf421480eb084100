"""Table 2 of the paper: the comparative survey (METHOD.md §5) and its significance tests.

Two kinds of input, chosen by what the user has:

* **raw responses** (input A, long format, columns ``participant, ai_background, method, aspect,
  rating``): mean ± sd per method × aspect, a paired t-test (:func:`scipy.stats.ttest_rel`) and a
  Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`, ratings are ordinal) for every pair of
  methods within each aspect, over the participants who rated every method of that aspect
  (the others are dropped and counted), plus the same table and tests per AI-background group;
* **published summaries** (input B, columns ``method, aspect, mean, sd, n``): Welch's t-test from
  the summary statistics (:func:`scipy.stats.ttest_ind_from_stats`) for every pair of methods
  within each aspect. The paper's own Table 2 ships as :func:`paper_table2` so the pipeline can
  check the paper's claims from its published numbers.

P-values are corrected for multiple comparisons with
:func:`statsmodels.stats.multitest.multipletests`, always called with an explicit ``method``
(``Table2Config.correction``, default Holm — statsmodels' own default is Holm-Sidak). A family is
the comparisons of one test within one aspect (``family: aspect``, as the paper tested) or
within the whole table (``family: all``); different tests (paired t, Wilcoxon) and different
AI-background groups are always separate families.

:func:`check_claims` turns the tests into verdicts on the paper's claims (``Table2Config.claims``),
rendered by :func:`claims_markdown`. Everything here is a pure function over DataFrames; reading
CSV files (:func:`read_responses`, :func:`read_summary`) validates every cell and raises
:class:`Table2InputError` naming the file, row (the CSV line number, header = row 1) and column.
"""

from __future__ import annotations

import csv
import difflib
import itertools
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from inviz.core.errors import InvizError
from inviz.core.stats import adjust_pvalues

log = logging.getLogger(__name__)

#: the five explanation methods of the survey, in the paper's row order
PAPER_METHODS: tuple[str, ...] = ("Grad-CAM", "LIME", "SHAP (Gradient Explainer)", "INV (Simplified)", "INV")
#: the five rated aspects, in the paper's column order
PAPER_ASPECTS: tuple[str, ...] = ("Understandability", "Usefulness", "Trustworthiness", "Informativeness", "Satisfaction")

#: columns of the raw-responses input (A) and of the summary input (B), exactly as in the CSV header
RESPONSE_COLUMNS: tuple[str, ...] = ("participant", "ai_background", "method", "aspect", "rating")
SUMMARY_COLUMNS: tuple[str, ...] = ("method", "aspect", "mean", "sd", "n")
#: accepted values of ``ai_background`` (case-insensitive)
BACKGROUNDS: tuple[str, ...] = ("yes", "no")

#: test names used in the ``test`` column of the tests table
PAIRED_T, WILCOXON, WELCH_T = "paired_t", "wilcoxon", "welch_t"

#: columns of every tests table (by-background tables add ``group`` in front)
TEST_COLUMNS: tuple[str, ...] = (
    "aspect", "method_a", "method_b", "test", "n_a", "n_b", "mean_a", "mean_b", "mean_diff",
    "statistic", "df", "p_value", "p_adjusted", "significant", "effect_size", "effect_size_name",
    "correction", "family_size", "note",
)

Correction = Literal[
    "bonferroni", "sidak", "holm-sidak", "holm", "simes-hochberg", "hommel",
    "fdr_bh", "fdr_by", "fdr_tsbh", "fdr_tsbky",
]

_MAX_PROBLEMS = 10
_LINE = "_line"  # internal column: the CSV line number of each data row


class Table2Error(InvizError, ValueError):
    """Table 2 cannot be computed from the given data (too few participants, no comparisons)."""


class Table2InputError(Table2Error):
    """A survey CSV has a missing column, a bad cell, an unknown name or a duplicate row."""


# --------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True)
class Claim:
    """One claim of the paper, checked against the tests.

    name : short key (metrics, MLflow), e.g. ``inv_best_informativeness``.
    text : the claim as the paper states it (shown in the report).
    kind : ``greater`` — on every aspect in ``aspects`` each method in ``methods`` has a higher
        mean than each method in ``versus`` and the difference is significant (adjusted p <
        alpha); ``no_difference`` — on every aspect no pair of ``methods`` differs significantly.
    aspects, methods, versus : names as in the data (``versus`` only for ``greater``).
    """

    name: str
    text: str
    kind: Literal["greater", "no_difference"]
    aspects: tuple[str, ...]
    methods: tuple[str, ...]
    versus: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.aspects or not self.methods:
            raise ValueError(f"claim {self.name!r}: aspects and methods must not be empty")
        if self.kind == "greater" and not self.versus:
            raise ValueError(f"claim {self.name!r}: kind 'greater' needs a 'versus' list")
        if self.kind == "no_difference":
            if self.versus:
                raise ValueError(f"claim {self.name!r}: kind 'no_difference' takes no 'versus' list")
            if len(self.methods) < 2:
                raise ValueError(f"claim {self.name!r}: kind 'no_difference' needs at least two methods")
        if set(self.methods) & set(self.versus):
            raise ValueError(f"claim {self.name!r}: a method is in both 'methods' and 'versus'")


_OTHER_ASPECTS = ("Understandability", "Usefulness", "Trustworthiness", "Satisfaction")
_TOP3 = ("INV", "INV (Simplified)", "Grad-CAM")

#: METHOD.md §5 "Claims", one entry per checkable statement
PAPER_CLAIMS: tuple[Claim, ...] = (
    Claim(
        name="inv_best_informativeness",
        text="On informativeness INV is significantly above every other method.",
        kind="greater", aspects=("Informativeness",), methods=("INV",),
        versus=("Grad-CAM", "LIME", "SHAP (Gradient Explainer)", "INV (Simplified)"),
    ),
    Claim(
        name="inv_simplified_informativeness",
        text="On informativeness INV (Simplified) is significantly above Grad-CAM, LIME and SHAP.",
        kind="greater", aspects=("Informativeness",), methods=("INV (Simplified)",),
        versus=("Grad-CAM", "LIME", "SHAP (Gradient Explainer)"),
    ),
    Claim(
        name="top3_tied_other_aspects",
        text="On the other four aspects INV, INV (Simplified) and Grad-CAM do not differ significantly.",
        kind="no_difference", aspects=_OTHER_ASPECTS, methods=_TOP3,
    ),
    Claim(
        name="lime_shap_trail_other_aspects",
        text="On the other four aspects LIME and SHAP trail (significantly below INV, INV (Simplified) and Grad-CAM).",
        kind="greater", aspects=_OTHER_ASPECTS, methods=_TOP3, versus=("LIME", "SHAP (Gradient Explainer)"),
    ),
)


@dataclass(frozen=True)
class Table2Config:
    """``table2`` section of ``params.yaml``.

    alpha : significance level applied to the adjusted p-values (0.05).
    correction : multiple-comparison method passed explicitly to statsmodels'
        ``multipletests(method=...)``; default ``holm`` (statsmodels' default is ``hs``, Holm-Sidak).
    family : ``aspect`` — correct within each aspect (the paper tested within each aspect;
        10 comparisons for 5 methods) — or ``all`` — over the whole table. Each test type and each
        AI-background group is always its own family.
    paired_effect_size : effect size of the paired t-test: ``d_z`` = mean(diff) / sd(diff), or
        ``d_av`` = mean(diff) / mean(sd_a, sd_b). The Wilcoxon test always reports the
        matched-pairs rank-biserial correlation (zeros handled as by ``wilcoxon_zero_method``).
    welch_effect_size : effect size of Welch's test from summaries: ``hedges_g`` (Cohen's d times
        the small-sample correction 1 - 3 / (4 (n_a + n_b) - 9)) or ``cohens_d``; both use the
        pooled sd.
    wilcoxon_zero_method, wilcoxon_method, wilcoxon_correction : passed to
        :func:`scipy.stats.wilcoxon` (defaults are scipy's: ``wilcox`` drops zero differences;
        ``auto`` is exact or an exhaustive permutation test for small samples, else normal
        approximation; no continuity correction).
    claim_test : which test of the raw-responses input decides the claims (``paired_t``, as the
        paper; ``wilcoxon`` is reported alongside). Summaries always use Welch.
    rating_min, rating_max : the Likert scale (1-7); ratings (and summary means) outside it are errors.
    decimals : decimals of mean ± sd in the rendered tables.
    methods, aspects : allowed names, in table order (default: the paper's five methods and five
        aspects); a name not in the list is an error. ``null`` accepts any name (table order =
        first appearance in the data).
    claims : the claims to check (default: METHOD.md §5).
    ai_background_share : the paper's share of respondents with an AI background (0.71), shown next
        to the share in raw responses; ``null`` to omit.
    interval : error bars of the ratings plot: ``ci`` (t-interval of the mean at ``ci_level``) or ``sd``.
    ci_level : confidence level of the plotted intervals (0.95).
    """

    alpha: float = 0.05
    correction: Correction = "holm"
    family: Literal["aspect", "all"] = "aspect"
    paired_effect_size: Literal["d_z", "d_av"] = "d_z"
    welch_effect_size: Literal["hedges_g", "cohens_d"] = "hedges_g"
    wilcoxon_zero_method: Literal["wilcox", "pratt", "zsplit"] = "wilcox"
    wilcoxon_method: Literal["auto", "exact", "asymptotic"] = "auto"
    wilcoxon_correction: bool = False
    claim_test: Literal["paired_t", "wilcoxon"] = "paired_t"
    rating_min: float = 1.0
    rating_max: float = 7.0
    decimals: int = 2
    methods: tuple[str, ...] | None = PAPER_METHODS
    aspects: tuple[str, ...] | None = PAPER_ASPECTS
    claims: tuple[Claim, ...] = PAPER_CLAIMS
    ai_background_share: float | None = 0.71
    interval: Literal["ci", "sd"] = "ci"
    ci_level: float = 0.95

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha: expected a value in (0, 1), got {self.alpha}")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level: expected a value in (0, 1), got {self.ci_level}")
        if not self.rating_min < self.rating_max:
            raise ValueError(f"rating_min ({self.rating_min}) must be below rating_max ({self.rating_max})")
        if self.decimals < 0:
            raise ValueError(f"decimals: expected >= 0, got {self.decimals}")
        for key in ("methods", "aspects"):
            names = getattr(self, key)
            if names is not None:
                if not names:
                    raise ValueError(f"{key}: expected a non-empty list or null")
                dup = sorted({n for n in names if names.count(n) > 1})
                if dup:
                    raise ValueError(f"{key}: duplicate name(s) {', '.join(dup)}")
        names = [c.name for c in self.claims]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"claims: duplicate claim name(s) {', '.join(dup)}")
        for c in self.claims:
            if self.methods is not None:
                bad = [m for m in (*c.methods, *c.versus) if m not in self.methods]
                if bad:
                    raise ValueError(f"claim {c.name!r}: unknown method(s) {', '.join(bad)} (not in methods)")
            if self.aspects is not None:
                bad = [a for a in c.aspects if a not in self.aspects]
                if bad:
                    raise ValueError(f"claim {c.name!r}: unknown aspect(s) {', '.join(bad)} (not in aspects)")


# --------------------------------------------------------------------------------------------
# reading and validating input


def paper_table2_path() -> Any:
    """The packaged copy of the paper's Table 2 (``inviz/resources/paper_table2.csv``)."""
    return resources.files("inviz").joinpath("resources/paper_table2.csv")


def paper_table2(cfg: Table2Config | None = None) -> pd.DataFrame:
    """The paper's published Table 2 (METHOD.md §5) as a validated summary frame.

    Returns
    -------
    DataFrame with columns ``method, aspect, mean, sd, n`` (25 rows, n = 165 each).
    """
    with resources.as_file(paper_table2_path()) as path:
        return read_summary(path, cfg, source="paper_table2.csv")


def _read_rows(path: str | Path, expected: Sequence[str], source: str) -> tuple[pd.DataFrame, int]:
    """Read a CSV into a frame of stripped strings plus the CSV line number of each row.

    Checks the header (every expected column present) and the field count of each row; blank
    lines are skipped and counted. Extra columns are kept (and ignored by the analysis).
    """
    path = Path(path)
    if not path.is_file():
        raise Table2InputError(f"{source}: file not found ({path})")
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise Table2InputError(f"{source}: empty file; expected a header row with columns {', '.join(expected)}")
            header = [h.strip() for h in header]
            rows, lines, blank = [], [], 0
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    blank += 1
                    continue
                if len(fields) != len(header):
                    raise Table2InputError(
                        f"{source}: row {reader.line_num}: expected {len(header)} fields "
                        f"(as in the header), got {len(fields)}"
                    )
                rows.append([f.strip() for f in fields])
                lines.append(reader.line_num)
    except UnicodeDecodeError as err:
        raise Table2InputError(f"{source}: not a UTF-8 text file ({err})") from err
    except csv.Error as err:
        raise Table2InputError(f"{source}: not a valid CSV file ({err})") from err
    _check_header(header, expected, source)
    frame = pd.DataFrame(rows, columns=header, dtype=object)
    frame[_LINE] = lines
    return frame, blank


def _check_header(header: Sequence[str], expected: Sequence[str], source: str) -> None:
    missing = [c for c in expected if c not in header]
    if missing:
        hint = ""
        other = RESPONSE_COLUMNS if tuple(expected) == SUMMARY_COLUMNS else SUMMARY_COLUMNS
        if all(c in header for c in other):
            kind = "raw responses (use --responses)" if other == RESPONSE_COLUMNS else "summaries (use --summary)"
            hint = f"; this file looks like {kind}"
        else:
            close = {m: difflib.get_close_matches(m, header, n=1) for m in missing}
            sugg = [f"{c[0]!r} for {m!r}" for m, c in close.items() if c]
            if sugg:
                hint = f"; found {', '.join(sugg)}"
        raise Table2InputError(
            f"{source}: missing column(s) {', '.join(missing)}; expected header columns "
            f"{', '.join(expected)} (found: {', '.join(header) or 'none'}){hint}"
        )
    dup = sorted({h for h in header if list(header).count(h) > 1 and h in expected})
    if dup:
        raise Table2InputError(f"{source}: column(s) {', '.join(dup)} appear more than once in the header")


def _lines(frame: pd.DataFrame) -> np.ndarray:
    if _LINE in frame.columns:
        return frame[_LINE].to_numpy()
    return np.arange(len(frame)) + 2  # a frame built in memory: row i is CSV line i + 2


def _raise(problems: list[str], source: str) -> None:
    if problems:
        shown = [f"{source}: {p}" for p in problems[:_MAX_PROBLEMS]]
        if len(problems) > _MAX_PROBLEMS:
            shown.append(f"{source}: ... and {len(problems) - _MAX_PROBLEMS} more problem(s)")
        raise Table2InputError("\n".join(shown))


def _fmt_num(x: float) -> str:
    return f"{x:g}"


def _numbers(frame: pd.DataFrame, column: str, problems: list[str]) -> np.ndarray:
    """Parse one column as floats; bad cells are added to ``problems`` (and become NaN)."""
    out = np.full(len(frame), np.nan)
    for i, (value, line) in enumerate(zip(frame[column].tolist(), _lines(frame), strict=True)):
        text = "" if value is None else str(value).strip()
        if isinstance(value, float) and math.isnan(value):
            text = ""
        if text == "":
            problems.append(f"row {line}, column {column}: missing value")
            continue
        try:
            number = float(text)
        except ValueError:
            problems.append(f"row {line}, column {column}: expected a number, got {text!r}")
            continue
        if not math.isfinite(number):
            problems.append(f"row {line}, column {column}: expected a finite number, got {text!r}")
            continue
        out[i] = number
    return out


def _texts(frame: pd.DataFrame, column: str, problems: list[str]) -> list[str]:
    values = []
    for value, line in zip(frame[column].tolist(), _lines(frame), strict=True):
        text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
        if text == "":
            problems.append(f"row {line}, column {column}: missing value")
        values.append(text)
    return values


def _check_names(
    values: Sequence[str], allowed: Sequence[str] | None, column: str, lines: np.ndarray, problems: list[str]
) -> None:
    """Every non-empty value must be in ``allowed`` (one problem per distinct unknown name)."""
    if allowed is None:
        return
    allowed_set = set(allowed)
    seen: dict[str, list[int]] = {}
    for value, line in zip(values, lines, strict=True):
        if value and value not in allowed_set:
            seen.setdefault(value, []).append(int(line))
    lowered = {a.lower(): a for a in allowed}
    for value, rows in seen.items():
        close = difflib.get_close_matches(value.lower(), list(lowered), n=1, cutoff=0.6)
        hint = f" (did you mean {lowered[close[0]]!r}?)" if close else ""
        more = f" (and {len(rows) - 1} more row(s))" if len(rows) > 1 else ""
        problems.append(
            f"row {rows[0]}, column {column}: unknown {column} {value!r}{hint}{more}; expected one of: "
            f"{', '.join(allowed)} (set table2.{column}s: null to accept any name)"
        )


def _duplicates(frame: pd.DataFrame, keys: Sequence[str], source: str) -> None:
    lines = _lines(frame)
    dup = frame.duplicated(list(keys), keep=False).to_numpy()
    if not dup.any():
        return
    problems = []
    groups = frame[dup].assign(**{_LINE: lines[dup]}).groupby(list(keys), sort=False)[_LINE]
    for key, rows in groups:
        key = key if isinstance(key, tuple) else (key,)
        desc = ", ".join(f"{k}={v!r}" for k, v in zip(keys, key, strict=True))
        problems.append(f"rows {', '.join(str(r) for r in rows)}: duplicate rows for {desc} (one row expected)")
    _raise(problems, source)


def _order(values: Iterable[str], allowed: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(values))
    if allowed is None:
        return present
    return [n for n in allowed if n in set(present)]


def validate_summary(frame: pd.DataFrame, cfg: Table2Config | None = None, source: str = "summary") -> pd.DataFrame:
    """Check and type a summary table (input B).

    Parameters
    ----------
    frame : DataFrame with at least the columns ``method, aspect, mean, sd, n`` (strings or numbers);
        rows are numbered as CSV lines (header = row 1) — from :func:`read_summary`, or row i = i + 2.
    cfg : names, scale; default :class:`Table2Config`.
    source : file name used in error messages.

    Returns
    -------
    DataFrame ``method, aspect, mean, sd, n`` (n int), rows in table order (``cfg.methods`` then
    ``cfg.aspects``).

    Raises
    ------
    Table2InputError
        Missing columns; empty, non-numeric or non-finite cells; a mean outside the rating scale;
        sd < 0; n not a whole number or n < 2; unknown method/aspect names; duplicate
        (method, aspect) rows. Each message names the file, row and column.
    """
    cfg = cfg or Table2Config()
    _check_header(list(frame.columns), SUMMARY_COLUMNS, source)
    lines = _lines(frame)
    problems: list[str] = []
    methods = _texts(frame, "method", problems)
    aspects = _texts(frame, "aspect", problems)
    _check_names(methods, cfg.methods, "method", lines, problems)
    _check_names(aspects, cfg.aspects, "aspect", lines, problems)
    mean = _numbers(frame, "mean", problems)
    sd = _numbers(frame, "sd", problems)
    n = _numbers(frame, "n", problems)
    lo, hi = _fmt_num(cfg.rating_min), _fmt_num(cfg.rating_max)
    for i, line in enumerate(lines):
        if np.isfinite(mean[i]) and not cfg.rating_min <= mean[i] <= cfg.rating_max:
            problems.append(f"row {line}, column mean: {_fmt_num(mean[i])} is outside the rating scale {lo}-{hi}")
        if np.isfinite(sd[i]) and sd[i] < 0:
            problems.append(f"row {line}, column sd: {_fmt_num(sd[i])} is negative")
        if np.isfinite(n[i]):
            if n[i] != round(n[i]):
                problems.append(f"row {line}, column n: {_fmt_num(n[i])} is not a whole number")
            elif n[i] < 2:
                problems.append(
                    f"row {line}, column n: n = {int(n[i])}, but at least 2 ratings are needed "
                    "for a standard deviation and a t-test"
                )
    _raise(problems, source)
    out = pd.DataFrame({"method": methods, "aspect": aspects, "mean": mean, "sd": sd, "n": n.astype(int)})
    if _LINE in frame.columns:
        out[_LINE] = lines
    _duplicates(out, ("method", "aspect"), source)
    return _sort(out.drop(columns=[_LINE], errors="ignore"), cfg)


def read_summary(path: str | Path, cfg: Table2Config | None = None, source: str | None = None) -> pd.DataFrame:
    """Read and validate a summary CSV (input B); see :func:`validate_summary`."""
    source = source or Path(path).name
    frame, blank = _read_rows(path, SUMMARY_COLUMNS, source)
    if blank:
        log.info("%s: skipped %d blank line(s)", source, blank)
    if frame.empty:
        raise Table2InputError(f"{source}: no data rows below the header")
    return validate_summary(frame, cfg, source)


def validate_responses(frame: pd.DataFrame, cfg: Table2Config | None = None, source: str = "responses") -> pd.DataFrame:
    """Check and type raw survey responses (input A, long format, one rating per row).

    Parameters
    ----------
    frame : DataFrame with at least ``participant, ai_background, method, aspect, rating``;
        one row per participant × method × aspect (average a participant's ratings over the four
        images before, if there are several). Rows are numbered as CSV lines (header = row 1).
    cfg : names and rating scale; default :class:`Table2Config`.
    source : file name used in error messages.

    Returns
    -------
    DataFrame ``participant, ai_background, method, aspect, rating`` (``ai_background`` lower-case
    ``yes``/``no``, rating float).

    Raises
    ------
    Table2InputError
        Missing columns; empty cells; ``ai_background`` not yes/no, or both for one participant;
        ratings non-numeric or outside ``[rating_min, rating_max]``; unknown method/aspect names;
        duplicate (participant, method, aspect) rows (naming their rows).
    """
    cfg = cfg or Table2Config()
    _check_header(list(frame.columns), RESPONSE_COLUMNS, source)
    lines = _lines(frame)
    problems: list[str] = []
    participants = _texts(frame, "participant", problems)
    background = [b.lower() for b in _texts(frame, "ai_background", problems)]
    methods = _texts(frame, "method", problems)
    aspects = _texts(frame, "aspect", problems)
    for b, line in zip(background, lines, strict=True):
        if b and b not in BACKGROUNDS:
            problems.append(f"row {line}, column ai_background: expected yes or no, got {b!r}")
    _check_names(methods, cfg.methods, "method", lines, problems)
    _check_names(aspects, cfg.aspects, "aspect", lines, problems)
    rating = _numbers(frame, "rating", problems)
    lo, hi = _fmt_num(cfg.rating_min), _fmt_num(cfg.rating_max)
    for r, line in zip(rating, lines, strict=True):
        if np.isfinite(r) and not cfg.rating_min <= r <= cfg.rating_max:
            problems.append(f"row {line}, column rating: {_fmt_num(r)} is outside {lo}-{hi}")
    _raise(problems, source)
    out = pd.DataFrame(
        {"participant": participants, "ai_background": background, "method": methods, "aspect": aspects, "rating": rating}
    )
    out[_LINE] = lines
    mixed = out.groupby("participant", sort=False)["ai_background"].nunique()
    for pid in mixed[mixed > 1].index[:_MAX_PROBLEMS]:
        rows = out.loc[out["participant"] == pid].groupby("ai_background")[_LINE].first()
        problems.append(
            f"column ai_background: participant {pid!r} is both 'yes' (row {rows['yes']}) and 'no' (row {rows['no']})"
        )
    _raise(problems, source)
    _duplicates(out, ("participant", "method", "aspect"), source)
    return out.drop(columns=[_LINE]).reset_index(drop=True)


def read_responses(path: str | Path, cfg: Table2Config | None = None, source: str | None = None) -> pd.DataFrame:
    """Read and validate a raw-responses CSV (input A); see :func:`validate_responses`."""
    source = source or Path(path).name
    frame, blank = _read_rows(path, RESPONSE_COLUMNS, source)
    if blank:
        log.info("%s: skipped %d blank line(s)", source, blank)
    if frame.empty:
        raise Table2InputError(f"{source}: no data rows below the header")
    return validate_responses(frame, cfg, source)


def _sort(frame: pd.DataFrame, cfg: Table2Config) -> pd.DataFrame:
    methods = _order(frame["method"], cfg.methods)
    aspects = _order(frame["aspect"], cfg.aspects)
    key_m = {m: i for i, m in enumerate(methods)}
    key_a = {a: i for i, a in enumerate(aspects)}
    order = np.lexsort((frame["aspect"].map(key_a).to_numpy(), frame["method"].map(key_m).to_numpy()))
    return frame.iloc[order].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# statistics


def apply_correction(tests: pd.DataFrame, cfg: Table2Config) -> pd.DataFrame:
    """Fill ``p_adjusted``, ``significant``, ``correction`` and ``family_size`` of a tests table.

    Families: per ``test`` (and ``group`` when present), and per ``aspect`` when
    ``cfg.family == "aspect"``. ``significant`` = adjusted p < ``cfg.alpha``.
    """
    tests = tests.copy()
    keys = [k for k in ("group", "test") if k in tests.columns]
    if cfg.family == "aspect":
        keys.append("aspect")
    tests["p_adjusted"] = np.nan
    tests["family_size"] = 0
    for _, idx in tests.groupby(keys[0] if len(keys) == 1 else keys, sort=False).groups.items():
        p = tests.loc[idx, "p_value"].to_numpy(dtype=float)
        tests.loc[idx, "p_adjusted"] = adjust_pvalues(p, cfg.correction, cfg.alpha)
        tests.loc[idx, "family_size"] = int(np.isfinite(p).sum())
    tests["significant"] = (tests["p_adjusted"] < cfg.alpha).fillna(False).astype(bool)
    tests["correction"] = cfg.correction
    return tests


def welch_from_summary(
    mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int, effect: str = "hedges_g"
) -> dict[str, float]:
    """Welch's t-test from summary statistics, its Welch-Satterthwaite df and an effect size.

    Returns
    -------
    ``statistic`` (t for a - b), ``p_value`` (two-sided), ``df``, ``effect_size`` (Hedges' g or
    Cohen's d with the pooled sd; NaN when both sd are 0).
    """
    res = stats.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, equal_var=False)
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1)) if va + vb > 0 else np.nan
    pooled = math.sqrt(((n_a - 1) * sd_a**2 + (n_b - 1) * sd_b**2) / (n_a + n_b - 2))
    d = (mean_a - mean_b) / pooled if pooled > 0 else np.nan
    if effect == "hedges_g":
        d *= 1.0 - 3.0 / (4.0 * (n_a + n_b) - 9.0)
    return {"statistic": float(res.statistic), "p_value": float(res.pvalue), "df": float(df), "effect_size": float(d)}


def rank_biserial(diff: np.ndarray, zero_method: str = "wilcox") -> float:
    """Matched-pairs rank-biserial correlation (R+ - R-) / (R+ + R-) of paired differences.

    Zeros follow scipy's ``zero_method``: ``wilcox`` drops them before ranking, ``pratt`` ranks
    them and then drops their ranks, ``zsplit`` splits their ranks between R+ and R-.
    """
    d = np.asarray(diff, dtype=float)
    if zero_method == "wilcox":
        d = d[d != 0]
    if d.size == 0:
        return float("nan")
    ranks = stats.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    if zero_method == "zsplit":
        r_plus += ranks[d == 0].sum() / 2
        r_minus += ranks[d == 0].sum() / 2
    total = r_plus + r_minus
    return float((r_plus - r_minus) / total) if total > 0 else float("nan")


def paired_pair_tests(a: np.ndarray, b: np.ndarray, cfg: Table2Config) -> list[dict[str, Any]]:
    """Paired t-test and Wilcoxon signed-rank test of ratings ``a`` vs ``b`` (same participants).

    Parameters
    ----------
    a, b : arrays of shape (P,), participant p's ratings of the two methods.

    Returns
    -------
    Two dicts (``paired_t``, ``wilcoxon``) with ``statistic, df, p_value, effect_size,
    effect_size_name, note``. When every difference is zero both tests are undefined: NaN
    statistic and p-value (left out of the correction, never significant) and a ``note``.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = a - b
    n = d.size
    if np.all(d == 0):
        note = "all differences are zero"
        nan = float("nan")
        return [
            {"test": PAIRED_T, "statistic": nan, "df": float(n - 1), "p_value": nan, "effect_size": nan,
             "effect_size_name": cfg.paired_effect_size, "note": note},
            {"test": WILCOXON, "statistic": nan, "df": nan, "p_value": nan, "effect_size": nan,
             "effect_size_name": "rank_biserial", "note": note},
        ]
    t = stats.ttest_rel(a, b)
    if cfg.paired_effect_size == "d_z":
        scale = d.std(ddof=1)
    else:  # d_av
        scale = (a.std(ddof=1) + b.std(ddof=1)) / 2
    effect = float(d.mean() / scale) if scale > 0 else float(np.sign(d.mean()) * np.inf)
    w = stats.wilcoxon(
        a, b, zero_method=cfg.wilcoxon_zero_method, correction=cfg.wilcoxon_correction, method=cfg.wilcoxon_method
    )
    return [
        {"test": PAIRED_T, "statistic": float(t.statistic), "df": float(n - 1), "p_value": float(t.pvalue),
         "effect_size": effect, "effect_size_name": cfg.paired_effect_size, "note": ""},
        {"test": WILCOXON, "statistic": float(w.statistic), "df": float("nan"), "p_value": float(w.pvalue),
         "effect_size": rank_biserial(d, cfg.wilcoxon_zero_method), "effect_size_name": "rank_biserial", "note": ""},
    ]


def _finish(rows: list[dict[str, Any]], cfg: Table2Config, group: bool = False) -> pd.DataFrame:
    cols = (("group",) if group else ()) + TEST_COLUMNS
    tests = pd.DataFrame(rows, columns=[c for c in cols if c not in ("p_adjusted", "significant", "correction", "family_size")])
    tests = apply_correction(tests, cfg) if len(tests) else tests.assign(
        p_adjusted=np.nan, significant=False, correction=cfg.correction, family_size=0
    )
    return tests[list(cols)]


def welch_tests(summary: pd.DataFrame, cfg: Table2Config | None = None) -> pd.DataFrame:
    """Welch's t-test from summaries for every pair of methods within each aspect (input B).

    Parameters
    ----------
    summary : validated summary (:func:`validate_summary`).

    Returns
    -------
    Tests table (:data:`TEST_COLUMNS`), ``test = welch_t``; pairs in table order (method_a
    before method_b), statistic and mean_diff are a - b; corrected per :func:`apply_correction`.
    """
    cfg = cfg or Table2Config()
    rows = []
    for aspect in _order(summary["aspect"], cfg.aspects):
        sub = summary[summary["aspect"] == aspect].set_index("method")
        for ma, mb in itertools.combinations(_order(sub.index, cfg.methods), 2):
            ra, rb = sub.loc[ma], sub.loc[mb]
            res = welch_from_summary(ra["mean"], ra["sd"], int(ra["n"]), rb["mean"], rb["sd"], int(rb["n"]), cfg.welch_effect_size)
            note = "both sd are zero" if not math.isfinite(res["p_value"]) else ""
            rows.append({
                "aspect": aspect, "method_a": ma, "method_b": mb, "test": WELCH_T,
                "n_a": int(ra["n"]), "n_b": int(rb["n"]), "mean_a": float(ra["mean"]), "mean_b": float(rb["mean"]),
                "mean_diff": float(ra["mean"] - rb["mean"]), **res,
                "effect_size_name": cfg.welch_effect_size, "note": note,
            })
    return _finish(rows, cfg)


@dataclass(frozen=True)
class CompleteCases:
    """Participants kept per aspect for the paired tests.

    ratings : one wide frame per aspect, index participant, columns the aspect's methods (table order).
    dropped : frame ``participant, aspect, missing`` — participants without a rating for every
        method of the aspect (``missing`` lists the methods they lack).
    """

    ratings: dict[str, pd.DataFrame]
    dropped: pd.DataFrame

    def dropped_counts(self) -> dict[str, int]:
        counts = self.dropped.groupby("aspect").size() if len(self.dropped) else pd.Series(dtype=int)
        return {a: int(counts.get(a, 0)) for a in self.ratings}


def complete_cases(responses: pd.DataFrame, cfg: Table2Config | None = None) -> CompleteCases:
    """Per aspect, keep the participants who rated every method rated in that aspect.

    A participant of the data set who lacks any of them (including one who did not rate the
    aspect at all) is dropped for that aspect and listed in ``dropped``.
    """
    cfg = cfg or Table2Config()
    everyone = list(dict.fromkeys(responses["participant"]))
    ratings, dropped = {}, []
    for aspect in _order(responses["aspect"], cfg.aspects):
        sub = responses[responses["aspect"] == aspect]
        methods = _order(sub["method"], cfg.methods)
        wide = sub.pivot(index="participant", columns="method", values="rating").reindex(index=everyone, columns=methods)
        complete = wide.notna().all(axis=1)
        for pid in wide.index[~complete]:
            missing = [m for m in methods if pd.isna(wide.at[pid, m])]
            dropped.append({"participant": pid, "aspect": aspect, "missing": "; ".join(missing)})
        ratings[aspect] = wide[complete]
    return CompleteCases(ratings, pd.DataFrame(dropped, columns=["participant", "aspect", "missing"]))


def describe_cases(cases: CompleteCases, cfg: Table2Config | None = None) -> pd.DataFrame:
    """Mean ± sd (ddof 1) per method × aspect over the kept participants.

    Returns
    -------
    DataFrame ``method, aspect, mean, sd, n`` in table order.
    """
    cfg = cfg or Table2Config()
    rows = []
    for aspect, wide in cases.ratings.items():
        for m in wide.columns:
            x = wide[m].to_numpy(float)
            rows.append({"method": m, "aspect": aspect, "mean": float(x.mean()) if x.size else np.nan,
                         "sd": float(x.std(ddof=1)) if x.size > 1 else np.nan, "n": int(x.size)})
    frame = pd.DataFrame(rows, columns=["method", "aspect", "mean", "sd", "n"])
    return _sort(frame, cfg) if len(frame) else frame


def _paired_rows(cases: CompleteCases, cfg: Table2Config, min_n: int) -> list[dict[str, Any]]:
    rows = []
    for aspect, wide in cases.ratings.items():
        if len(wide) < min_n:
            continue
        for ma, mb in itertools.combinations(list(wide.columns), 2):
            a, b = wide[ma].to_numpy(float), wide[mb].to_numpy(float)
            for res in paired_pair_tests(a, b, cfg):
                rows.append({
                    "aspect": aspect, "method_a": ma, "method_b": mb, "n_a": len(a), "n_b": len(b),
                    "mean_a": float(a.mean()), "mean_b": float(b.mean()), "mean_diff": float((a - b).mean()), **res,
                })
    return rows


def paired_tests(responses: pd.DataFrame, cfg: Table2Config | None = None, source: str = "responses") -> pd.DataFrame:
    """Paired t-test and Wilcoxon for every pair of methods within each aspect (input A).

    Only participants who rated every method of the aspect enter (:func:`complete_cases`).

    Raises
    ------
    Table2Error
        An aspect with fewer than 2 such participants (naming the aspect and the drop count).
    """
    cfg = cfg or Table2Config()
    cases = complete_cases(responses, cfg)
    _require_two(cases, source)
    return _finish(_paired_rows(cases, cfg, 2), cfg)


def _require_two(cases: CompleteCases, source: str) -> None:
    counts = cases.dropped_counts()
    for aspect, wide in cases.ratings.items():
        if len(wide) < 2:
            raise Table2Error(
                f"{source}: aspect {aspect!r}: {len(wide)} participant(s) rated every method "
                f"({', '.join(wide.columns)}), {counts[aspect]} dropped for a missing method; "
                "paired tests need at least 2"
            )


# --------------------------------------------------------------------------------------------
# claims


@dataclass(frozen=True)
class Comparison:
    """One pairwise comparison a claim depends on (``higher`` expected above ``lower``, or a tie)."""

    aspect: str
    higher: str
    lower: str
    mean_higher: float
    mean_lower: float
    p_value: float
    p_adjusted: float
    holds: bool


@dataclass(frozen=True)
class ClaimResult:
    """Verdict on one claim: ``holds`` is True/False, or None when the data lack a method/aspect."""

    claim: Claim
    holds: bool | None
    evidence: str
    comparisons: tuple[Comparison, ...] = field(default=())


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.1e}" if p < 0.001 else f"{p:.3f}"


def _describe(c: Comparison, kind: str, correction: str) -> str:
    rel = ">" if kind == "greater" else "vs"
    return (
        f"{c.higher} {rel} {c.lower} on {c.aspect}: mean {c.mean_higher:.2f} vs {c.mean_lower:.2f}, "
        f"p = {_fmt_p(c.p_value)}, p_adj ({correction}) = {_fmt_p(c.p_adjusted)}"
    )


def check_claims(tests: pd.DataFrame, cfg: Table2Config | None = None, test: str | None = None) -> list[ClaimResult]:
    """Check ``cfg.claims`` against a tests table.

    Parameters
    ----------
    tests : tests table (:func:`welch_tests` or :func:`paired_tests`).
    test : which test decides (default: ``welch_t`` if present, else ``cfg.claim_test``).

    A ``greater`` comparison holds when the first method's mean is higher and the adjusted
    p-value is below ``cfg.alpha``; a ``no_difference`` comparison holds when it is not
    significant. A claim holds when all its comparisons hold; it is untestable (None) when a
    comparison is missing from the data.
    """
    cfg = cfg or Table2Config()
    if test is None:
        test = WELCH_T if (tests["test"] == WELCH_T).any() else cfg.claim_test
    sub = tests[tests["test"] == test]
    index = {}
    for row in sub.itertuples(index=False):
        index[(row.aspect, row.method_a, row.method_b)] = row
    results = []
    for claim in cfg.claims:
        pairs = (
            [(a, m, v) for a in claim.aspects for m in claim.methods for v in claim.versus]
            if claim.kind == "greater"
            else [(a, m, v) for a in claim.aspects for m, v in itertools.combinations(claim.methods, 2)]
        )
        comps, missing = [], []
        for aspect, hi, lo in pairs:
            row, flip = index.get((aspect, hi, lo)), False
            if row is None:
                row, flip = index.get((aspect, lo, hi)), True
            if row is None:
                missing.append(f"{hi} vs {lo} on {aspect}")
                continue
            m_hi, m_lo = (row.mean_b, row.mean_a) if flip else (row.mean_a, row.mean_b)
            sig = bool(row.significant)
            ok = (sig and m_hi > m_lo) if claim.kind == "greater" else not sig
            comps.append(Comparison(aspect, hi, lo, float(m_hi), float(m_lo), float(row.p_value), float(row.p_adjusted), ok))
        if missing:
            results.append(ClaimResult(claim, None, f"not testable: no {test} result for {'; '.join(missing)}", tuple(comps)))
            continue
        failed = [c for c in comps if not c.holds]
        holds = not failed
        if claim.kind == "greater":
            if holds:
                worst = max(comps, key=lambda c: c.p_adjusted)
                evidence = (f"all {len(comps)} comparisons significant in the stated direction "
                            f"(largest: {_describe(worst, claim.kind, cfg.correction)})")
            else:
                evidence = f"{len(failed)} of {len(comps)} comparisons fail: " + "; ".join(
                    _describe(c, claim.kind, cfg.correction)
                    + (" (lower mean)" if c.mean_higher <= c.mean_lower else " (not significant)")
                    for c in failed
                )
        else:
            if holds:
                best = min(comps, key=lambda c: c.p_adjusted if math.isfinite(c.p_adjusted) else 2.0)
                evidence = (f"none of {len(comps)} comparisons significant "
                            f"(smallest: {_describe(best, claim.kind, cfg.correction)})")
            else:
                evidence = f"{len(failed)} of {len(comps)} comparisons significant: " + "; ".join(
                    _describe(c, claim.kind, cfg.correction) for c in failed
                )
        results.append(ClaimResult(claim, holds, evidence, tuple(comps)))
    return results


# --------------------------------------------------------------------------------------------
# the whole analysis


@dataclass(frozen=True)
class Table2Result:
    """Everything :func:`analyse_summary` / :func:`analyse_responses` computes.

    kind : ``summary`` (input B, Welch) or ``responses`` (input A, paired + Wilcoxon).
    table : ``method, aspect, mean, sd, n, best`` (best = highest rounded mean of its aspect).
    tests : tests table (:data:`TEST_COLUMNS`).
    claims : verdicts on ``cfg.claims`` (decided by Welch, or by ``cfg.claim_test``).
    claims_other : responses only — the same claims decided by the other paired test.
    dropped : responses only — participants dropped per aspect (``participant, aspect, missing``).
    by_background_table, by_background_tests : responses only — the table and tests per
        AI-background group (``group`` column, ``yes``/``no``).
    skipped_groups : responses only — ``(group, aspect)`` pairs with < 2 participants (no tests).
    n_participants : responses only — distinct participants in the data.
    ai_background_share : responses only — share of participants with ``ai_background = yes``.
    """

    kind: Literal["summary", "responses"]
    config: Table2Config
    table: pd.DataFrame
    tests: pd.DataFrame
    claims: tuple[ClaimResult, ...]
    claims_other: tuple[ClaimResult, ...] = ()
    dropped: pd.DataFrame | None = None
    by_background_table: pd.DataFrame | None = None
    by_background_tests: pd.DataFrame | None = None
    skipped_groups: tuple[tuple[str, str], ...] = ()
    n_participants: int | None = None
    ai_background_share: float | None = None

    @property
    def test_name(self) -> str:
        """The test that decides the claims."""
        return WELCH_T if self.kind == "summary" else self.config.claim_test

    def metrics(self) -> dict[str, Any]:
        """Scalar summary for ``metrics/table2.json`` and MLflow."""
        main = self.tests[self.tests["test"] == self.test_name]
        verdicts = [c.holds for c in self.claims]
        out: dict[str, Any] = {
            "input": self.kind,
            "test": self.test_name,
            "n_methods": int(self.table["method"].nunique()),
            "n_aspects": int(self.table["aspect"].nunique()),
            "n_comparisons": int(len(main)),
            "n_significant": int(main["significant"].sum()),
            "claims_total": len(verdicts),
            "claims_hold": sum(v is True for v in verdicts),
            "claims_fail": sum(v is False for v in verdicts),
            "claims_untestable": sum(v is None for v in verdicts),
            "claims": {c.claim.name: (None if c.holds is None else int(c.holds)) for c in self.claims},
        }
        if self.kind == "responses":
            counts = self.dropped.groupby("aspect").size() if len(self.dropped) else pd.Series(dtype=int)
            out.update({
                "n_participants": self.n_participants,
                "ai_background_share": self.ai_background_share,
                "dropped_participants": {a: int(counts.get(a, 0)) for a in _order(self.table["aspect"], None)},
                "dropped_total": int(len(self.dropped)),
                "skipped_group_aspects": len(self.skipped_groups),
            })
        return out


def mark_best(table: pd.DataFrame, decimals: int = 2, by: Sequence[str] = ("aspect",)) -> pd.DataFrame:
    """Add ``best``: the highest mean of each aspect (compared as rounded; ties all best)."""
    table = table.copy()
    rounded = table["mean"].round(decimals)
    table["best"] = rounded.eq(rounded.groupby([table[k] for k in by]).transform("max"))
    return table


def analyse_summary(summary: pd.DataFrame, cfg: Table2Config | None = None) -> Table2Result:
    """Input B: Welch's t-tests from published mean, sd, n; claims decided by Welch."""
    cfg = cfg or Table2Config()
    table = mark_best(_sort(summary[["method", "aspect", "mean", "sd", "n"]], cfg), cfg.decimals)
    tests = welch_tests(summary, cfg)
    if tests.empty:
        raise Table2Error("summary: no aspect has two methods, so there is nothing to compare")
    return Table2Result("summary", cfg, table, tests, tuple(check_claims(tests, cfg, WELCH_T)))


def analyse_responses(responses: pd.DataFrame, cfg: Table2Config | None = None, source: str = "responses") -> Table2Result:
    """Input A: paired t-test and Wilcoxon per aspect, the same per AI-background group.

    Participants missing a method of an aspect are dropped for that aspect (counted in
    ``dropped``); the table describes the kept participants, so its n matches the tests.
    """
    cfg = cfg or Table2Config()
    cases = complete_cases(responses, cfg)
    _require_two(cases, source)
    table = mark_best(describe_cases(cases, cfg), cfg.decimals)
    tests = _finish(_paired_rows(cases, cfg, 2), cfg)
    if tests.empty:
        raise Table2Error(f"{source}: no aspect has two methods, so there is nothing to compare")
    other = WILCOXON if cfg.claim_test == PAIRED_T else PAIRED_T
    background = responses.drop_duplicates("participant").set_index("participant")["ai_background"]

    group_tables, group_rows, skipped = [], [], []
    for group in BACKGROUNDS:
        members = set(background.index[background == group])
        sub = CompleteCases({a: w[w.index.isin(members)] for a, w in cases.ratings.items()}, cases.dropped)
        desc = describe_cases(sub, cfg)
        if len(desc):
            group_tables.append(desc.assign(group=group))
        for aspect, wide in sub.ratings.items():
            if len(wide) < 2:
                skipped.append((group, aspect))
                log.warning("%s: AI background %r has %d participant(s) on %s: no tests", source, group, len(wide), aspect)
        group_rows += [dict(r, group=group) for r in _paired_rows(sub, cfg, 2)]
    by_table = pd.concat(group_tables, ignore_index=True) if group_tables else pd.DataFrame(
        columns=["group", "method", "aspect", "mean", "sd", "n"]
    )
    by_table = mark_best(by_table, cfg.decimals, by=("group", "aspect"))
    by_table = by_table[["group", "method", "aspect", "mean", "sd", "n", "best"]]
    by_tests = _finish(group_rows, cfg, group=True)
    return Table2Result(
        "responses", cfg, table, tests,
        claims=tuple(check_claims(tests, cfg, cfg.claim_test)),
        claims_other=tuple(check_claims(tests, cfg, other)),
        dropped=cases.dropped,
        by_background_table=by_table,
        by_background_tests=by_tests,
        skipped_groups=tuple(skipped),
        n_participants=int(background.size),
        ai_background_share=float((background == "yes").mean()),
    )


def analyse(frame: pd.DataFrame, cfg: Table2Config | None = None, source: str = "input") -> Table2Result:
    """Dispatch on the input type: raw responses → paired tests; summaries → Welch.

    The frame is validated first (:func:`validate_responses` / :func:`validate_summary`).
    """
    cols = set(frame.columns)
    if set(RESPONSE_COLUMNS) <= cols:
        return analyse_responses(validate_responses(frame, cfg, source), cfg, source)
    if set(SUMMARY_COLUMNS) <= cols:
        return analyse_summary(validate_summary(frame, cfg, source), cfg)
    raise Table2InputError(
        f"{source}: expected the columns of raw responses ({', '.join(RESPONSE_COLUMNS)}) or of summaries "
        f"({', '.join(SUMMARY_COLUMNS)}); found {', '.join(map(str, frame.columns))}"
    )


# --------------------------------------------------------------------------------------------
# rendering


def _wide(table: pd.DataFrame, cfg: Table2Config) -> tuple[list[str], list[str], dict[tuple[str, str], tuple[str, bool]]]:
    methods = _order(table["method"], cfg.methods)
    aspects = _order(table["aspect"], cfg.aspects)
    d = cfg.decimals
    cells = {}
    for r in table.itertuples(index=False):
        sd = "n/a" if not math.isfinite(r.sd) else f"{r.sd:.{d}f}"
        cells[(r.method, r.aspect)] = (f"{r.mean:.{d}f} ± {sd}", bool(r.best))
    return methods, aspects, cells


def _n_note(table: pd.DataFrame, csv_name: str = "table2.csv") -> str:
    ns = sorted(set(int(n) for n in table["n"]))
    return f"n = {ns[0]} per cell" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]} per cell (see {csv_name})"


def table_markdown(
    table: pd.DataFrame, cfg: Table2Config | None = None, caption: str | None = None, csv_name: str = "table2.csv"
) -> str:
    """Markdown table: methods × aspects, ``mean ± sd``, the best mean of each aspect in bold.

    ``csv_name`` is the file the footnote points to for the per-cell n when n varies.
    """
    cfg = cfg or Table2Config()
    methods, aspects, cells = _wide(table, cfg)
    lines = []
    if caption:
        lines += [caption, ""]
    lines.append("| method | " + " | ".join(aspects) + " |")
    lines.append("|---|" + "---:|" * len(aspects))
    for m in methods:
        out = []
        for a in aspects:
            text, best = cells.get((m, a), ("–", False))
            out.append(f"**{text}**" if best else text)
        lines.append(f"| {m} | " + " | ".join(out) + " |")
    lines += ["", f"Mean ± sd on a {_fmt_num(cfg.rating_min)}-{_fmt_num(cfg.rating_max)} scale; "
              f"{_n_note(table, csv_name)}; best mean per aspect in bold."]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def table_latex(table: pd.DataFrame, cfg: Table2Config | None = None) -> str:
    """A booktabs ``tabular``: methods × aspects, ``mean $\\pm$ sd``, best per aspect in bold."""
    cfg = cfg or Table2Config()
    methods, aspects, cells = _wide(table, cfg)
    lines = [
        f"% Table 2 generated by inviz table2: mean $\\pm$ sd, {_n_note(table)}, best mean per aspect in bold",
        r"\begin{tabular}{l" + "c" * len(aspects) + "}",
        r"\toprule",
        "Method & " + " & ".join(latex_escape(a) for a in aspects) + r" \\",
        r"\midrule",
    ]
    for m in methods:
        out = []
        for a in aspects:
            text, best = cells.get((m, a), ("--", False))
            text = text.replace(" ± ", r" $\pm$ ")
            out.append(rf"\textbf{{{text}}}" if best else text)
        lines.append(latex_escape(m) + " & " + " & ".join(out) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


_TEST_TITLES = {
    WELCH_T: "Welch's t-test from the summary statistics (scipy `ttest_ind_from_stats`)",
    PAIRED_T: "paired t-test (scipy `ttest_rel`)",
    WILCOXON: "Wilcoxon signed-rank test (scipy `wilcoxon`)",
}


_TEST_NAMES = {WELCH_T: "Welch t-test", PAIRED_T: "paired t-test", WILCOXON: "Wilcoxon test"}


def _verdict(holds: bool | None) -> str:
    return {True: "holds", False: "**does not hold**", None: "not testable"}[holds]


def claims_markdown(result: Table2Result, source: str = "input") -> str:
    """The short generated text: which claims of the paper hold, with the key p-values."""
    cfg = result.config
    families = "within each aspect" if cfg.family == "aspect" else "over the whole table"
    main = result.tests[result.tests["test"] == result.test_name]
    sizes = sorted(set(int(s) for s in main["family_size"]))
    size_txt = f"{sizes[0]}" if len(sizes) == 1 else f"{sizes[0]}-{sizes[-1]}"
    lines = ["# Table 2: which claims of the paper hold", ""]
    if result.kind == "summary":
        lines += [
            f"Input: published summary statistics (`{source}`: mean, sd and n per method and aspect). "
            f"Every pair of methods is compared with {_TEST_TITLES[WELCH_T]}; p-values are corrected "
            f"with `{cfg.correction}` {families} ({size_txt} comparisons per family), α = {cfg.alpha:g}.",
            "",
            "> **Approximation.** Every participant rated all methods, but Welch's test from summaries "
            "treats the methods as independent groups: it ignores the pairing. When a participant's "
            "ratings of different methods are positively correlated (the usual case) a paired test has a "
            "smaller standard error, so Welch is conservative here: differences significant below would "
            "most likely be significant in a paired analysis too, while non-significant ones might become "
            "significant (so a \"do not differ\" verdict is weaker evidence than a \"significantly above\" "
            "one). Only the raw responses (`inviz table2 --responses`) allow the paired tests the paper ran.",
        ]
    else:
        counts = result.metrics()["dropped_participants"]
        dropped = ", ".join(f"{a}: {n}" for a, n in counts.items())
        other = WILCOXON if cfg.claim_test == PAIRED_T else PAIRED_T
        lines += [
            f"Input: raw survey responses (`{source}`, {result.n_participants} participants). Within each "
            f"aspect every pair of methods is compared with a {_TEST_TITLES[PAIRED_T]} and a "
            f"{_TEST_TITLES[WILCOXON]} over the participants who rated every method of the aspect "
            f"(dropped for a missing method — {dropped}); p-values are corrected with `{cfg.correction}` "
            f"{families} ({size_txt} comparisons per family and test), α = {cfg.alpha:g}. "
            f"Claims are decided by the {_TEST_NAMES[cfg.claim_test]}; the {_TEST_NAMES[other]} "
            "verdict is shown alongside.",
        ]
        if result.ai_background_share is not None:
            paper = (f" (paper: {cfg.ai_background_share:.0%})" if cfg.ai_background_share is not None else "")
            lines += ["", f"AI background: {result.ai_background_share:.1%} of the participants{paper}."]
    lines += ["", "| # | claim | verdict |" + (" other test |" if result.claims_other else ""),
              "|---|---|---|" + ("---|" if result.claims_other else "")]
    for i, c in enumerate(result.claims, 1):
        row = f"| {i} | {c.claim.text} | {_verdict(c.holds)} |"
        if result.claims_other:
            row += f" {_verdict(result.claims_other[i - 1].holds)} |"
        lines.append(row)
    lines += ["", "## Evidence", ""]
    for i, c in enumerate(result.claims, 1):
        lines.append(f"{i}. *{c.claim.text}* — {_verdict(c.holds)}: {c.evidence}.")
        uncorrected = [x for x in c.comparisons if not x.holds and c.claim.kind == "greater"
                       and x.mean_higher > x.mean_lower and x.p_value < cfg.alpha]
        if uncorrected:
            n_failed = sum(not x.holds for x in c.comparisons)
            only = (f"; the claim fails only because of the `{cfg.correction}` correction"
                    if len(uncorrected) == n_failed else "")
            lines.append(f"   Without correction {len(uncorrected)} of the failing comparisons would be "
                         f"significant (raw p < {cfg.alpha:g}){only}.")
    n_sig = int(main["significant"].sum())
    lines += ["", f"{n_sig} of {len(main)} comparisons are significant after correction; "
              "all tests are in `table2_tests.csv`."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# figures


def ratings_figure(table: pd.DataFrame, cfg: Table2Config | None = None, title: str | None = None) -> Any:
    """Mean rating per method and aspect with error bars (t-interval at ``ci_level`` or ± sd).

    Parameters
    ----------
    table : ``method, aspect, mean, sd, n`` (the result's ``table``).

    Returns
    -------
    matplotlib Figure (x = aspect, one colour per method).
    """
    from inviz.core.plotting import new_figure, palette

    cfg = cfg or Table2Config()
    methods = _order(table["method"], cfg.methods)
    aspects = _order(table["aspect"], cfg.aspects)
    fig, ax = new_figure(width=max(3.4, 1.3 * len(aspects) + 0.6), height=2.8)
    colours = palette(len(methods))
    width = 0.8 / max(len(methods), 1)
    for i, m in enumerate(methods):
        sub = table[table["method"] == m].set_index("aspect").reindex(aspects)
        x = np.arange(len(aspects)) - 0.4 + width * (i + 0.5)
        sd = sub["sd"].to_numpy(float)
        n = sub["n"].to_numpy(float)
        if cfg.interval == "sd":
            err = sd
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                err = stats.t.ppf(0.5 + cfg.ci_level / 2, n - 1) * sd / np.sqrt(n)
        ax.errorbar(x, sub["mean"].to_numpy(float), yerr=np.nan_to_num(err), fmt="o", ms=3.5, capsize=2,
                    lw=1, color=colours[i], label=m)
    ax.set_xticks(np.arange(len(aspects)), aspects, rotation=15, ha="right")
    ax.set_ylim(cfg.rating_min - 0.2, cfg.rating_max + 0.2)
    ax.set_ylabel("rating (mean)")
    bars = f"{cfg.ci_level:.0%} CI" if cfg.interval == "ci" else "± sd"
    ax.set_title(title or f"Ratings per method and aspect (error bars: {bars})")
    ax.legend(ncols=min(len(methods), 3), loc="lower left", frameon=False)
    ax.grid(axis="y", lw=0.3, alpha=0.5)
    return fig


#: small p dark, p near 1 light (seaborn "rocket", perceptually uniform)
P_CMAP = "rocket"


def _short(name: str) -> str:
    """Axis label: ``SHAP (Gradient Explainer)`` → ``SHAP (G)``, ``INV (Simplified)`` → ``INV (S)``."""
    head, sep, rest = name.partition(" (")
    return f"{head} ({rest[:1]})" if sep and rest else name


def pvalue_figure(tests: pd.DataFrame, test: str, cfg: Table2Config | None = None) -> Any:
    """Adjusted p-values per aspect as method × method heatmaps (lower triangle, ``*`` = significant)."""
    import matplotlib.colors as mcolors

    from inviz.core.plotting import new_figure

    cfg = cfg or Table2Config()
    sub = tests[tests["test"] == test]
    aspects = _order(sub["aspect"], cfg.aspects)
    methods = _order(pd.concat([sub["method_a"], sub["method_b"]]), cfg.methods)
    k = len(methods)
    fig, axes = new_figure(width=1.9 * len(aspects) + 0.8, height=2.4, ncols=len(aspects), squeeze=False)
    norm = mcolors.LogNorm(vmin=1e-6, vmax=1)
    image = None
    for ax, aspect in zip(axes[0], aspects, strict=True):
        mat = np.full((k, k), np.nan)
        sig = np.zeros((k, k), bool)
        for r in sub[sub["aspect"] == aspect].itertuples(index=False):
            i, j = methods.index(r.method_a), methods.index(r.method_b)
            lo, hi = max(i, j), min(i, j)  # lower triangle: row = later method
            mat[lo, hi] = r.p_adjusted
            sig[lo, hi] = bool(r.significant)
        image = ax.imshow(np.clip(mat, 1e-6, 1), cmap=P_CMAP, norm=norm)
        for i in range(k):
            for j in range(k):
                if np.isfinite(mat[i, j]):
                    txt = ("<.001" if mat[i, j] < 0.001 else f"{mat[i, j]:.2f}") + ("*" if sig[i, j] else "")
                    ax.text(j, i, txt, ha="center", va="center", fontsize=5,
                            color="white" if mat[i, j] < 1e-2 else "black")
        short = [_short(m) for m in methods]
        ax.set_xticks(range(k), short, rotation=90, fontsize=6)
        ax.set_yticks(range(k), short if ax is axes[0][0] else [""] * k, fontsize=6)
        ax.set_title(aspect, fontsize=8)
    if image is not None:
        cbar = fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
        cbar.set_label(f"adjusted p ({cfg.correction})", fontsize=7)
    fig.suptitle(f"{test.replace('_', ' ')}: adjusted p-values (* p_adj < {cfg.alpha:g})", fontsize=8)
    return fig
