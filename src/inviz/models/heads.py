"""The classifier head of any CNN: find it, replace its last layer, tell backbone from head.

A classification network ends in one layer that maps features to class scores: a ``Linear``
(VGG, ResNet, EfficientNet, ConvNeXt, ...) or a 1x1 ``Conv2d`` (SqueezeNet). Its *head* is the
top-level module holding that layer (``fc``, ``classifier``, ``_fc``); everything else is the
*backbone*. Phases of training name them with the ``head`` / ``backbone`` shorthands
(:func:`inviz.models.training.trainable_parameters`).
"""

from __future__ import annotations

from torch import nn

from inviz.core.errors import InvizError


class HeadError(InvizError, ValueError):
    """A network's classifier layer cannot be found or replaced."""


def final_layer_name(model: nn.Module) -> str:
    """Return the module name of the layer producing the class scores.

    The last ``Linear`` in ``named_modules()`` order, else the last ``Conv2d`` (SqueezeNet).

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    str
    """
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not names or not names[-1]:
        raise HeadError(f"{type(model).__name__}: no Linear or Conv2d layer to produce class scores")
    return names[-1]


def head_name(model: nn.Module, override: str | None = None) -> str:
    """Return the module name of the classifier head: the top-level module holding the final layer.

    Parameters
    ----------
    model : nn.Module
    override : a module name to use instead (``model.checkpoint.head``); it must exist.

    Returns
    -------
    str
    """
    if override:
        if override not in dict(model.named_modules()):
            raise HeadError(f"model.checkpoint.head: {override!r} is not a module of {type(model).__name__}")
        return override
    return final_layer_name(model).split(".")[0]


def head_parameters(model: nn.Module, override: str | None = None) -> set[str]:
    """Return the names of the head's parameters (see :func:`head_name`)."""
    head = head_name(model, override)
    return {n for n, _ in model.named_parameters() if n == head or n.startswith(head + ".")}


def replace_final_layer(model: nn.Module, n_classes: int) -> str:
    """Replace the final layer by a freshly initialised one with ``n_classes`` outputs (in place).

    Parameters
    ----------
    model : nn.Module
    n_classes : outputs of the new layer.

    Returns
    -------
    str
        The replaced layer's module name.
    """
    name = final_layer_name(model)
    old = model.get_submodule(name)
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, n_classes, bias=old.bias is not None)
    else:
        assert isinstance(old, nn.Conv2d)
        new = nn.Conv2d(
            old.in_channels, n_classes, old.kernel_size, old.stride, old.padding, bias=old.bias is not None
        )
    model.set_submodule(name, new)
    return name
