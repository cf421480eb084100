"""``inviz game report``: what a game collected, beside the paper's usability scores (docs/method.md §6-§7).

SUS and raw NASA-TLX mean ± sd next to the paper's 80.9 and 38.1 (210 players); plays per map,
layer and class; wins, losses and resigns; players flagged by the screening rounds. One
Markdown file, one figure and the tables behind them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from inviz.game.web.progress import Progress


@dataclass(frozen=True)
class GameReport:
    """The report: Markdown text, the figure, the tables (file stem -> DataFrame), the metrics."""

    markdown: str
    figure: Any
    tables: dict[str, pd.DataFrame]
    metrics: dict[str, Any]


def _ms(stat: dict[str, Any]) -> str:
    if not stat["n"]:
        return "– (no answers yet)"
    sd = f" ± {stat['sd']:.1f}" if stat["sd"] is not None else ""
    return f"{stat['mean']:.1f}{sd} (n = {stat['n']})"


def _md_table(frame: pd.DataFrame) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return "–" if np.isnan(v) else f"{v:.2f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in r) + " |" for r in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def markdown(p: Progress, title: str = "Deep Reveal") -> str:
    """Write the report's Markdown.

    Parameters
    ----------
    p : Progress
        From :func:`inviz.game.web.progress.progress`.
    title : str
        The game's name.

    Returns
    -------
    str
    """
    s = p.summary
    flagged = p.players.loc[
        ~p.players["passed_screening"], ["player_id", "screening_rounds", "screening_failures"]
    ]
    parts = [
        f"# {title}: game report",
        "",
        f"{s['players']} players ({s['ai_background']} with an AI background), "
        f"{s['flagged_players']} flagged by the screening rounds; {s['plays']} plays "
        f"({s['wins']} right, {s['losses']} wrong, {s['resigns']} resigns) and {s['screening_rounds']} "
        f"screening rounds ({s['screening_failed']} failed).",
        "",
        "## Usability (docs/method.md §6-§7)",
        "",
        "| questionnaire | this game (mean ± sd) | paper (210 players) |",
        "|---|---|---|",
        f"| SUS (0-100, higher is better) | {_ms(s['sus'])} | {s['sus']['paper']} |",
        f"| raw NASA-TLX (0-100, lower is less workload) | {_ms(s['tlx'])} | {s['tlx']['paper']} |",
        "",
        f"{s['questionnaires']} questionnaires answered, {s['questionnaires_skipped']} skipped.",
        "",
        "## Plays per map",
        "",
        f"{s['complete_maps']} of {s['maps']} cluster maps have the target {s['plays_per_map']} plays; "
        f"plays per map: min {s['plays_min']}, median {s['plays_median']:g}, max {s['plays_max']}.",
        "",
        "### By layer",
        "",
        _md_table(p.by_layer),
        "",
        "### By class",
        "",
        _md_table(p.by_class),
        "",
        "## Flagged players",
        "",
        _md_table(flagged) if len(flagged) else "None.",
        "",
    ]
    return "\n".join(parts)


def figure(p: Progress) -> Any:
    """Draw the report's figure: SUS and TLX vs the paper, plays per map, outcomes per layer and class.

    Parameters
    ----------
    p : Progress
        From :func:`inviz.game.web.progress.progress`.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from inviz.core.plotting import new_figure, palette

    fig, axes = new_figure(7.0, 5.2, nrows=2, ncols=2)
    colours = palette(3)
    ax = axes[0, 0]
    q = p.questionnaires
    data = [
        q["sus_score"].dropna().to_numpy() if len(q) else [],
        q["tlx_raw"].dropna().to_numpy() if len(q) else [],
    ]
    for i, (values, paper) in enumerate(
        zip(data, (p.summary["sus"]["paper"], p.summary["tlx"]["paper"]), strict=True)
    ):
        if len(values):
            ax.boxplot([values], positions=[i], widths=0.5, showfliers=False)
            jitter = np.random.default_rng(0).uniform(-0.12, 0.12, len(values))
            ax.scatter(i + jitter, values, s=6, color=colours[0], alpha=0.6, zorder=3)
        ax.hlines(
            paper, i - 0.35, i + 0.35, color="crimson", linestyles="--", label="paper" if i == 0 else None
        )
    ax.set_xticks([0, 1], ["SUS", "raw NASA-TLX"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylim(0, 100)
    ax.set_title(f"Usability (n = {p.summary['questionnaires']})")
    ax.legend(loc="lower right")

    ax = axes[0, 1]
    counts = p.maps["plays"].value_counts().sort_index()
    ax.bar(counts.index, counts.to_numpy(), color=colours[0], width=0.8)
    ax.axvline(p.summary["plays_per_map"], color="crimson", ls="--", lw=1, label="target")
    ax.set_xlabel("plays")
    ax.set_ylabel("cluster maps")
    ax.set_title("Plays per map")
    ax.legend()

    for ax, frame, key in ((axes[1, 0], p.by_layer, "layer"), (axes[1, 1], p.by_class, "class")):
        left = np.zeros(len(frame))
        for col, c in zip(("wins", "losses", "resigns"), colours, strict=True):
            ax.barh(frame[key].astype(str), frame[col], left=left, color=c, label=col)
            left += frame[col].to_numpy()
        ax.invert_yaxis()
        ax.set_xlabel("plays")
        ax.set_title(f"Outcomes by {key}")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return fig


def make_report(p: Progress, title: str = "Deep Reveal") -> GameReport:
    """Build the game report from the game's progress.

    Parameters
    ----------
    p : Progress
        From :func:`inviz.game.web.progress.progress`.
    title : str
        The game's name.

    Returns
    -------
    GameReport
    """
    s = p.summary
    metrics = {k: v for k, v in s.items() if not isinstance(v, dict)}
    for key in ("sus", "tlx"):
        metrics.update({f"{key}_{k}": v for k, v in s[key].items() if v is not None})
    tables = {
        "maps": p.maps,
        "by_layer": p.by_layer,
        "by_class": p.by_class,
        "players": p.players.drop(columns="nickname"),
    }
    return GameReport(markdown(p, title), figure(p), tables, metrics)
