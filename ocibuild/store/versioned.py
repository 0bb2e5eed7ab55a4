"""Versioned entries `ROOT/NAME/VERSION/`, each with a record file: bentos and models alike.

An entry is written in a staging directory on the same file system and renamed into place, so
a reader sees a whole entry or none, and concurrent writers never share a directory. Names and
versions are validated tags before they become paths; a malformed record found in the store is
skipped with a warning by `list`, never a crash for the whole store.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from ocibuild.errors import AlreadyExistsError, NotFoundError, OcibuildError
from ocibuild.store.atomic import temp_dir
from ocibuild.sdk.names import Tag

log = logging.getLogger(__name__)


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
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise AlreadyExistsError(f"{self.kind} {tag} already exists")
        try:
            os.rename(staged, target)
        except OSError:
            # another writer committed the same tag between our check and the rename
            raise AlreadyExistsError(f"{self.kind} {tag} already exists") from None
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
        names = sorted(n.name for n in self.root.iterdir() if n.is_dir()) if self.root.is_dir() else []
        return sorted((e for name in names for e in self._entries(name)), key=_newest_first, reverse=True)

    def get(self, tag: Tag | str):
        tag = Tag.parse(tag) if isinstance(tag, str) else tag
        if tag.version is None:
            candidates = self._entries(tag.name)
            if not candidates:
                raise NotFoundError(f"no {self.kind} named {tag.name!r} (see `{self.list_command}`)")
            return max(candidates, key=_newest_first)
        if not self.exists(tag):
            raise NotFoundError(f"no {self.kind} {tag} (see `{self.list_command}`)")
        return self.load(self.path_of(tag))

    def delete(self, tag: Tag | str):
        entry = self.get(tag)
        with temp_dir(self.tmp, prefix=".deleted-") as trash:
            os.rename(entry.path, trash / "entry")  # readers never see a half-deleted entry
            shutil.rmtree(trash / "entry", ignore_errors=True)
        try:
            entry.path.parent.rmdir()
        except OSError:
            pass
        return entry


def _newest_first(entry) -> tuple[str, str]:
    return entry.info.created, entry.info.version


def new_version(now: datetime) -> str:
    """Sortable by time to the microsecond, with a random suffix so concurrent builds never collide."""
    return now.strftime("%Y%m%d%H%M%S%f") + "-" + secrets.token_hex(3)
