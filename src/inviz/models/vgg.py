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
from pathlib import Path

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg

from inviz.models.config import ModelConfig
from inviz.models.weights import WeightsError, cached_weights_path, pretrained_state, read_state_dict

__all__ = ["ModelConfig", "WeightsError"]  # re-exported: their home used to be this module

log = logging.getLogger(__name__)

#: torchvision's configuration "D" (VGG-16): channel counts and "M" for max-pooling.
VGG16_CFG: tuple[int | str, ...] = tuple(tv_vgg.cfgs["D"])


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
    return cached_weights_path(tv_vgg.VGG16_Weights.IMAGENET1K_V1)


def _backbone_state(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
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
        state = pretrained_state(tv_vgg.VGG16_Weights.IMAGENET1K_V1, "VGG-16")
        source = "VGG-16 ImageNet weights"
    else:
        if not Path(weights).is_file():
            raise WeightsError(
                f"model.weights: expected 'imagenet', 'none' or the path of a state_dict file; "
                f"{weights!r} is none of these (no such file)"
            )
        state, source = read_state_dict(weights), weights
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
