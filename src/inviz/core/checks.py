"""Range checks of the configuration dataclasses (their ``__post_init__``), one message per kind of bound.

Each check raises :class:`ValueError` naming the key, the expected range and the value, e.g.
``geometry.ring_inner: expected a value in (0, 1), got 1.2``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_INSIDE = {
    "[]": lambda v: 0 <= v <= 1,
    "()": lambda v: 0 < v < 1,
    "[)": lambda v: 0 <= v < 1,
}


def check_unit(
    obj: Any, names: Iterable[str], interval: str = "[]", what: str = "a value", prefix: str = ""
) -> None:
    """Check that the fields ``names`` of ``obj`` lie in the unit interval.

    Parameters
    ----------
    obj : any object (a config dataclass)
        Holds the fields.
    names : iterable of str
        The fields to check.
    interval : ``"[]"``, ``"()"`` or ``"[)"``
        Closed, open or half-open unit interval.
    what : str
        What a value is, for the message (``a value``, ``a probability``, ``a factor``).
    prefix : str
        Prepended to the field name in the message (``geometry.``).

    Raises
    ------
    ValueError
        ``"<prefix><name>: expected <what> in <interval>, got <value>"`` for the first field outside.
    """
    inside = _INSIDE[interval]
    bounds = f"{interval[0]}0, 1{interval[1]}"
    for name in names:
        value = getattr(obj, name)
        if not inside(value):
            raise ValueError(f"{prefix}{name}: expected {what} in {bounds}, got {value}")


def check_at_least(obj: Any, lows: Mapping[str, float], prefix: str = "") -> None:
    """Check that each field of ``obj`` named in ``lows`` is at least its bound.

    Parameters
    ----------
    obj : any object (a config dataclass)
        Holds the fields.
    lows : mapping of str to number
        Field name -> smallest allowed value.
    prefix : str
        Prepended to the field name in the message.

    Raises
    ------
    ValueError
        ``"<prefix><name>: expected >= <low>, got <value>"`` for the first field below its bound.
    """
    for name, low in lows.items():
        value = getattr(obj, name)
        if value < low:
            raise ValueError(f"{prefix}{name}: expected >= {low}, got {value}")


def check_pair(name: str, pair: tuple[float, float], low: float, high: float | None = None) -> None:
    """Check a ``(min, max)`` setting: ``low <= min <= max`` (and ``max <= high`` when given).

    Parameters
    ----------
    name : str
        The key, for the message.
    pair : (min, max)
        The setting.
    low, high : number, number or None
        The bounds.

    Raises
    ------
    ValueError
        ``"<name>: expected <low> <= min <= max[ <= <high>], got (<min>, <max>)"``.
    """
    lo, hi = pair
    if not (low <= lo <= hi and (high is None or hi <= high)):
        bound = f"{low} <= min <= max" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{name}: expected {bound}, got ({lo}, {hi})")


def coverage_problems(given: Iterable[str], expected: Sequence[str], missing: str, unknown: str) -> str:
    """Describe how a mapping's keys fail to cover exactly ``expected`` ("" when they do).

    Parameters
    ----------
    given : iterable of str
        The mapping's keys (e.g. class folders of a mapping file).
    expected : sequence of str
        The keys it must have, no more (e.g. the dataset's class folders).
    missing, unknown : str
        Message heads, e.g. ``"no name for class folder(s)"`` and ``"unknown class folder(s)"``.

    Returns
    -------
    str
        ``"<missing> a, b; <unknown> c (expected: ...)"`` or ``""``.
    """
    given = set(given)
    lacking = [k for k in expected if k not in given]
    extra = sorted(given - set(expected))
    parts = [f"{missing} {', '.join(lacking)}"] if lacking else []
    if extra:
        parts.append(f"{unknown} {', '.join(extra)} (expected: {', '.join(expected)})")
    return "; ".join(parts)
