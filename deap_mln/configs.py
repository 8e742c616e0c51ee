"""What every run configuration shares: JSON in and out, typed fields, one-line errors.

A config is a dataclass whose fields are plain values (``int``, ``float``, ``bool``, ``str``
or tuples of numbers). :class:`JSONConfig` gives it ``to_dict`` / ``from_dict`` / ``save`` /
``load``; ``from_dict`` refuses unknown fields and values of the wrong type (``{"mu": "abc"}``)
with a ``ValueError`` that names the field, before ``validate`` checks the ranges.
"""
from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, TypeVar

from deap_mln.io import read_json, write_json

C = TypeVar("C", bound="JSONConfig")


def require(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``: the one check of every ``validate``."""
    if not ok:
        raise ValueError(message)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or isinstance(value, float)


def coerce_field(name: str, kind: Any, value: Any) -> Any:
    """``value`` as field ``name`` of type ``kind`` holds it; ``ValueError`` if it is not one.

    JSON has no tuples and writes 1.0 as 1: lists become tuples and integers become floats
    where the field is a float; nothing else is converted (a string is never a number).
    """
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = _is_int(value)
    elif kind is float:
        ok = _is_number(value)
        value = float(value) if ok else value
    elif kind is str:
        ok = isinstance(value, str)
    elif typing.get_origin(kind) is tuple:
        item = typing.get_args(kind)[0]
        ok = isinstance(value, (list, tuple)) and all(_is_int(v) if item is int else _is_number(v) for v in value)
        value = tuple(item(v) for v in value) if ok else value
    else:
        raise TypeError(f"config field {name} has an unsupported type {kind!r}")
    if not ok:
        expected = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
            kind, f"a list of {getattr(typing.get_args(kind)[0], '__name__', 'values')}s" if typing.get_args(kind) else str(kind))
        raise ValueError(f"config field {name} must be {expected}, got {value!r}")
    return value


class JSONConfig:
    """Mixin for config dataclasses: typed JSON round trip; subclasses define ``validate``."""

    def validate(self: C) -> C:
        """Raise ``ValueError`` naming the first field that is out of range; return self."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples become lists)."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """A validated config from ``data``; fields it lacks keep their defaults."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__} must be a JSON object, got {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        fields = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)}")
        values = {name: coerce_field(name, hints[name], value) for name, value in data.items()}
        return cls(**values).validate()

    def replace(self: C, **changes: Any) -> C:
        """A validated copy with some fields changed (typed as in :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    def save(self, path: str | Path) -> None:
        """Write the config as JSON, atomically."""
        write_json(path, self.to_dict())

    @classmethod
    def load(cls: type[C], path: str | Path) -> C:
        """Read and validate a config written by :meth:`save` (or by hand)."""
        return cls.from_dict(read_json(path, f"{cls.__name__} file"))
