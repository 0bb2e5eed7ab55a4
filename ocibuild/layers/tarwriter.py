"""Deterministic layer tars, written in one streaming pass that yields both digests.

Entries are sorted by path, owners are numeric with empty names, modes are kept, mtimes are
integers clamped to the given epoch, and no atime/ctime records are written (integer mtimes and
ASCII paths keep PAX headers out unless a path is too long, and then they are deterministic).
The tar is hashed (diff_id) before compression and the blob hashed after it, while it is
written: memory stays flat whatever the layer size. Members taken from another archive
(`write_members`) keep the order that archive gives them, which is deterministic in its own right.
"""

from __future__ import annotations

import hashlib
import os
import queue
import tarfile
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ocibuild.layers.compression import Compression
from ocibuild.oci.digest import Digest
from ocibuild.store.blobs import CHUNK, LayerBlob

# A tar header with the file to read its content from (regular files), as another archive gives it.
Member = tuple[tarfile.TarInfo, BinaryIO | None]


@dataclass(frozen=True)
class Entry:
    """One tar member. A regular file's content is `size` bytes of `source` from `offset` (many
    small files, such as compiled bytecode, can share one file on disk: creating a file costs
    more than writing it on many filesystems)."""

    path: str  # relative, posix, no leading "/"
    kind: str  # "file" | "dir" | "symlink"
    mode: int
    uid: int = 0
    gid: int = 0
    source: Path | None = None
    size: int = 0
    linkname: str = ""
    mtime: int | None = None  # None: the layer's epoch
    offset: int = 0

    def content(self) -> bytes:
        """The regular file's bytes (for keys and small files: a layer streams them instead)."""
        return read_range(self.source, self.offset, self.size)


def read_range(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


class HashingWriter:
    """A write-only pipeline stage: hashes and counts what it is given, and forwards it to `target`.

    The work runs in a thread of its own fed by a short FIFO queue, so chained stages (tar ->
    hash + compress -> hash + write to disk) run on separate cores, in order, with at most a few
    chunks in flight: memory stays flat. hashlib, zlib, zstd and file writes release the GIL.
    An error in the stage is raised to the writer at its next `write` or at `close`.
    """

    def __init__(self, target: BinaryIO | None):
        self.target = target
        self.size = 0
        self._sha = hashlib.sha256()
        self._queue: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._digest: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (chunk := self._queue.get()) is not None:
                self._sha.update(chunk)
                if self.target is not None:
                    self.target.write(chunk)
        except BaseException as exc:  # handed to the producer, never lost in this thread
            self._error = exc
            while self._queue.get() is not None:  # keep the producer from blocking
                pass

    def write(self, data) -> int:
        if self._error is not None:
            raise self._error
        data = bytes(data)
        self.size += len(data)
        self._queue.put(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def close(self) -> None:
        """Wait until everything written has been hashed and forwarded."""
        if self._digest is None:
            self._queue.put(None)
            self._thread.join()
            self._digest = Digest("sha256:" + self._sha.hexdigest())
        if self._error is not None:
            raise self._error

    @property
    def digest(self) -> Digest:
        self.close()
        return self._digest


def with_parents(entries: Iterable[Entry]) -> list[Entry]:
    """Add a directory entry (0755, root) for every parent that has none, then sort by path."""
    by_path = {e.path: e for e in entries}
    for path in list(by_path):
        parent = os.path.dirname(path)
        while parent and parent not in by_path:
            by_path[parent] = Entry(parent, "dir", 0o755)
            parent = os.path.dirname(parent)
    return [by_path[p] for p in sorted(by_path)]


def tarinfo(entry: Entry, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(entry.path)
    info.mode = entry.mode & 0o7777
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    mtime = epoch if entry.mtime is None else min(int(entry.mtime), epoch)
    info.mtime = max(mtime, 0)
    if entry.kind == "dir":
        info.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, entry.linkname
    else:
        info.type, info.size = tarfile.REGTYPE, entry.size
    return info


def write_tar(entries: list[Entry], out: BinaryIO, epoch: int) -> None:
    """`out` needs `write` and `tell`; files are copied in CHUNK-sized reads."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = CHUNK
        for entry in entries:
            info = tarinfo(entry, epoch)
            if info.isreg():
                with open(entry.source, "rb") as src:
                    src.seek(entry.offset)
                    tar.addfile(info, src)
            else:
                tar.addfile(info)


def write_layer(entries: list[Entry], dest: BinaryIO, compression: Compression, epoch: int) -> LayerBlob:
    """Write the layer blob to `dest`, returning its digests; one pass over the input files."""
    return write_tar_layer(lambda out: write_tar(entries, out, epoch), dest, compression)


def write_tar_layer(write: Callable[[BinaryIO], None], dest: BinaryIO, compression: Compression) -> LayerBlob:
    """Write the tar that `write` writes (to a stream with `write` and `tell`) as a layer blob to
    `dest`, returning its digests, in one pass.

    Uncompressed, the blob is the tar: one hash serves as both digest and diff_id.
    """
    blob = HashingWriter(dest)
    try:
        if compression is Compression.NONE:
            write(blob)
            return LayerBlob(blob.digest, blob.digest, blob.size, compression.media_type)
        compressor = compression.writer(blob)
        tar_stream = HashingWriter(compressor)
        try:
            write(tar_stream)
        finally:
            tar_stream.close()  # every chunk is in the compressor before its frame is finished
        compressor.close()
        return LayerBlob(blob.digest, tar_stream.digest, blob.size, compression.media_type)
    finally:
        blob.close()


def member_header(info: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    """The header a layer carries for another archive's member: the same name, type, mode (setuid,
    setgid and sticky bits included), numeric owners and link, with empty owner names, an integer
    mtime clamped to `epoch`, and none of the source's PAX records (atime, ctime, names)."""
    header = tarfile.TarInfo(info.name)
    header.type = tarfile.REGTYPE if info.isreg() else info.type
    header.mode = info.mode & 0o7777
    header.uid, header.gid = info.uid, info.gid
    header.uname = header.gname = ""
    header.mtime = max(min(int(info.mtime), epoch), 0)
    header.linkname = info.linkname if info.issym() or info.islnk() else ""
    header.size = info.size if info.isreg() else 0
    return header


def write_members(members: Iterable[Member], out: BinaryIO, epoch: int) -> None:
    """Write `members` in the order given (the caller decides it), headers normalized by
    `member_header`. Each member's file is read to its size before the next member is drawn, so
    members may stream straight from another tar opened in stream mode: nothing touches the disk."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = CHUNK
        for info, fileobj in members:
            header = member_header(info, epoch)
            tar.addfile(header, fileobj if header.isreg() else None)


def write_member_layer(members: Iterable[Member], dest: BinaryIO, compression: Compression, epoch: int) -> LayerBlob:
    """`write_layer` for members rather than entries: see `write_members`."""
    return write_tar_layer(lambda out: write_members(members, out, epoch), dest, compression)


def tree_entries(root: Path, prefix: str, *, uid: int = 0, gid: int = 0) -> list[Entry]:
    """Every file, link and directory under `root`, placed under `prefix`, modes and mtimes kept."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            rel = f"{prefix}/{path.relative_to(root).as_posix()}" if prefix else path.relative_to(root).as_posix()
            st = path.lstat()
            if path.is_symlink():
                found.append(Entry(rel, "symlink", 0o777, uid, gid, linkname=os.readlink(path), mtime=int(st.st_mtime)))
            elif path.is_dir():
                found.append(Entry(rel, "dir", st.st_mode, uid, gid, mtime=int(st.st_mtime)))
            elif path.is_file():
                found.append(Entry(rel, "file", st.st_mode, uid, gid, source=path, size=st.st_size, mtime=int(st.st_mtime)))
    return found
