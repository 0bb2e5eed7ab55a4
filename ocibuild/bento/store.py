"""The local bento store: `$OCIBUILD_HOME/bentos/NAME/VERSION/`.

Bentos are written in a staging directory on the same file system and renamed into place, so a
reader sees a whole bento or none, and concurrent writers never share a directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

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
    """Directories `ROOT/NAME/VERSION/` each holding a `MANIFEST` file; shared by bentos and models."""

    kind = "bento"
    manifest = BENTO_FILE

    def __init__(self, home: Path, subdir: str):
        self.home = home
        self.root = home / subdir

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

    def versions(self, name: str) -> list[Path]:
        base = self.root / name
        return [p for p in base.iterdir() if (p / self.manifest).is_file()] if base.is_dir() else []

    def entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [v for n in sorted(self.root.iterdir()) if n.is_dir() for v in self.versions(n.name)]

    def delete_path(self, path: Path) -> None:
        """Rename away first so that a reader never sees a half-deleted entry."""
        trash = Path(tempfile.mkdtemp(prefix="deleted-", dir=self.home / "tmp"))
        os.rename(path, trash / "entry")
        shutil.rmtree(trash, ignore_errors=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass


class BentoStore(VersionedStore):
    def __init__(self, home: Path):
        super().__init__(home, "bentos")

    def list(self) -> list[Bento]:
        bentos = [Bento(p, BentoInfo.load(p / BENTO_FILE)) for p in self.entries()]
        return sorted(bentos, key=lambda b: (b.info.created, b.info.version), reverse=True)

    def get(self, tag: Tag | str) -> Bento:
        tag = Tag.parse(tag) if isinstance(tag, str) else tag
        if tag.version is None:
            candidates = [Bento(p, BentoInfo.load(p / BENTO_FILE)) for p in self.versions(tag.name)]
            if not candidates:
                raise NotFoundError(f"no bento named {tag.name!r} (see `ocibuild list`)")
            return max(candidates, key=lambda b: (b.info.created, b.info.version))
        path = self.root / tag.name / tag.version
        if not (path / BENTO_FILE).is_file():
            raise NotFoundError(f"no bento {tag} (see `ocibuild list`)")
        return Bento(path, BentoInfo.load(path / BENTO_FILE))

    def delete(self, tag: Tag | str) -> Bento:
        bento = self.get(tag)
        self.delete_path(bento.path)
        return bento
