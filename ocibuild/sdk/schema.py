"""Type hints as JSON Schema, and checking JSON values against them.

One module serves both sides: the builder writes the OpenAPI document from these schemas, and the
runtime uses `check` to turn a request body into arguments (or a 400 that says what is wrong).
Supported: str, int, float, bool, None, Any, list[X], tuple[X, ...], dict[str, X], Optional/Union;
any other class (`numpy.ndarray`) has the generic schema `{}` and its JSON value is passed as is.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Any

from ocibuild.errors import SchemaError


def json_schema(hint: Any) -> dict:
    if hint is inspect.Parameter.empty or hint is Any or hint is object:
        return {}
    if hint is type(None) or hint is None:
        return {"type": "null"}
    simple = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if hint in simple:
        return {"type": simple[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        return {"type": "array", "items": json_schema(args[0]) if args else {}}
    if origin is dict or hint is dict:
        return {"type": "object", "additionalProperties": json_schema(args[1]) if len(args) == 2 else {}}
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [json_schema(a) for a in args]}
    if isinstance(hint, type) or isinstance(origin, type):
        # A class of a library (numpy.ndarray, a torch tensor), real or a build-time stand-in for
        # one: any JSON value, passed to the method as it is.
        return {}
    raise TypeError(f"unsupported type hint {hint!r}")


def check(value: Any, hint: Any, where: str) -> Any:
    """Return `value` converted to `hint` (int is accepted for float), or raise SchemaError."""
    if hint is inspect.Parameter.empty or hint is Any or hint is object:
        return value
    if hint is type(None) or hint is None:
        if value is not None:
            raise SchemaError(f"{where}: expected null")
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return check(value, option, where)
            except SchemaError:
                continue
        raise SchemaError(f"{where}: expected {_describe(hint)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:  # an integer of hundreds of digits
                raise SchemaError(f"{where}: {str(value)[:20]}... is too large for a float") from None
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint in (str, bool):
        if type(value) is hint:
            return value
    elif origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        if isinstance(value, list):
            item = args[0] if args else Any
            items = [check(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
            try:
                return (origin or hint)(items) if (origin or hint) is not list else items
            except TypeError:  # a set of lists or objects: JSON arrays and objects are unhashable
                raise SchemaError(f"{where}: expected {_describe(hint)} of hashable items") from None
    elif origin is dict or hint is dict:
        if isinstance(value, dict):
            item = args[1] if len(args) == 2 else Any
            return {k: check(v, item, f"{where}.{k}") for k, v in value.items()}
    else:
        return value
    raise SchemaError(f"{where}: expected {_describe(hint)}")


def _describe(hint: Any) -> str:
    schema = json_schema(hint)
    if "anyOf" in schema:
        return " or ".join(s.get("type", "any") for s in schema["anyOf"])
    return schema.get("type", "any")
