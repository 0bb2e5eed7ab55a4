"""The naming rule shared by services, bentos and models: an image repository component."""

from __future__ import annotations

import re

from ocibuild.errors import SpecError

NAME_RULE = ("lower-case letters, digits and separators ('.', '_', '__', '-'), starting and ending "
             "with a letter or digit, at most 63 characters")
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")


def validate_name(name: str, what: str = "service name") -> str:
    if not isinstance(name, str) or len(name) > 63 or not _NAME.match(name):
        raise SpecError(f"invalid {what} {name!r}: {NAME_RULE}")
    return name
