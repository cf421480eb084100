"""Any torchvision classification model by name (``model.arch: torchvision:<name>``).

:func:`build_torchvision` makes ``torchvision.models.get_model(name)`` with the weights of
``model.weights`` and its final layer replaced for the dataset's classes
(:func:`inviz.models.heads.replace_final_layer`):

- ``none``: random initialisation, built with ``num_classes`` = the dataset's classes;
- ``imagenet`` (the model's ``DEFAULT`` weights) or a weights name (``IMAGENET1K_V2``): the
  ImageNet weights (cached file, or downloaded once; offline the message says which file to put
  where), then a new classifier layer;
- a path: a state dict of the whole model; the classifier layer is taken only when its shape fits.

Models whose ImageNet weights change the architecture (GoogLeNet and Inception-v3 normalise
their input inside, ViT and MaxViT take their image size from the weights) get the same
construction arguments when they are rebuilt from a checkpoint (:func:`rebuild_torchvision`).
Their auxiliary classifiers are dropped: INV explains the main output.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from inviz.models.config import ModelConfig
from inviz.models.heads import final_layer_name, replace_final_layer
from inviz.models.weights import WeightsError, load_into, pretrained_state, read_state_dict

log = logging.getLogger(__name__)

#: models built with auxiliary classifiers when they load ImageNet weights
_AUX = {"googlenet": ("aux1", "aux2"), "inception_v3": ("AuxLogits",)}


def weights_enum(name: str, weights: str, strict: bool = True) -> Any:
    """Return the torchvision weights named by ``model.weights`` (``None`` for ``none`` and paths).

    Parameters
    ----------
    name : the torchvision model name.
    weights : ``none``, ``imagenet`` (the model's ``DEFAULT``), a weights name or a file path.
    strict : an unknown value that is not a file is an error (``False``: ``None``, as for a path
        that no longer exists when a saved model is rebuilt).

    Returns
    -------
    WeightsEnum member or None
    """
    from torchvision.models import get_model_weights

    if weights == "none" or Path(weights).is_file():
        return None
    enum = get_model_weights(name)
    if weights == "imagenet":
        return enum.DEFAULT
    if weights in enum.__members__:
        return enum[weights]
    if not strict:
        return None
    raise WeightsError(
        f"model.weights: expected 'none', 'imagenet', one of {', '.join(m.name for m in enum)} (torchvision "
        f"weights of {name}) or the path of a state_dict file; {weights!r} is none of these (no such file)"
    )


def _construction_args(name: str, pretrained: Any) -> dict[str, Any]:
    """Arguments torchvision passes its builder along with ImageNet weights (kept when rebuilding)."""
    args: dict[str, Any] = {}
    if name in _AUX:
        args["transform_input"] = pretrained is not None
        args["init_weights"] = False
    if pretrained is not None and name.startswith("vit_"):
        args["image_size"] = pretrained.meta["min_size"][0]
    if pretrained is not None and name == "maxvit_t":
        args["input_size"] = pretrained.meta["min_size"]
    return args


def _drop_aux(model: nn.Module, name: str) -> None:
    """Remove the auxiliary classifiers of GoogLeNet / Inception-v3 (forward returns plain logits)."""
    if name in _AUX:
        model.aux_logits = False
        for attr in _AUX[name]:
            setattr(model, attr, None)


def build_torchvision(n_classes: int, cfg: ModelConfig) -> nn.Module:
    """Build ``cfg.arch`` (``torchvision:<name>``) with ``cfg.weights`` and ``n_classes`` outputs.

    Parameters
    ----------
    n_classes : the dataset's classes.
    cfg : the ``model`` section.

    Returns
    -------
    nn.Module (training mode)
    """
    from torchvision.models import get_model

    name = cfg.torchvision_name
    pretrained = weights_enum(name, cfg.weights)
    args = _construction_args(name, pretrained)
    if pretrained is not None:
        n_out = len(pretrained.meta["categories"])
        model = get_model(name, weights=None, num_classes=n_out, **args, **_aux_arg(name, True))
        load_into(model, pretrained_state(pretrained, name), f"{name} {pretrained}", name)
        replaced = replace_final_layer(model, n_classes)
        log.info("%s: %s weights, new %d-class layer %s", name, pretrained, n_classes, replaced)
    else:
        if name in _AUX:
            args["init_weights"] = True
        model = get_model(name, weights=None, num_classes=n_classes, **args, **_aux_arg(name, False))
        if cfg.weights != "none":
            _load_file(model, name, cfg.weights)
    _drop_aux(model, name)
    return model


def _aux_arg(name: str, aux: bool) -> dict[str, bool]:
    return {"aux_logits": aux} if name in _AUX else {}


def _load_file(model: nn.Module, name: str, path: str) -> None:
    """Load a whole-model state dict; the classifier layer only when its shape fits (new classes)."""
    state = read_state_dict(path)
    own = model.state_dict()
    final = final_layer_name(model)
    final_keys = {k for k in own if k.startswith(final + ".")}
    skipped = [k for k in final_keys if k in state and state[k].shape != own[k].shape]
    aux = _AUX.get(name, ())
    state = {k: v for k, v in state.items() if k not in skipped and k.split(".")[0] not in aux}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise WeightsError(f"{path}: does not fit torchvision {name}: {err}") from err
    missing = [k for k in missing if k not in final_keys]
    if missing or unexpected:
        raise WeightsError(
            f"{path}: does not fit torchvision {name}: missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}"
        )
    if set(final_keys) - set(state):
        log.info("%s: classifier layer %s not loaded (new classes): freshly initialised", path, final)


def rebuild_torchvision(n_classes: int, cfg: ModelConfig) -> nn.Module:
    """Rebuild the architecture of a saved model (no weights loaded: the checkpoint has them).

    Parameters
    ----------
    n_classes : classes of the checkpoint.
    cfg : the saved ``model`` section (its ``weights`` decide the construction arguments).

    Returns
    -------
    nn.Module
    """
    from torchvision.models import get_model

    name = cfg.torchvision_name
    pretrained = weights_enum(name, cfg.weights, strict=False)
    model = get_model(
        name,
        weights=None,
        num_classes=n_classes,
        **_construction_args(name, pretrained),
        **_aux_arg(name, False),
    )
    _drop_aux(model, name)
    return model
