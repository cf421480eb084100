"""``inviz survey_import``: filled-in survey forms -> the responses of ``inviz table2`` (docs/method.md §5).

The form is ``questionnaire_form.csv`` of ``inviz survey`` (one row per participant, columns
``participant, ai_background, <method> | <aspect>, …``); see :func:`inviz.survey.forms.read_form`.
Empty rating cells are missing answers: counted, listed in ``--missing`` and left to the paired
tests of ``table2`` to drop (and count) per aspect.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

HELP = "import filled-in survey forms into the long responses CSV of 'inviz table2 --responses'"
log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--form", required=True, help="filled-in questionnaire_form.csv")
    p.add_argument(
        "--out",
        required=True,
        help="output: responses CSV (participant, ai_background, method, aspect, rating)",
    )
    p.add_argument("--missing", help="output: the empty rating cells (participant, method, aspect, line)")
    p.set_defaults(params=None)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from inviz.core.config import from_dict, read_params
    from inviz.core.io import write_csv
    from inviz.survey.forms import read_form
    from inviz.survey.panels import SurveyConfig

    params = args.params or ("params.yaml" if Path("params.yaml").is_file() else None)
    cfg = (
        from_dict(SurveyConfig, read_params(params).get("survey"), "survey", str(params))
        if params
        else SurveyConfig()
    )
    responses, missing = read_form(args.form, cfg)
    write_csv(args.out, responses)
    if args.missing:
        write_csv(args.missing, missing)
    n = responses["participant"].nunique()
    log.info(
        "survey_import: %d participants, %d ratings, %d empty cells -> %s",
        n,
        len(responses),
        len(missing),
        args.out,
    )
    if len(missing):
        log.warning(
            "survey_import: %d empty rating cell(s) (missing answers)%s",
            len(missing),
            f", listed in {args.missing}" if args.missing else "",
        )
    return {"n_participants": int(n), "n_ratings": int(len(responses)), "n_missing": int(len(missing))}
