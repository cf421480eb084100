"""``labels_simulate``: settings of the simulated Deep Reveal players (docs/method.md §2; demo only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from inviz.core.checks import check_pair, check_unit


@dataclass(frozen=True)
class SimulateConfig:
    """``labels_simulate`` section (demo only).

    enabled : run the simulation (the paper profile leaves it off and brings real exports).
    mode : ``direct`` (the simulator deals the maps and writes an export in the authors' layout) or
        ``http`` (the players play the Deep Reveal web application, :mod:`inviz.game.web`, which
        deals the maps, screens the players and writes the export; ``game.*`` then sets the maps'
        plays, the offered classes, screening and start levels).
    seed : seeds every draw.
    n_players : size of the player pool. plays_per_map : games played on each cluster map
        (players drawn without replacement from the pool).
    n_choices : classes offered per game, the true one included (paper: a random subset).
    see_threshold, see_sharpness : coverage at which a part is recognised half the time (times
        skill) and the slope of that logistic curve.
    skill : (min, max) per-player probability factor of recognising a visible part.
    boldness : (min, max) per-player probability of guessing on a unique partial match.
    hallucination : per-game probability of "seeing" a random part that is not there.
    resign_rate : probability of resigning when undecided after the last hint.
    untrustworthy_share : share of players who play at random.
    screening_catch_rate : probability that an untrustworthy player fails the screening images.
    honest_fail_rate : probability that an honest player fails them anyway.
    italian_share : share of players who type in Italian. english_mix : probability that such a
        player types one text in English anyway.
    features_per_guess : (min, max) texts typed after a guess.
    no_text_rate : probability of a guess without text.
    colour_rate : probability that a text names the part's colour.
    class_name_rate : probability that a text contains the guessed class's name.
    typo_rate : probability of a typo in a text.
    vague_rate : probability of a vague text ("shape", "colours", …) instead of a part.
    translation_coverage : share of the distinct Italian texts the manual translations cover.
    defect_rows : share of feature rows given an export defect (duplicate, empty, over-long).
    """

    enabled: bool = False
    mode: Literal["direct", "http"] = "direct"
    seed: int = 432
    n_players: int = 60
    plays_per_map: int = 5
    n_choices: int = 4
    see_threshold: float = 0.3
    see_sharpness: float = 12.0
    skill: tuple[float, float] = (0.7, 0.98)
    boldness: tuple[float, float] = (0.2, 0.8)
    hallucination: float = 0.03
    resign_rate: float = 0.5
    untrustworthy_share: float = 0.1
    screening_catch_rate: float = 0.9
    honest_fail_rate: float = 0.02
    italian_share: float = 0.25
    english_mix: float = 0.2
    features_per_guess: tuple[int, int] = (1, 3)
    no_text_rate: float = 0.08
    colour_rate: float = 0.25
    class_name_rate: float = 0.15
    typo_rate: float = 0.08
    vague_rate: float = 0.05
    translation_coverage: float = 0.8
    defect_rows: float = 0.01

    def __post_init__(self) -> None:
        rates = ("hallucination", "resign_rate", "untrustworthy_share", "screening_catch_rate")
        rates += ("honest_fail_rate", "italian_share", "english_mix", "no_text_rate", "colour_rate")
        rates += ("class_name_rate", "typo_rate", "vague_rate", "translation_coverage", "defect_rows")
        check_unit(self, (*rates, "see_threshold"), what="a probability")
        check_pair("skill", self.skill, 0, 1)
        check_pair("boldness", self.boldness, 0, 1)
        check_pair("features_per_guess", self.features_per_guess, 1)
        if self.n_players < 1 or self.plays_per_map < 0 or self.n_choices < 2:
            raise ValueError("n_players >= 1, plays_per_map >= 0, n_choices >= 2 expected")
