"""Bentos as single archives (`ocibuild export` / `import`), refusing hostile archives.

An archive is a gzip'd tar whose top level is the bento directory's content. Members are checked
before anything is extracted: no absolute paths, no `..`, no links that leave the archive, no
devices; the extraction then goes to a staging directory and is renamed into the store.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Callable
from pathlib import Path

from ocibuild.bento.info import MODELS_DIR, BentoInfo
from ocibuild.bento.store import Bento, BentoStore
from ocibuild.errors import ArchiveError
from ocibuild.store.tags import Tag
from ocibuild.store.versioned import VersionedStore


def export_dir(source: Path, dest: Path) -> None:
    tmp = dest.with_name(f".{dest.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            for path in sorted(source.rglob("*")):
                tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def check_members(members: list[tarfile.TarInfo]) -> None:
    """Raise ArchiveError on the first member that could write outside the destination."""
    for m in members:
        name = m.name
        if name.startswith("/") or posixpath.isabs(name):
            raise ArchiveError(f"refusing archive: absolute path {name!r}")
        if ".." in name.split("/"):
            raise ArchiveError(f"refusing archive: path {name!r} contains '..'")
        if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
            raise ArchiveError(f"refusing archive: {name!r} is a device, fifo or other special file")
        if m.issym() or m.islnk():
            base = posixpath.dirname(name) if m.issym() else ""
            target = posixpath.normpath(posixpath.join(base, m.linkname))
            if m.linkname.startswith("/") or target == ".." or target.startswith("../"):
                raise ArchiveError(f"refusing archive: link {name!r} points outside it ({m.linkname!r})")


def import_into(store: VersionedStore, archive: Path, load: Callable[[Path], BentoInfo],
                verify: Callable[[Path, object], None] = lambda staged, info: None) -> Path:
    """Check, extract to staging, read the manifest with `load`, `verify`, then commit under its tag."""
    manifest = store.record
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            check_members(members)
            with store.staging() as staged:
                tar.extractall(staged, filter="data")
                if not (staged / manifest).is_file():
                    raise ArchiveError(f"{archive} is not a {store.kind} archive: no {manifest}")
                info = load(staged / manifest)
                # the tag comes from inside the archive: it must obey the rules before it names a path
                tag = Tag.parse(f"{info.name}:{info.version}")
                if tag.version is None:
                    raise ArchiveError(f"refusing archive: it names no exact version ({info.version!r})")
                verify(staged, info)
                return store.commit(staged, tag)
    except tarfile.ReadError:
        raise ArchiveError(f"cannot read {archive}: not a tar archive (plain, gzip, bzip2 or xz)") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot read {archive}: {exc}") from None


def export_bento(bento: Bento, dest: Path) -> None:
    export_dir(bento.path, dest)


def import_bento(store: BentoStore, archive: Path) -> Bento:
    """Import the bento, then restore the models it carries into the model store."""
    from ocibuild.models.store import ModelStore

    path = import_into(store, archive, BentoInfo.load)
    models = ModelStore(store.home)
    for model_dir in sorted((path / MODELS_DIR).glob("*/*")):
        models.add_copy(model_dir)
    return store.load(path)


def import_model(store, archive: Path):
    from ocibuild.models.store import ModelInfo, verify_model

    return store.load(import_into(store, archive, ModelInfo.load, lambda staged, info: verify_model(staged)))
