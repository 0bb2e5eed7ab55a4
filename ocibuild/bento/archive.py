"""Bentos and models as single archives (`ocibuild export` / `import`), refusing hostile archives.

An archive is a gzip'd tar whose top level is the bento (or model) directory's content. It is
extracted by `ocibuild.store.extract` (never by `tarfile`'s own extraction, whose `data` filter
this Python cannot be trusted with) into a staging directory, read, verified, and only then
renamed into the store; any refusal removes the staging directory, so nothing is left behind.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Callable
from pathlib import Path

from ocibuild.bento.info import MODEL_COPIES, BentoInfo
from ocibuild.bento.store import Bento, BentoStore
from ocibuild.errors import ArchiveError, NotFoundError, OcibuildError
from ocibuild.store.atomic import TempFile
from ocibuild.store.extract import ExtractLimits, extract
from ocibuild.sdk.names import Tag
from ocibuild.store.versioned import VersionedStore
from ocibuild.store.tarread import open_tar


def export_dir(source: Path, dest: Path) -> None:
    """Write `source` as a gzip'd tar at `dest`, atomically, through a temp file created
    exclusively beside it (never a fixed name a planted symlink could redirect). Owners are not
    carried (an import never restores them) and the gzip header has no time or name."""
    if not dest.parent.is_dir():
        raise NotFoundError(f"cannot write {dest}: directory {dest.parent} does not exist")
    try:
        with TempFile(dest.parent) as tmp:
            with gzip.GzipFile(fileobj=tmp.file, mode="wb", filename="", mtime=0) as gz, \
                    tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for path in sorted(source.rglob("*")):
                    tar.add(path, arcname=path.relative_to(source).as_posix(), recursive=False, filter=_anonymous)
            tmp.commit(dest)
    except OSError as exc:
        raise OcibuildError(f"cannot write {dest}: {exc.strerror or exc}") from None


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime)
    return info


def import_into(store: VersionedStore, archive: Path, load: Callable[[Path], BentoInfo],
                verify: Callable[[Path, object], None] = lambda staged, info: None,
                limits: ExtractLimits = ExtractLimits()) -> Path:
    """Extract to staging, read the manifest with `load`, `verify`, then commit under its tag."""
    def fill(staged: Path) -> None:
        with open_tar(archive, "r:*") as tar:
            try:
                extract(tar, staged, limits)
            except ArchiveError as exc:  # the extractor names the member; say which archive it is in
                raise ArchiveError(f"{archive}: {exc}") from None

    try:
        return import_staged(store, fill, load, verify, str(archive))
    except tarfile.ReadError:
        raise ArchiveError(f"cannot read {archive}: not a tar archive (plain, gzip, bzip2 or xz)") from None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise ArchiveError(f"cannot read {archive}: {exc}") from None


def import_staged(store: VersionedStore, fill: Callable[[Path], None], load: Callable[[Path], BentoInfo],
                  verify: Callable[[Path, object], None], where: str) -> Path:
    """The checks every import makes, whatever filled the staging directory (`fill`: one
    archive, or an artifact's layers): a record, a valid exact tag, `verify`, then commit."""
    manifest = store.record
    with store.staging() as staged:
        fill(staged)
        if not (staged / manifest).is_file():
            raise ArchiveError(f"{where} is not a {store.kind} archive: no {manifest}")
        info = load(staged / manifest)
        # the tag comes from inside the archive: it must obey the rules before it names a path
        tag = Tag.parse(f"{info.name}:{info.version}")
        if tag.version is None:
            raise ArchiveError(f"refusing archive: it names no exact version ({info.version!r})")
        verify(staged, info)
        return store.commit(staged, tag)


def export_bento(bento: Bento, dest: Path) -> None:
    export_dir(bento.path, dest)


def verify_bento(staged: Path, info: object) -> None:
    """Before a bento is committed: every carried model must match its digest and have a valid
    name and version, every Debian lock must parse (its hashes later name cache files), and every
    Python lock must hold only hashed pins (uv reads any option it holds), so that a bento refused
    later is never left in the store."""
    from ocibuild.debian.lock import DebianLock
    from ocibuild.errors import DebianError
    from ocibuild.models.store import verify_model
    from ocibuild.python.lock import lock_problem

    for model_dir in sorted((staged / MODEL_COPIES).glob("*/*")):
        info = verify_model(model_dir)
        if (info.name, info.version) != (model_dir.parent.name, model_dir.name):
            raise ArchiveError(f"refusing the bento: {model_dir.relative_to(staged)} holds model "
                               f"{info.name}:{info.version}")
    for lock in sorted((staged / "env" / "debian").glob("*.lock")):
        try:
            DebianLock.parse(lock.read_text(errors="replace"))
        except DebianError as exc:
            raise ArchiveError(f"refusing the bento: {lock.relative_to(staged)}: {exc}") from None
    for lock in sorted((staged / "env" / "python").glob("*.lock.txt")):
        if problem := lock_problem(lock.read_text(errors="replace")):
            raise ArchiveError(f"refusing the bento: {lock.relative_to(staged)}: {problem}")


def import_bento(store: BentoStore, archive: Path, limits: ExtractLimits = ExtractLimits()) -> Bento:
    """Import the bento once every model it carries is verified, then restore those models."""
    return restore_models(store, import_into(store, archive, BentoInfo.load, verify_bento, limits))


def restore_models(store: BentoStore, path: Path) -> Bento:
    """Put the models an imported bento carries into the model store."""
    from ocibuild.models.store import ModelStore

    models = ModelStore(store.home)
    for model_dir in sorted((path / MODEL_COPIES).glob("*/*")):
        models.add_copy(model_dir)
    return store.load(path)


def import_model(store, archive: Path, limits: ExtractLimits = ExtractLimits()):
    """Import a model archive (`ocibuild models export`) once its files match its digest."""
    from ocibuild.models.store import ModelInfo, verify_model

    return store.load(import_into(store, archive, ModelInfo.load,
                                  lambda staged, info: verify_model(staged), limits))
