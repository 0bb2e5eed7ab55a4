"""Image names for outputs: `REPO:TAG` as docker `RepoTags` and containerd image names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocibuild.errors import TagError

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*(?::[0-9]+)?)"
_REPO = re.compile(rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class ImageName:
    repository: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> ImageName:
        repository, sep, tag = text.rpartition(":")
        if not sep or "/" in tag:
            raise TagError(f"invalid image tag {text!r}: expected REPOSITORY:TAG")
        if not _REPO.match(repository):
            raise TagError(f"invalid image tag {text!r}: the repository must be lower-case path "
                           "components ('a-z0-9' joined by '.', '_', '__' or '-'), optionally after a registry host")
        if not _TAG.match(tag):
            raise TagError(f"invalid image tag {text!r}: the tag must be letters, digits, '_', '.' or '-', "
                           "not starting with '.' or '-', at most 128 characters")
        return cls(repository, tag)

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def full_name(self) -> str:
        """The fully qualified name containerd stores (`docker.io/library/x:tag` for `x:tag`)."""
        first = self.repository.split("/", 1)[0]
        if "/" in self.repository and ("." in first or ":" in first or first == "localhost"):
            return str(self)
        repository = self.repository if "/" in self.repository else f"library/{self.repository}"
        return f"docker.io/{repository}:{self.tag}"
