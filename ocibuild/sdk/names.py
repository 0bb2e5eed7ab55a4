"""Names and tags shared by services, bentos and models: `name` is an image repository component,
`name:version` a tag (`name` and `name:latest` mean the newest). One parser, shipped in images."""

from __future__ import annotations

import re

from dataclasses import dataclass

from ocibuild.errors import SpecError, TagError

NAME_RULE = ("lower-case letters, digits and separators ('.', '_', '__', '-'), starting and ending "
             "with a letter or digit, at most 63 characters")
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def validate_name(name: str, what: str = "service name") -> str:
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise SpecError(f"invalid {what} {name!r}: {NAME_RULE}")
    return name


VERSION_RULE = "letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128 characters"
_VERSION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
LATEST = "latest"


@dataclass(frozen=True)
class Tag:
    """A parsed tag; `version` None means "the newest"."""

    name: str
    version: str | None = None

    @classmethod
    def parse(cls, text: str) -> Tag:
        name, sep, version = text.partition(":")
        try:
            validate_name(name, "name")
        except SpecError:
            raise TagError(f"invalid tag {text!r}: the name must be {NAME_RULE}") from None
        if not sep or version == LATEST:
            return cls(name, None)
        return cls(name, validate_version(version, text))

    def __str__(self) -> str:
        return f"{self.name}:{self.version or LATEST}"


def validate_version(version: str, tag: str | None = None) -> str:
    if not _VERSION.match(version) or version == LATEST:
        raise TagError(f"invalid version {version!r}" + (f" in tag {tag!r}" if tag else "")
                       + f": {VERSION_RULE}, and not 'latest'")
    return version
