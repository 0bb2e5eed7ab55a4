"""Typed YAML records (`bento.yaml`, `model.yaml`): frozen dataclasses checked field by field.

A record read from disk or from an archive is hostile until checked: every field must be present
with the type its dataclass declares, and `check()` validates what will become a path (names,
versions, digests). A record that fails is refused with one line naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ocibuild.errors import OcibuildError, RecordError

# libyaml's parser where PyYAML has it (its wheels do): about 9x faster than the pure-Python one,
# and `list` or `NAME:latest` reads the record of every version in the store
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlRecord:
    """Base for a frozen dataclass stored as one YAML file."""

    def to_dict(self) -> dict:
        return _plain(asdict(self))

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    def check(self) -> None:
        """Validate values beyond their types (names, versions, digests); raise OcibuildError."""

    @classmethod
    def load(cls, path: Path):
        try:
            data = yaml.load(path.read_text(), Loader=_LOADER)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError) as exc:  # libyaml bounds nesting; the pure loader recurses
            raise RecordError(f"unreadable {path}: {' '.join(str(exc).split())}") from None
        refuse_aliases(data, str(path))
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: object, where: str):
        if not isinstance(data, dict):
            raise RecordError(f"malformed {where}: expected a mapping of fields")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(map(str, data)) - set(fields))
        if unknown:
            raise RecordError(f"malformed {where}: unknown field {unknown[0]!r}")
        for name, f in fields.items():
            if name not in data:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise RecordError(f"malformed {where}: missing field {name!r}")
                continue
            if not _is(data[name], hints[name]):
                raise RecordError(f"malformed {where}: field {name!r} must be {_describe(hints[name])}, "
                                  f"not {type(data[name]).__name__}")
        values = {name: _convert(value, hints[name], f"{where}: field {name!r}") for name, value in data.items()}
        record = cls(**values)
        try:
            record.check()
        except OcibuildError as exc:
            raise RecordError(f"malformed {where}: {exc}") from None
        return record


def refuse_aliases(data: object, where: str) -> None:
    """Refuse a document in which one list or mapping appears twice: a YAML alias. ocibuild never
    writes one, and nine nested aliases of nine items each are 9^9 items to anything that copies
    or serializes the record (`get`, `list --json`): a few hundred bytes that never finish."""
    seen: set[int] = set()
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict | list):
            if id(value) in seen:
                raise RecordError(f"malformed {where}: YAML aliases are not allowed in a record")
            seen.add(id(value))
            stack.extend(value.values() if isinstance(value, dict) else value)


def _plain(value):
    """Plain YAML/JSON types: a `Digest` or other `str` subclass becomes a `str`."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, str) else value


def _convert(value: object, hint, where: str):
    """Nested records (a dataclass, or a list of them) from their mappings."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        records = [a for a in args if dataclasses.is_dataclass(a)]
        return records[0].from_dict(value, where) if records and isinstance(value, dict) else value
    if dataclasses.is_dataclass(hint):
        return hint.from_dict(value, where)
    if origin is list and args and dataclasses.is_dataclass(args[0]):
        return [args[0].from_dict(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _is(value: object, hint) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return isinstance(value, dict)
    if origin in (typing.Union, types.UnionType):
        return any(_is(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_is(v, args[0]) for v in value) if args else isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict) and (not args or all(_is(k, args[0]) and _is(v, args[1])
                                                           for k, v in value.items()))
    if hint is typing.Any:
        return True
    return isinstance(value, hint)


def _describe(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
