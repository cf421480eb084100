"""The registry of architectures behind ``model.arch`` (docs/method.md §0 and your own models).

========================  =====================================================================
``model.arch``            built by
========================  =====================================================================
``vgg16``                 :func:`inviz.models.vgg.build_vgg16` (the paper's VGG-16 + dense head)
``torchvision:<name>``    :func:`inviz.models.zoo.build_torchvision` (any torchvision classifier)
``checkpoint``            :func:`inviz.models.external.build_external` (your finished model)
========================  =====================================================================

Each entry builds a model for the dataset's classes (``train``) and rebuilds the architecture of a
saved model whose weights come from the checkpoint (:func:`inviz.models.checkpoint.load_checkpoint`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from inviz.models.config import ModelConfig
from inviz.models.external import build_external, rebuild_external
from inviz.models.vgg import VGG16Classifier, build_vgg16
from inviz.models.zoo import build_torchvision, rebuild_torchvision

Classes = Sequence[dict[str, Any]]


@dataclass(frozen=True)
class Architecture:
    """One kind of ``model.arch``.

    build : ``(classes, cfg) -> (model, cfg)``: the model for the dataset's classes with its
        weights, and the config to save with it (values read from files resolved).
    rebuild : ``(classes, cfg) -> model``: the architecture of a saved model, weights not loaded.
    """

    build: Callable[[Classes, ModelConfig], tuple[nn.Module, ModelConfig]]
    rebuild: Callable[[Classes, ModelConfig], nn.Module]


ARCHITECTURES: dict[str, Architecture] = {
    "vgg16": Architecture(
        build=lambda classes, cfg: (build_vgg16(len(classes), cfg), cfg),
        rebuild=lambda classes, cfg: VGG16Classifier(len(classes), cfg),
    ),
    "torchvision": Architecture(
        build=lambda classes, cfg: (build_torchvision(len(classes), cfg), cfg),
        rebuild=lambda classes, cfg: rebuild_torchvision(len(classes), cfg),
    ),
    "checkpoint": Architecture(build=build_external, rebuild=rebuild_external),
}


def build_model(classes: Classes, cfg: ModelConfig) -> tuple[nn.Module, ModelConfig]:
    """Build the network of ``cfg.arch`` for ``classes`` with its weights.

    Parameters
    ----------
    classes : ``[{label, class_folder, class_name}]`` in label order (``data/classes.json``).
    cfg : the ``model`` section.

    Returns
    -------
    model : nn.Module returning logits of shape (N, len(classes)).
    cfg : the config to save with the model.
    """
    return ARCHITECTURES[cfg.kind].build(classes, cfg)


def rebuild_model(classes: Classes, cfg: ModelConfig) -> nn.Module:
    """Rebuild the architecture of a saved model (see :class:`Architecture`)."""
    return ARCHITECTURES[cfg.kind].rebuild(classes, cfg)
