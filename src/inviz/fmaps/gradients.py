"""Activations and gradients of named layers from one forward and one backward pass (docs/method.md §1.1).

Layers are addressed by their ``named_modules()`` name (``features.28``, ``layer4.1.conv2``,
``_blocks.15``), so any torch CNN works; a VGG-style model with a ``features`` Sequential also
accepts the paper's Keras names (``block5_conv3``). Naming, resolving and checking layers
(``last_conv:N``, spatial maps) is :mod:`inviz.fmaps.layers`.

What is captured for a layer (``A_k`` of docs/method.md §1):

- a ``Conv2d`` directly followed by an ``nn.ReLU`` inside an ``nn.Sequential`` (VGG) is captured
  at the ReLU's output, because Keras' convolution layers include their activation: ``A_k`` is the
  **post-ReLU** map, exactly what the authors explained;
- any other module is captured at its output.

:class:`LayerCapture` is a scoped resource: hooks are registered on ``__enter__`` and removed on
``__exit__``, also when the forward pass raises. The caller's model is never modified: the hook
passes a *copy* of the captured output downstream, so later in-place operations (``ReLU(inplace
=True)``, ``x += identity``) cannot alter the captured activations or break gradient capture, and
the gradients are taken with :func:`torch.autograd.grad` with respect to the captured tensors only
(no ``.grad`` of any parameter is touched, frozen parameters are fine).

The backward pass differentiates the **pre-softmax logit** of one class per image: the predicted
class by default, or the class given per image. The batch is differentiated as the sum of the
per-image logits, which gives per-image gradients because images do not interact in an
eval-mode network (a model in training mode is reported with a warning: batch-norm statistics and
dropout would couple or randomise the images).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from inviz.core.errors import InvizError
from inviz.fmaps.layers import LayerError, ResolvedLayer, not_spatial_error, resolve_layers

__all__ = [
    "Captured",
    "LayerCapture",
    "LayerError",
    "NonFiniteError",
    "ResolvedLayer",
    "capture",
    "resolve_layers",
]

log = logging.getLogger(__name__)


class NonFiniteError(InvizError, FloatingPointError):
    """NaN or infinite values in a layer's activations or gradients."""


@dataclass(frozen=True, eq=False)
class Captured:
    """Result of one forward/backward pass.

    Parameters
    ----------
    logits : Tensor of shape (N, K), detached.
    targets : LongTensor of shape (N,), the differentiated class per image.
    activations, gradients : ``{layer name: Tensor of shape (N, C, H, W)}``, detached, on the
        model's device; ``gradients[l]`` is d logit[target] / d ``activations[l]``.
    layers : the resolved layers, in request order.
    """

    logits: torch.Tensor
    targets: torch.Tensor
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor]
    layers: tuple[ResolvedLayer, ...]


class LayerCapture:
    """Context manager capturing activations of named layers and their gradients.

    Parameters
    ----------
    model : any ``nn.Module`` whose forward returns logits of shape (N, K).
    layers : layer names (module names or Keras-style aliases for VGG).

    Examples
    --------
    >>> with LayerCapture(model, ["block5_conv3"]) as cap:   # doctest: +SKIP
    ...     out = cap.run(images)                          # one forward + one backward
    """

    def __init__(self, model: nn.Module, layers: Sequence[str]):
        self.model = model
        self.layers = tuple(resolve_layers(model, layers))
        self._handles: list[Any] = []
        self._store: dict[str, torch.Tensor] = {}
        self._calls: dict[str, int] = {}

    def __enter__(self) -> LayerCapture:
        """Register the hooks (removed again if registering one fails)."""
        modules = dict(self.model.named_modules())
        by_capture: dict[str, list[ResolvedLayer]] = {}
        for layer in self.layers:
            by_capture.setdefault(layer.capture, []).append(layer)
        try:
            for capture, group in by_capture.items():
                self._handles.append(modules[capture].register_forward_hook(self._make_hook(capture, group)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        """Remove the hooks and drop the captured tensors."""
        self._remove()
        self._store.clear()

    def _remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def _make_hook(self, capture: str, group: list[ResolvedLayer]) -> Any:
        def hook(module: nn.Module, inputs: Any, output: Any) -> Any:
            if not isinstance(output, torch.Tensor) or output.dim() != 4:
                shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
                problem = f"expected a (N, C, H, W) tensor output, got {shape}"
                raise not_spatial_error(self.model, group[0].name, capture, problem)
            self._calls[capture] = self._calls.get(capture, 0) + 1
            if self._calls[capture] > 1:
                raise LayerError(
                    f"layer {group[0].name!r}: module {capture!r} is called more than once per forward pass "
                    "(a shared module, e.g. one activation reused across blocks); choose a module used once"
                )
            for layer in group:
                self._store[layer.name] = output
            # downstream gets a copy: later in-place ops cannot change the captured tensor
            return output.clone()

        return hook

    def run(self, images: torch.Tensor, targets: torch.Tensor | Sequence[int] | None = None) -> Captured:
        """One forward and one backward pass over a batch.

        Parameters
        ----------
        images : Tensor of shape (N, 3, H, W), already normalised for the model.
        targets : Tensor or sequence of shape (N,), the class per image, or ``None`` for the predicted
            (arg-max logit) class.

        Returns
        -------
        :class:`Captured`: logits (N, K), targets (N,), activations and gradients (N, C, H, W) per layer.

        Raises
        ------
        NonFiniteError
            When a layer's activations or gradients contain NaN/inf (the layer and images are named).
        """
        if not self._handles:
            raise RuntimeError("LayerCapture.run must be called inside 'with LayerCapture(...)'")
        if self.model.training:
            log.warning("explaining a model in training mode (dropout/batch-norm active); call model.eval()")
        self._store.clear()
        self._calls.clear()
        x = images.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.model(x)
            if logits.dim() != 2:
                raise LayerError(f"model output: expected logits of shape (N, K), got {tuple(logits.shape)}")
            missing = [layer.name for layer in self.layers if layer.name not in self._store]
            if missing:
                raise LayerError(f"layer(s) {', '.join(missing)} not reached by the forward pass")
            for layer in self.layers:
                _check_finite(self._store[layer.name], layer, "activations")
            if targets is None:
                tgt = logits.detach().argmax(1)
            else:
                tgt = torch.as_tensor(targets, dtype=torch.long, device=logits.device).reshape(-1)
                if tgt.numel() != logits.shape[0]:
                    raise ValueError(f"targets: expected {logits.shape[0]} class indices, got {tgt.numel()}")
                if tgt.numel() and (int(tgt.min()) < 0 or int(tgt.max()) >= logits.shape[1]):
                    raise ValueError(
                        f"targets: class indices must be in [0, {logits.shape[1]}), got {tgt.tolist()}"
                    )
            score = logits.gather(1, tgt[:, None]).sum()
            tensors = [self._store[layer.name] for layer in self.layers]
            grads = torch.autograd.grad(score, tensors, allow_unused=True)
        acts, grad_map = {}, {}
        for layer, a, g in zip(self.layers, tensors, grads, strict=True):
            if g is None:
                raise LayerError(f"layer {layer.name!r}: the logits do not depend on this layer's output")
            _check_finite(g, layer, "gradients")
            acts[layer.name] = a.detach()
            grad_map[layer.name] = g.detach()
        self._store.clear()
        return Captured(logits.detach(), tgt, acts, grad_map, self.layers)


def _check_finite(t: torch.Tensor, layer: ResolvedLayer, what: str) -> None:
    bad = ~torch.isfinite(t.detach()).flatten(1).all(1)
    if bool(bad.any()):
        idx = bad.nonzero().flatten().tolist()
        raise NonFiniteError(
            f"layer {layer.name!r} ({layer.capture}): NaN or infinite {what} for image(s) at batch "
            f"position {idx[:10]}; check the input images and the model weights"
        )


def capture(
    model: nn.Module,
    images: torch.Tensor,
    layers: Sequence[str],
    targets: torch.Tensor | Sequence[int] | None = None,
) -> Captured:
    """Capture one batch: ``with LayerCapture(model, layers) as c: return c.run(images, targets)``.

    Parameters
    ----------
    model : the CNN, logits of shape (N, K).
    images : Tensor of shape (N, 3, H, W), normalised for the model.
    layers : layer names.
    targets : Tensor or sequence of shape (N,), the class per image; default the predicted class.

    Returns
    -------
    :class:`Captured`
    """
    with LayerCapture(model, layers) as cap:
        return cap.run(images, targets)
