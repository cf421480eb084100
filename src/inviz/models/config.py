"""The ``model`` section of ``params.yaml``: which network, which weights, which input.

Three kinds of ``arch`` (the registry is :mod:`inviz.models.architectures`):

- ``vgg16`` — the paper's VGG-16 with its dense head (:mod:`inviz.models.vgg`; ``width``,
  ``head_hidden`` and ``dropout`` apply to it only);
- ``torchvision:<name>`` — any torchvision classification model by name (``torchvision:resnet50``,
  ``torchvision:efficientnet_b0``, ``torchvision:convnext_tiny``; :mod:`inviz.models.zoo`), its
  classifier layer replaced for the dataset's classes;
- ``checkpoint`` — a finished model you bring (:class:`ExternalConfig`, :mod:`inviz.models.external`):
  a TorchScript or ``torch.export`` file, or a Python builder plus a state dict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from inviz.core.checks import check_unit

#: ``arch`` values besides ``torchvision:<name>``
FIXED_ARCHS = ("vgg16", "checkpoint")
TORCHVISION_PREFIX = "torchvision:"


@dataclass(frozen=True)
class ExternalConfig:
    """``model.checkpoint``: a finished model (``model.arch: checkpoint``).

    Give either ``file`` or ``builder``.

    file : a TorchScript file (``torch.jit.save``; evaluation and selection only: TorchScript modules
        cannot be hooked, so INV needs one of the two other forms) or a ``torch.export`` program
        (``torch.export.save``, ``.pt2``; export it with a dynamic batch dimension).
    builder : ``package.module:function`` returning the ``nn.Module`` (a dotted attribute after the
        colon is fine: ``efficientnet_lite_pytorch:EfficientNet.from_name``); it must be importable.
    builder_args : keyword arguments of the builder.
    state_dict : a ``torch.save`` state dict loaded into the builder's model (``null``: the builder
        loads its own weights). Lightning checkpoints (a ``state_dict`` entry) are accepted.
    strip_prefix : removed from the start of every state-dict key (e.g. ``model.``).
    strict : ``load_state_dict(strict=)``.
    class_index : which model output is which dataset class, for a model with more outputs than the
        dataset has classes (an ImageNet model on a subset of ImageNet): ``{class_folder: output}``,
        or the path of a CSV ``class_folder,output_index``. ``null``: output ``i`` is class ``i``
        (the model must have exactly one output per class).
    head : module name of the classifier head (the ``head`` / ``backbone`` phase shorthands);
        ``null``: the top-level module holding the last linear (or 1x1 convolution) layer.
    """

    file: str | None = None
    builder: str | None = None
    builder_args: dict[str, Any] = field(default_factory=dict)
    state_dict: str | None = None
    strip_prefix: str = ""
    strict: bool = True
    class_index: dict[str, int] | str | None = None
    head: str | None = None

    def __post_init__(self) -> None:
        if self.file and self.builder:
            raise ValueError("checkpoint: give either file (TorchScript / torch.export) or builder, not both")
        if self.file and self.state_dict:
            raise ValueError("checkpoint.state_dict goes with a builder; a file already holds its weights")
        if self.builder is not None and ":" not in self.builder:
            raise ValueError(f"checkpoint.builder: expected 'package.module:function', got {self.builder!r}")

    @property
    def given(self) -> bool:
        """Whether a file or a builder is set."""
        return bool(self.file or self.builder)


@dataclass(frozen=True)
class ModelConfig:
    """``model`` section of ``params.yaml``.

    arch : ``vgg16`` (the paper), ``torchvision:<name>`` (any torchvision classification model,
        :func:`torchvision.models.list_models`) or ``checkpoint`` (a finished model, see ``checkpoint``).
    width : channel multiplier of every VGG-16 convolution (1.0 = the paper's VGG-16; ``vgg16`` only).
    weights : ``imagenet`` (torchvision's ImageNet weights: ``IMAGENET1K_V1`` for VGG-16, the
        model's ``DEFAULT`` otherwise), a torchvision weights name (``IMAGENET1K_V2``), ``none``
        (random init) or a path to a ``state_dict`` file (VGG-16: its ``features.*`` backbone;
        torchvision: the whole model, the classifier layer only when its size fits). ``arch:
        checkpoint`` takes its weights from ``checkpoint`` (``weights: none``).
    input_size : square input side in pixels (paper: 256); a multiple of 32 for ``vgg16``.
    head_hidden : units of the hidden dense layer (paper: 256; ``vgg16`` only).
    dropout : dropout before each dense layer (paper: 0.3; ``vgg16`` only).
    mean, std : input normalisation (torchvision's ImageNet statistics match its weights).
    checkpoint : the finished model of ``arch: checkpoint`` (:class:`ExternalConfig`).
    """

    arch: str = "vgg16"
    width: float = 1.0
    weights: str = "imagenet"
    input_size: int = 256
    head_hidden: int = 256
    dropout: float = 0.3
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    checkpoint: ExternalConfig = field(default_factory=ExternalConfig)

    def __post_init__(self) -> None:
        if isinstance(self.checkpoint, dict):  # library convenience: a plain mapping
            from inviz.core.config import from_dict

            object.__setattr__(self, "checkpoint", from_dict(ExternalConfig, self.checkpoint, "checkpoint"))
        check_arch(self.arch)
        if not 0 < self.width <= 4:
            raise ValueError(f"width: expected a multiplier in (0, 4], got {self.width}")
        if self.input_size < 1:
            raise ValueError(f"input_size: expected a positive number of pixels, got {self.input_size}")
        if self.arch == "vgg16" and self.input_size % 32:
            raise ValueError(f"input_size: expected a positive multiple of 32, got {self.input_size}")
        check_unit(self, ("dropout",), "[)", what="a probability")
        if self.arch != "vgg16":
            changed = [
                k
                for k, v in (("width", 1.0), ("head_hidden", 256), ("dropout", 0.3))
                if getattr(self, k) != v
            ]
            if changed:
                raise ValueError(
                    f"{', '.join(changed)}: only used by arch vgg16 (arch is {self.arch!r}); remove it"
                )
        if self.arch == "checkpoint":
            if not self.checkpoint.given:
                raise ValueError("arch checkpoint: set checkpoint.file or checkpoint.builder")
            if self.weights != "none":
                raise ValueError(
                    f"weights: arch checkpoint takes its weights from checkpoint.file or "
                    f"checkpoint.state_dict; set weights: none (got {self.weights!r})"
                )
        elif self.checkpoint.given:
            raise ValueError(f"checkpoint: only read with arch checkpoint (arch is {self.arch!r})")

    @property
    def kind(self) -> str:
        """The registry key of ``arch``: ``vgg16``, ``torchvision`` or ``checkpoint``."""
        return "torchvision" if self.arch.startswith(TORCHVISION_PREFIX) else self.arch

    @property
    def torchvision_name(self) -> str:
        """The torchvision model name of ``torchvision:<name>`` (empty for other archs)."""
        return self.arch[len(TORCHVISION_PREFIX) :] if self.kind == "torchvision" else ""


def torchvision_names() -> list[str]:
    """Return the names of torchvision's classification models (``torchvision.models.list_models``)."""
    import torchvision

    return sorted(torchvision.models.list_models(module=torchvision.models))


def check_arch(arch: str) -> None:
    """Check an ``arch`` value; an unknown name raises ``ValueError`` listing close matches.

    Parameters
    ----------
    arch : str
        ``vgg16``, ``checkpoint`` or ``torchvision:<name>``.
    """
    import difflib

    if arch in FIXED_ARCHS:
        return
    names = torchvision_names()
    if arch.startswith(TORCHVISION_PREFIX):
        name = arch[len(TORCHVISION_PREFIX) :]
        if name in names:
            return
        close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
        hint = (
            f"close matches: {', '.join(TORCHVISION_PREFIX + c for c in close)}"
            if close
            else "no close match"
        )
        raise ValueError(
            f"arch: {name!r} is not a torchvision classification model ({hint}; "
            f"{len(names)} names in torchvision.models.list_models())"
        )
    choices = list(FIXED_ARCHS) + [TORCHVISION_PREFIX + n for n in names]
    ratio = {c: difflib.SequenceMatcher(None, arch, c.split(":")[-1]).ratio() for c in choices}
    close = [c for c in sorted(choices, key=lambda c: -ratio[c]) if ratio[c] >= 0.5][:5]  # stable: ours first
    hint = ", ".join(close)
    raise ValueError(
        f"arch: unknown architecture {arch!r}; expected vgg16 (the paper), checkpoint (your model) or "
        f"torchvision:<name>" + (f"; did you mean {hint}?" if hint else "")
    )
