"""The local bento store: `$OCIBUILD_HOME/bentos/NAME/VERSION/`.

Bentos are written in a staging directory on the same file system and renamed into place, so a
reader sees a whole bento or none, and concurrent writers never share a directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ocibuild.bento.info import BENTO_FILE, BentoInfo
from ocibuild.bento.tags import Tag
from ocibuild.errors import AlreadyExistsError, NotFoundError


@dataclass(frozen=True)
class Bento:
    path: Path
    info: BentoInfo

    @property
    def tag(self) -> Tag:
        return self.info.tag

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and not p.is_symlink())


STALE_SECONDS = 24 * 3600


def remove_stale(tmp_root: Path, now: float | None = None) -> None:
    """Remove what killed writers left behind; a day is far longer than any live build."""
    limit = (now or time.time()) - STALE_SECONDS
    for entry in tmp_root.iterdir():
        try:
            if entry.lstat().st_mtime < limit:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        except OSError:
            pass  # another process removed it first


class VersionedStore:
    """Directories `ROOT/NAME/VERSION/`, each with a manifest file; shared by bentos and models.

    Subclasses say how to load an entry (`load`); entries have `.info` with `name`, `version` and
    `created`, and `.tag`.
    """

    kind = "entry"
    manifest = ""
    list_command = ""

    def __init__(self, home: Path, subdir: str):
        self.home = home
        self.root = home / subdir

    def load(self, path: Path):
        raise NotImplementedError

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh directory next to the store, removed on exit unless committed (moved away)."""
        tmp_root = self.home / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        remove_stale(tmp_root)
        path = Path(tempfile.mkdtemp(prefix=f"{self.kind}-", dir=tmp_root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def commit(self, staged: Path, tag: Tag) -> Path:
        target = self.root / tag.name / tag.version
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise AlreadyExistsError(f"{self.kind} {tag} already exists")
        try:
            os.rename(staged, target)
        except OSError:
            # another writer committed the same tag between our check and the rename
            raise AlreadyExistsError(f"{self.kind} {tag} already exists") from None
        return target

    def _versions(self, name: str) -> list[Path]:
        base = self.root / name
        return [p for p in base.iterdir() if (p / self.manifest).is_file()] if base.is_dir() else []

    def list(self) -> list:
        names = sorted(n.name for n in self.root.iterdir() if n.is_dir()) if self.root.is_dir() else []
        entries = [self.load(p) for name in names for p in self._versions(name)]
        return sorted(entries, key=_newest_first, reverse=True)

    def get(self, tag: Tag | str):
        tag = Tag.parse(tag) if isinstance(tag, str) else tag
        if tag.version is None:
            candidates = [self.load(p) for p in self._versions(tag.name)]
            if not candidates:
                raise NotFoundError(f"no {self.kind} named {tag.name!r} (see `{self.list_command}`)")
            return max(candidates, key=_newest_first)
        path = self.root / tag.name / tag.version
        if not (path / self.manifest).is_file():
            raise NotFoundError(f"no {self.kind} {tag} (see `{self.list_command}`)")
        return self.load(path)

    def delete(self, tag: Tag | str):
        entry = self.get(tag)
        trash = Path(tempfile.mkdtemp(prefix="deleted-", dir=self.home / "tmp"))
        os.rename(entry.path, trash / "entry")  # readers never see a half-deleted entry
        shutil.rmtree(trash, ignore_errors=True)
        try:
            entry.path.parent.rmdir()
        except OSError:
            pass
        return entry


def _newest_first(entry) -> tuple[str, str]:
    return entry.info.created, entry.info.version


class BentoStore(VersionedStore):
    kind = "bento"
    manifest = BENTO_FILE
    list_command = "ocibuild list"

    def __init__(self, home: Path):
        super().__init__(home, "bentos")

    def load(self, path: Path) -> Bento:
        return Bento(path, BentoInfo.load(path / BENTO_FILE))
