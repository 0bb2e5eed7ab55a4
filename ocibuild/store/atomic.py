"""Crash-safe writes: a temp file or directory created exclusively beside its target, renamed into
place when whole, and swept by the next run if its writer died.

Names are unpredictable (`mkstemp`/`mkdtemp`: `O_EXCL`, never following a planted symlink). A
live writer holds an `flock` on what it is writing; the kernel drops it when the process dies,
even by SIGKILL, so `sweep` removes exactly what dead writers left, however recent, and never
what a running build is still writing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

ROLES = ("tmp", "old")  # made while something is written; what it replaced, until it is gone


def _mark(role: str) -> str:
    return f".ocibuild-{role}-"


PREFIX = _mark("tmp")


def sibling_prefix(dest: Path, role: str = "tmp") -> str:
    """The name prefix of what is made beside `dest` while it is written (`role` "tmp") or
    replaced ("old"): hidden, and saying whose it is."""
    return f".{dest.name}{_mark(role)}"


def is_temporary(name: str) -> bool:
    """Whether a file name is one of ours, made while writing something (see `sibling_prefix`)."""
    return name.startswith(".") and any(_mark(role) in name for role in ROLES)


def umask() -> int:
    """The process umask, read without changing it (outputs get the modes the user expects)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


@contextmanager
def directory_lock(directory: Path) -> Iterator[None]:
    """Held (an `flock` on the directory) while a temp entry is created and locked by its writer,
    and while `sweep` decides: without it, a sweep in another thread or process could take the
    lock of an entry created an instant earlier, before its writer locked it, and delete it.
    Stores hold it on their root while they change which entry is whose newest."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # a directory we may write but not read: nothing to sweep there either
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def sweep(directory: Path, prefix: str = PREFIX) -> None:
    """Remove temp files and directories under `directory` whose writer is gone."""
    with directory_lock(directory):
        _sweep(directory, prefix)


def _sweep(directory: Path, prefix: str) -> None:
    try:
        names = [n for n in os.listdir(directory) if n.startswith(prefix)]
    except OSError:
        return
    for name in names:
        path = directory / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if path.is_dir() else 0))
        except OSError:
            continue  # gone already, or not ours to open
        try:
            if _try_lock(fd):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)


class TempFile:
    """`with TempFile(dir) as t: t.file.write(...); t.commit(target)`: the target appears whole or
    not at all. Readable as the umask allows (`mode` 0o666 & ~umask) once committed."""

    def __init__(self, directory: Path, prefix: str = PREFIX, mode: int = 0o666):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with directory_lock(directory):
                _sweep(directory, prefix)
                fd, name = tempfile.mkstemp(dir=directory, prefix=prefix)
                fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # named by the directory the user gave, not a temp name they never chose
            raise OSError(exc.errno, exc.strerror, str(directory)) from None
        self.path = Path(name)
        self.mode = mode
        self.file: BinaryIO = os.fdopen(fd, "wb")
        self.committed = False

    def __enter__(self) -> TempFile:
        return self

    def commit(self, target: Path) -> Path:
        self.file.flush()
        os.fchmod(self.file.fileno(), self.mode & ~umask())
        os.replace(self.path, target)
        self.committed = True
        return target

    def __exit__(self, *exc) -> None:
        try:
            self.file.close()  # flushes: on a full disk it fails too, and the file must still go
        finally:
            if not self.committed:
                self.path.unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes, mode: int = 0o666, staging: Path | None = None) -> Path:
    """`staging`: where the temp file is made (same file system as `target`) when not beside it. A
    directory that only ever holds temp files keeps each write's sweep small: a store's blob and
    record directories grow with every build, and sweeping them would make each write O(store)."""
    with TempFile(staging or target.parent, mode=mode) as tmp:
        tmp.file.write(data)
        return tmp.commit(target)


@contextmanager
def temp_dir(parent: Path, prefix: str = PREFIX) -> Iterator[Path]:
    """A fresh directory in `parent`, locked while this process lives, removed on exit unless it
    was renamed away (committed)."""
    parent.mkdir(parents=True, exist_ok=True)
    with directory_lock(parent):
        _sweep(parent, prefix)
        path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        os.close(fd)
        shutil.rmtree(path, ignore_errors=True)
