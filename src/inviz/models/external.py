"""Bring your own finished model (``model.arch: checkpoint``, settings in ``model.checkpoint``).

Two ways to hand a model over (:class:`inviz.models.config.ExternalConfig`):

- a **Python builder** ``package.module:function`` (plus ``builder_args``) returning the
  ``nn.Module``, and optionally a **state dict** file loaded into it — the model stays a plain
  PyTorch module, so every stage works, INV included;
- a **file**: a ``torch.export`` program (``.pt2``, exported with a dynamic batch dimension; run
  as its unflattened module, whose submodules keep their names and can be hooked) or a
  TorchScript file (``torch.jit.save``). TorchScript modules cannot be hooked (PyTorch refuses
  hooks on ScriptModules and deprecates TorchScript in favour of ``torch.export``): they are
  evaluated and select images, and the INV stages say to bring a builder or a ``.pt2`` instead.

The model's outputs must be the dataset's classes in label order (sorted class folders). A model
with more outputs (an ImageNet model on a few ImageNet classes) names its outputs per class folder
in ``class_index``; the model is then wrapped by a forward hook keeping those outputs, in label
order (module names are unchanged, so layer names are those of your model). A mismatch is an
error naming both counts.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from inviz.core.checks import coverage_problems
from inviz.core.errors import InvizError
from inviz.models.config import ExternalConfig, ModelConfig
from inviz.models.weights import load_into, read_state_dict

log = logging.getLogger(__name__)


class ModelSourceError(InvizError, ValueError):
    """A bring-your-own model cannot be imported, loaded or matched to the dataset's classes."""


def import_builder(spec: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (a dotted attribute path after the colon is allowed).

    Parameters
    ----------
    spec : str

    Returns
    -------
    callable
    """
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ModelSourceError(
            f"model.checkpoint.builder: cannot import module {module_name!r} of {spec!r} "
            f"({type(err).__name__}: {err}); is the package installed, or its folder on PYTHONPATH? "
            f"(the stage runs in {os.getcwd()})"
        ) from err
    for i, part in enumerate(attr.split(".")):
        if not hasattr(obj, part):
            have = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, have, n=3)
            where = ".".join([module_name, *attr.split(".")[:i]])
            raise ModelSourceError(
                f"model.checkpoint.builder: {where} has no attribute {part!r}"
                + (f"; did you mean {', '.join(close)}?" if close else "")
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise ModelSourceError(f"model.checkpoint.builder: {spec!r} is not callable")
    return obj


def load_model_file(path: str | Path) -> nn.Module:
    """Load a ``torch.export`` program (``.pt2``, as its unflattened module) or a TorchScript file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    nn.Module (a TorchScript file gives a ``torch.jit.ScriptModule``)
    """
    import warnings

    path = Path(path)
    if not path.is_file():
        raise ModelSourceError(f"model.checkpoint.file: {str(path)!r} is not a file")
    errors = []
    loaders = [("torch.export", _load_exported), ("TorchScript", _load_script)]
    if path.suffix != ".pt2":
        loaders.reverse()
    for kind, load in loaders:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load is deprecated
                return load(path)
        except Exception as err:  # each loader raises its own error types on a foreign file
            errors.append(f"{kind}: {type(err).__name__}: {str(err)[:200]}")
    raise ModelSourceError(
        f"model.checkpoint.file: {path} is neither a torch.export program (.pt2) nor a TorchScript "
        f"file ({'; '.join(errors)})"
    )


def _load_exported(path: Path) -> nn.Module:
    return torch.export.unflatten(torch.export.load(str(path)))


def _load_script(path: Path) -> nn.Module:
    return torch.jit.load(str(path), map_location="cpu")


def load_external(ext: ExternalConfig, weights: bool = True) -> nn.Module:
    """Make the model of ``model.checkpoint``: load its file, or call its builder and load the state dict.

    Parameters
    ----------
    ext : the ``model.checkpoint`` section.
    weights : load ``state_dict`` into the builder's model (``False`` when an inviz checkpoint
        supplies the weights).

    Returns
    -------
    nn.Module
    """
    if ext.file:
        return load_model_file(ext.file)
    assert ext.builder is not None
    builder = import_builder(ext.builder)
    try:
        model = builder(**ext.builder_args)
    except Exception as err:  # the user's code: report what it raised, with the call
        raise ModelSourceError(
            f"model.checkpoint.builder: {ext.builder}(**{ext.builder_args}) raised "
            f"{type(err).__name__}: {err}"
        ) from err
    if not isinstance(model, nn.Module):
        raise ModelSourceError(
            f"model.checkpoint.builder: {ext.builder} returned {type(model).__name__}, expected an nn.Module"
        )
    if weights and ext.state_dict:
        state = read_state_dict(ext.state_dict, "model.checkpoint.state_dict", ext.strip_prefix)
        load_into(model, state, ext.state_dict, f"the model of {ext.builder}", strict=ext.strict)
    return model


def count_outputs(model: nn.Module, input_size: int) -> int:
    """Run a (2, 3, S, S) batch of zeros through the model (eval mode) and return its number of outputs.

    Parameters
    ----------
    model : nn.Module
    input_size : S, the ``model.input_size``.

    Returns
    -------
    int
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, 3, input_size, input_size))
    except Exception as err:  # any failure of the user's network on the configured input
        raise ModelSourceError(
            f"model.checkpoint: a forward pass on a (2, 3, {input_size}, {input_size}) batch failed "
            f"({type(err).__name__}: {str(err)[:300]}); check model.input_size, and that a torch.export "
            "file was exported with a dynamic batch dimension "
            "(dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))"
        ) from err
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ModelSourceError(
            f"model.checkpoint: expected logits of shape (N, K) from the model, got {shape}"
        )
    return int(out.shape[1])


def read_class_index(ext: ExternalConfig) -> dict[str, int] | None:
    """Return ``class_index`` as a mapping (reading its CSV ``class_folder,output_index`` when a path)."""
    import pandas as pd

    if ext.class_index is None or isinstance(ext.class_index, dict):
        return ext.class_index
    path = Path(ext.class_index)
    if not path.is_file():
        raise ModelSourceError(f"model.checkpoint.class_index: {str(path)!r} is neither a mapping nor a file")
    frame = pd.read_csv(path, dtype={"class_folder": str})
    missing = [c for c in ("class_folder", "output_index") if c not in frame.columns]
    if missing:
        raise ModelSourceError(
            f"{path}: missing column(s) {', '.join(missing)}; expected class_folder,output_index"
        )
    bad = frame["output_index"].isna() | (pd.to_numeric(frame["output_index"], errors="coerce") % 1 != 0)
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0]) + 2
        raise ModelSourceError(f"{path}: row {row}: output_index must be an integer")
    return {str(f): int(i) for f, i in zip(frame["class_folder"], frame["output_index"], strict=True)}


def output_index(ext: ExternalConfig, classes: Sequence[dict[str, Any]], n_outputs: int) -> list[int] | None:
    """Check the model's outputs against the dataset's classes; the outputs to keep, in label order.

    Parameters
    ----------
    ext : the ``model.checkpoint`` section.
    classes : ``[{label, class_folder, class_name}]`` in label order.
    n_outputs : the model's number of outputs.

    Returns
    -------
    list of int, or None when output ``i`` is class ``i``.
    """
    folders = [str(c["class_folder"]) for c in classes]
    mapping = read_class_index(ext)
    if mapping is None:
        if n_outputs != len(folders):
            raise ModelSourceError(
                f"model.checkpoint: the model's classifier has {n_outputs} outputs but the dataset has "
                f"{len(folders)} classes ({', '.join(folders[:10])}); set model.checkpoint.class_index "
                "({class_folder: output index}) to say which output is which class, or bring a model "
                f"trained on these {len(folders)} classes (outputs in the order of the sorted class folders)"
            )
        return None
    where = "model.checkpoint.class_index"
    problems = coverage_problems(mapping, folders, "no output for class folder(s)", "unknown class folder(s)")
    if problems:
        raise ModelSourceError(f"{where}: {problems}")
    index = [mapping[f] for f in folders]
    out_of_range = [f"{f}: {i}" for f, i in zip(folders, index, strict=True) if not 0 <= i < n_outputs]
    if out_of_range:
        raise ModelSourceError(
            f"{where}: output index out of range [0, {n_outputs}): {', '.join(out_of_range)}"
        )
    if len(set(index)) != len(index):
        raise ModelSourceError(f"{where}: two classes share an output ({mapping})")
    return index


class SelectOutputs:
    """Forward hook keeping the outputs ``index`` (in that order): ``output[:, index]``."""

    def __init__(self, index: Sequence[int]):
        self.index = list(index)

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        """Select the outputs."""
        return output[:, self.index]


class ScriptedSubset(nn.Module):
    """A TorchScript model's outputs ``index`` (ScriptModules take no hooks): ``net(x)[:, index]``."""

    def __init__(self, net: nn.Module, index: Sequence[int]):
        super().__init__()
        self.net = net
        self.index = list(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the selected logits, shape (N, len(index))."""
        return self.net(x)[:, self.index]


def restrict_outputs(model: nn.Module, index: Sequence[int] | None) -> nn.Module:
    """Keep only the outputs ``index`` of ``model`` (``None``: the model as it is)."""
    if index is None:
        return model
    if isinstance(model, torch.jit.ScriptModule):
        return ScriptedSubset(model, index)
    model.register_forward_hook(SelectOutputs(index))
    return model


def build_external(classes: Sequence[dict[str, Any]], cfg: ModelConfig) -> tuple[nn.Module, ModelConfig]:
    """Make the bring-your-own model for the dataset's classes (``train``).

    Parameters
    ----------
    classes : ``[{label, class_folder, class_name}]`` in label order.
    cfg : the ``model`` section (``arch: checkpoint``).

    Returns
    -------
    model : nn.Module, its outputs the dataset's classes.
    cfg : ``cfg`` with ``checkpoint.class_index`` read into a mapping (saved with the model).
    """
    model = load_external(cfg.checkpoint)
    index = output_index(cfg.checkpoint, classes, count_outputs(model, cfg.input_size))
    mapping = read_class_index(cfg.checkpoint)
    cfg = dataclasses.replace(cfg, checkpoint=dataclasses.replace(cfg.checkpoint, class_index=mapping))
    return restrict_outputs(model, index), cfg


def rebuild_external(classes: Sequence[dict[str, Any]], cfg: ModelConfig) -> nn.Module:
    """Remake the model of a saved checkpoint (its weights come from the checkpoint file)."""
    model = load_external(cfg.checkpoint, weights=False)
    mapping = cfg.checkpoint.class_index
    if isinstance(mapping, str):
        mapping = read_class_index(cfg.checkpoint)
    index = None if mapping is None else [int(mapping[str(c["class_folder"])]) for c in classes]
    return restrict_outputs(model, index)
