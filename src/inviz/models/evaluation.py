"""Classifier evaluation: accuracy, per-class precision/recall/F1 and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(
    labels: Sequence[int], preds: Sequence[int], class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro F1 and per-class precision/recall/F1/support.

    Parameters
    ----------
    labels, preds : int arrays of shape (N,) with values in ``range(len(class_names))``.

    Returns
    -------
    ``{"accuracy", "macro_f1", "per_class": {name: {"precision", "recall", "f1", "support"}}}``
    """
    labels, preds = np.asarray(labels), np.asarray(preds)
    k = len(class_names)
    p, r, f, s = precision_recall_fscore_support(labels, preds, labels=list(range(k)), zero_division=0)
    return {
        "accuracy": float(accuracy_score(labels, preds)) if len(labels) else float("nan"),
        "macro_f1": float(np.mean(f)),
        "per_class": {
            name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, name in enumerate(class_names)
        },
    }


def confusion(labels: Sequence[int], preds: Sequence[int], n_classes: int) -> np.ndarray:
    """Confusion counts, rows = true class, columns = predicted class; shape (K, K)."""
    return confusion_matrix(labels, preds, labels=list(range(n_classes)))


def confusion_figure(cm: np.ndarray, class_names: Sequence[str], title: str = "") -> Any:
    """Heatmap of a confusion matrix (counts annotated)."""
    import seaborn as sns

    from inviz.core.plotting import COUNT_CMAP, new_figure

    size = max(3.4, 0.42 * len(class_names) + 1.2)
    fig, ax = new_figure(size, size * 0.85)
    sns.heatmap(
        pd.DataFrame(cm, index=class_names, columns=class_names),
        annot=True,
        fmt="d",
        cmap=COUNT_CMAP,
        cbar=False,
        square=True,
        ax=ax,
        annot_kws={"size": 6},
    )
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def history_figure(history: pd.DataFrame) -> Any:
    """Loss and accuracy per epoch, phases shaded (input: rows of ``epoch, phase, *_loss, *_acc``).

    Without rows (``train.enabled: false``) the panels say that nothing was trained.
    """
    import seaborn as sns

    from inviz.core.plotting import new_figure

    fig, axes = new_figure(6.8, 2.4, ncols=2)
    if history.empty:
        for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
            ax.text(0.5, 0.5, "not trained\n(train.enabled: false)", ha="center", va="center", color="0.4")
            ax.set_xlabel("epoch")
            ax.set_ylabel(metric)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.tight_layout()
        return fig
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        cols = [c for c in (f"train_{metric}", f"val_{metric}") if c in history]
        long = history.melt(id_vars=["epoch", "phase"], value_vars=cols, var_name="split", value_name=metric)
        sns.lineplot(data=long, x="epoch", y=metric, hue="split", ax=ax, marker="o", markersize=3)
        for i, (_, grp) in enumerate(history.groupby("phase", sort=False)):
            if i % 2:
                ax.axvspan(grp["epoch"].min() - 0.5, grp["epoch"].max() + 0.5, color="0.92", zorder=0)
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
    fig.tight_layout()
    return fig
