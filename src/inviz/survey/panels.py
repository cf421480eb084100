"""The comparative survey kit (METHOD.md §5): what participants saw, the questionnaire, the responses.

For the survey images (paper: 4 of the 50 explained images, one per class, drawn at random) the
five explanations of the paper, on the same model:

- **Grad-CAM** — pytorch-grad-cam's ``GradCAM`` on ``gradcam_layer`` for the predicted class;
- **LIME** — ``lime``'s ``LimeImageExplainer`` (quickshift superpixels, seeded), the
  ``lime_features`` superpixels that support the predicted class the most;
- **SHAP (Gradient Explainer)** — ``shap``'s ``GradientExplainer`` (expected gradients) against
  background images from the training split, seeded, summed over colour channels;
- **INV (Simplified)** and **INV** — :mod:`inviz.views.figures`.

:func:`questionnaire_markdown` / :func:`form_template` write the questionnaire (five 7-point items
per method, after Aechtner et al. 2022, plus the AI-background question) and a fill-in form with
one column per method and aspect; :func:`read_form` turns filled-in forms into the long
responses table of ``inviz table2 --responses`` (input A), validating every cell.

Explanations are pure functions ``(model, x, target, cfg) -> ndarray (H, W)``, registered in
:data:`EXPLAINERS` by the method names of Table 2.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)

ITEMS: dict[str, str] = {
    "Understandability": "The explanation is easy to understand.",
    "Usefulness": "The explanation is useful to understand why the model made this prediction.",
    "Trustworthiness": "The explanation makes me trust the model's prediction.",
    "Informativeness": "The explanation gives me enough information about how the model reached its prediction.",
    "Satisfaction": "Overall, I am satisfied with the explanation.",
}


class SurveyError(InvizError, ValueError):
    """A survey form or the survey configuration is not as expected."""


@dataclass(frozen=True)
class SurveyConfig:
    """``survey`` section: the survey images, the baseline explainers and the questionnaire.

    images : sample ids of the survey images (``null``: drawn from the selected images).
    n_images : images drawn (paper: 4). one_per_class : draw from distinct classes (paper: yes).
    seed : the draw, LIME's sampling and segmentation, SHAP's sampling.
    gradcam_layer : layer of Grad-CAM (module name or VGG Keras alias; paper: the last conv).
    lime_samples : perturbed images per explanation (LIME's default 1000).
    lime_features : superpixels shown. lime_positive_only : only superpixels supporting the class.
    lime_kernel_size, lime_max_dist, lime_ratio : quickshift segmentation (LIME's defaults 4, 200, 0.2).
    lime_batch_size : images per forward pass.
    shap_background : background images for expected gradients, from ``shap_background_split``.
    shap_samples : samples per explanation (shap's default 200). shap_batch_size : per pass.
    shap_local_smoothing : Gaussian noise sd added to the input samples (0 = none).
    panel_size : inches of one panel. dpi : raster resolution. formats : files per panel.
    methods : the methods in questionnaire order (Table 2 names; keys of :data:`EXPLAINERS`
        plus ``INV (Simplified)`` and ``INV``). scale : points of the rating scale (7).
    items : aspect -> statement rated on the scale.
    """

    images: tuple[str, ...] | None = None
    n_images: int = 4
    one_per_class: bool = True
    seed: int = 432
    gradcam_layer: str = "block5_conv3"
    lime_samples: int = 1000
    lime_features: int = 5
    lime_positive_only: bool = True
    lime_kernel_size: float = 4.0
    lime_max_dist: float = 200.0
    lime_ratio: float = 0.2
    lime_batch_size: int = 50
    shap_background: int = 50
    shap_background_split: str = "train"
    shap_samples: int = 200
    shap_batch_size: int = 50
    shap_local_smoothing: float = 0.0
    panel_size: float = 1.8
    dpi: int = 200
    formats: tuple[str, ...] = ("png", "pdf")
    methods: tuple[str, ...] = ("Grad-CAM", "LIME", "SHAP (Gradient Explainer)", "INV (Simplified)", "INV")
    scale: int = 7
    items: dict[str, str] = field(default_factory=lambda: dict(ITEMS))

    def __post_init__(self) -> None:
        if self.n_images < 1 or self.lime_samples < 10 or self.shap_samples < 1 or self.shap_background < 1:
            raise ValueError("n_images, shap_samples, shap_background: expected >= 1; lime_samples >= 10")
        if self.scale < 2:
            raise ValueError(f"scale: expected >= 2 points, got {self.scale}")
        unknown = sorted(set(self.methods) - set(EXPLAINERS) - {"INV (Simplified)", "INV"})
        if unknown:
            raise ValueError(f"methods: unknown {unknown}; expected some of {[*EXPLAINERS, 'INV (Simplified)', 'INV']}")
        if not self.items:
            raise ValueError("items: expected at least one aspect")


# ----------------------------------------------------------------------------------------------
# which images


def survey_images(selected: pd.DataFrame, cfg: SurveyConfig) -> pd.DataFrame:
    """The survey images: ``cfg.images`` in that order, or a seeded draw of ``n_images`` rows of
    ``selected`` (from distinct classes when ``one_per_class``), in ``selected`` order."""
    selected = selected.assign(sample_id=selected["sample_id"].astype(str)).reset_index(drop=True)
    if cfg.images:
        missing = [s for s in cfg.images if s not in set(selected["sample_id"])]
        if missing:
            raise SurveyError(f"survey.images: {', '.join(missing)} not among the selected images")
        return selected.set_index("sample_id").loc[list(cfg.images)].reset_index()
    rng = np.random.default_rng(cfg.seed)
    if cfg.one_per_class:
        classes = sorted(selected["label"].unique())
        if len(classes) < cfg.n_images:
            raise SurveyError(f"survey.n_images: {cfg.n_images} images from distinct classes, but only {len(classes)} classes")
        chosen = rng.choice(classes, size=cfg.n_images, replace=False)
        rows = [int(rng.choice(selected.index[selected["label"] == c])) for c in sorted(chosen)]
    else:
        if len(selected) < cfg.n_images:
            raise SurveyError(f"survey.n_images: {cfg.n_images} images requested, {len(selected)} selected")
        rows = list(rng.choice(len(selected), size=cfg.n_images, replace=False))
    return selected.loc[sorted(rows)].reset_index(drop=True)


# ----------------------------------------------------------------------------------------------
# explanations: (model, x (3, H, W) normalised, target, cfg, context) -> (H, W)


def _grad_cam(model: nn.Module, x: torch.Tensor, target: int, cfg: SurveyConfig, ctx: dict[str, Any]) -> np.ndarray:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from inviz.concepts.tcav import working_copy
    from inviz.fmaps.gradients import resolve_layers

    work = working_copy(model)  # in-place ReLUs off, caller's model untouched
    layer = dict(work.named_modules())[resolve_layers(work, [cfg.gradcam_layer])[0].capture]
    with GradCAM(model=work, target_layers=[layer]) as cam:
        out = cam(input_tensor=x[None], targets=[ClassifierOutputTarget(int(target))])
    return np.asarray(out[0], dtype=np.float32)


def _lime(model: nn.Module, x: torch.Tensor, target: int, cfg: SurveyConfig, ctx: dict[str, Any]) -> np.ndarray:
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    mean = torch.as_tensor(ctx["mean"]).reshape(1, 3, 1, 1)
    std = torch.as_tensor(ctx["std"]).reshape(1, 3, 1, 1)
    image = ctx["image"].astype(np.float64) / 255.0  # (H, W, 3) in [0, 1]

    def predict(batch: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        with torch.no_grad():
            return torch.softmax(model((t - mean) / std), dim=1).numpy()

    seg = SegmentationAlgorithm("quickshift", kernel_size=cfg.lime_kernel_size, max_dist=cfg.lime_max_dist,
                                ratio=cfg.lime_ratio, random_seed=cfg.seed)
    explainer = lime_image.LimeImageExplainer(random_state=cfg.seed)
    exp = explainer.explain_instance(image, predict, labels=(int(target),), top_labels=None, hide_color=0,
                                     num_samples=cfg.lime_samples, batch_size=cfg.lime_batch_size, segmentation_fn=seg,
                                     random_seed=cfg.seed)
    # signed superpixel weights as a map; the panel shows the top `lime_features` of them
    weights = dict(exp.local_exp[int(target)])
    ranked = sorted(weights.items(), key=lambda kv: -kv[1] if cfg.lime_positive_only else -abs(kv[1]))
    keep = [s for s, w in ranked if (w > 0 or not cfg.lime_positive_only)][: cfg.lime_features]
    out = np.zeros(exp.segments.shape, np.float32)
    for s in keep:
        out[exp.segments == s] = weights[s]
    ctx["lime_segments"] = exp.segments
    return out


def _shap(model: nn.Module, x: torch.Tensor, target: int, cfg: SurveyConfig, ctx: dict[str, Any]) -> np.ndarray:
    import shap

    from inviz.concepts.tcav import working_copy

    work = _Output(working_copy(model), int(target))  # explain the target's logit only (one output)
    explainer = shap.GradientExplainer(work, ctx["background"], batch_size=cfg.shap_batch_size,
                                       local_smoothing=cfg.shap_local_smoothing)
    values = np.asarray(explainer.shap_values(x[None], nsamples=cfg.shap_samples, rseed=cfg.seed))
    v = np.squeeze(values)  # (1, 3, H, W[, 1]) -> (3, H, W)
    if v.shape != tuple(x.shape):
        raise SurveyError(f"SHAP returned attributions of shape {values.shape}, expected {tuple(x.shape)}")
    return v.sum(axis=0).astype(np.float32)


class _Output(nn.Module):
    """``model`` restricted to one logit: output shape (N, 1)."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.index : self.index + 1]


#: method name (Table 2) -> explainer
EXPLAINERS: dict[str, Callable[..., np.ndarray]] = {
    "Grad-CAM": _grad_cam,
    "LIME": _lime,
    "SHAP (Gradient Explainer)": _shap,
}


# ----------------------------------------------------------------------------------------------
# panels


def draw_explanation(ax: Any, method: str, image: np.ndarray, attribution: np.ndarray, segments: np.ndarray | None = None) -> None:
    """Draw one baseline explanation into ``ax`` as participants saw it.

    Grad-CAM: the map (viridis) over the image; LIME: the image with only the chosen superpixels
    bright and their boundaries drawn; SHAP: positive (red) and negative (blue) attributions over
    a grey version of the image, symmetric colour scale.
    """
    from inviz.core.plotting import MAP_CMAP

    if method == "Grad-CAM":
        ax.imshow(image)
        ax.imshow(attribution, cmap=MAP_CMAP, alpha=0.5, extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))
    elif method == "LIME":
        from skimage.segmentation import mark_boundaries

        shown = attribution != 0
        dim = image.astype(np.float32) / 255 * np.where(shown, 1.0, 0.3)[..., None]
        if segments is not None:
            dim = mark_boundaries(dim, np.where(shown, segments + 1, 0), color=(1.0, 0.85, 0.0))
        ax.imshow(np.clip(dim, 0, 1))
    else:
        lim = float(np.abs(attribution).max()) or 1.0
        ax.imshow(image.astype(np.float32).mean(axis=2) / 255, cmap="gray", alpha=0.35)
        ax.imshow(attribution, cmap="RdBu_r", vmin=-lim, vmax=lim, alpha=0.85)
    ax.set_xticks([])
    ax.set_yticks([])


def panel_figure(method: str, image: np.ndarray, attribution: np.ndarray, title: str, cfg: SurveyConfig,
                 segments: np.ndarray | None = None) -> Any:
    """One explanation panel (:func:`draw_explanation`) with a title, ``cfg.panel_size`` inches wide."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    apply_style()
    fig, ax = plt.subplots(figsize=(cfg.panel_size, cfg.panel_size + 0.25))
    draw_explanation(ax, method, image, attribution, segments)
    ax.set_axis_off()
    ax.set_title(title, fontsize=7)
    ax.set_gid(f"panel:{method}")
    fig.tight_layout(pad=0.2)
    return fig


def overview_figure(images: Sequence[np.ndarray], maps: dict[str, list[np.ndarray]], titles: Sequence[str],
                    segments: Sequence[np.ndarray | None]) -> Any:
    """Rows = survey images, columns = the image and each baseline method's panel."""
    import matplotlib.pyplot as plt

    from inviz.core.plotting import apply_style

    apply_style()
    methods = list(maps)
    n, m = len(images), len(methods) + 1
    fig, axes = plt.subplots(n, m, figsize=(1.25 * m, 1.3 * n), squeeze=False)
    for i, img in enumerate(images):
        axes[i, 0].imshow(img)
        axes[i, 0].set_xticks([])
        axes[i, 0].set_yticks([])
        axes[i, 0].set_ylabel(titles[i], fontsize=6)
        for j, meth in enumerate(methods, start=1):
            draw_explanation(axes[i, j], meth, img, maps[meth][i], segments[i] if meth == "LIME" else None)
            if i == 0:
                axes[i, j].set_title(meth.replace(" (Gradient Explainer)", "\n(GradientExplainer)"), fontsize=7)
    axes[0, 0].set_title("image", fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig


# ----------------------------------------------------------------------------------------------
# questionnaire and responses


def form_columns(methods: Sequence[str], aspects: Sequence[str]) -> list[str]:
    """Columns of the fill-in form: ``participant, ai_background`` then ``<method> | <aspect>``."""
    return ["participant", "ai_background", *[f"{m} | {a}" for m in methods for a in aspects]]


def form_template(cfg: SurveyConfig) -> pd.DataFrame:
    """An empty fill-in form (header only) with one column per method and aspect."""
    return pd.DataFrame(columns=form_columns(cfg.methods, list(cfg.items)))


def questionnaire_markdown(cfg: SurveyConfig, images: pd.DataFrame, panel_files: dict[str, list[str]]) -> str:
    """The questionnaire as Markdown: per method its panels and the rated statements."""
    scale = " · ".join(str(i) for i in range(1, cfg.scale + 1))
    lines = ["# Survey: explanations of a CNN's predictions", "",
             "Thank you for taking part. You will see explanations of the same "
             f"{len(images)} predictions made by five explanation methods. For each method, look at its "
             f"explanations, then rate each statement from 1 (strongly disagree) to {cfg.scale} (strongly agree).", "",
             "**Do you have a background in AI / machine learning?** yes / no", ""]
    for i, method in enumerate(cfg.methods, start=1):
        lines += [f"## {i}. {method}", ""]
        for f in panel_files.get(method, []):
            lines.append(f"![{method}]({f})")
        lines += ["", "| statement | " + " | ".join(str(k) for k in range(1, cfg.scale + 1)) + " |",
                  "|---|" + "---|" * cfg.scale]
        for aspect, text in cfg.items.items():
            lines.append(f"| **{aspect}** — {text} |" + " ◯ |" * cfg.scale)
        lines.append("")
    lines += ["---", f"Scale: {scale}. Record the answers in `questionnaire_form.csv` (one row per participant; "
              "columns `<method> | <aspect>`), then run `inviz survey_import --form questionnaire_form.csv --out "
              "responses.csv` and `inviz table2 --responses responses.csv --out table2/`.", ""]
    return "\n".join(lines)


def read_form(path: str | Path, cfg: SurveyConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Filled-in forms -> the long responses table of ``inviz table2 --responses``.

    Every cell is checked: a missing column or an unknown extra column stops with the file and the
    column; ``ai_background`` must be yes/no; a rating must be an integer 1..``scale`` — anything
    else stops naming file, row (CSV line) and column. An **empty** rating cell is a missing answer:
    it is counted and listed in the second table (the paired tests of ``table2`` then drop that
    participant from that aspect and count it too).

    Returns
    -------
    responses : DataFrame ``participant, ai_background, method, aspect, rating`` (long).
    missing : DataFrame ``participant, method, aspect, line`` of the empty cells.
    """
    path = Path(path)
    if not path.is_file():
        raise SurveyError(f"{path}: survey form not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    expected = form_columns(cfg.methods, list(cfg.items))
    missing_cols = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing_cols or extra:
        raise SurveyError(f"{path}: missing column(s) {missing_cols or '-'}; unexpected column(s) {extra or '-'}; "
                          f"expected {expected[:3]} … (one column '<method> | <aspect>' per method and aspect)")
    rows, empty, problems = [], [], []
    for i, r in frame.iterrows():
        line = int(i) + 2
        pid = r["participant"].strip()
        if not pid:
            problems.append(f"row {line}, column participant: empty")
            continue
        bg = r["ai_background"].strip().lower()
        if bg not in ("yes", "no"):
            problems.append(f"row {line}, column ai_background: expected yes or no, got {r['ai_background']!r}")
        for col in expected[2:]:
            method, aspect = col.split(" | ", 1)
            cell = r[col].strip()
            if cell == "":
                empty.append({"participant": pid, "method": method, "aspect": aspect, "line": line})
                continue
            if not cell.lstrip("+").isdigit() or not 1 <= int(cell) <= cfg.scale:
                problems.append(f"row {line}, column {col!r}: expected an integer 1..{cfg.scale}, got {cell!r}")
                continue
            rows.append({"participant": pid, "ai_background": bg, "method": method, "aspect": aspect, "rating": int(cell)})
    if frame["participant"].str.strip().duplicated().any():
        dup = sorted(set(frame.loc[frame["participant"].str.strip().duplicated(), "participant"]))
        problems.append(f"participant(s) {', '.join(dup[:5])} appear in more than one row")
    if problems:
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise SurveyError(f"{path}: " + "; ".join(problems[:10]) + more)
    responses = pd.DataFrame(rows, columns=["participant", "ai_background", "method", "aspect", "rating"])
    return responses, pd.DataFrame(empty, columns=["participant", "method", "aspect", "line"])
