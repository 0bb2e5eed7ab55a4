"""Image references parsed as Docker does: `[registry/]repository[:tag][@digest]`.

One-part names live on `docker.io` under `library/`; the first component is a registry when it
has a '.' or a ':' or is `localhost`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocibuild.errors import DigestError, TagError
from ocibuild.oci.digest import Digest

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_REGISTRY = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
                       r"|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def valid_registry(host: str) -> bool:
    """`host[:port]` with a port from 1 to 65535 (a bad port must fail here, not in the HTTP stack)."""
    if not _REGISTRY.match(host):
        return False
    port = host.rsplit(":", 1)[1] if ":" in host.rsplit("]", 1)[-1] else None
    return port is None or 0 < int(port) <= 65535


@dataclass(frozen=True)
class Reference:
    """A parsed image reference (`registry/repository[:tag][@digest]`), spelled as Docker spells it."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        rest, digest = text, None
        if "@" in rest:
            rest, _, digest = rest.partition("@")
            try:
                digest = Digest(digest)
            except DigestError as exc:
                raise TagError(f"invalid reference {text!r}: {exc}") from None
        tag = None
        slash = rest.rfind("/")
        if ":" in rest[slash + 1:]:
            rest, _, tag = rest.rpartition(":")
            if not _TAG.match(tag):
                raise TagError(f"invalid reference {text!r}: the tag must be letters, digits, '_', '.' or '-', "
                               "not starting with '.' or '-', at most 128 characters")
        if not rest:
            raise TagError(f"invalid reference {text!r}: no repository name")
        parts = rest.split("/")
        if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
            registry, path = parts[0], parts[1:]
            if not valid_registry(registry):
                raise TagError(f"invalid reference {text!r}: {registry!r} is not a valid registry host[:port]")
        else:
            registry, path = DOCKER_HUB, parts
            if len(path) == 1:
                path = ["library", *path]
        for component in path:
            if component != component.lower() and _COMPONENT.match(component.lower()):
                raise TagError(f"invalid reference {text!r}: repository names must be lower-case")
            if not _COMPONENT.match(component):
                raise TagError(f"invalid reference {text!r}: {component!r} is not a valid path component "
                               "(lower-case letters and digits, joined by '.', '_', '__' or '-')")
        repository = "/".join(path)
        if len(registry) + 1 + len(repository) > 255:
            raise TagError(f"invalid reference {text!r}: the name is longer than 255 characters")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, repository, tag, digest)

    @property
    def api_host(self) -> str:
        """The host that serves the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    @property
    def reference(self) -> str:
        """What goes after `/manifests/`: the digest when there is one, else the tag."""
        return self.digest or self.tag

    @property
    def familiar(self) -> str:
        """The short form docker shows (`summarization:1` for `docker.io/library/summarization:1`)."""
        name = f"{self.registry}/{self.repository}"
        name = name.removeprefix(f"{DOCKER_HUB}/library/").removeprefix(f"{DOCKER_HUB}/")
        return f"{name}:{self.tag}" if self.tag else name

    @classmethod
    def image_name(cls, text: str) -> Reference:
        """A name for an image being written: it needs a tag, and cannot be a digest."""
        ref = cls.parse(text)
        if ref.digest:
            raise TagError(f"invalid image tag {text!r}: name the image with REPOSITORY:TAG, not a digest")
        return ref

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(self.registry, self.repository, self.tag, Digest(digest))

    def in_registry(self, registry: str) -> Reference:
        return Reference(registry, self.repository, self.tag, self.digest)

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out
