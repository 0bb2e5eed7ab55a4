"""`bento.yaml`: what a bento is, as a frozen dataclass and its YAML form."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from ocibuild.bento.tags import Tag
from ocibuild.errors import ArchiveError

BENTO_FILE = "bento.yaml"
SRC_DIR = "src"
REQUIREMENTS = "env/python/requirements.txt"
LOCK = "env/python/requirements.lock.txt"
OPENAPI = "apis/openapi.json"
DEBIAN_LOCK = "env/debian/packages.lock"
MODELS_DIR = "models"  # models/NAME/VERSION/{model.yaml,files/}, hard links into the model store


class YamlRecord:
    """A frozen dataclass stored as a YAML file (`bento.yaml`, `model.yaml`)."""

    def to_dict(self) -> dict:
        return asdict(self)

    def dump(self, path: Path) -> None:
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: Path):
        try:
            return cls(**yaml.safe_load(path.read_text()))
        except (OSError, yaml.YAMLError, TypeError) as exc:
            raise ArchiveError(f"unreadable {path}: {exc}") from None


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
    models: list[dict] = field(default_factory=list)
    base: dict | None = None  # a registry base resolved at build time: {"reference", "digest"}

    @property
    def tag(self) -> Tag:
        return Tag(self.name, self.version)

    @property
    def created_at(self) -> datetime:
        return datetime.fromisoformat(self.created)

    @property
    def python_version(self) -> str:
        return self.image["python_version"]


def utc_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")
