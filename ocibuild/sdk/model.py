"""`Model("name:version")`: a model a service declares it uses, resolved to a directory when used.

Shipped in images, so it imports only the standard library, the SDK and the contract.
Resolution: `$OCIBUILD_MODELS_DIR/NAME/VERSION/files` when that variable is set (images set it;
so does `ocibuild serve TAG` for a bento's own copies), else the local model store
(`$OCIBUILD_HOME/models`, the same layout). Without a version, the newest: versions ocibuild
makes sort by time.
"""

from __future__ import annotations

import os
from pathlib import Path

from ocibuild.contract import MODEL_FILES, MODELS_DIR_ENV, ocibuild_home
from ocibuild.errors import NotFoundError, SpecError, TagError
from ocibuild.sdk.names import Tag


class Model:
    def __init__(self, tag: str):
        try:
            parsed = Tag.parse(str(tag))
        except TagError as exc:
            raise SpecError(f"invalid model tag {tag!r}: expected NAME[:VERSION] ({exc})") from None
        self.name = parsed.name
        self.version = parsed.version

    def __repr__(self) -> str:
        return f"Model({self.tag!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Model) and (self.name, self.version) == (other.name, other.version)

    def __hash__(self) -> int:
        return hash((self.name, self.version))

    @property
    def tag(self) -> str:
        return f"{self.name}:{self.version or 'latest'}"

    @property
    def path(self) -> Path:
        """The directory holding the model's files."""
        return version_dir(models_root(), self) / MODEL_FILES


def models_root(environ=os.environ) -> Path:
    if environ.get(MODELS_DIR_ENV):
        return Path(environ[MODELS_DIR_ENV])
    return ocibuild_home(environ) / "models"


def version_dir(root: Path, model: Model) -> Path:
    base = root / model.name
    if model.version is not None:
        if (base / model.version).is_dir():
            return base / model.version
    else:
        versions = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        if versions:
            return versions[-1]  # an image or a bento holds exactly the pinned version
    raise NotFoundError(f"model {model.tag} is not in {root}")
