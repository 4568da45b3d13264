"""Typed records to and from JSON.

Every record the studies write (a run's result, a study's summary, an artifact handed
from one study to another) is a frozen ``attrs`` class whose fields are JSON-shaped
types: ``int``, ``float``, ``str``, ``bool``, ``None``, ``Literal[...]``, unions with
``None``, ``tuple[X, ...]``, fixed tuples, ``dict[str, X]`` and other such records.
``to_json`` turns one into plain JSON values; ``from_json(cls, value)`` checks every
field against its annotation and rebuilds the record, so a renamed or retyped field is
an error that names the field, never a silently missing key. Floats keep NaN and
infinity (Python's ``json`` writes them as ``NaN`` and ``Infinity`` and reads them back).

A record that is a file of its own (a summary) also carries a schema version:
``JsonRecord`` adds ``to_json()`` / ``from_json()`` methods that write and check it.
"""

from __future__ import annotations

import hashlib
import json
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, Self, TypeAlias, TypeVar, cast, get_args, get_origin

import attrs

T = TypeVar("T")

Json: TypeAlias = "dict[str, Json] | list[Json] | str | int | float | bool | None"
"""A plain JSON value, as ``json.loads`` returns it and ``to_json`` makes it."""

__all__ = [
    "Json",
    "JsonRecord",
    "RecordError",
    "canonical_json",
    "from_json",
    "key_hash",
    "record_json",
    "to_json",
]


class RecordError(ValueError):
    """A JSON value does not fit the record it should become; the message names the field."""


def to_json(value: object) -> Json:
    """``value`` (a record, or anything a record's field may hold) as plain JSON values."""
    if attrs.has(type(value)):
        return record_json(value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, (tuple, list)):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, Json] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise RecordError(f"dict keys must be strings to write JSON, got {k!r}")
            out[k] = to_json(v)
        return out
    item = getattr(value, "item", None)  # a numpy scalar
    if callable(item) and getattr(value, "shape", None) == ():
        return to_json(item())
    raise RecordError(f"cannot write a {type(value).__name__} as JSON: {value!r:.80}")


def record_json(record: object) -> dict[str, Json]:
    """The attrs record ``record`` as a JSON object: one entry per field."""
    cls: Any = type(record)
    return {f.name: to_json(getattr(record, f.name)) for f in attrs.fields(cls)}


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """``value`` as type ``tp``, or RecordError naming ``where``."""
    if tp is Any:
        return value
    origin = get_origin(tp)
    args = get_args(tp)
    if tp is type(None):
        if value is not None:
            raise RecordError(f"{where}: expected null, got {value!r:.60}")
        return None
    if origin is Literal:
        if value not in args:
            raise RecordError(f"{where}: expected one of {list(args)}, got {value!r:.60}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except RecordError as exc:
                errors.append(str(exc))
        raise RecordError(
            errors[0] if len(errors) == 1 else f"{where}: {value!r:.60} fits none of {tp}"
        )
    if tp is bool:
        if not isinstance(value, bool):
            raise RecordError(f"{where}: expected true or false, got {value!r:.60}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecordError(f"{where}: expected an integer, got {value!r:.60}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecordError(f"{where}: expected a number, got {value!r:.60}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecordError(f"{where}: expected a string, got {value!r:.60}")
        return value
    if origin is tuple or origin is list:
        if not isinstance(value, list):
            raise RecordError(f"{where}: expected a list, got {value!r:.60}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise RecordError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(
                _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value))
            )
        item = args[0] if args else Any
        items = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or origin is Mapping:
        if not isinstance(value, dict):
            raise RecordError(f"{where}: expected an object, got {value!r:.60}")
        key_tp, val_tp = args if args else (str, Any)
        return {
            _convert(key_tp, k, f"{where} key"): _convert(val_tp, v, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if isinstance(tp, type) and attrs.has(tp):
        return _record(tp, value, where)
    raise RecordError(f"{where}: fields of type {tp} cannot be read from JSON")


def _record(cls: type[T], value: object, where: str) -> T:
    if not isinstance(value, dict):
        raise RecordError(f"{where}: expected an object for {cls.__name__}, got {value!r:.60}")
    hints = _hints(cls)
    fields = attrs.fields(cast(Any, cls))
    names = {f.name for f in fields}
    unknown = sorted(set(value) - names)
    if unknown:
        raise RecordError(f"{where}: {cls.__name__} has no field(s) {', '.join(unknown)}")
    kwargs: dict[str, Any] = {}
    for f in fields:
        if f.name not in value:
            if f.default is attrs.NOTHING:
                raise RecordError(f"{where}: {cls.__name__} needs the field {f.name!r}")
            continue
        kwargs[f.name] = _convert(hints[f.name], value[f.name], f"{where}.{f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"{where}: not a valid {cls.__name__}: {exc}") from exc


def from_json(cls: type[T], value: object) -> T:
    """The record of type ``cls`` that ``value`` (parsed JSON) describes; RecordError
    when a field is missing, unknown or of the wrong type."""
    return _record(cls, value, cls.__name__)


class JsonRecord:
    """A record that is a file of its own: JSON with a schema version.

    Subclasses are frozen attrs classes that set ``SCHEMA``; bump it whenever a field
    changes meaning, so files written by older code are refused with a clear message
    instead of being misread.
    """

    SCHEMA: ClassVar[int] = 1

    def to_json(self) -> dict[str, Json]:
        return {"schema": type(self).SCHEMA, **record_json(self)}

    @classmethod
    def from_json(cls, value: object) -> Self:
        if not isinstance(value, dict):
            raise RecordError(f"{cls.__name__}: expected a JSON object, got {type(value).__name__}")
        schema = value.get("schema")
        if schema != cls.SCHEMA:
            raise RecordError(
                f"{cls.__name__}: schema {schema!r}, but this version of fmlp reads schema "
                f"{cls.SCHEMA}; the file was written by other code: rerun the study"
            )
        body = {k: v for k, v in value.items() if k != "schema"}
        return from_json(cls, body)


def canonical_json(value: object) -> str:
    """Compact JSON with sorted keys: the same value always gives the same text."""
    return json.dumps(to_json(value), sort_keys=True, separators=(",", ":"), allow_nan=True)


def key_hash(value: object) -> str:
    """A short stable name for a JSON-able value (16 hex digits of its sha256)."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]
