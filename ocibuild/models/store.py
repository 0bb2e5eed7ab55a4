"""The local model store: `$OCIBUILD_HOME/models/NAME/VERSION/{model.yaml,files/}`.

A model is written in staging and renamed into place, like a bento. Its content digest covers
every file's path, mode and bytes; it is computed once, when the model is stored, so later uses
(bentos, layer caching) never read the bytes again to identify it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ocibuild.contract import MODEL_FILES, ocibuild_home
from ocibuild.errors import ArchiveError, SpecError, TagError
from ocibuild.oci.digest import Digest
from ocibuild.sdk.names import validate_name
from ocibuild.store.blobs import CHUNK
from ocibuild.store.records import YamlRecord, utc_iso
from ocibuild.sdk.names import Tag, validate_version
from ocibuild.store.versioned import new_version
from ocibuild.store.versioned import VersionedStore

MODEL_FILE = "model.yaml"


@dataclass(frozen=True)
class ModelInfo(YamlRecord):
    """`model.yaml`: a model version's record, with the digest of its files. Checked when read."""

    name: str
    version: str
    created: str
    size: int
    digest: str
    files: int
    labels: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def check(self) -> None:
        if Tag.parse(f"{self.name}:{self.version}").version is None:
            raise TagError(f"model version {self.version!r} is not an exact version")
        Digest(self.digest)

    @property
    def tag(self) -> Tag:
        return Tag(self.name, self.version)


@dataclass(frozen=True)
class StoredModel:
    """A model version in the store: its directory and its record."""

    path: Path  # the version directory
    info: ModelInfo

    @property
    def tag(self) -> Tag:
        return self.info.tag

    @property
    def files(self) -> Path:
        return self.path / MODEL_FILES


class ModelDraft:
    """What `create` yields: write files under `path` inside the block."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path
        self.stored: StoredModel | None = None


def content_digest(files: Path) -> tuple[str, int, int]:
    """(digest, total size, file count) over every entry's path, kind, mode and bytes."""
    sha, size, count = hashlib.sha256(), 0, 0
    for path in sorted(_walk(files), key=lambda p: p.relative_to(files).as_posix()):
        rel = path.relative_to(files).as_posix()
        if path.is_symlink():
            sha.update(f"link {rel} {os.readlink(path)}\n".encode())
        elif path.is_file():
            file_sha = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    file_sha.update(chunk)
            executable = "x" if os.access(path, os.X_OK) else "-"
            st_size = path.stat().st_size
            sha.update(f"file {rel} {executable} {st_size} {file_sha.hexdigest()}\n".encode())
            size, count = size + st_size, count + 1
    return "sha256:" + sha.hexdigest(), size, count


def _walk(root: Path) -> list[Path]:
    """Every entry under `root`, never following a symlink (a link loop is just a link)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        found += [Path(dirpath) / n for n in dirnames + filenames]
    return found


def check_links(source: Path) -> None:
    """Refuse a model directory with a symlink that leaves it: its target is not the model's."""
    for path in sorted(_walk(source)) if source.is_dir() else []:
        if path.is_symlink():
            try:
                target = (path.parent / os.readlink(path)).resolve()
            except (OSError, RuntimeError):  # Python 3.11 raises RuntimeError on a loop
                raise SpecError(f"{path}: a symlink loop; remove it from the model") from None
            if not target.is_relative_to(source.resolve()):
                raise SpecError(f"{path}: the symlink points outside {source}; copy the file in instead")


class ModelStore(VersionedStore):
    kind = "model"
    record = MODEL_FILE
    list_command = "ocibuild models list"

    def __init__(self, home: Path):
        super().__init__(home, "models")

    @classmethod
    def default(cls) -> ModelStore:
        return cls(ocibuild_home())

    def load(self, path: Path) -> StoredModel:
        return StoredModel(path, ModelInfo.load(path / MODEL_FILE))

    @contextmanager
    def create(self, name: str, *, labels: dict | None = None, metadata: dict | None = None):
        validate_name(name, "model name")
        with self.staging() as staged:
            draft = ModelDraft(name, staged / MODEL_FILES)
            draft.path.mkdir()
            yield draft  # an exception here propagates and the staging is removed: nothing stored
            draft.stored = self._commit(staged, name, labels or {}, metadata or {}, content_digest(draft.path))

    def _commit(self, staged: Path, name: str, labels: dict, metadata: dict,
                content: tuple[str, int, int]) -> StoredModel:
        digest, size, count = content
        now = datetime.now(UTC)
        info = ModelInfo(name, new_version(now), utc_iso(now), size, digest, count, _text(labels), metadata)
        info.dump(staged / MODEL_FILE)
        return StoredModel(self.commit(staged, info.tag), info)

    def import_path(self, source: Path, name: str, labels: dict | None = None) -> tuple[StoredModel, bool]:
        """Store a file or directory as a new version of `name`; (newest, False) when the newest
        version already holds exactly this content (and the labels, when any are given: other
        labels make a new version, as a version's model.yaml never changes), so re-importing
        does not fork versions."""
        validate_name(name, "model name")
        if not source.exists():
            raise SpecError(f"{source} does not exist")
        with self.staging() as staged:
            files = staged / MODEL_FILES
            if source.is_dir():
                check_links(source)
                shutil.copytree(source, files, symlinks=True)
            else:
                files.mkdir()
                shutil.copy2(source, files / source.name)
            content = content_digest(files)
            newest = self.newest(name)
            if newest is not None and newest.info.digest == content[0] and (
                    not labels or _text(newest.info.labels) == _text(labels)):
                return newest, False
            return self._commit(staged, name, labels or {}, {}, content), True

    def add_copy(self, source: Path) -> StoredModel | None:
        """Put a model directory (from an imported bento) into the store unless it is there."""
        info = verify_model(source)
        if self.exists(info.tag):
            return None
        with self.staging() as staged:
            link_tree(source, staged / "m")
            return StoredModel(self.commit(staged / "m", info.tag), info)


def _text(labels: dict) -> dict[str, str]:
    """Labels as model.yaml holds them: text (one written elsewhere may say `n: 1`)."""
    return {str(k): str(v) for k, v in labels.items()}


def model_tag(name: str, version: str) -> Tag:
    """A model's name and version, each validated before it becomes a directory."""
    return Tag(validate_name(name, "model name"), validate_version(version))


def verify_model(model_dir: Path) -> ModelInfo:
    """The model's info, once its files are proven to match the digest it claims and to link
    nowhere outside themselves (a link inside a bento may name the bento's other parts, which
    are elsewhere, and someone else's, once the model is in the store)."""
    for part in (MODEL_FILE, MODEL_FILES):
        if (model_dir / part).is_symlink():
            raise ArchiveError(f"{model_dir.name}: the model's {part} is a symlink: refusing it")
    try:
        check_links(model_dir / MODEL_FILES)
    except SpecError as exc:
        raise ArchiveError(f"refusing the model: {exc}") from None
    info = ModelInfo.load(model_dir / MODEL_FILE)
    validate_name(info.name, "model name")
    # name and version come from the archive and become a store path (`add_copy`): check both
    validate_version(str(info.version), f"{info.name}:{info.version}")
    digest = content_digest(model_dir / MODEL_FILES)[0]
    if digest != info.digest:
        raise ArchiveError(f"model {info.name}:{info.version} is corrupt: its files hash to {digest}, "
                           f"not {info.digest}")
    return info


def link_tree(source: Path, dest: Path) -> None:
    """Recreate `source` at `dest` with hard links (immutable store files), copying across file systems."""
    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, dest, symlinks=True, copy_function=link)
