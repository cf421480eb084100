"""The survey kit (docs/method.md §5): what the participants saw, for one model and its INVs.

:func:`survey_kit` draws the survey images (:func:`survey_images`), runs the three baseline
explainers of :data:`~inviz.survey.panels.EXPLAINERS` on each (Grad-CAM, LIME, SHAP) and returns a
:class:`SurveyKit`: the attributions, and on demand the panels of all five methods (the baselines'
and the INV (Simplified) / INV figures of :mod:`inviz.views.figures`), the overview figure, the
questionnaire and its fill-in form (:mod:`inviz.survey.forms`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inviz.game.reveal import RevealConfig
from inviz.survey.forms import form_template, questionnaire_markdown
from inviz.survey.panels import EXPLAINERS, SurveyConfig, SurveyError, overview_figure, panel_figure
from inviz.views.figures import FigureConfig
from inviz.views.records import ImageINV, INVPaths, safe_name

log = logging.getLogger(__name__)

#: columns of ``survey_images.csv``
IMAGE_COLUMNS: tuple[str, ...] = ("sample_id", "path", "label", "class_name", "pred_name", "confidence")


def slug(method: str) -> str:
    """Folder name of a method: ``SHAP (Gradient Explainer)`` -> ``shap_gradient_explainer``.

    Parameters
    ----------
    method : a method name of Table 2.

    Returns
    -------
    str
        Lower-case letters, digits and ``_``.
    """
    return re.sub(r"[^a-z0-9]+", "_", method.lower()).strip("_")


def survey_images(selected: pd.DataFrame, cfg: SurveyConfig) -> pd.DataFrame:
    """Choose the survey images: ``cfg.images`` in that order, or a seeded draw of ``n_images`` rows.

    The draw takes rows of ``selected`` (from distinct classes when ``one_per_class``) and keeps
    them in ``selected`` order.

    Parameters
    ----------
    selected : DataFrame of shape (S, C)
        The explained images (``selected.csv``: ``sample_id``, ``label``, ...).
    cfg : ``images``, ``n_images``, ``one_per_class`` and ``seed``.

    Returns
    -------
    DataFrame of shape (N, C)
        Rows of ``selected`` (``sample_id`` as str), re-indexed from 0.
    """
    selected = selected.assign(sample_id=selected["sample_id"].astype(str)).reset_index(drop=True)
    if cfg.images:
        missing = [s for s in cfg.images if s not in set(selected["sample_id"])]
        if missing:
            raise SurveyError(f"survey.images: {', '.join(missing)} not among the selected images")
        return selected.set_index("sample_id").loc[list(cfg.images)].reset_index()
    rng = np.random.default_rng(cfg.seed)
    available = selected["label"].nunique() if cfg.one_per_class else len(selected)
    n = min(cfg.n_images, available)
    if n < cfg.n_images:
        what = "classes among the selected images" if cfg.one_per_class else "selected images"
        fixes = "more correctly classified test images (a better model, select.per_class) or "
        msg = (
            f"survey.n_images: {cfg.n_images} images {'from distinct classes ' if cfg.one_per_class else ''}"
            f"requested, but there are only {available} {what}. Fix: {fixes}a lower survey.n_images"
            f"{'; or survey.one_per_class: false' if cfg.one_per_class else ''}"
        )
        if n == 0:
            raise SurveyError(msg)
        log.warning("%s. The survey kit uses %d image(s).", msg, n)
    if cfg.one_per_class:
        classes = sorted(selected["label"].unique())
        chosen = rng.choice(classes, size=n, replace=False)
        rows = [int(rng.choice(selected.index[selected["label"] == c])) for c in sorted(chosen)]
    else:
        rows = list(rng.choice(len(selected), size=n, replace=False))
    return selected.loc[sorted(rows)].reset_index(drop=True)


@dataclass(frozen=True)
class Panel:
    """One panel to save.

    Parameters
    ----------
    path : str
        Relative to the kit's folder, with the first format's suffix.
    figure : matplotlib.figure.Figure
    tight : bool
        Crop to the content (the baselines) or keep the hand-made layout (the INVs).
    """

    path: str
    figure: Any
    tight: bool


@dataclass(frozen=True)
class SurveyKit:
    """The survey images, their baseline attributions and the configuration to draw the rest.

    Parameters
    ----------
    cfg, fig_cfg, reveal_cfg : the ``survey``, ``figures`` and ``masks`` sections.
    images : DataFrame of shape (N, C)
        The survey images (:func:`survey_images`), in survey order.
    invs : tuple of N ImageINV
        Their INVs, in the same order.
    attributions : dict of str to list of N ndarray of shape (S, S)
        Baseline method -> its map of each image (S = the model's input side).
    segments : tuple of N (ndarray of shape (S, S) or None)
        LIME's superpixels of each image (None without LIME).
    seconds : dict of str to float
        Baseline method -> total seconds of its explainer over the N images.
    """

    cfg: SurveyConfig
    fig_cfg: FigureConfig
    reveal_cfg: RevealConfig
    images: pd.DataFrame
    invs: tuple[ImageINV, ...]
    attributions: dict[str, list[np.ndarray]]
    segments: tuple[np.ndarray | None, ...]
    seconds: dict[str, float]

    def panel_path(self, method: str, inv: ImageINV) -> str:
        """``panels/<method slug>/<image>.<first format>``, relative to the kit's folder."""
        return f"panels/{slug(method)}/{safe_name(inv.sample_id)}.{self.cfg.formats[0]}"

    @property
    def panel_files(self) -> dict[str, list[str]]:
        """Method -> the relative paths of its N panels (every method of ``cfg.methods``)."""
        return {m: [self.panel_path(m, inv) for inv in self.invs] for m in self.cfg.methods}

    def panels(self) -> Iterator[Panel]:
        """Draw the panels one at a time (per image: the baselines, then INV (Simplified) and INV).

        Yields
        ------
        Panel
            The caller saves and closes each figure before asking for the next.
        """
        from inviz.views.figures import inv_figure, simplified_inv_figure

        for i, inv in enumerate(self.invs):
            title = f"{inv.pred_name} ({100 * inv.confidence:.1f} %)"
            for m, maps in self.attributions.items():
                fig = panel_figure(
                    m,
                    inv.image,
                    maps[i],
                    f"{m}: {title}",
                    self.cfg,
                    self.segments[i] if m == "LIME" else None,
                )
                yield Panel(self.panel_path(m, inv), fig, tight=True)
            for m, inv_panel in (("INV (Simplified)", simplified_inv_figure), ("INV", inv_figure)):
                if m in self.cfg.methods:
                    fig = inv_panel(inv, self.fig_cfg, self.reveal_cfg)
                    yield Panel(self.panel_path(m, inv), fig, tight=False)

    def overview_figure(self) -> Any | None:
        """Rows = survey images, columns = the image and each baseline's panel; None without baselines."""
        if not self.attributions:
            return None
        return overview_figure(
            [inv.image for inv in self.invs],
            self.attributions,
            [f"{inv.pred_name}" for inv in self.invs],
            list(self.segments),
        )

    def attribution_arrays(self) -> dict[str, np.ndarray]:
        """Return the arrays of ``attributions.npz``.

        Returns
        -------
        dict of str to ndarray
            ``sample_id`` of shape (N,) and, per baseline (by :func:`slug`), its maps of shape (N, S, S).
        """
        return {
            "sample_id": np.asarray(self.images["sample_id"], dtype=str),
            **{slug(m): np.stack(v) for m, v in self.attributions.items()},
        }

    @property
    def image_table(self) -> pd.DataFrame:
        """``survey_images.csv``: the survey images' :data:`IMAGE_COLUMNS`."""
        return self.images[list(IMAGE_COLUMNS)]

    def questionnaire(self) -> str:
        """Write the questionnaire (:func:`~inviz.survey.forms.questionnaire_markdown`) linking the panels."""
        return questionnaire_markdown(self.cfg, self.images, self.panel_files)

    def form(self) -> pd.DataFrame:
        """Return the empty fill-in form (:func:`~inviz.survey.forms.form_template`)."""
        return form_template(self.cfg)

    def metrics(self) -> dict[str, Any]:
        """``metrics/survey.json``: images, classes, panels and the baselines' seconds per image."""
        n = len(self.images)
        return {
            "n_images": int(n),
            "images": list(self.images["sample_id"]),
            "classes": list(self.images["class_name"]),
            "n_panels": int(sum(len(v) for v in self.panel_files.values())),
            "seconds_per_image": {m: s / max(1, n) for m, s in self.seconds.items()},
        }


def _explain(
    model: Any, invs: list[ImageINV], cfg: SurveyConfig, mean: Any, std: Any, background: Any
) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray | None], dict[str, float]]:
    """Run every baseline explainer of ``cfg.methods`` on every image (image-major, as seeded)."""
    from inviz.concepts.importance import to_input

    baselines = [m for m in cfg.methods if m in EXPLAINERS]
    maps: dict[str, list[np.ndarray]] = {m: [] for m in baselines}
    segments: list[np.ndarray | None] = []
    seconds = {m: 0.0 for m in baselines}
    for inv in invs:
        x = to_input(inv.image, mean, std)
        ctx: dict[str, Any] = {"image": inv.image, "mean": mean, "std": std, "background": background}
        for m in baselines:
            t0 = time.perf_counter()
            maps[m].append(EXPLAINERS[m](model, x, inv.pred, cfg, ctx))
            seconds[m] += time.perf_counter() - t0
        segments.append(ctx.get("lime_segments"))
    return maps, segments, seconds


def survey_kit(
    cfg: SurveyConfig,
    paths: INVPaths,
    model: str | Path,
    index: str | Path,
    fig_cfg: FigureConfig,
    reveal_cfg: RevealConfig,
) -> SurveyKit:
    """Draw the survey images and explain them with the baselines (docs/method.md §5).

    Parameters
    ----------
    cfg : the ``survey`` section.
    paths : the INV outputs of the pipeline (``paths.selected`` lists the explained images).
    model : the model checkpoint (``inviz train``).
    index : the dataset index CSV (``inviz data``): SHAP's background images come from its
        ``cfg.shap_background_split`` split, excluding the survey images.
    fig_cfg, reveal_cfg : the ``figures`` and ``masks`` sections (the INV panels).

    Returns
    -------
    SurveyKit
    """
    import torch

    from inviz.concepts.importance import draw, to_input
    from inviz.data.loading import read_index
    from inviz.models.checkpoint import load_checkpoint
    from inviz.views.records import load_images, load_inv

    loaded = load_checkpoint(model)
    size, mean, std = loaded.config.input_size, loaded.config.mean, loaded.config.std
    chosen = survey_images(pd.read_csv(paths.selected, dtype={"sample_id": str, "path": str}), cfg)
    loaded_invs = load_inv(paths, size, reveal_cfg.map_kind, images=chosen["sample_id"])
    by_id = {inv.sample_id: inv for inv in loaded_invs}
    invs = [by_id[str(s)] for s in chosen["sample_id"]]
    rows = read_index(index)
    rows = rows[(rows["split"] == cfg.shap_background_split) & ~rows["sample_id"].isin(chosen["sample_id"])]
    background = torch.stack(
        [
            to_input(im, mean, std)
            for im in load_images(draw(rows, cfg.shap_background, cfg.seed), paths.images, size)
        ]
    )
    maps, segments, seconds = _explain(loaded.model, invs, cfg, mean, std, background)
    return SurveyKit(cfg, fig_cfg, reveal_cfg, chosen, tuple(invs), maps, tuple(segments), seconds)
