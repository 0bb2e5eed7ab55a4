"""`Platform`: `os/architecture[/variant]`, parsed once from a flag or an OCI `platform` object."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocibuild.errors import ImageError, SpecError

# Python wheel architecture per OCI architecture: the platforms ocibuild can build for.
_WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
# The manylinux level matching the glibc of the bases we target (Debian bookworm has 2.36).
MANYLINUX = "manylinux_2_28"
_PART = re.compile(r"^[a-z0-9_.-]{1,32}$")


@dataclass(frozen=True)
class Platform:
    """An OCI platform (`linux/arm64/v8`): what an image runs on and what a lock was made for."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Any well-formed `os/architecture[/variant]` (what an index may name)."""
        parts = str(text).strip().split("/")
        if not 2 <= len(parts) <= 3 or not all(_PART.match(p) for p in parts):
            raise SpecError(f"invalid platform {text!r}: expected OS/ARCHITECTURE such as linux/amd64")
        return cls(*parts)

    @classmethod
    def target(cls, text: str) -> Platform:
        """A platform ocibuild can build for (it has wheels and Debian packages for it)."""
        platform = cls.parse(text)
        if platform.os != "linux" or platform.architecture not in _WHEEL_ARCH or platform.variant not in (None, "v8"):
            raise SpecError(f"unsupported platform {text!r}: expected one of "
                            + ", ".join(f"linux/{a}" for a in _WHEEL_ARCH))
        return cls(platform.os, platform.architecture)

    @classmethod
    def from_json(cls, data: object, where: str = "platform") -> Platform:
        if not isinstance(data, dict) or not isinstance(data.get("os"), str) \
                or not isinstance(data.get("architecture"), str):
            raise ImageError(f"{where}: a platform needs string `os` and `architecture`")
        variant = data.get("variant")
        if variant is not None and not isinstance(variant, str):
            raise ImageError(f"{where}: the platform variant must be a string")
        return cls(data["os"], data["architecture"], variant or None)

    def to_json(self) -> dict:
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def matches(self, other: Platform) -> bool:
        """Same OS and architecture; a variant only counts when both name one."""
        return (self.os, self.architecture) == (other.os, other.architecture) and \
            (self.variant is None or other.variant is None or self.variant == other.variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @property
    def uv_platform(self) -> str:
        """The `--python-platform` value uv takes for this target."""
        return f"{_WHEEL_ARCH[self.architecture]}-{MANYLINUX}"


DEFAULT_PLATFORM = Platform("linux", "amd64")


def host_platform() -> Platform:
    """This machine's platform, as OCI names it (linux/amd64 for an unknown machine)."""
    import platform as _platform

    machine = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine)
    return Platform("linux", arch) if arch else DEFAULT_PLATFORM
