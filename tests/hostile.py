"""Hostile tar archives, built in memory, and a snapshot that proves nothing outside changed.

Shared by the extractor's unit tests and the import tests; no archive is checked in.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path


class Member(tarfile.TarInfo):
    """A TarInfo that carries its file data to `make_tar` (TarInfo itself has slots only)."""

    data: bytes | None = None


def file(name: str, data: bytes = b"x", mode: int = 0o644) -> tarfile.TarInfo:
    info = Member(name)
    info.size, info.mode = len(data), mode
    info.data = data
    return info


def directory(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info


def symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def hardlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.LNKTYPE, target
    return info


def special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = kind, 1, 3  # 1,3 is /dev/null
    return info


def make_tar(members: list[tarfile.TarInfo], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.PAX_FORMAT) as tar:
        for info in members:
            data = getattr(info, "data", None)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def lying_size_tar(name: str, claimed: int, actual: bytes) -> bytes:
    """A gzip'd tar whose one member's header claims `claimed` bytes but holds only `actual`."""
    import gzip

    info = tarfile.TarInfo(name)
    info.size = claimed
    body = actual + b"\0" * (-len(actual) % 512)
    return gzip.compress(info.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * 1024)


def header_bomb(path: Path, size: int, kind: bytes = tarfile.XHDTYPE) -> Path:
    """A gzip'd tar whose first header (PAX by default, or a GNU long name) claims and holds `size`
    bytes of zeros (a few KiB on disk), then a normal file: `tarfile` alone reads the whole header
    into memory before it reaches that file."""
    import gzip

    info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "././@PaxHeader")
    info.type, info.size = kind, size
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(info.tobuf(tarfile.GNU_FORMAT if kind == tarfile.GNUTYPE_LONGNAME else tarfile.USTAR_FORMAT))
        zeros = b"\0" * (1 << 20)
        for start in range(0, size, len(zeros)):
            out.write(zeros[:min(len(zeros), size - start)])
        out.write(b"\0" * (-size % 512))
        out.write(make_tar([file("hello.txt", b"hello\n")], mode="w"))
    return path


def cve_2025_4517_chain(up: int, into: str, dest_len: int = 60) -> list[tarfile.TarInfo]:
    """The published CVE-2025-4517 archive, aimed at `../` * `up` + `into`.

    Sixteen nested long-named directories (247 characters in the public proof, shorter when the
    destination path `dest_len` is long, so each directory still fits in PATH_MAX), each beside a
    one-letter symlink to it; a 254-character symlink at the end of the one-letter path that
    climbs back to the top. That symlink's resolved path is longer than PATH_MAX, so `realpath`
    stops resolving and the `data` filter judges `escape` (which climbs `up` steps past the top)
    lexically, as inside; the kernel follows it outside, and `escape/pwned` is written there.
    """
    comp, steps = "d" * min(247, (4000 - dest_len) // 16 - 1), "abcdefghijklmnop"
    members, path = [], ""
    for step in steps:
        members.append(directory(f"{path}{comp}"))
        members.append(symlink(f"{path}{step}", comp))
        path += comp + "/"
    linkpath = "/".join(steps) + "/" + "l" * 254
    members.append(symlink(linkpath, "../" * len(steps)))
    members.append(symlink("escape", linkpath + "/.." * up + "/" + into))
    members.append(file("escape/pwned", b"owned"))
    return members


def snapshot(*roots: Path) -> dict:
    """Every entry under `roots` (not following links): kind, mode, links, mtime, bytes or target."""
    seen = {}

    def record(path: Path) -> None:
        st = os.lstat(path)
        if stat.S_ISREG(st.st_mode):
            content = path.read_bytes()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        else:
            content = None
        seen[str(path)] = (st.st_mode, st.st_nlink, st.st_size, st.st_mtime_ns, st.st_ino, content)

    for root in roots:
        if not os.path.lexists(root):
            seen[str(root)] = None
            continue
        record(root)
        for dirpath, dirnames, filenames in os.walk(root):
            for entry in dirnames + filenames:
                record(Path(dirpath) / entry)
    return seen


def make_victim(path: Path) -> Path:
    """A directory outside every destination that hostile archives aim at."""
    (path / "sub").mkdir(parents=True)
    (path / "secret").write_text("keep me")
    (path / "sub" / "config").write_text("unchanged")
    return path
