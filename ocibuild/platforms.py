"""Target platforms (`linux/amd64`) and what each means to uv and to the OCI config."""

from __future__ import annotations

from dataclasses import dataclass

from ocibuild.errors import SpecError

# Python wheel architecture per OCI architecture.
_WHEEL_ARCH = {"amd64": "x86_64", "arm64": "aarch64"}
# The manylinux level matching the glibc of the bases we target (Debian bookworm has 2.36).
MANYLINUX = "manylinux_2_28"


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) != 2 or parts[0] != "linux" or parts[1] not in _WHEEL_ARCH:
            raise SpecError(f"unsupported platform {text!r}: expected one of "
                            + ", ".join(f"linux/{a}" for a in _WHEEL_ARCH))
        return cls(parts[0], parts[1])

    def __str__(self) -> str:
        return f"{self.os}/{self.architecture}"

    @property
    def uv_platform(self) -> str:
        """The `--python-platform` value uv takes for this target."""
        return f"{_WHEEL_ARCH[self.architecture]}-{MANYLINUX}"


DEFAULT_PLATFORM = Platform("linux", "amd64")
