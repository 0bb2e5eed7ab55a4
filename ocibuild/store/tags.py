"""Tags `name:version`: parsing, validation and time-ordered version generation."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from ocibuild.errors import SpecError, TagError
from ocibuild.sdk.names import NAME_RULE, validate_name

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


def new_version(now: datetime) -> str:
    """Sortable by time to the microsecond, with a random suffix so concurrent builds never collide."""
    return now.strftime("%Y%m%d%H%M%S%f") + "-" + secrets.token_hex(3)
