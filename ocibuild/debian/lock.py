"""What a bento's Debian lock is: the packages pinned for the default base and for
`system_packages`, by name, version, architecture, SHA256, size and file, one per line. Kept apart
from the layer writing so that reading a lock (every build and containerize) imports no archive code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ocibuild.debian.index import DebPackage
from ocibuild.errors import DebianError, SpecError

# The Debian release shipping each Python version as its python3.
RELEASES = {"3.11": "bookworm", "3.13": "trixie"}
# Used only by maintainer scripts, which never run here; apt's own set for minimal images.
EXCLUDED = frozenset({"debconf", "debconf-2.0", "dpkg", "awk", "tar", "perl-base", "init-system-helpers",
                      "install-info"})
LOCK_HEADER = "# ocibuild Debian lock"


def base_packages(python_version: str) -> list[str]:
    """Python, CA certificates, time zones, and the libraries manylinux wheels may expect from the
    system (libc, libgcc_s, libstdc++, zlib, expat come along as dependencies or are named)."""
    return ["base-files", "ca-certificates", "tzdata", "libstdc++6", f"python{python_version}",
            f"python{python_version}-venv"]


def release_for(python_version: str) -> str:
    if python_version not in RELEASES:
        shipped = ", ".join(f"{v}: {r}" for v, r in RELEASES.items())
        raise SpecError(f"no Debian release ships Python {python_version} ({shipped}): "
                        f'set base_image="python:{python_version}-slim"')
    return RELEASES[python_version]


@dataclass(frozen=True)
class DebianLock:
    """A bento's Debian lock: the release, architecture and the packages pinned for the base and on top."""

    release: str
    architecture: str
    base: tuple[DebPackage, ...]  # empty when the image has another base
    system: tuple[DebPackage, ...]

    def text(self) -> str:
        lines = [f"{LOCK_HEADER}: release {self.release}, architecture {self.architecture}", "[base]",
                 *(p.lock_line() for p in self.base), "[system]", *(p.lock_line() for p in self.system)]
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> DebianLock:
        """A lock as `text` wrote it. Bentos are imported, so every field is checked before it
        names a file (the `.deb`'s cache path is its SHA256) or a URL (its pool path)."""
        lines = text.splitlines()
        header = _HEADER.fullmatch(lines[0]) if lines else None
        if header is None:
            raise DebianError("not an ocibuild Debian lock")
        sections: dict[str, list[DebPackage]] = {"base": [], "system": []}
        current = None
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            if line in ("[base]", "[system]"):
                current = line.strip("[]")
                continue
            fields = line.split()
            if current is None or len(fields) != 6 or not all(p.fullmatch(f) for p, f in zip(_FIELDS, fields)) \
                    or ".." in fields[5].split("/"):
                raise DebianError(f"the Debian lock's line {number} is not a pinned package: {line[:80]!r}")
            name, version, arch, sha256, size, filename = fields
            sections[current].append(DebPackage(name, version, arch, filename, sha256, int(size)))
        return cls(header.group(1), header.group(2), tuple(sections["base"]), tuple(sections["system"]))


_HEADER = re.compile(re.escape(LOCK_HEADER) + r": release ([a-z][a-z0-9-]{0,63}), architecture ([a-z0-9][a-z0-9-]{0,31})")
# name, version, architecture, sha256, size, pool path: Debian policy's character sets
_FIELDS = (re.compile(r"[a-z0-9][a-z0-9+.-]{0,127}"), re.compile(r"[A-Za-z0-9.+~:-]{1,128}"),
           re.compile(r"[a-z0-9][a-z0-9-]{0,31}"), re.compile(r"[0-9a-f]{64}"), re.compile(r"[0-9]{1,12}"),
           re.compile(r"pool/[A-Za-z0-9._+~-]+(?:/[A-Za-z0-9._+~-]+)+\.deb"))
