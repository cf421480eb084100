"""VGG-16 with the paper's classification head and an optional width multiplier.

The paper (docs/method.md §0) fine-tunes Keras' VGG-16 with ImageNet weights and replaces the top by
``Flatten -> Dropout(0.3) -> Linear(., 256) + ReLU -> Dropout(0.3) -> Linear(256, n_classes)``
(logits). Here the backbone is torchvision's ``vgg16().features`` (Conv2d modules at indices
0, 2, 5, ... 28) and the flattened block5 output feeds the head directly, as in Keras
(no adaptive average pooling), so the head's input size depends on ``input_size``.

``width`` scales every convolution's channel count (1.0 = VGG-16); the offline demo trains a
narrow network from scratch. Keras-style names (``block5_conv3``) are aliases of the torchvision
module names (``features.28``), see :func:`keras_layer_names`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from inviz.core.checks import check_unit
from inviz.core.errors import InvizError

log = logging.getLogger(__name__)

#: torchvision's configuration "D" (VGG-16): channel counts and "M" for max-pooling.
VGG16_CFG: tuple[int | str, ...] = tuple(tv_vgg.cfgs["D"])


@dataclass(frozen=True)
class ModelConfig:
    """``model`` section of ``params.yaml``.

    arch : only ``vgg16`` is built by this module.
    width : channel multiplier of every convolution (1.0 = the paper's VGG-16).
    weights : ``imagenet`` (torchvision ``IMAGENET1K_V1``, width 1.0 only), ``none`` (random
        init) or a path to a ``state_dict`` file for the backbone (``features.*`` keys, or a
        full model's state dict whose ``features.*`` entries are used).
    input_size : square input side in pixels (paper: 256); must be divisible by 32.
    head_hidden : units of the hidden dense layer (paper: 256).
    dropout : dropout before each dense layer (paper: 0.3).
    mean, std : input normalisation (torchvision's ImageNet statistics match its weights).
    """

    arch: str = "vgg16"
    width: float = 1.0
    weights: str = "imagenet"
    input_size: int = 256
    head_hidden: int = 256
    dropout: float = 0.3
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if self.arch != "vgg16":
            raise ValueError(f"arch: only 'vgg16' is supported, got {self.arch!r}")
        if not 0 < self.width <= 4:
            raise ValueError(f"width: expected a multiplier in (0, 4], got {self.width}")
        if self.input_size <= 0 or self.input_size % 32:
            raise ValueError(f"input_size: expected a positive multiple of 32, got {self.input_size}")
        check_unit(self, ("dropout",), "[)", what="a probability")


class WeightsError(InvizError, RuntimeError):
    """Backbone weights cannot be obtained or do not fit the model."""


def scaled_cfg(width: float) -> list[int | str]:
    """VGG-16 configuration with every channel count multiplied by ``width`` (at least 1)."""
    return [v if v == "M" else max(1, int(round(v * width))) for v in VGG16_CFG]


class VGG16Classifier(nn.Module):
    """VGG-16 backbone + the paper's dense head; ``forward`` returns logits ``(N, n_classes)``.

    Attributes ``features`` and ``classifier`` follow torchvision's naming so that module names
    such as ``features.28`` address the same convolutions as in ``torchvision.models.vgg16``.
    """

    def __init__(self, n_classes: int, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.features = tv_vgg.make_layers(scaled_cfg(cfg.width), batch_norm=False)
        last = [v for v in scaled_cfg(cfg.width) if v != "M"][-1]
        side = cfg.input_size // 32
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(cfg.dropout),
            nn.Linear(int(last) * side * side, cfg.head_hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden, n_classes),
        )
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation (kaiming for convs, N(0, 0.01) for linear layers)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """X : Tensor of shape (N, 3, S, S) with S = ``config.input_size``."""
        return self.classifier(self.features(x))


def keras_layer_names(features: nn.Sequential, prefix: str = "features") -> dict[str, str]:
    """Map Keras-style VGG names to module names, e.g. ``block5_conv3 -> features.28``.

    Blocks are counted at each max-pooling layer; ``blockB_poolN`` names the pooling layers.
    """
    names: dict[str, str] = {}
    block, conv = 1, 0
    for idx, module in enumerate(features):
        if isinstance(module, nn.Conv2d):
            conv += 1
            names[f"block{block}_conv{conv}"] = f"{prefix}.{idx}"
        elif isinstance(module, nn.MaxPool2d):
            names[f"block{block}_pool"] = f"{prefix}.{idx}"
            block, conv = block + 1, 0
    return names


def block_of(module_name: str, features: nn.Sequential, prefix: str = "features") -> str | None:
    """Keras block (``block5``) of a module name inside ``features`` (``None`` for the head)."""
    if not module_name.startswith(prefix + "."):
        return None
    idx = int(module_name.split(".")[1])
    block = 1
    for i, module in enumerate(features):
        if i == idx:
            return f"block{block}"
        if isinstance(module, nn.MaxPool2d):
            block += 1
    return None


def imagenet_weights_path() -> Path:
    """Where torchvision caches the VGG-16 ImageNet file (``$TORCH_HOME/hub/checkpoints``)."""
    url = tv_vgg.VGG16_Weights.IMAGENET1K_V1.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def _load_imagenet_state() -> dict[str, torch.Tensor]:
    weights = tv_vgg.VGG16_Weights.IMAGENET1K_V1
    target = imagenet_weights_path()
    if target.is_file():
        return torch.load(target, map_location="cpu", weights_only=True)
    try:
        return weights.get_state_dict(progress=True)
    except Exception as err:  # URLError, HTTPError, OSError: all mean "could not download"
        raise WeightsError(
            "model.weights=imagenet: could not download the VGG-16 ImageNet weights "
            f"({type(err).__name__}: {err}).\n"
            f"Offline? Download {weights.url}\n"
            f"and place it at {target}\n"
            "(or set TORCH_HOME, or set model.weights to the path of the file)."
        ) from err


def _backbone_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    if "state_dict" in state and isinstance(state["state_dict"], dict):  # Lightning checkpoint
        state = state["state_dict"]
    state = {k.removeprefix("model."): v for k, v in state.items()}
    feats = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if not feats:
        raise WeightsError(f"{source}: no 'features.*' entries in the state dict")
    return feats


def load_backbone_weights(model: VGG16Classifier, weights: str) -> None:
    """Load ``imagenet`` / ``none`` / ``<path>`` weights into ``model.features`` in place."""
    if weights == "none":
        if model.config.width == 1.0:  # the paper's network, without the paper's starting point
            log.warning(
                "model.weights: none: the full-width VGG-16 starts from RANDOM weights; the paper "
                "fine-tunes the ImageNet weights (model.weights: imagenet, or the path of "
                "vgg16-397923af.pth), so its accuracy and explanations are not expected here"
            )
        return
    if weights == "imagenet":
        if model.config.width != 1.0:
            raise WeightsError(
                f"model.weights=imagenet needs model.width=1.0 (got {model.config.width}); "
                "use weights: none for a narrower network"
            )
        state, source = _load_imagenet_state(), "VGG-16 ImageNet weights"
    else:
        path = Path(weights)
        if not path.is_file():
            raise WeightsError(
                f"model.weights: expected 'imagenet', 'none' or the path of a state_dict file; "
                f"{weights!r} is none of these (no such file)"
            )
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise WeightsError(f"{path}: not a readable torch state_dict ({err})") from err
        if not isinstance(state, dict):
            raise WeightsError(f"{path}: expected a state_dict (mapping), got {type(state).__name__}")
        source = str(path)
    feats = _backbone_state(state, source)
    try:
        model.features.load_state_dict(feats, strict=True)
    except RuntimeError as err:
        raise WeightsError(
            f"{source}: does not fit the VGG-16 backbone (width={model.config.width}): {err}"
        ) from err
    log.info("loaded backbone weights from %s", source)


def build_vgg16(n_classes: int, cfg: ModelConfig) -> VGG16Classifier:
    """Build the classifier and load its backbone weights as ``cfg.weights`` says."""
    model = VGG16Classifier(n_classes, cfg)
    load_backbone_weights(model, cfg.weights)
    return model
