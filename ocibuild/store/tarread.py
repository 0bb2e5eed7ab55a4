"""Opening an untrusted tar for reading: `tarfile`, with the headers it reads whole bounded.

`tarfile` reads a PAX extended header, or a GNU long name or link, into memory in one piece at the
size the archive claims (an octal field: up to 8 GiB) before it hands out the member it describes.
gzip or zstd shrink such a header to almost nothing, so a few kilobytes of archive could exhaust
memory before any limit of ours (`ExtractLimits`, the callers' checks) sees a single member. Every
tar ocibuild reads from outside (bento and model archives, OCI and docker archives, image layers,
`.deb` data) is opened through `open_tar`, whose headers refuse more than `MAX_HEADER_BYTES`
unread, and whose malformed numbers are a `TarError` like any other damage, never a traceback.
"""

from __future__ import annotations

import tarfile
from pathlib import Path
from typing import BinaryIO

MAX_HEADER_BYTES = 1 << 20  # long paths and extended attributes take a few KiB


class HeaderRefused(tarfile.TarError):
    """A member header the archive cannot be read past."""


class _BoundedTarInfo(tarfile.TarInfo):
    def _proc_pax(self, tarfile):
        _bounded(self, "PAX")
        return super()._proc_pax(tarfile)

    def _proc_gnulong(self, tarfile):
        _bounded(self, "GNU long name")
        return super()._proc_gnulong(tarfile)

    def _proc_member(self, tarfile):
        try:
            return super()._proc_member(tarfile)
        except (ValueError, OverflowError) as exc:  # numbers of sparse maps and PAX records
            raise HeaderRefused(f"refusing archive: a malformed header at byte {self.offset} ({exc})") from None


def _bounded(info: tarfile.TarInfo, kind: str) -> None:
    if info.size > MAX_HEADER_BYTES:
        raise HeaderRefused(f"refusing archive: a {kind} header of {info.size} bytes at byte {info.offset} "
                            f"(at most {MAX_HEADER_BYTES} are read)")


def open_tar(name: str | Path | None = None, mode: str = "r", fileobj: BinaryIO | None = None) -> tarfile.TarFile:
    """`tarfile.open(name, mode, fileobj)` whose headers are read within `MAX_HEADER_BYTES`."""
    return tarfile.open(name, mode, fileobj=fileobj, tarinfo=_BoundedTarInfo)
