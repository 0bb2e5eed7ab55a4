"""`Model("name:version")`: what a service declares it uses, resolved to a directory when used.

Shipped in images, so it imports only the standard library and the SDK. Resolution order:
`$OCIBUILD_MODELS_DIR/NAME/VERSION/files` when that variable is set (images set it; so does
`ocibuild serve TAG` for a bento's own copies), else the local model store.
"""

from __future__ import annotations

import os
from pathlib import Path

from ocibuild.errors import NotFoundError, SpecError
from ocibuild.sdk.names import validate_name

MODELS_DIR_ENV = "OCIBUILD_MODELS_DIR"
FILES = "files"


class Model:
    def __init__(self, tag: str):
        name, _, version = str(tag).partition(":")
        try:
            validate_name(name, "model name")
        except SpecError:
            raise SpecError(f"invalid model tag {tag!r}: expected NAME[:VERSION] with a lower-case name") from None
        self.name = name
        self.version = None if version in ("", "latest") else version

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
        models_dir = os.environ.get(MODELS_DIR_ENV)
        if models_dir:
            return _in_directory(Path(models_dir), self) / FILES
        from ocibuild.models.store import ModelStore  # the builder side: not in images

        return ModelStore.default().get(self.tag).files


def _in_directory(root: Path, model: Model) -> Path:
    base = root / model.name
    if model.version is not None:
        if (base / model.version).is_dir():
            return base / model.version
    else:
        versions = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
        if versions:
            return versions[-1]  # an image or a bento holds exactly the pinned version
    raise NotFoundError(f"model {model.tag} is not in {root}")
