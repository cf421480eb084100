"""Table 1 of the paper (docs/method.md §1.10): per-layer averages of the INV analysis over images.

Columns, per layer, averaged over the explained images (one row of ``layer_stats`` per image):

- ``fmaps_threshold`` — the map threshold (percent share; the same for every image of a layer
  under the channel-count rule), shown as ``<0.175%``;
- ``leftover_clusters`` — clusters left after pruning;
- ``leftover_fmaps`` — % of the layer's channels that end in a kept cluster;
- ``leftover_weight`` — % of the layer's total positive weight that is in kept clusters
  (``weight_base="layer"``), or % of the weight of the thresholded maps (``weight_base="kept"``).

Images whose layer has no positive weight count with zeros. Standard deviations over images are
reported next to the means. :data:`PAPER_TABLE1` holds the published values (VGG-16, 50 images)
and :func:`compare_with_paper` sets ours beside them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import pandas as pd

#: the paper's Table 1: layer -> (threshold %, leftover clusters, leftover fmaps %, leftover weight %)
PAPER_TABLE1: dict[str, tuple[float, float, float, float]] = {
    "block3_conv1": (0.35, 4.3, 52.7, 70.2),
    "block3_conv2": (0.35, 4.4, 51.4, 68.6),
    "block3_conv3": (0.35, 4.8, 46.2, 65.2),
    "block4_conv1": (0.175, 4.2, 46.5, 71.9),
    "block4_conv2": (0.175, 4.8, 44.9, 72.1),
    "block4_conv3": (0.175, 5.2, 35.9, 72.6),
    "block5_conv1": (0.175, 4.6, 30.4, 73.8),
    "block5_conv2": (0.175, 3.6, 25.4, 72.5),
    "block5_conv3": (0.175, 3.3, 14.6, 78.4),
}
#: cluster maps labelled in the paper (50 images x 9 layers)
PAPER_N_CLUSTER_MAPS = 1954

TABLE1_COLUMNS = ["fmaps_threshold", "leftover_clusters", "leftover_fmaps", "leftover_weight"]


def threshold_label(value: float) -> str:
    """Format a threshold for display: ``0.175 -> "<0.175%"``; NaN (no threshold) -> ``"none"``.

    Parameters
    ----------
    value : the threshold in percent, or NaN/None.

    Returns
    -------
    str
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    return f"<{value:.3g}%"


def table1(
    layer_stats: pd.DataFrame,
    layers: Sequence[str] | None = None,
    weight_base: Literal["layer", "kept"] = "layer",
) -> pd.DataFrame:
    """Table 1 from ``layer_stats`` (one row per image and layer, see :mod:`inviz.fmaps.store`).

    Parameters
    ----------
    layer_stats : DataFrame, one row per image and layer (``sample_id, layer, n_channels, threshold,
        n_clusters_kept, leftover_fmaps_pct, leftover_weight_pct, leftover_weight_of_kept_pct``).
    layers : the rows' order (default: order of appearance).
    weight_base : ``leftover_weight`` as % of the layer's weight (``layer``) or of the kept maps' (``kept``).

    Returns
    -------
    DataFrame indexed by layer (in ``layers`` order, default order of appearance) with columns
    ``n_images, n_channels, fmaps_threshold, threshold_label, leftover_clusters, leftover_fmaps,
    leftover_weight`` and the standard deviations ``*_sd``.
    """
    weight_col = "leftover_weight_pct" if weight_base == "layer" else "leftover_weight_of_kept_pct"
    order = list(layers) if layers is not None else list(dict.fromkeys(layer_stats["layer"]))
    rows = []
    for layer in order:
        part = layer_stats[layer_stats["layer"] == layer]
        thr = part["threshold"].astype(float)
        row = {
            "layer": layer,
            "n_images": int(part["sample_id"].nunique()),
            "n_channels": int(part["n_channels"].iloc[0]) if len(part) else 0,
            "fmaps_threshold": float(thr.mean()) if len(part) else math.nan,
            "leftover_clusters": float(part["n_clusters_kept"].mean()) if len(part) else math.nan,
            "leftover_fmaps": float(part["leftover_fmaps_pct"].mean()) if len(part) else math.nan,
            "leftover_weight": float(part[weight_col].mean()) if len(part) else math.nan,
            "leftover_clusters_sd": float(part["n_clusters_kept"].std(ddof=1)) if len(part) > 1 else math.nan,
            "leftover_fmaps_sd": float(part["leftover_fmaps_pct"].std(ddof=1)) if len(part) > 1 else math.nan,
            "leftover_weight_sd": float(part[weight_col].std(ddof=1)) if len(part) > 1 else math.nan,
        }
        row["threshold_label"] = threshold_label(row["fmaps_threshold"])
        rows.append(row)
    cols = [
        "layer",
        "n_images",
        "n_channels",
        "fmaps_threshold",
        "threshold_label",
        "leftover_clusters",
        "leftover_fmaps",
        "leftover_weight",
        "leftover_clusters_sd",
        "leftover_fmaps_sd",
        "leftover_weight_sd",
    ]
    return pd.DataFrame(rows, columns=cols).set_index("layer")


def paper_table1() -> pd.DataFrame:
    """Return the published Table 1.

    Returns
    -------
    DataFrame indexed by layer with the columns ``fmaps_threshold, threshold_label,
    leftover_clusters, leftover_fmaps, leftover_weight`` of :func:`table1`.
    """
    rows = [
        {
            "layer": k,
            "fmaps_threshold": v[0],
            "threshold_label": threshold_label(v[0]),
            "leftover_clusters": v[1],
            "leftover_fmaps": v[2],
            "leftover_weight": v[3],
        }
        for k, v in PAPER_TABLE1.items()
    ]
    return pd.DataFrame(rows).set_index("layer")


def compare_with_paper(ours: pd.DataFrame) -> pd.DataFrame:
    """Ours beside the paper, per layer: ``<col>_ours``, ``<col>_paper``, ``<col>_diff`` (ours - paper).

    Layers the paper does not have get NaN paper values (e.g. other module names).

    Parameters
    ----------
    ours : DataFrame from :func:`table1`.

    Returns
    -------
    DataFrame indexed like ``ours``: ``threshold_ours, threshold_paper`` and, for ``leftover_clusters,
    leftover_fmaps, leftover_weight``, the ``_ours``, ``_paper`` and ``_diff`` columns.
    """
    paper = paper_table1()
    out = pd.DataFrame(index=ours.index)
    out["threshold_ours"] = ours["threshold_label"]
    out["threshold_paper"] = [paper["threshold_label"].get(layer, "") for layer in ours.index]
    for col in ("leftover_clusters", "leftover_fmaps", "leftover_weight"):
        out[f"{col}_ours"] = ours[col]
        out[f"{col}_paper"] = [paper[col].get(layer, math.nan) for layer in ours.index]
        out[f"{col}_diff"] = out[f"{col}_ours"] - out[f"{col}_paper"]
    return out


def _fmt(v: object, digits: int = 1, pct: bool = False) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{float(v):.{digits}f}{'%' if pct else ''}"


def display_rows(table: pd.DataFrame, with_sd: bool = True) -> tuple[list[str], list[list[str]]]:
    """Header and formatted rows in the paper's layout (mean ± sd when ``with_sd``).

    Parameters
    ----------
    table : DataFrame from :func:`table1`.
    with_sd : add ``± sd`` to the cells.

    Returns
    -------
    header : list of 5 str.
    rows : list of rows, one per layer, each a list of 5 str.
    """
    header = ["layer", "fmaps threshold", "leftover clusters", "leftover fmaps", "leftover weight"]
    rows = []
    for layer, r in table.iterrows():

        def cell(col: str, digits: int, pct: bool, r: pd.Series = r) -> str:
            text = _fmt(r[col], digits, pct)
            sd = r.get(f"{col}_sd", math.nan)
            if with_sd and isinstance(sd, float) and not math.isnan(sd):
                text += f" ± {_fmt(sd, digits, pct)}"
            return text

        rows.append(
            [
                str(layer),
                str(r["threshold_label"]),
                cell("leftover_clusters", 1, False),
                cell("leftover_fmaps", 1, True),
                cell("leftover_weight", 1, True),
            ]
        )
    return header, rows


def to_markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Format a Markdown table.

    Parameters
    ----------
    header : the column names.
    rows : the rows, each as many cells as ``header``.

    Returns
    -------
    str, ending with a newline.
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    return (
        s.replace("\\", r"\textbackslash{}")
        .replace("_", r"\_")
        .replace("%", r"\%")
        .replace("&", r"\&")
        .replace("#", r"\#")
        .replace("±", r"$\pm$")
        .replace("<", r"$<$")
        .replace("–", "--")
    )


def to_latex(
    header: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "", label: str = "tab:table1"
) -> str:
    """Format a booktabs ``table`` environment.

    Parameters
    ----------
    header : the column names.
    rows : the rows, each as many cells as ``header``.
    caption : the caption (none when empty).
    label : the LaTeX label.

    Returns
    -------
    str, ending with a newline.
    """
    cols = "l" + "r" * (len(header) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        " & ".join(_tex_escape(h) for h in header) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(rf"\caption{{{_tex_escape(caption)}}}")
    lines += [rf"\label{{{label}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def comparison_markdown(
    cmp: pd.DataFrame, n_images: int | None = None, n_cluster_maps: int | None = None
) -> str:
    """Side-by-side Markdown table: ours | paper | difference for each Table 1 column.

    Parameters
    ----------
    cmp : DataFrame from :func:`compare_with_paper`.
    n_images : images explained (for the note on kept cluster maps).
    n_cluster_maps : kept cluster maps (no note when None).

    Returns
    -------
    str, a Markdown document.
    """
    header = [
        "layer",
        "threshold (ours / paper)",
        "clusters ours",
        "paper",
        "diff",
        "fmaps % ours",
        "paper",
        "diff",
        "weight % ours",
        "paper",
        "diff",
    ]
    rows = []
    for layer, r in cmp.iterrows():
        rows.append(
            [
                str(layer),
                f"{r['threshold_ours']} / {r['threshold_paper'] or '–'}",
                _fmt(r["leftover_clusters_ours"]),
                _fmt(r["leftover_clusters_paper"]),
                _fmt(r["leftover_clusters_diff"]),
                _fmt(r["leftover_fmaps_ours"]),
                _fmt(r["leftover_fmaps_paper"]),
                _fmt(r["leftover_fmaps_diff"]),
                _fmt(r["leftover_weight_ours"]),
                _fmt(r["leftover_weight_paper"]),
                _fmt(r["leftover_weight_diff"]),
            ]
        )
    text = "# Table 1: this run vs. the paper\n\n"
    text += (
        "Paper: VGG-16 (ImageNet weights, fine-tuned on Imagenette), 50 images. Differences are "
        "ours minus paper. A different model (e.g. the narrow demo network trained on synthetic data) "
        "is not expected to match.\n\n"
    )
    text += to_markdown(header, rows)
    if n_cluster_maps is not None:
        text += (
            f"\nKept cluster maps: {n_cluster_maps} over {n_images} image(s) "
            f"(paper: {PAPER_N_CLUSTER_MAPS} over 50 images).\n"
        )
    return text
