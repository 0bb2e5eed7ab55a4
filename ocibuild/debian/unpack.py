"""`.deb`s as layer members, streamed from each package's `data.tar`: nothing is written to the host.

Unpacking onto the host would need root: a non-root builder cannot give files the owners packages
define, and every file would carry the builder's uid. So each member of the `data.tar` (xz, zstd,
gzip, bzip2 or plain) becomes a layer member as the package defines it (owners, mode with setuid,
setgid and sticky bits, symlinks, hard links), in one pass, after its name is checked: no absolute
paths, no `..`, no devices or fifos, no hard link to a file not yet in the layer. Maintainer
scripts are never run. Each package gets a distroless-style dpkg status record,
`var/lib/dpkg/status.d/NAME`, from its own control file, so image scanners see what is installed.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyzstd
from debian.arfile import ArError, ArFile

from ocibuild.errors import DebianError
from ocibuild.layers.tarwriter import Entry, Member, tarinfo
from ocibuild.store.tarread import open_tar

STATUS_DIR = "var/lib/dpkg/status.d"
CERTS_DIR = "usr/share/ca-certificates/"
_DECOMPRESS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open, ".zst": lambda f: pyzstd.ZstdFile(f),
               "": lambda f: f}
LATEST = 1 << 62  # an mtime for members made here: clamped to the layer's epoch when written
_READ_ERRORS = (ArError, tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error, pyzstd.ZstdError)


def _member(deb: ArFile, prefix: str):
    for member in deb.getmembers():
        if member.name.startswith(prefix):
            return member, member.name[len(prefix):]
    raise DebianError(f"{deb.name}: no {prefix}* member")


def _tar(deb: ArFile, prefix: str) -> tarfile.TarFile:
    member, suffix = _member(deb, prefix)
    if suffix not in _DECOMPRESS:
        raise DebianError(f"{deb.name}: unsupported compression {prefix}{suffix}")
    return open_tar(fileobj=_DECOMPRESS[suffix](member), mode="r|")


def _control(deb: ArFile) -> str:
    with _tar(deb, "control.tar") as tar:
        for info in tar:
            if info.name.lstrip("./") == "control":
                return tar.extractfile(info).read().decode()
    raise DebianError(f"{deb.name}: no control file")


def control_text(path: Path) -> str:
    with open(path, "rb") as f:
        return _control(ArFile(fileobj=f))


def data_file(path: Path, wanted: str, max_size: int) -> bytes | None:
    """One regular file of a package's `data.tar` (`usr/share/doc/NAME/copyright`), if it is
    there and at most `max_size` bytes; read as a stream, through `open_tar`'s bounds."""
    try:
        with open(path, "rb") as f, _tar(ArFile(fileobj=f), "data.tar") as tar:
            for info in tar:
                if info.name.removeprefix("./") == wanted and info.isreg() and info.size <= max_size:
                    return tar.extractfile(info).read()
    except _READ_ERRORS as exc:
        raise DebianError(f"cannot read {path.name}: {exc}") from None
    return None


def memory_member(path: str, kind: str, mode: int, data: bytes = b"", uid: int = 0, gid: int = 0,
                  linkname: str = "") -> Member:
    """A member made here rather than read from a package (status records, the skeleton)."""
    info = tarinfo(Entry(path, kind, mode, uid, gid, size=len(data), linkname=linkname), LATEST)
    return info, io.BytesIO(data) if kind == "file" else None


def member_path(name: str, package: str) -> str:
    """The layer path of a `data.tar` member (`./usr/bin/x` -> `usr/bin/x`; the root is ""), or a
    `DebianError` naming the package for a path that could land outside the image's root."""
    path = name.removeprefix("./")
    if path.startswith("/") or ".." in path.split("/"):
        raise DebianError(f"package {package}: refusing member {name!r}, a path outside the image's root")
    return "/".join(part for part in path.split("/") if part not in ("", "."))


class DebLayer:
    """The members of one layer of Debian packages, in a deterministic order: packages in the order
    given (the lock's), each package's members in its `data.tar`'s order, then what is added here.

    It remembers what a layer needs across packages: the directories emitted (each only the first
    time it is seen, so shared ones such as `usr/` are not repeated), the paths emitted (hard links
    may only point back to a file already in the layer), the status records and the CA certificates
    the `ca-certificates` package ships, for the bundle its maintainer script would have made."""

    def __init__(self) -> None:
        self.dirs: dict[str, tuple[int, int, int]] = {}  # path -> (mode, uid, gid) as emitted
        self.files: set[str] = set()  # regular files and hard links, which hard links may point to
        self.symlinks: set[str] = set()
        self.status: list[tuple[str, str]] = []
        self.certs: list[tuple[tuple[str, ...], bytes]] = []

    def paths(self) -> set[str]:
        return set(self.dirs) | self.files | self.symlinks

    def package(self, path: Path, name: str) -> Iterator[Member]:
        """The package's members; each file is to be read before the next member is drawn."""
        try:
            with open(path, "rb") as f:
                deb = ArFile(fileobj=f)
                self.status.append((name, _control(deb)))
                with _tar(deb, "data.tar") as tar:
                    for info in tar:
                        yield from self._package_member(tar, info, name)
        except _READ_ERRORS as exc:
            raise DebianError(f"cannot read package {name} ({path.name}): {exc}") from None

    def _package_member(self, tar: tarfile.TarFile, info: tarfile.TarInfo, package: str) -> Iterator[Member]:
        path = member_path(info.name, package)
        if not path:
            return  # the root directory itself
        if not (info.isreg() or info.isdir() or info.issym() or info.islnk()):
            kind = "device" if info.ischr() or info.isblk() else "fifo" if info.isfifo() else f"type {info.type!r}"
            raise DebianError(f"package {package}: refusing member {info.name!r}, a {kind}")
        header = _renamed(info, path)
        if info.islnk():
            target = member_path(info.linkname, package)
            if target not in self.files:
                raise DebianError(f"package {package}: refusing hard link {info.name!r} to {info.linkname!r}, "
                                  "which is not a file earlier in the layer")
            header.linkname = target
        fileobj = _PackageFile(tar.extractfile(info), package) if info.isreg() else None
        if package == "ca-certificates" and info.isreg() and path.startswith(CERTS_DIR) and path.endswith(".crt"):
            data = fileobj.read()
            self.certs.append((tuple(path.split("/")), data))
            fileobj = io.BytesIO(data)
        yield from self.add((header, fileobj))

    def add(self, member: Member, *, override: bool = False) -> Iterator[Member]:
        """`member`, after any parent directory not yet emitted (0755, root). A directory already
        emitted is not repeated (the first package to ship it defines it, as with dpkg) unless
        `override` and its mode or owner differ; nor is one a symlink already stands for (dpkg
        keeps the link)."""
        info, _ = member
        parent = info.name.rpartition("/")[0]
        missing = []
        while parent and parent not in self.dirs and parent not in self.symlinks:
            missing.append(parent)
            parent = parent.rpartition("/")[0]
        for path in reversed(missing):
            self.dirs[path] = (0o755, 0, 0)
            yield memory_member(path, "dir", 0o755)
        if info.isdir():
            owner = (info.mode & 0o7777, info.uid, info.gid)
            seen = self.dirs.get(info.name)
            if info.name in self.symlinks or (seen is not None and (not override or seen == owner)):
                return
            self.dirs[info.name] = owner
        elif info.issym():
            self.symlinks.add(info.name)
        else:
            self.files.add(info.name)
        yield member

    def status_records(self) -> Iterator[Member]:
        """`var/lib/dpkg/status.d/NAME` for each package, in the packages' order."""
        for name, control in self.status:
            record = control.rstrip("\n") + "\nStatus: install ok installed\n"
            yield from self.add(memory_member(f"{STATUS_DIR}/{name}", "file", 0o644, record.encode()))

    def ca_bundle(self) -> bytes | None:
        """The certificates `ca-certificates` ships, concatenated as update-ca-certificates would."""
        if not self.certs:
            return None
        return b"".join(data.rstrip(b"\n") + b"\n" for _, data in sorted(self.certs))


class _PackageFile:
    """A package member's content, read by the layer writer: a read error names the package."""

    def __init__(self, file: BinaryIO, package: str):
        self.file, self.package = file, package

    def read(self, size: int = -1) -> bytes:
        try:
            return self.file.read(size)
        except _READ_ERRORS as exc:
            raise DebianError(f"cannot read package {self.package}: {exc}") from None


def _renamed(info: tarfile.TarInfo, name: str) -> tarfile.TarInfo:
    """A copy of `info`'s header under another name (Python 3.11.2 has no `TarInfo.replace`)."""
    copy = tarfile.TarInfo(name)
    for attr in ("mode", "uid", "gid", "size", "mtime", "type", "linkname"):
        setattr(copy, attr, getattr(info, attr))
    return copy
