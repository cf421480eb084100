"""The survey's explanation panels (docs/method.md §5): the baseline explainers and how they are drawn.

The five explanations of the paper's survey, on the same model:

- **Grad-CAM**: pytorch-grad-cam's ``GradCAM`` on ``gradcam_layer`` for the predicted class;
- **LIME**: ``lime``'s ``LimeImageExplainer`` (quickshift superpixels, seeded), the
  ``lime_features`` superpixels that support the predicted class the most;
- **SHAP (Gradient Explainer)**: ``shap``'s ``GradientExplainer`` (expected gradients) against
  background images from the training split, seeded, summed over colour channels;
- **INV (Simplified)** and **INV**: :mod:`inviz.views.figures`.

Explanations are pure functions ``(model, x, target, cfg, context) -> ndarray (H, W)``, registered
in :data:`EXPLAINERS` by the method names of Table 2; :func:`draw_explanation` shows one as the
participants saw it. :class:`SurveyConfig` is the ``survey`` section (also read by
:mod:`inviz.survey.forms` and :mod:`inviz.survey.kit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from inviz.core.errors import InvizError

#: the rated aspects and their statements (after Aechtner et al. 2022), in questionnaire order
ITEMS: dict[str, str] = {
    "Understandability": "The explanation is easy to understand.",
    "Usefulness": "The explanation is useful to understand why the model made this prediction.",
    "Trustworthiness": "The explanation makes me trust the model's prediction.",
    "Informativeness": "The explanation gives me enough information about how the model reached its "
    "prediction.",
    "Satisfaction": "Overall, I am satisfied with the explanation.",
}


class SurveyError(InvizError, ValueError):
    """A survey form or the survey configuration is not as expected."""


@dataclass(frozen=True)
class SurveyConfig:
    """``survey`` section: the survey images, the baseline explainers and the questionnaire.

    Parameters
    ----------
    images : tuple of str or None
        Sample ids of the survey images (``null``: drawn from the selected images).
    n_images : int
        Images drawn (paper: 4).
    one_per_class : bool
        Draw from distinct classes (paper: yes).
    seed : int
        The draw, LIME's sampling and segmentation, SHAP's sampling.
    gradcam_layer : str
        Layer of Grad-CAM (module name or VGG Keras alias; paper: the last conv).
    lime_samples : int
        Perturbed images per explanation (LIME's default 1000).
    lime_features : int
        Superpixels shown.
    lime_positive_only : bool
        Only superpixels supporting the class.
    lime_kernel_size, lime_max_dist, lime_ratio : float
        Quickshift segmentation (LIME's defaults 4, 200, 0.2).
    lime_batch_size : int
        Images per forward pass.
    shap_background : int
        Background images for expected gradients, from ``shap_background_split``.
    shap_background_split : str
        The split of the dataset index the background images come from.
    shap_samples : int
        Samples per explanation (shap's default 200).
    shap_batch_size : int
        Samples per pass.
    shap_local_smoothing : float
        Gaussian noise sd added to the input samples (0 = none).
    panel_size : float
        Inches of one panel.
    dpi : int
        Raster resolution.
    formats : tuple of str
        Files per panel (the first decides the questionnaire's links).
    methods : tuple of str
        The methods in questionnaire order (Table 2 names; keys of :data:`EXPLAINERS` plus
        ``INV (Simplified)`` and ``INV``).
    scale : int
        Points of the rating scale (7).
    items : dict of str to str
        Aspect -> statement rated on the scale.
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
            known = [*EXPLAINERS, "INV (Simplified)", "INV"]
            raise ValueError(f"methods: unknown {unknown}; expected some of {known}")
        if not self.items:
            raise ValueError("items: expected at least one aspect")


# ----------------------------------------------------------------------------------------------
# explanations: (model, x (3, H, W) normalised, target, cfg, context) -> (H, W)


def _grad_cam(
    model: nn.Module, x: torch.Tensor, target: int, cfg: SurveyConfig, ctx: dict[str, Any]
) -> np.ndarray:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    from inviz.concepts.tcav import working_copy
    from inviz.fmaps.gradients import resolve_layers

    work = working_copy(model)  # in-place ReLUs off, caller's model untouched
    layer = dict(work.named_modules())[resolve_layers(work, [cfg.gradcam_layer])[0].capture]
    with GradCAM(model=work, target_layers=[layer]) as cam:
        out = cam(input_tensor=x[None], targets=[ClassifierOutputTarget(int(target))])
    return np.asarray(out[0], dtype=np.float32)


def _lime(
    model: nn.Module, x: torch.Tensor, target: int, cfg: SurveyConfig, ctx: dict[str, Any]
) -> np.ndarray:
    from lime import lime_image
    from lime.wrappers.scikit_image import SegmentationAlgorithm

    mean = torch.as_tensor(ctx["mean"]).reshape(1, 3, 1, 1)
    std = torch.as_tensor(ctx["std"]).reshape(1, 3, 1, 1)
    image = ctx["image"].astype(np.float64) / 255.0  # (H, W, 3) in [0, 1]

    def predict(batch: np.ndarray) -> np.ndarray:
        t = torch.as_tensor(np.asarray(batch, dtype=np.float32)).permute(0, 3, 1, 2)
        with torch.no_grad():
            return torch.softmax(model((t - mean) / std), dim=1).numpy()

    seg = SegmentationAlgorithm(
        "quickshift",
        kernel_size=cfg.lime_kernel_size,
        max_dist=cfg.lime_max_dist,
        ratio=cfg.lime_ratio,
        random_seed=cfg.seed,
    )
    explainer = lime_image.LimeImageExplainer(random_state=cfg.seed)
    exp = explainer.explain_instance(
        image,
        predict,
        labels=(int(target),),
        top_labels=None,
        hide_color=0,
        num_samples=cfg.lime_samples,
        batch_size=cfg.lime_batch_size,
        segmentation_fn=seg,
        random_seed=cfg.seed,
    )
    # signed superpixel weights as a map; the panel shows the top `lime_features` of them
    weights = dict(exp.local_exp[int(target)])
    ranked = sorted(weights.items(), key=lambda kv: -kv[1] if cfg.lime_positive_only else -abs(kv[1]))
    keep = [s for s, w in ranked if (w > 0 or not cfg.lime_positive_only)][: cfg.lime_features]
    out = np.zeros(exp.segments.shape, np.float32)
    for s in keep:
        out[exp.segments == s] = weights[s]
    ctx["lime_segments"] = exp.segments
    return out


def _shap(
    model: nn.Module, x: torch.Tensor, target: int, cfg: SurveyConfig, ctx: dict[str, Any]
) -> np.ndarray:
    import shap

    from inviz.concepts.tcav import working_copy

    work = _Output(working_copy(model), int(target))  # explain the target's logit only (one output)
    explainer = shap.GradientExplainer(
        work, ctx["background"], batch_size=cfg.shap_batch_size, local_smoothing=cfg.shap_local_smoothing
    )
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


def draw_explanation(
    ax: Any, method: str, image: np.ndarray, attribution: np.ndarray, segments: np.ndarray | None = None
) -> None:
    """Draw one baseline explanation into ``ax`` as participants saw it.

    Grad-CAM: the map (viridis) over the image; LIME: the image with only the chosen superpixels
    bright and their boundaries drawn; SHAP: positive (red) and negative (blue) attributions over
    a grey version of the image, symmetric colour scale.

    Parameters
    ----------
    ax : matplotlib Axes
    method : a key of :data:`EXPLAINERS`.
    image : ndarray of uint8 of shape (H, W, 3)
    attribution : ndarray of shape (H, W)
        The explainer's map.
    segments : ndarray of int of shape (H, W), optional
        LIME's superpixels (their boundaries are drawn).
    """
    from inviz.core.plotting import MAP_CMAP

    if method == "Grad-CAM":
        ax.imshow(image)
        extent = (-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5)
        ax.imshow(attribution, cmap=MAP_CMAP, alpha=0.5, extent=extent)
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


def panel_figure(
    method: str,
    image: np.ndarray,
    attribution: np.ndarray,
    title: str,
    cfg: SurveyConfig,
    segments: np.ndarray | None = None,
) -> Any:
    """One explanation panel (:func:`draw_explanation`) with a title, ``cfg.panel_size`` inches wide.

    Parameters
    ----------
    method, image, attribution, segments : as :func:`draw_explanation`.
    title : the panel's title.
    cfg : ``panel_size``.

    Returns
    -------
    matplotlib.figure.Figure
    """
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


def overview_figure(
    images: Sequence[np.ndarray],
    maps: dict[str, list[np.ndarray]],
    titles: Sequence[str],
    segments: Sequence[np.ndarray | None],
) -> Any:
    """Rows = survey images, columns = the image and each baseline method's panel.

    Parameters
    ----------
    images : sequence of N ndarray of uint8 of shape (H, W, 3)
    maps : dict of str to list of N ndarray of shape (H, W)
        Baseline method -> its map of each image, in column order.
    titles : sequence of N str
        Row labels.
    segments : sequence of N (ndarray of shape (H, W) or None)
        LIME's superpixels of each image.

    Returns
    -------
    matplotlib.figure.Figure
    """
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
                title = meth.replace(" (Gradient Explainer)", "\n(GradientExplainer)")
                axes[i, j].set_title(title, fontsize=7)
    axes[0, 0].set_title("image", fontsize=7)
    fig.tight_layout(pad=0.3)
    return fig
