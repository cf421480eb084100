"""Statistics shared by the method's tests (TCAV in §4, Table 2 in §5)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def adjust_pvalues(p_values: Sequence[float], method: str = "holm", alpha: float = 0.05) -> np.ndarray:
    """Adjust the p-values of one family, ``multipletests(p, alpha, method=method)``.

    NaN p-values (degenerate tests) stay NaN and are left out of the family; ``method="none"``
    returns the raw p-values.

    Parameters
    ----------
    p_values : array-like of shape (K,)
        Raw p-values.
    method : str
        A statsmodels ``multipletests`` method name (always explicit: statsmodels' own default is
        Holm–Šidák), or ``"none"``.
    alpha : float
        Family-wise error rate passed to statsmodels.

    Returns
    -------
    ndarray of shape (K,)
    """
    p = np.asarray(p_values, dtype=float)
    if method == "none":
        return p.copy()
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any() and method == "holm":
        out[ok] = _holm(p[ok])
    elif ok.any():
        from statsmodels.stats.multitest import multipletests

        out[ok] = multipletests(p[ok], alpha=alpha, method=method)[1]
    return out


def _holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment, statsmodels' ``multipletests(p, method="holm")[1]`` bit for bit.

    statsmodels' Holm branch ends with ``gc.collect()``: a full collection per family, 0.1-0.5 s
    in a process holding torch and a model (Table 2 and TCAV correct dozens of families). The
    same operations in the same order here, without it (tests/test_stats.py compares).
    """
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(p[order] * np.arange(p.size, 0, -1))
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out
