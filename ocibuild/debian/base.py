"""Bases made of Debian packages: the default Python base, and `system_packages` layers.

At build time the packages are resolved and written to the bento's lock; at containerize time
the lock alone decides the layers (same lock, same digest), so the archive's index is not read
again. What maintainer scripts would have done and an image needs is written here instead: users
and groups, `/tmp`, the CA bundle, the `python3` link.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ocibuild.debian.archive import DebianArchive, DebianError, DebianSettings
from ocibuild.debian.index import DebPackage
from ocibuild.debian.installed import BaseSystem
from ocibuild.debian.resolve import installed_names, resolve
from ocibuild.debian.unpack import unpack
from ocibuild.errors import SpecError
from ocibuild.layers.compression import Compression
from ocibuild.layers.tarwriter import tree_entries, write_layer
from ocibuild.store.blobs import BlobStore, LayerBlob, cache_key

# The Debian release shipping each Python version as its python3.
RELEASES = {"3.11": "bookworm", "3.13": "trixie"}
# Used only by maintainer scripts, which never run here; apt's own set for minimal images.
EXCLUDED = frozenset({"debconf", "debconf-2.0", "dpkg", "awk", "tar", "perl-base", "init-system-helpers",
                      "install-info"})
SKELETON_VERSION = "1"
USER, UID = "ocibuild", 1000
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
        lines = text.splitlines()
        if not lines or not lines[0].startswith(LOCK_HEADER):
            raise DebianError("not an ocibuild Debian lock")
        release, architecture = (part.split()[-1] for part in lines[0].split(":", 1)[1].split(","))
        sections: dict[str, list[DebPackage]] = {"base": [], "system": []}
        current = None
        for line in lines[1:]:
            if line.startswith("["):
                current = line.strip("[]")
            elif line.strip():
                name, version, arch, sha256, size, filename = line.split()
                sections[current].append(DebPackage(name, version, arch, filename, sha256, int(size)))
        return cls(release, architecture, tuple(sections["base"]), tuple(sections["system"]))


def lock_packages(python_version: str, system: list[str], architecture: str, settings: DebianSettings,
                  cache: Path, base_system: BaseSystem | None = None) -> DebianLock:
    """Resolve the default base and the system packages on top; or, on another Debian-based base
    (`base_system`), only the system packages it lacks, from its release."""
    default_base = base_system is None
    release = release_for(python_version) if default_base else base_system.release
    installed_base = base_system.installed if base_system else {}
    archive = DebianArchive(settings, release, architecture, cache)
    # the same signed index and request always resolve the same way: remember the answer
    request = [archive.index_digest(), architecture, python_version, str(default_base), *sorted(system), *EXCLUDED,
               *(f"{k}={v}" for k, v in sorted(installed_base.items()))]
    remembered = cache / "resolutions" / hashlib.sha256("\n".join(request).encode()).hexdigest()
    if remembered.is_file():
        return DebianLock.parse(remembered.read_text())
    index = archive.index()
    base = resolve(index, base_packages(python_version), excluded=EXCLUDED) if default_base else []
    installed = installed_names(base) if default_base else installed_base
    extra = resolve(index, system, installed=installed, excluded=EXCLUDED) if system else []
    lock = DebianLock(release, architecture, tuple(base), tuple(extra))
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(lock.text())
    return lock


def write_skeleton(root: Path, python_version: str) -> None:
    """What dpkg's maintainer scripts and debootstrap would have made, for a distroless base."""
    etc = root / "etc"
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text(f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                                f"{USER}:x:{UID}:{UID}:{USER}:/home/{USER}:/usr/sbin/nologin\n")
    (etc / "group").write_text(f"root:x:0:\n{USER}:x:{UID}:\n")
    for directory, mode in (("tmp", 0o1777), ("root", 0o700), (f"home/{USER}", 0o755)):
        (root / directory).mkdir(parents=True, exist_ok=True)
        os.chmod(root / directory, mode)
    os.chown(root / "home" / USER, UID, UID)
    certs = sorted((root / "usr/share/ca-certificates").rglob("*.crt"))
    if certs:
        (etc / "ssl/certs").mkdir(parents=True, exist_ok=True)
        (etc / "ssl/certs/ca-certificates.crt").write_bytes(b"".join(c.read_bytes().rstrip(b"\n") + b"\n" for c in certs))
    python3 = root / "usr/bin/python3"
    if not python3.exists() and not python3.is_symlink():
        python3.symlink_to(f"python{python_version}")


def debian_layer(packages: tuple[DebPackage, ...], archive: DebianArchive, cache: BlobStore,
                 compression: Compression, epoch: int, skeleton_for: str | None = None) -> LayerBlob:
    """One layer of unpacked packages (plus the skeleton for a base), cached by the locked hashes."""
    key = cache_key("debian", SKELETON_VERSION if skeleton_for else "", skeleton_for or "", compression.value,
                    str(epoch), *(p.lock_line() for p in packages))
    cached = cache.lookup(key)
    if cached is not None:
        return cached
    cache.tmp.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache.tmp) as tmp:
        root = Path(tmp)
        for package in packages:
            unpack(archive.deb(package), package.name, root)
        if skeleton_for:
            write_skeleton(root, skeleton_for)
        entries = [_owned(e, root) for e in tree_entries(root, "")]
        return cache.layer(key, lambda out: write_layer(entries, out, compression, epoch))


def _owned(entry, root: Path):
    """Keep the owner the files have on disk (root, but the runtime user's home is its own)."""
    st = (root / entry.path).lstat()
    return dataclasses.replace(entry, uid=st.st_uid, gid=st.st_gid)
