"""`bento.yaml`: what a bento is, as typed records checked when read, and the bento's layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ocibuild.errors import TagError
from ocibuild.oci.digest import Digest
from ocibuild.store.records import YamlRecord
from ocibuild.sdk.names import Tag, validate_version

BENTO_FILE = "bento.yaml"
SRC_DIR = "src"
REQUIREMENTS = "env/python/requirements.txt"
LOCK = "env/python/requirements.lock.txt"
OPENAPI = "apis/openapi.json"
DEBIAN_LOCK = "env/debian/packages.lock"
MODEL_COPIES = "models"  # models/NAME/VERSION/{model.yaml,files/}, hard links into the model store


@dataclass(frozen=True)
class ModelPin(YamlRecord):
    """A model a bento uses, pinned to one version and content digest."""

    name: str
    version: str
    digest: str
    size: int

    def check(self) -> None:
        Tag.parse(self.name)
        validate_version(self.version)
        Digest(self.digest)

    @property
    def tag(self) -> Tag:
        return Tag(self.name, self.version)


@dataclass(frozen=True)
class BasePin(YamlRecord):
    """A registry base resolved at build time: the bento always gets the image it was built on."""

    reference: str
    digest: str

    def check(self) -> None:
        Digest(self.digest)


@dataclass(frozen=True)
class BentoInfo(YamlRecord):
    name: str
    version: str
    created: str  # ISO 8601, UTC
    service: str  # "module:Class" inside src/
    image: dict
    platform: str
    envs: list[dict]
    apis: list[dict]
    files: dict  # {"count": N, "size": BYTES}
    ocibuild_version: str
    models: list[ModelPin] = field(default_factory=list)
    base: BasePin | None = None

    def check(self) -> None:
        tag = Tag.parse(f"{self.name}:{self.version}")
        if tag.version is None:
            raise TagError(f"bento version {self.version!r} is not an exact version")
        try:
            self.created_at
        except ValueError:
            raise TagError(f"created {self.created!r} is not an ISO 8601 time") from None
        if not isinstance(self.image.get("python_version"), str):
            raise TagError("image.python_version is missing")

    @property
    def tag(self) -> Tag:
        return Tag(self.name, self.version)

    @property
    def created_at(self) -> datetime:
        moment = datetime.fromisoformat(self.created)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    @property
    def python_version(self) -> str:
        return self.image["python_version"]

    @property
    def base_image(self) -> str | None:
        return self.image.get("base_image")
