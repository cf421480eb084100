"""Batched channel interventions at a layer: many masked copies of one activation in one forward pass.

Concept deletion (:mod:`inviz.quality.concept_deletion`) multiplies the channels of a layer's output
``A`` (C, H, W) by 0/1 masks and reads the logits. :func:`masked_logits` does it for M masks of one
image with one forward pass per chunk of ``batch_size`` masks: the image goes through the layers
before ``layer`` **once** (batch 1), and a scoped forward hook on the layer's capture module
(:func:`inviz.fmaps.gradients.resolve_layers`: a VGG convolution at its ReLU's output, as INV
explains it) replaces its output by ``A[None] * masks[:, :, None, None]`` (M, C, H, W); the rest of
the network runs on the M copies. A network whose later part cannot take a larger batch than its
input (e.g. a skip connection from before the layer that does not broadcast) is run the plain way:
the image repeated M times, same numbers, more work.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from inviz.fmaps.gradients import LayerError, resolve_layers

log = logging.getLogger(__name__)


@contextmanager
def scaled_output(model: nn.Module, layer: str, multipliers: torch.Tensor) -> Iterator[None]:
    """Scale a layer's output channels by ``multipliers`` while the context is open (scoped hook).

    Parameters
    ----------
    model : the CNN; never modified (the hook is removed on exit, also after an error).
    layer : layer name (module name or Keras alias), resolved as INV resolves it.
    multipliers : Tensor of shape (M, C); the output (B, C, H, W) with B = 1 or M becomes
        ``output * multipliers[:, :, None, None]`` of shape (M, C, H, W).

    Yields
    ------
    None
    """
    resolved = resolve_layers(model, [layer])[0]
    module = dict(model.named_modules())[resolved.capture]

    def hook(mod: nn.Module, inputs: object, output: torch.Tensor) -> torch.Tensor:
        if output.dim() != 4 or output.shape[1] != multipliers.shape[1]:
            raise LayerError(
                f"layer {layer!r}: expected an output of shape (B, {multipliers.shape[1]}, H, W), "
                f"got {tuple(output.shape)}"
            )
        return output * multipliers.to(output.dtype)[:, :, None, None]

    handle = module.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def masked_logits(
    model: nn.Module, x: torch.Tensor, layer: str, multipliers: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """Logits of one image with the channels of ``layer`` scaled by each row of ``multipliers``.

    Parameters
    ----------
    model : the CNN (eval mode), logits of shape (N, K).
    x : Tensor of shape (3, H, W) or (1, 3, H, W), the normalised image.
    layer : layer name.
    multipliers : Tensor of shape (M, C), one channel mask (or scaling) per row.
    batch_size : masks per forward pass.

    Returns
    -------
    float32 Tensor of shape (M, K), on the CPU.
    """
    x = x.reshape(1, *x.shape[-3:])
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x = x.to(device)
    out = []
    with torch.no_grad():
        for start in range(0, multipliers.shape[0], batch_size):
            mult = multipliers[start : start + batch_size].to(device)
            with scaled_output(model, layer, mult):
                try:
                    logits = model(x)
                    broadcast_ok = logits.shape[0] == mult.shape[0]
                except RuntimeError as err:  # the later layers cannot take the larger batch
                    log.debug("layer %s: broadcast intervention failed (%s); repeating the input", layer, err)
                    broadcast_ok = False
                if not broadcast_ok:
                    logits = model(x.expand(mult.shape[0], -1, -1, -1))
            out.append(logits.float().cpu())
    return torch.cat(out) if out else torch.zeros((0, 0))
