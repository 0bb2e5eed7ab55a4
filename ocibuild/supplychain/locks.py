"""What a bento's locks say was installed, as plain records for SBOMs and provenance."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ocibuild.bento.info import debian_lock, python_lock
from ocibuild.bento.store import Bento
from ocibuild.oci.platform import Platform
from ocibuild.python.lock import read_lock

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


@dataclass(frozen=True)
class PythonPackage:
    """A pinned Python distribution, as a bento's lock gives it."""

    name: str
    version: str
    hashes: tuple[str, ...]  # the sha256 of every file the lock accepts (one of them was installed)


@dataclass(frozen=True)
class Locks:
    """What a bento's locks say is installed for one platform: the facts SBOMs and provenance start from."""

    root: Path  # the bento's directory
    platform: Platform
    python_path: Path
    debian_path: Path | None
    python: tuple[PythonPackage, ...]
    debian: object | None  # a DebianLock

    def debian_sections(self, on_foreign_base: bool) -> tuple[tuple[str, tuple], ...]:
        """(section, packages) of the Debian packages in the image. On another base image (a
        `base_image`, or `containerize --base`), the locked base packages are not in it: only the
        system packages layered on top are."""
        if self.debian is None:
            return ()
        sections = (("system", self.debian.system),)
        return sections if on_foreign_base else (("base", self.debian.base), *sections)

    def digests(self) -> dict[str, str]:
        """`{path in the bento: sha256}` of each lock file."""
        return {path.relative_to(self.root).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
                for path in (self.python_path, self.debian_path) if path is not None}


def parse_python_lock(text: str) -> tuple[PythonPackage, ...]:
    """`name==version` with the `--hash` lines that follow it (backslash continuations)."""
    packages, current, hashes = [], None, []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _REQUIREMENT.match(line)
        if match and not raw[:1].isspace():
            if current:
                packages.append(PythonPackage(*current, tuple(hashes)))
            current, hashes = (match.group(1), match.group(2)), []
        hashes += _HASH.findall(line)
    if current:
        packages.append(PythonPackage(*current, tuple(hashes)))
    return tuple(sorted(packages, key=lambda p: p.name.lower()))


def read_locks(bento: Bento, platform: Platform) -> Locks:
    from ocibuild.debian.lock import DebianLock

    multi = bento.info.platforms is not None
    python_path = bento.path / python_lock(str(platform), multi)
    debian_path = bento.path / debian_lock(str(platform), multi)
    debian = DebianLock.parse(debian_path.read_text()) if debian_path.is_file() else None
    python = read_lock(python_path, f"bento {bento.tag}, {python_path.relative_to(bento.path)}")
    return Locks(bento.path, platform, python_path, debian_path if debian else None, parse_python_lock(python), debian)


def default_platform(bento: Bento, host: Platform) -> Platform:
    """The host's platform if the bento was locked for it, else its first."""
    targets = bento.info.targets
    return Platform.target(str(host) if str(host) in targets else targets[0])
