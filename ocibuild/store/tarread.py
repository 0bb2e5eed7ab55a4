"""Opening an untrusted tar for reading: `tarfile`, with what it reads before a member bounded.

`tarfile` reads a PAX extended header, or a GNU long name or link, into memory in one piece at the
size the archive claims (an octal field: up to 8 GiB) before it hands out the member it describes.
gzip or zstd shrink such a header to almost nothing, so a few kilobytes of archive could exhaust
memory before any limit of ours (`ExtractLimits`, the callers' checks) sees a single member. And
before Python 3.11.10 / 3.12.6 (CVE-2024-6232) parsing a PAX header takes time and memory
quadratic in its size when its records do not end where their lengths say.

Every tar ocibuild reads from an archive, a layout or a layer (bento and model archives, OCI and
docker archives, image layers, `.deb` data) is opened through `open_tar`, which refuses, before
reading them: a header over `MAX_HEADER_BYTES`, a PAX header whose records are not well formed,
more than `MAX_CHAINED_HEADERS` headers in front of one member, global PAX headers holding more
than `MAX_GLOBAL_KEYS` keys in all (tarfile copies them into every member that follows, so a small
global header times many members is memory the archive's size does not show), and sparse members
(GNU or PAX sparse maps grow with the archive; no image layer or bento holds one). Malformed numbers are a
`TarError` like any other damage, never a traceback.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from tarfile import XGLTYPE
from typing import BinaryIO

MAX_HEADER_BYTES = 1 << 20  # long paths and extended attributes take a few KiB
MAX_CHAINED_HEADERS = 8  # a global header, a PAX header, GNU long name and link: 4 at most in practice
MAX_GLOBAL_KEYS = 8  # `git archive` writes one (its commit); nothing ocibuild reads needs more


class HeaderRefused(tarfile.TarError):
    """A member header the archive cannot be read past."""


class _BoundedTarInfo(tarfile.TarInfo):
    def _proc_pax(self, tarfile):
        _bounded(self, "PAX")
        fileobj = tarfile.fileobj
        buf = fileobj.read(self._block(self.size))
        if not well_formed_records(buf[:self.size]):
            raise HeaderRefused(f"refusing archive: a malformed PAX header at byte {self.offset}")
        tarfile.fileobj = _Replay(buf, fileobj)  # tarfile's own parser reads it from there
        try:
            with _chained(tarfile, self):
                member = super()._proc_pax(tarfile)
        finally:
            tarfile.fileobj = fileobj
        if self.type == XGLTYPE and len(tarfile.pax_headers) > MAX_GLOBAL_KEYS:
            raise HeaderRefused(f"refusing archive: global PAX headers with more than {MAX_GLOBAL_KEYS} keys "
                                f"at byte {self.offset}")
        return member

    def _proc_gnulong(self, tarfile):
        _bounded(self, "GNU long name")
        with _chained(tarfile, self):
            return super()._proc_gnulong(tarfile)

    def _proc_sparse(self, tarfile):
        raise HeaderRefused(f"refusing archive: a sparse member at byte {self.offset}")

    def _proc_gnusparse_00(self, next, *args):
        raise HeaderRefused(f"refusing archive: a sparse member at byte {self.offset}")

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00

    def _proc_member(self, tarfile):
        try:
            return super()._proc_member(tarfile)
        except (ValueError, OverflowError, IndexError) as exc:  # numbers and fields tarfile trusts
            raise HeaderRefused(f"refusing archive: a malformed header at byte {self.offset} ({exc})") from None


class _chained:
    """Counts the extended headers in front of one member: each is a level of recursion in tarfile."""

    def __init__(self, tar: tarfile.TarFile, info: tarfile.TarInfo):
        self.tar, self.info = tar, info

    def __enter__(self) -> None:
        depth = getattr(self.tar, "_ocibuild_chain", 0)
        if depth >= MAX_CHAINED_HEADERS:
            raise HeaderRefused(f"refusing archive: more than {MAX_CHAINED_HEADERS} extended headers in a row "
                                f"at byte {self.info.offset}")
        self.tar._ocibuild_chain = depth + 1

    def __exit__(self, *exc) -> None:
        self.tar._ocibuild_chain -= 1


class _Replay:
    """The archive's stream, whose next read returns bytes already read from it."""

    def __init__(self, first: bytes, fileobj):
        self._first, self._fileobj = first, fileobj

    def read(self, size: int = -1) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        return self._fileobj.read(size)

    def __getattr__(self, name: str):
        return getattr(self._fileobj, name)


def well_formed_records(data: bytes) -> bool:
    """PAX records (`LENGTH KEYWORD=VALUE\\n`, LENGTH counting the whole record) tiling `data`
    exactly: checked in one pass, so that tarfile's parser then stays linear."""
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos, pos + 21)
        if space <= pos or not data[pos:space].isdigit():
            return False
        end = pos + int(data[pos:space])
        if end <= space + 2 or end > len(data) or data[end - 1] != 0x0A or data.find(b"=", space + 2, end - 1) < 0:
            return False
        pos = end
    return True


def _bounded(info: tarfile.TarInfo, kind: str) -> None:
    if info.size > MAX_HEADER_BYTES:
        raise HeaderRefused(f"refusing archive: a {kind} header of {info.size} bytes at byte {info.offset} "
                            f"(at most {MAX_HEADER_BYTES} are read)")


def open_tar(name: str | Path | None = None, mode: str = "r", fileobj: BinaryIO | None = None) -> tarfile.TarFile:
    """`tarfile.open(name, mode, fileobj)` reading its headers as the module docstring says."""
    return tarfile.open(name, mode, fileobj=fileobj, tarinfo=_BoundedTarInfo)
