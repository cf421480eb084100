"""Model checkpoints written by ``inviz train`` and read by every later stage.

A checkpoint is one `safetensors <https://huggingface.co/docs/safetensors>`_ file: the state
dict's tensors plus, in its metadata, the :class:`ModelConfig` it was built from, the class list
and a few extra facts (JSON). Loading rebuilds the architecture from that config through the
registry of :mod:`inviz.models.architectures` (VGG-16, torchvision models, your own model's
builder or file) and loads the saved weights into it. Safetensors files hold no pickle and their
bytes depend only on their content, so a model retrained to identical weights has the identical
file hash: DVC and the CAV cache (keyed by :attr:`LoadedModel.sha256`) then see the same model.
``torch.save`` files carry a random serialization id and would not.

Checkpoints of the earlier format (a ``torch.save`` dict tagged ``inviz-model/1``) still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inviz.core.config import from_dict, to_dict
from inviz.core.errors import InvizError
from inviz.core.io import atomic_path, file_digest, require_file
from inviz.models.config import ModelConfig

FORMAT = "inviz-model/2"
_LEGACY_FORMAT = "inviz-model/1"
_META_KEY = "inviz"


class CheckpointError(InvizError, ValueError):
    """A checkpoint file is missing or malformed."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference.

    Attributes
    ----------
    model : nn.Module
        The network, in eval mode.
    config : ModelConfig
        The config it was built from.
    classes : list of dict
        ``[{label, class_folder, class_name}]`` in label order.
    sha256 : str
        The checkpoint file's sha256 (equal weights and config give equal hashes).
    """

    model: nn.Module
    config: ModelConfig
    classes: list[dict[str, Any]]
    sha256: str

    @property
    def class_names(self) -> list[str]:
        """Class names in label order."""
        return [c["class_name"] for c in self.classes]


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    classes: list[dict[str, Any]],
    extra: dict | None = None,
    config: ModelConfig | None = None,
) -> Path:
    """Write ``model`` with its config and ``classes`` as one safetensors file (atomically).

    Parameters
    ----------
    path : str or Path
        Output file (conventionally ``*.safetensors``).
    model : nn.Module
        The trained network.
    classes : list of dict
        ``[{label, class_folder, class_name}]``.
    extra : dict, optional
        JSON-able facts kept with the model (e.g. validation accuracy, seed).
    config : ModelConfig, optional
        The config the model was built from (default: ``model.config``, which VGG-16 carries).

    Returns
    -------
    Path
    """
    from safetensors.torch import save_file

    config = config if config is not None else model.config
    meta = {"format": FORMAT, "model_config": to_dict(config), "classes": classes, "extra": extra or {}}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # one metadata key with sorted JSON: the header (and so the file's bytes) is deterministic
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_META_KEY: json.dumps(meta, sort_keys=True)})
    return Path(path)


def _read(path: Path, map_location: str | torch.device) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read the metadata and state dict of a checkpoint file (current or legacy format)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get(_META_KEY, "{}"))
        return meta, load_file(str(path), device=str(map_location))
    except (SafetensorError, OSError, ValueError):
        pass  # not a safetensors file: try the legacy torch.save format
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != _LEGACY_FORMAT:
        raise CheckpointError(f"{path}: not an inviz model checkpoint (expected format '{FORMAT}')")
    return payload, payload["state_dict"]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model saved by :func:`save_checkpoint` (in eval mode, on ``map_location``).

    Parameters
    ----------
    path : str or Path
        A checkpoint written by :func:`save_checkpoint` (or the legacy ``torch.save`` format).
    map_location : str or torch.device
        Device of the returned model.

    Returns
    -------
    LoadedModel
    """
    path = require_file(path, "model checkpoint", "train", CheckpointError)
    meta, state = _read(path, map_location)
    if meta.get("format") not in (FORMAT, _LEGACY_FORMAT):
        raise CheckpointError(f"{path}: not an inviz model checkpoint (expected format '{FORMAT}')")
    from inviz.models.architectures import rebuild_model

    cfg = from_dict(ModelConfig, meta["model_config"], "model_config", str(path))
    classes = list(meta["classes"])
    model = rebuild_model(classes, cfg)
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise CheckpointError(
            f"{path}: its weights do not fit the model rebuilt from its config (arch {cfg.arch}); "
            f"was the builder or model file changed since 'train'? ({str(err)[:300]})"
        ) from err
    model.to(map_location).eval()
    return LoadedModel(model, cfg, classes, file_digest(path))
