"""The licenses a Debian package states: the `License:` names of its machine-readable
`usr/share/doc/PACKAGE/copyright` (DEP-5), read from the `.deb` the lock pins by SHA256 (never
from an unpacked file system), remembered per SHA256."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from ocibuild.debian.index import DebPackage
from ocibuild.store.atomic import write_atomic

_LICENSE = re.compile(r"^License:[ \t]*(\S[^\n]*)$", re.MULTILINE)
FORMAT = "1"  # bump when what is extracted changes


def stated_licenses(copyright_text: str) -> tuple[str, ...]:
    """The distinct `License:` short names of a DEP-5 file, in order; nothing for a free-form one."""
    if not copyright_text.lstrip().startswith("Format:"):
        return ()
    return tuple(dict.fromkeys(m.group(1).strip() for m in _LICENSE.finditer(copyright_text)))


def read_deb_licenses(deb: Path, name: str) -> tuple[str, ...]:
    from ocibuild.debian.unpack import data_file

    text = data_file(deb, f"usr/share/doc/{name}/copyright", 4 << 20)
    return stated_licenses(text.decode("utf-8", "replace")) if text is not None else ()


def license_record(cache: Path, package: DebPackage) -> Path:
    """Where the licenses read from a package's copyright file are remembered (Debian cache)."""
    return cache / "licenses" / f"{package.sha256}-{FORMAT}.json"


def deb_license_finder(home: Path, release: str, architecture: str) -> Callable[[DebPackage], tuple[str, ...]]:
    """Licenses per locked package: from the cache, else from its `.deb` (downloaded by hash)."""
    from ocibuild.debian.settings import DebianSettings

    cache = DebianSettings.cache_dir(home)
    archive = None

    def licenses(package: DebPackage) -> tuple[str, ...]:
        nonlocal archive
        remembered = license_record(cache, package)
        if remembered.is_file():
            return tuple(json.loads(remembered.read_text()))
        if archive is None:  # the archive reader, only for a package not read before
            from ocibuild.debian.archive import DebianArchive

            archive = DebianArchive(DebianSettings.load(home), release, architecture, cache)
        found = read_deb_licenses(archive.deb(package), package.name)
        write_atomic(remembered, json.dumps(list(found)).encode(), 0o644)
        return found

    return licenses
