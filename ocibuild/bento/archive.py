"""Bentos and models as single archives (`ocibuild export` / `import`), refusing hostile archives.

An archive is a gzip'd tar whose top level is the bento (or model) directory's content. It is
extracted by `ocibuild.store.extract` (never by `tarfile`'s own extraction, whose `data` filter
this Python cannot be trusted with) into a staging directory, read, verified, and only then
renamed into the store; any refusal removes the staging directory, so nothing is left behind.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from ocibuild.bento.info import MODELS_DIR, BentoInfo
from ocibuild.bento.store import Bento, BentoStore, VersionedStore
from ocibuild.bento.tags import Tag
from ocibuild.errors import ArchiveError, NotFoundError, OcibuildError
from ocibuild.store.extract import ExtractLimits, extract


def export_dir(source: Path, dest: Path) -> None:
    """Write `source` as a gzip'd tar at `dest`, atomically.

    The temp file is created exclusively under an unpredictable name next to `dest`: a fixed
    name (`.NAME.partial`) could be a planted symlink that makes the export overwrite any file.
    """
    if not dest.parent.is_dir():
        raise NotFoundError(f"cannot write {dest}: directory {dest.parent} does not exist")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".partial")
    except OSError as exc:
        raise OcibuildError(f"cannot write {dest}: {exc.strerror or exc}") from None
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; an export is meant to be shared
        with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
            for path in sorted(source.rglob("*")):
                tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False)
        os.replace(tmp, dest)
    except OSError as exc:
        raise OcibuildError(f"cannot write {dest}: {exc.strerror or exc}") from None
    finally:
        tmp.unlink(missing_ok=True)


def import_into(store: VersionedStore, archive: Path, load: Callable[[Path], BentoInfo],
                verify: Callable[[Path, object], None] = lambda staged, info: None,
                limits: ExtractLimits = ExtractLimits()) -> Path:
    """Extract to staging, read the manifest with `load`, `verify`, then commit under its tag."""
    manifest = store.manifest
    try:
        with tarfile.open(archive, "r:*") as tar, store.staging() as staged:
            extract(tar, staged, limits)
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


def _verify_carried_models(staged: Path, info: object) -> None:
    """Every carried model must match its digest and have a valid name and version before the
    bento is committed: a bento whose models are then refused must not be left in the store."""
    from ocibuild.models.store import verify_model

    for model_dir in sorted((staged / MODELS_DIR).glob("*/*")):
        verify_model(model_dir)


def import_bento(store: BentoStore, archive: Path, limits: ExtractLimits = ExtractLimits()) -> Bento:
    """Import the bento once every model it carries is verified, then restore those models."""
    from ocibuild.models.store import ModelStore

    path = import_into(store, archive, BentoInfo.load, _verify_carried_models, limits)
    models = ModelStore(store.home)
    for model_dir in sorted((path / MODELS_DIR).glob("*/*")):
        models.add_copy(model_dir)
    return store.load(path)


def import_model(store, archive: Path, limits: ExtractLimits = ExtractLimits()):
    """Import a model archive (`ocibuild models export`) once its files match its digest."""
    from ocibuild.models.store import ModelInfo, verify_model

    return store.load(import_into(store, archive, ModelInfo.load,
                                  lambda staged, info: verify_model(staged), limits))
