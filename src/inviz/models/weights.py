"""Weight files: torchvision's pretrained weights (downloaded once, or a file placed offline) and state dicts.

Shared by every architecture of :mod:`inviz.models.architectures`: VGG-16's backbone, torchvision
models and the builders of bring-your-own checkpoints all read their weights here, so offline
machines get one kind of message (which URL, which file to put where).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from inviz.core.errors import InvizError

log = logging.getLogger(__name__)


class WeightsError(InvizError, RuntimeError):
    """Weights cannot be obtained or do not fit the model."""


def cached_weights_path(weights: Any) -> Path:
    """Where torchvision keeps a weights file (``$TORCH_HOME/hub/checkpoints/<file of its url>``).

    Parameters
    ----------
    weights : torchvision ``WeightsEnum`` member (e.g. ``ResNet18_Weights.IMAGENET1K_V1``).

    Returns
    -------
    Path
    """
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def pretrained_state(weights: Any, what: str) -> dict[str, torch.Tensor]:
    """Return the state dict of torchvision weights: the cached file, else a download.

    Parameters
    ----------
    weights : torchvision ``WeightsEnum`` member.
    what : the model, for messages (``VGG-16``, ``resnet18``).

    Returns
    -------
    dict of str to Tensor

    Raises
    ------
    WeightsError
        Offline without the file: the message names the URL and where to put the file.
    """
    target = cached_weights_path(weights)
    if target.is_file():
        return torch.load(target, map_location="cpu", weights_only=True)
    try:
        return weights.get_state_dict(progress=True)
    except Exception as err:  # URLError, HTTPError, OSError: all mean "could not download"
        raise WeightsError(
            f"model.weights=imagenet: could not download the {what} ImageNet weights "
            f"({type(err).__name__}: {err}).\n"
            f"Offline? Download {weights.url}\n"
            f"and place it at {target}\n"
            "(or set TORCH_HOME, or set model.weights to the path of the file)."
        ) from err


def read_state_dict(path: str | Path, key: str = "model.weights", strip_prefix: str = "") -> dict[str, Any]:
    """Read a ``torch.save`` state dict (a Lightning checkpoint's ``state_dict`` entry is taken).

    Parameters
    ----------
    path : the file.
    key : the params key that named it (for messages).
    strip_prefix : removed from the start of every key (e.g. ``model.``).

    Returns
    -------
    dict
        Parameter name -> tensor. A missing or unreadable file, or one holding no mapping, raises
        :class:`WeightsError`.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{key}: {str(path)!r} is not a file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"{path}: not a readable torch state_dict ({err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):  # Lightning checkpoint
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state_dict (mapping), got {type(state).__name__}")
    if strip_prefix:
        state = {k.removeprefix(strip_prefix): v for k, v in state.items()}
    return state


def load_into(
    model: torch.nn.Module, state: dict[str, Any], source: str, what: str, strict: bool = True
) -> None:
    """``model.load_state_dict(state)`` with an error naming the file and the mismatching keys.

    Parameters
    ----------
    model : the network (changed in place).
    state : the state dict.
    source : the file, for messages. what : the model, for messages.
    strict : every key must match.
    """
    try:
        missing, unexpected = model.load_state_dict(state, strict=strict)
    except RuntimeError as err:
        raise WeightsError(f"{source}: does not fit {what}: {err}") from err
    if missing or unexpected:
        log.warning(
            "%s: %d missing and %d unexpected keys (strict: false)", source, len(missing), len(unexpected)
        )
    log.info("loaded weights from %s", source)
