"""Where Debian packages come from: the mirror apt uses here, unless `OCIBUILD_DEBIAN_MIRROR` or
`mirror:` in `$OCIBUILD_HOME/debian.yaml` names another, and how strictly releases are checked.

Apart from the archive reader, because a build whose Debian lock is reused needs the settings
(they are part of the lock's key) and nothing else of the archive.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import DebianError

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
APT_SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


@dataclass(frozen=True)
class DebianSettings:
    """Where Debian packages come from and how strictly their signatures and dates are checked."""

    mirror: str
    require_signature: bool = False
    keyring: Path = KEYRING
    check_valid_until: bool = True  # off for a snapshot archive, whose releases are past it by design

    @staticmethod
    def cache_dir(home: Path, environ=os.environ) -> Path:
        """Indexes, resolutions and .debs: `$OCIBUILD_DEBIAN_CACHE`, or under `$OCIBUILD_HOME/cache`."""
        return Path(environ.get("OCIBUILD_DEBIAN_CACHE") or home / "cache" / "debian")

    @classmethod
    def load(cls, home: Path, environ=os.environ) -> DebianSettings:
        data = {}
        if (home / "debian.yaml").is_file():
            import yaml

            data = yaml.safe_load((home / "debian.yaml").read_text()) or {}
        mirror = environ.get("OCIBUILD_DEBIAN_MIRROR") or data.get("mirror") or apt_mirror()
        if not mirror:
            raise DebianError("no Debian mirror: apt has no sources here; set OCIBUILD_DEBIAN_MIRROR")
        require = _flag(environ.get("OCIBUILD_DEBIAN_REQUIRE_SIGNATURE", data.get("require_signature")), False)
        valid_until = _flag(environ.get("OCIBUILD_DEBIAN_CHECK_VALID_UNTIL", data.get("check_valid_until")), True)
        return cls(mirror.rstrip("/"), require, Path(data.get("keyring") or KEYRING), valid_until)


def _flag(value: object, default: bool) -> bool:
    if value is None or value == "":
        return default
    return str(value) in ("1", "true", "True")


def apt_mirror(sources: tuple[Path, ...] = APT_SOURCES) -> str | None:
    """The first Debian (not security) archive URI in apt's sources, deb822 or one-line style."""
    files = []
    for source in sources:
        files += sorted(source.glob("*.sources")) + sorted(source.glob("*.list")) if source.is_dir() else [source]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text()
        uris = re.findall(r"^URIs:\s*(\S+)", text, re.M) + re.findall(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M)
        for uri in uris:
            if "security" not in uri:
                return uri
    return None
