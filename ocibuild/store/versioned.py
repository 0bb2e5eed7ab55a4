"""Versioned entries `ROOT/NAME/VERSION/`, each with a record file: bentos and models alike.

An entry is written in a staging directory on the same file system and renamed into place, so
a reader sees a whole entry or none, and concurrent writers never share a directory. Names and
versions are validated tags before they become paths; a malformed record found in the store is
skipped with a warning by `list`, never a crash for the whole store.

`NAME` alone means its newest version, by the `created` time in its record. Reading every record
to find it made `containerize NAME` and every build that names a model slower with each version
kept (0.7 ms a version here), so `ROOT/.latest/NAME` names the newest version together with the
modification time of `ROOT/NAME/` when it was written. Only `commit` and `delete` write it, under
an `flock` on `ROOT`, after they change `ROOT/NAME/`. A reader trusts it only while that directory
is as it was then: an entry added or removed since (by a crash before the pointer was written, an
older ocibuild, a hand, a restored cache) changes the time, and the reader reads every record, as
it does for a store written before pointers existed; it then leaves a pointer for the next
reader, under the lock and only if the directory did not change while it read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ocibuild.errors import AlreadyExistsError, NotFoundError, OcibuildError
from ocibuild.store.atomic import directory_lock, temp_dir, write_atomic
from ocibuild.sdk.names import Tag, validate_version

log = logging.getLogger(__name__)

LATEST = ".latest"  # ROOT/.latest/NAME: "VERSION MTIME_NS"; not a valid name, so never listed as one


class VersionedStore:
    """Subclasses say what they hold (`kind`, `record`, `list_command`) and how to load an entry
    (`load(path)`, returning a value with `.path`, `.tag` and `.info.created`)."""

    kind = "entry"
    record = ""
    list_command = ""

    def __init__(self, home: Path, subdir: str):
        self.home = home
        self.root = home / subdir
        self.tmp = home / "tmp"

    def load(self, path: Path):
        raise NotImplementedError

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh directory next to the store, removed on exit unless committed (moved away)."""
        with temp_dir(self.tmp, prefix=f".{self.kind}-") as path:
            yield path

    def path_of(self, tag: Tag) -> Path:
        if tag.version is None:
            raise NotFoundError(f"{self.kind} {tag} names no exact version")
        return self.root / tag.name / tag.version

    def commit(self, staged: Path, tag: Tag) -> Path:
        target = self.path_of(tag)
        entry = self.load(staged)
        self.root.mkdir(parents=True, exist_ok=True)
        with directory_lock(self.root):
            target.parent.mkdir(exist_ok=True)
            if target.exists():
                raise AlreadyExistsError(f"{self.kind} {tag} already exists")
            newest = self._pointed(tag.name) or self._newest_of_records(tag.name)  # we hold the lock already
            os.rename(staged, target)
            self._point(tag.name, entry if newest is None or _newest_first(entry) > _newest_first(newest) else newest)
        return target

    def exists(self, tag: Tag) -> bool:
        return (self.path_of(tag) / self.record).is_file()

    def _entries(self, name: str) -> list:
        """Every readable version of `name`; malformed ones are skipped with a warning."""
        base = self.root / name
        found = []
        for path in sorted(base.iterdir()) if base.is_dir() else []:
            if not (path / self.record).is_file():
                continue
            try:
                found.append(self.load(path))
            except OcibuildError as exc:
                log.warning("skipping %s", exc)
        return found

    def list(self) -> list:
        names = sorted(n.name for n in self.root.iterdir() if n.is_dir() and n.name != LATEST) \
            if self.root.is_dir() else []
        return sorted((e for name in names for e in self._entries(name)), key=_newest_first, reverse=True)

    def newest(self, name: str):
        """The newest readable version of `name`, or None: the one the pointer names while it
        holds, else the newest of every record, which is then left in a pointer for the next
        reader (a store from before pointers would otherwise be read whole until its next commit)."""
        pointed = self._pointed(name)
        if pointed is not None:
            return pointed
        before = self._mtime(name)
        newest = self._newest_of_records(name)
        if newest is not None:
            with contextlib.suppress(OSError):  # a read-only store: the next reader reads every record too
                with directory_lock(self.root):
                    if self._mtime(name) == before:  # nothing added or removed while we read
                        self._point(name, newest)
        return newest

    def get(self, tag: Tag | str):
        tag = Tag.parse(tag) if isinstance(tag, str) else tag
        if tag.version is None:
            newest = self.newest(tag.name)
            if newest is None:
                raise NotFoundError(f"no {self.kind} named {tag.name!r} (see `{self.list_command}`)")
            return newest
        if not self.exists(tag):
            raise NotFoundError(f"no {self.kind} {tag} (see `{self.list_command}`)")
        return self.load(self.path_of(tag))

    def delete(self, tag: Tag | str):
        entry = self.get(tag)
        name = entry.tag.name
        with temp_dir(self.tmp, prefix=".deleted-") as trash:
            with directory_lock(self.root):
                pointed = self._pointed(name)
                os.rename(entry.path, trash / "entry")  # readers never see a half-deleted entry
                kept = pointed if pointed is not None and pointed.path != entry.path else self._newest_of_records(name)
                self._point(name, kept)
                if kept is None:
                    with contextlib.suppress(OSError):
                        entry.path.parent.rmdir()
            shutil.rmtree(trash / "entry", ignore_errors=True)  # outside the lock: a large model takes time
        return entry

    def _mtime(self, name: str) -> int | None:
        try:
            return (self.root / name).stat().st_mtime_ns
        except OSError:
            return None

    def _newest_of_records(self, name: str):
        return max(self._entries(name), key=_newest_first, default=None)

    def _pointed(self, name: str):
        """The entry the pointer names, or None when it is missing, malformed, or older than the
        last change to `ROOT/NAME/`."""
        try:
            version, mtime = (self.root / LATEST / name).read_text().split(" ")
            validate_version(version)
            if int(mtime) != self._mtime(name):
                return None
            return self.load(self.root / name / version)
        except (OSError, UnicodeDecodeError, ValueError, OcibuildError):
            return None

    def _point(self, name: str, newest) -> None:
        """Under the root's lock, after `ROOT/NAME/` changed: the pointer names `newest` (None:
        no version is left, no pointer)."""
        pointer = self.root / LATEST / name
        if newest is None:
            pointer.unlink(missing_ok=True)
            return
        pointer.parent.mkdir(exist_ok=True)
        write_atomic(pointer, f"{newest.info.version} {self._mtime(name)}".encode(), 0o644, staging=self.tmp)


def _newest_first(entry) -> tuple[str, str]:
    return entry.info.created, entry.info.version


def new_version(now: datetime) -> str:
    """Sortable by time to the microsecond, with a random suffix so concurrent builds never collide."""
    return now.strftime("%Y%m%d%H%M%S%f") + "-" + secrets.token_hex(3)
