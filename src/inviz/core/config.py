"""Typed parameters: ``params.yaml`` sections turned into frozen dataclasses.

Every number that shapes a result lives in ``params.yaml``. Stages read their section(s) with
:func:`load_section`, which converts the mapping into the stage's dataclass and checks every
key and type, so a wrong type or a misspelt key fails early with an error naming the file and
the dotted key, e.g. ``params.yaml: train.phases[0].lr: expected float, got 'fast'``.

Only the conversion lives here; each module owns its own config dataclass.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

from inviz.core.errors import InvizError

T = TypeVar("T")
log = logging.getLogger(__name__)


#: numbers PyYAML (YAML 1.1) reads as strings but YAML 1.2 reads as floats: ``3e-4``, ``1E5``
_YAML11_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


class ParamsError(InvizError, ValueError):
    """A parameter file is missing a key, has an unknown key or a value of the wrong type."""


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in get_args(tp))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str, source: str) -> Any:
    """Convert ``value`` to type ``tp`` or raise :class:`ParamsError` naming ``key``."""

    def fail(expected: str | None = None) -> ParamsError:
        exp = expected or _type_name(tp)
        return ParamsError(f"{source}: {key}: expected {exp}, got {value!r}")

    if tp is Any:
        return value
    origin = get_origin(tp)
    if origin is Literal:
        if value in get_args(tp):
            return value
        raise fail()
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise fail()
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, source)
            except ParamsError as err:  # try the next member of the union
                errors.append(err)
        raise fail()
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise fail(f"a mapping for {tp.__name__}")
        return from_dict(tp, value, key, source)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise fail(f"{len(args)} items ({_type_name(tp)})")
            return tuple(
                _convert(v, a, f"{key}[{i}]", source)
                for i, (v, a) in enumerate(zip(value, args, strict=True))
            )
        item = args[0] if args else Any
        items = [_convert(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise fail()
        ktp, vtp = get_args(tp) or (Any, Any)
        return {
            _convert(k, ktp, f"{key}.{k}", source): _convert(v, vtp, f"{key}.{k}", source)
            for k, v in value.items()
        }
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise fail()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str) and _YAML11_FLOAT.match(value.strip()):  # 3e-4: YAML 1.2 float, PyYAML str
            return float(value)
        raise fail()
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    if tp is Path:
        if isinstance(value, str):
            return Path(value)
        raise fail("a path string")
    raise TypeError(f"unsupported parameter type {tp!r} for {key}")


def from_dict(cls: type[T], data: dict[str, Any] | None, key: str = "", source: str = "params") -> T:
    """Build dataclass ``cls`` from a mapping, validating keys and types.

    Parameters
    ----------
    cls : dataclass type
    data : mapping of field name to raw value (from YAML); missing fields take their defaults.
    key : dotted key of ``data`` inside the file, used in error messages.
    source : file name used in error messages.

    Raises
    ------
    ParamsError
        On unknown keys, missing required keys, or values of the wrong type.
    """
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ParamsError(f"{source}: {key or '<root>'}: expected a mapping, got {data!r}")
    data = _apply_moved_keys(cls, data, key, source)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        prefix = f"{key}." if key else ""
        raise ParamsError(
            f"{source}: unknown key(s) {', '.join(prefix + u for u in unknown)}; "
            f"expected some of: {', '.join(sorted(fields))}"
        )
    kwargs = {}
    for name, field in fields.items():
        sub = f"{key}.{name}" if key else name
        if name in data:
            kwargs[name] = _convert(data[name], hints[name], sub, source)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{source}: missing required key {sub} ({_type_name(hints[name])})")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as err:  # __post_init__ checks of ranges and combinations
        raise ParamsError(f"{source}: {key or '<root>'}: {err}") from err


def _apply_moved_keys(cls: type, data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    """Accept keys a section used to have at another place (``cls.MOVED_KEYS``: old name -> new dotted path).

    A users' params file written for an older layout keeps working: the value moves to its new
    place and a warning names the new key. Giving both the old and the new key is an error.
    """
    moved: dict[str, str] = getattr(cls, "MOVED_KEYS", {})
    old = [k for k in data if k in moved]
    if not old:
        return data
    data = copy.deepcopy(data)
    prefix = f"{key}." if key else ""
    for name in old:
        target = moved[name].split(".")
        node = data
        for part in target[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ParamsError(
                    f"{source}: {prefix}{'.'.join(target[:-1])}: expected a mapping, got {node!r}"
                )
        if target[-1] in node:
            raise ParamsError(
                f"{source}: {prefix}{name} moved to {prefix}{moved[name]}; give only the new key"
            )
        node[target[-1]] = data.pop(name)
        log.warning(
            "%s: %s%s is now %s%s (old key accepted; please rename it)",
            source,
            prefix,
            name,
            prefix,
            moved[name],
        )
    return data


def to_dict(obj: Any) -> Any:
    """Turn a (nested) config dataclass back into plain YAML-able values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def read_params(path: str | Path) -> dict[str, Any]:
    """Read a whole params file; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: parameter file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return data


def get_key(params: dict[str, Any], dotted: str, source: str = "params") -> Any:
    """Return the value at ``a.b.c``; a missing key raises :class:`ParamsError`."""
    node: Any = params
    for i, part in enumerate(dotted.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise ParamsError(f"{source}: missing key {'.'.join(dotted.split('.')[: i + 1])}")
        node = node[part]
    return node


def lookup(params: Any, dotted: str, default: Any = None) -> Any:
    """Return the value at ``a.b.c``, or ``default`` where ``params`` leaves it out (no error)."""
    node: Any = params
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return node


def load_section(path: str | Path, section: str, cls: type[T]) -> T:
    """Load the dotted ``section`` of params file ``path`` as dataclass ``cls``."""
    params = read_params(path)
    return from_dict(cls, get_key(params, section, str(path)), section, str(path))


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings/lists to ``{"a.b.0": v}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = to_dict(data)
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(data, (list, tuple)) and data and all(isinstance(v, dict) for v in data):
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = data
    return out
