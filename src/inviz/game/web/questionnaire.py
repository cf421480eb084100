"""Usability questionnaires of the game: SUS and raw NASA-TLX (docs/method.md §6-§7).

The paper reports SUS 80.9 / 100 and raw NASA-TLX 38.1 / 100 over 210 players.

- **SUS** (Brooke 1996): ten statements rated 1 (strongly disagree) … 5 (strongly agree); odd
  items contribute ``score - 1``, even items ``5 - score``; the sum × 2.5 gives 0-100.
- **Raw TLX** (Hart 2006): six subscales rated 0-100 (the original's 21 marks in steps of 5);
  the unweighted mean of the six, no pairwise weighting. Performance runs from 0 = perfect to
  100 = failure, so higher always means more workload.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The ten SUS statements ("system" read as "game"), in order.
SUS_ITEMS: tuple[str, ...] = (
    "I think that I would like to play this game frequently.",
    "I found the game unnecessarily complex.",
    "I thought the game was easy to use.",
    "I think that I would need the support of a technical person to be able to play this game.",
    "I found the various functions in this game were well integrated.",
    "I thought there was too much inconsistency in this game.",
    "I would imagine that most people would learn to play this game very quickly.",
    "I found the game very cumbersome to use.",
    "I felt very confident playing the game.",
    "I needed to learn a lot of things before I could get going with this game.",
)

#: The six raw NASA-TLX subscales: (key, name, question, low anchor, high anchor).
TLX_ITEMS: tuple[tuple[str, str, str, str, str], ...] = (
    ("mental", "Mental demand", "How mentally demanding was the game?", "Very low", "Very high"),
    ("physical", "Physical demand", "How physically demanding was the game?", "Very low", "Very high"),
    (
        "temporal",
        "Temporal demand",
        "How hurried or rushed was the pace of the game?",
        "Very low",
        "Very high",
    ),
    (
        "performance",
        "Performance",
        "How successful were you in accomplishing what you were asked to do?",
        "Perfect",
        "Failure",
    ),
    (
        "effort",
        "Effort",
        "How hard did you have to work to accomplish your level of performance?",
        "Very low",
        "Very high",
    ),
    (
        "frustration",
        "Frustration",
        "How insecure, discouraged, irritated, stressed and annoyed were you?",
        "Very low",
        "Very high",
    ),
)

#: TLX subscale keys, in order.
TLX_KEYS: tuple[str, ...] = tuple(k for k, *_ in TLX_ITEMS)
#: Step of the TLX scales (the original form's 21 marks).
TLX_STEP = 5
#: The paper's scores of the game (210 players).
PAPER_SUS = 80.9
PAPER_TLX = 38.1


def _check(answers: Sequence[int], names: Sequence[str], low: int, high: int, step: int, what: str) -> None:
    """Check one questionnaire's answers: one integer per item in ``low..high`` (multiples of ``step``)."""
    if len(answers) != len(names):
        raise ValueError(f"{what}: expected {len(names)} answers, got {len(answers)}")
    for name, a in zip(names, answers, strict=True):
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not low <= a <= high or a % step:
            steps = f" in steps of {step}" if step > 1 else ""
            raise ValueError(f"{what} {name}: expected an integer {low}..{high}{steps}, got {a!r}")


def check_sus(answers: Sequence[int]) -> None:
    """Check SUS answers: ten integers in 1..5.

    Raises
    ------
    ValueError
        Naming the first bad item.
    """
    _check(answers, [f"item {i}" for i in range(1, len(SUS_ITEMS) + 1)], 1, 5, 1, "SUS")


def check_tlx(answers: Sequence[int]) -> None:
    """Check raw TLX answers: six integers in 0..100 in steps of :data:`TLX_STEP`.

    Raises
    ------
    ValueError
        Naming the first bad subscale.
    """
    _check(answers, TLX_KEYS, 0, 100, TLX_STEP, "TLX")


def sus_score(answers: Sequence[int]) -> float:
    """Score one SUS questionnaire (0-100).

    Parameters
    ----------
    answers : sequence of int, length 10
        Items 1..10, each 1..5.

    Returns
    -------
    float
        ``2.5 * (sum over odd items of (a - 1) + sum over even items of (5 - a))``.
    """
    check_sus(answers)
    a = np.asarray(answers, dtype=float)
    return float(2.5 * ((a[0::2] - 1).sum() + (5 - a[1::2]).sum()))


def tlx_raw(answers: Sequence[int]) -> float:
    """Score one raw NASA-TLX questionnaire: the mean of the six subscales (0-100).

    Parameters
    ----------
    answers : sequence of int, length 6
        Mental, physical, temporal demand, performance, effort, frustration; each 0..100.

    Returns
    -------
    float
    """
    check_tlx(answers)
    return float(np.mean(np.asarray(answers, dtype=float)))
