"""`bento.yaml`: what a bento is, as typed records checked when read, and the bento's layout."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ocibuild.errors import TagError
from ocibuild.oci.digest import Digest
from ocibuild.store.records import YamlRecord
from ocibuild.sdk.names import Tag, validate_version
from ocibuild.sdk.service import ENV_NAME

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
    """`bento.yaml`: what a bento is. Read from imported archives too, so every field is checked."""

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
    platforms: list[str] | None = None  # a multi-platform bento's targets (`platform` is the first)

    def to_dict(self) -> dict:
        data = super().to_dict()
        if data.get("platforms") is None:  # single-platform bentos keep today's bento.yaml
            data.pop("platforms", None)
        return data

    @property
    def targets(self) -> list[str]:
        """Every platform the bento was locked for, the first being `platform`."""
        return list(self.platforms) if self.platforms else [self.platform]

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
        if not _entry_point(self.service):  # imported as module:Class, in the image and by `serve`
            raise TagError(f"service {self.service[:80]!r} is not module:Class")
        for env in self.envs:  # become the image's Env and the server's environment
            if not (isinstance(env, dict) and isinstance(env.get("name"), str) and ENV_NAME.fullmatch(env["name"])
                    and isinstance(env.get("value"), str | None)):
                raise TagError(f"env {str(env)[:80]} is not a name and a string or null value")
        if self.platforms is not None and (not self.platforms or self.platforms[0] != self.platform
                                           or len(set(self.platforms)) != len(self.platforms)):
            raise TagError(f"platforms {self.platforms} must be distinct and start with platform {self.platform}")

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


def python_lock(platform: str, multi: bool) -> str:
    """Where a platform's Python lock lives: a single-platform bento keeps `LOCK`; a multi-platform
    bento has one per platform beside it (same directory, so `indexes.json` is found)."""
    return LOCK if not multi else f"env/python/requirements.{_slug(platform)}.lock.txt"


def debian_lock(platform: str, multi: bool) -> str:
    return DEBIAN_LOCK if not multi else f"env/debian/packages.{_slug(platform)}.lock"


def _slug(platform: str) -> str:
    return platform.replace("/", "-")


def _entry_point(service: str) -> bool:
    """`module:Class` as the loader and `importlib` take it: module names of any file name
    (`my-service`), dotted, none empty (no relative import) and none a path; a class identifier."""
    module, colon, cls = service.partition(":")
    return bool(colon) and cls.isidentifier() and all(
        part and not any(c in part for c in "/\\\0") for part in module.split("."))
