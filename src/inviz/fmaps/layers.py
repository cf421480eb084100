"""Which layers INV explains: names, the ``last_conv:N`` shorthand, and the check that they give spatial maps.

A layer is named by its ``named_modules()`` name (``features.28``, ``layer4``, ``layer4.1.conv2``,
``_blocks.15``) for any architecture; a VGG-style model (a ``features`` Sequential with
max-pooling) also takes the paper's Keras names (``block5_conv3``). ``last_conv:N`` stands for the
last ``N`` convolutions that give a spatial map, in the order the forward pass runs them
(:func:`expand_layers`; 1x1 maps, such as those inside squeeze-and-excitation blocks, are left
out). INV clusters feature maps, so every layer must output a map of shape (N, C, H, W) with more
than one pixel: :func:`check_spatial` runs one forward pass on zeros and names the offending layer
and candidates otherwise, before any work is done.

What is captured for a layer (``A_k`` of docs/method.md §1): a ``Conv2d`` directly followed by an
``nn.ReLU`` inside an ``nn.Sequential`` (VGG) is captured at the ReLU's output, because Keras'
convolution layers include their activation (:func:`resolve_layers`); any other module at its output.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)

#: ``last_conv:N``: the last N convolutions with a spatial output
LAST_CONV = re.compile(r"^last_conv:(\d+)$")


class LayerError(InvizError, ValueError):
    """A layer name cannot be resolved, or its activations cannot be explained."""


@dataclass(frozen=True)
class ResolvedLayer:
    """A requested layer name and the module whose output is captured.

    Parameters
    ----------
    name : the name as requested (``block5_conv3`` or ``features.28``); results are keyed by it.
    module : ``named_modules()`` name of the addressed module (``features.28``).
    capture : ``named_modules()`` name of the module whose output is ``A`` (``features.29``, the
        ReLU that follows the convolution; equal to ``module`` otherwise).
    """

    name: str
    module: str
    capture: str


def keras_aliases(model: nn.Module) -> dict[str, str]:
    """Keras names of a VGG-style model (``block5_conv3 -> features.28``); empty for other models."""
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential) and any(isinstance(m, nn.MaxPool2d) for m in features):
        from inviz.models.vgg import keras_layer_names

        return keras_layer_names(features, prefix="features")
    return {}


def check_hookable(model: nn.Module) -> None:
    """Raise :class:`LayerError` for a TorchScript model (PyTorch takes no hooks on ScriptModules)."""
    if any(isinstance(m, torch.jit.ScriptModule) for m in model.modules()):
        raise LayerError(
            "the model is TorchScript: PyTorch cannot hook the layers of a ScriptModule, which INV needs "
            "(activations and gradients of named layers). Bring the model as a Python builder + state dict "
            "(model.checkpoint.builder / state_dict) or as a torch.export program (.pt2, "
            "torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: "
            "torch.export.Dim.DYNAMIC},)), 'model.pt2'))"
        )


def suggestions(model: nn.Module, name: str = "", n: int = 4) -> str:
    """List a few layer names worth trying: close matches of ``name``, the last convolutions and blocks."""
    modules = [m for m, _ in model.named_modules() if m]
    aliases = keras_aliases(model)
    close = difflib.get_close_matches(name, modules + list(aliases), n=n, cutoff=0.6) if name else []
    convs = [m for m, mod in model.named_modules() if isinstance(mod, nn.Conv2d)]
    parts = []
    if close:
        parts.append(f"close matches: {', '.join(close)}")
    tail = list(aliases)[-3:] if aliases else convs[-n:]
    if tail:
        parts.append(f"last convolutions: {', '.join(tail)}")
    blocks = [
        m
        for m, mod in model.named_modules()
        if m
        and not isinstance(mod, (nn.Conv2d, nn.ModuleList, nn.ModuleDict))
        and any(isinstance(c, nn.Conv2d) for c in mod.modules())
    ]
    if blocks:
        parts.append(f"blocks: {', '.join(blocks[-n:])}")
    parts.append("or last_conv:N for the last N convolutions")
    return "; ".join(parts)


def resolve_layers(model: nn.Module, layers: Sequence[str]) -> list[ResolvedLayer]:
    """Resolve layer names (module names or Keras aliases) to the modules to hook.

    Parameters
    ----------
    model : the CNN.
    layers : layer names: ``named_modules()`` names, or Keras-style aliases for a VGG-style model
        (``last_conv:N`` must be expanded first: :func:`expand_layers`).

    Returns
    -------
    list of :class:`ResolvedLayer`, in request order.

    Raises
    ------
    LayerError
        For an unknown name (the message lists close matches and candidates), a duplicate, or a
        TorchScript model.
    """
    check_hookable(model)
    modules = dict(model.named_modules())
    aliases = keras_aliases(model)
    out: list[ResolvedLayer] = []
    seen: set[str] = set()
    for name in layers:
        if name in seen:
            raise LayerError(f"layer {name!r} is listed twice")
        seen.add(name)
        if LAST_CONV.match(name):
            raise LayerError(
                f"layer {name!r}: expand it for the model's input first (inviz.fmaps.layers.expand_layers)"
            )
        module = name if name in modules and name != "" else aliases.get(name)
        if module is None:
            raise LayerError(
                f"layer {name!r} is neither a module name of {type(model).__name__} nor a Keras-style "
                f"alias; valid names include: {suggestions(model, name)}"
            )
        out.append(ResolvedLayer(name, module, _capture_point(modules, module)))
    return out


def _capture_point(modules: dict[str, nn.Module], module: str) -> str:
    """Return the following ReLU for a Conv2d inside a Sequential, else the module itself."""
    if not isinstance(modules[module], nn.Conv2d):
        return module
    parent_name, child = module.rsplit(".", 1) if "." in module else ("", module)
    parent = modules.get(parent_name)
    if not isinstance(parent, nn.Sequential):
        return module
    names = [n for n, _ in parent.named_children()]
    i = names.index(child)
    if i + 1 < len(names) and isinstance(parent[i + 1], nn.ReLU):
        return f"{parent_name}.{names[i + 1]}" if parent_name else names[i + 1]
    return module


def spatial_problem(output: Any) -> str | None:
    """Say why a module's output is not a spatial map (N, C, H, W) with H * W > 1 (``None``: it is)."""
    if not isinstance(output, torch.Tensor):
        return f"its output is a {type(output).__name__}, not a tensor"
    if output.dim() != 4:
        return f"its output has shape {tuple(output.shape)}, not (N, C, H, W)"
    if output.shape[2] * output.shape[3] < 2:
        return f"its output has shape {tuple(output.shape)}: a 1x1 map has nothing to cluster or reveal"
    return None


def not_spatial_error(model: nn.Module, name: str, module: str, problem: str) -> LayerError:
    """Make the error for a layer that gives no spatial map, with candidates."""
    kind = type(dict(model.named_modules())[module]).__name__
    return LayerError(
        f"layer {name!r} ({module}, {kind}): {problem}. INV clusters feature maps and needs a spatial "
        f"map of a convolution or a block; try {suggestions(model)}"
    )


def trace_outputs(
    model: nn.Module, modules: Sequence[str], input_size: int
) -> tuple[dict[str, Any], list[str]]:
    """One forward pass on zeros of shape (2, 3, S, S): the outputs' shapes and the order convolutions run.

    Parameters
    ----------
    model : the CNN (put in eval mode for the pass, its mode restored).
    modules : module names whose outputs to report.
    input_size : S.

    Returns
    -------
    outputs : module name -> its output (of the ``modules`` reached).
    conv_order : names of the ``Conv2d`` modules with a spatial output, in the order they ran.
    """
    named = dict(model.named_modules())
    watch = set(modules) | {n for n, m in named.items() if isinstance(m, nn.Conv2d)}
    outputs: dict[str, Any] = {}
    order: list[str] = []

    def hook_for(name: str) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> None:
            if name in outputs:
                return
            outputs[name] = output
            if isinstance(module, nn.Conv2d) and spatial_problem(output) is None:
                order.append(name)

        return hook

    handles = [named[n].register_forward_hook(hook_for(n)) for n in watch if n in named]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(2, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n: o for n, o in outputs.items() if n in modules}, order


def expand_layers(model: nn.Module, layers: Sequence[str], input_size: int) -> tuple[str, ...]:
    """Replace ``last_conv:N`` entries by the names of the last N convolutions with a spatial output.

    Parameters
    ----------
    model : the CNN.
    layers : layer names, possibly with ``last_conv:N`` entries.
    input_size : the model's input side (the forward pass that orders the convolutions).

    Returns
    -------
    tuple of str, duplicates dropped (first occurrence kept), in order.
    """
    if not any(LAST_CONV.match(name) for name in layers):
        return tuple(layers)
    check_hookable(model)
    _, convs = trace_outputs(model, [], input_size)
    out: list[str] = []
    for name in layers:
        m = LAST_CONV.match(name)
        if m is None:
            out.append(name)
            continue
        n = int(m.group(1))
        if not 1 <= n <= len(convs):
            raise LayerError(
                f"layer {name!r}: expected 1 <= N <= {len(convs)} (the model's convolutions with a spatial "
                f"output at {input_size} px)"
            )
        out.extend(convs[-n:])
    expanded = tuple(dict.fromkeys(out))
    log.info("layers %s -> %s", list(layers), list(expanded))
    return expanded


def check_spatial(
    model: nn.Module, layers: Sequence[str], input_size: int
) -> dict[str, tuple[int, int, int]]:
    """Check that every layer outputs a spatial map at ``input_size``; return its (C, H, W).

    Parameters
    ----------
    model : the CNN.
    layers : layer names (expanded: no ``last_conv:N``).
    input_size : the model's input side.

    Returns
    -------
    dict of layer name to (C, H, W)

    Raises
    ------
    LayerError
        For an unknown name, a layer the forward pass does not reach, or one without a spatial
        map (a linear layer, a pooled 1x1 output, ...), naming it and candidates.
    """
    resolved = resolve_layers(model, layers)
    outputs, _ = trace_outputs(model, [r.capture for r in resolved], input_size)
    shapes: dict[str, tuple[int, int, int]] = {}
    for r in resolved:
        if r.capture not in outputs:
            raise LayerError(f"layer {r.name!r} ({r.capture}) is not reached by the model's forward pass")
        problem = spatial_problem(outputs[r.capture])
        if problem:
            raise not_spatial_error(model, r.name, r.capture, problem)
        shapes[r.name] = tuple(int(v) for v in outputs[r.capture].shape[1:])  # type: ignore[assignment]
    return shapes
