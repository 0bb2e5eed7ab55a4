"""Unpacking `.deb`s into a directory, without running maintainer scripts.

A `.deb` is an `ar` archive; its `data.tar` (xz, zstd, gzip, bzip2 or plain) is streamed into the
target with tarfile's `tar` filter (no paths outside the target, no device files). Each package
gets a distroless-style dpkg status record, `var/lib/dpkg/status.d/NAME`, from its own control
file, so image scanners see what is installed.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile
from pathlib import Path

import pyzstd
from debian.arfile import ArError, ArFile

from ocibuild.debian.archive import DebianError

STATUS_DIR = "var/lib/dpkg/status.d"
_DECOMPRESS = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open, ".zst": lambda f: pyzstd.ZstdFile(f),
               "": lambda f: f}


def _member(deb: ArFile, prefix: str):
    for member in deb.getmembers():
        if member.name.startswith(prefix):
            return member, member.name[len(prefix):]
    raise DebianError(f"{deb.name}: no {prefix}* member")


def _tar(deb: ArFile, prefix: str) -> tarfile.TarFile:
    member, suffix = _member(deb, prefix)
    if suffix not in _DECOMPRESS:
        raise DebianError(f"{deb.name}: unsupported compression {prefix}{suffix}")
    return tarfile.open(fileobj=_DECOMPRESS[suffix](member), mode="r|")


def control_text(path: Path) -> str:
    with open(path, "rb") as f:
        deb = ArFile(fileobj=f)
        with _tar(deb, "control.tar") as tar:
            for info in tar:
                if info.name.lstrip("./") == "control":
                    return tar.extractfile(info).read().decode()
    raise DebianError(f"{path}: no control file")


def unpack(path: Path, name: str, target: Path) -> None:
    """Extract the package's files into `target` and write its status record."""
    try:
        with open(path, "rb") as f:
            deb = ArFile(fileobj=f)
            with _tar(deb, "data.tar") as tar:
                tar.extractall(target, filter="tar")
        status = control_text(path).rstrip("\n") + "\nStatus: install ok installed\n"
    except (ArError, tarfile.TarError, OSError, EOFError, lzma.LZMAError) as exc:
        raise DebianError(f"cannot unpack {name} ({path.name}): {exc}") from None
    (target / STATUS_DIR).mkdir(parents=True, exist_ok=True)
    (target / STATUS_DIR / name).write_text(status)
