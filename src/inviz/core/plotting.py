"""One figure style for everything inviz draws (seaborn/matplotlib, colour-blind safe)."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import seaborn as sns  # noqa: E402

#: sequential colormap for saliency/cluster maps (perceptually uniform, colour-blind safe)
MAP_CMAP = "viridis"
#: sequential colormap for counts (confusion matrices)
COUNT_CMAP = "rocket_r"
#: categorical palette
PALETTE = "colorblind"


def apply_style(context: str = "paper") -> None:
    """Set the project's figure style: seaborn ``ticks`` + colour-blind palette, readable fonts."""
    sns.set_theme(context=context, style="ticks", palette=PALETTE, font_scale=1.0)
    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 200,
            "axes.titlesize": 9,
            "axes.labelsize": 8,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "legend.fontsize": 7,
            "font.family": "DejaVu Sans",
            "pdf.fonttype": 42,
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def palette(n: int) -> list[Any]:
    """Return ``n`` colours of the project's colour-blind-safe palette."""
    return sns.color_palette(PALETTE, n)


def new_figure(width: float = 3.4, height: float = 2.6, **kwargs: Any) -> tuple[Any, Any]:
    """Create a figure at column width (3.4 in) by default, with the project style applied."""
    apply_style()
    return plt.subplots(figsize=(width, height), **kwargs)


def close(fig: Any) -> None:
    """Close a figure (free its memory once saved or logged)."""
    plt.close(fig)
