"""Model checkpoints written by ``inviz train`` and read by every later stage.

A checkpoint is one ``torch.save`` file holding the state dict, the :class:`ModelConfig` it was
built from and the class list, so a stage can rebuild the exact network without params.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inviz.core.config import from_dict, to_dict
from inviz.core.errors import InvizError
from inviz.core.io import save_torch, sha256_file
from inviz.models.vgg import ModelConfig, VGG16Classifier


class CheckpointError(InvizError, ValueError):
    """A checkpoint file is missing or malformed."""


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for inference: ``model`` (eval mode), its config, classes and file hash."""

    model: nn.Module
    config: ModelConfig
    classes: list[dict[str, Any]]
    sha256: str

    @property
    def class_names(self) -> list[str]:
        return [c["class_name"] for c in self.classes]


def save_checkpoint(path: str | Path, model: VGG16Classifier, classes: list[dict[str, Any]], extra: dict | None = None) -> Path:
    """Write ``model`` with its config and ``classes`` (``[{label, class_folder, class_name}]``)."""
    payload = {
        "format": "inviz-model/1",
        "model_config": to_dict(model.config),
        "classes": classes,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    return save_torch(path, payload)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> LoadedModel:
    """Rebuild the model saved by :func:`save_checkpoint` (in eval mode, on ``map_location``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: model checkpoint not found (run the 'train' stage first)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != "inviz-model/1":
        raise CheckpointError(f"{path}: not an inviz model checkpoint (expected format 'inviz-model/1')")
    cfg = from_dict(ModelConfig, {**payload["model_config"], "weights": "none"}, "model_config", str(path))
    classes = list(payload["classes"])
    model = VGG16Classifier(len(classes), cfg)
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    return LoadedModel(model, cfg, classes, sha256_file(path))
