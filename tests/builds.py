"""The example service built once per session, and helpers to containerize and write it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import referencing
import jsonschema

from ocibuild.base import Sources
from ocibuild.bento.build import build_bento
from ocibuild.bento.store import Bento, BentoStore
from ocibuild.containerize import ContainerizeOptions, containerize as containerize_bento
from ocibuild.oci.image import Image
from ocibuild.oci.reference import Reference
from ocibuild.publish import ArchivePublisher, LayoutPublisher
from ocibuild.registry.auth import Keychain
from ocibuild.registry.config import RegistryConfig
from ocibuild.registry.session import Registries
from ocibuild.store.blobs import BlobStore
from tests.conftest import EXAMPLE, ROOT, copy_service, import_example_model

SCHEMAS = ROOT / "tests" / "oci" / "schemas"


def local_sources(blobs: BlobStore, home: Path | None = None) -> Sources:
    """Local bases only (and the Debian archive, when `home` is given)."""
    return Sources(Registries(RegistryConfig(), Keychain([])), blobs, home)


@dataclass
class Built:
    bento: Bento
    image: Image
    cache: BlobStore
    base: str
    home: Path


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ocibuild-home")


@pytest.fixture(scope="session")
def example(session_home, python_base, tmp_path_factory) -> Built:
    src = copy_service(EXAMPLE, tmp_path_factory.mktemp("src") / "summarization")
    import_example_model(session_home)
    bento = build_bento(src, BentoStore(session_home))
    cache = BlobStore(session_home / "cache")
    image = containerize_bento(bento, ContainerizeOptions(base=python_base), local_sources(cache))
    return Built(bento, image, cache, python_base, session_home)


def containerize(built: Built, bento: Bento | None = None, cache: BlobStore | None = None, **options) -> Image:
    return containerize_bento(bento or built.bento, ContainerizeOptions(base=built.base, **options),
                              local_sources(cache or built.cache))


def write(image: Image, dest: Path, fmt: str = "archive", tag: str = "summarization:test") -> Path:
    name = Reference.image_name(tag)
    (ArchivePublisher(dest, name) if fmt == "archive" else LayoutPublisher(dest, name)).publish(image)
    return dest


def config_of(image: Image) -> dict:
    return json.loads(image.config_bytes())


@pytest.fixture(scope="session")
def oci_schema():
    schemas = {path.name: json.loads(path.read_text()) for path in SCHEMAS.glob("*.json")}
    # draft-04: every nested "id" rebases relative $refs, so each file is registered under each
    # base those ids imply, as well as under its own id and file name.
    bases = {i.rsplit("/", 1)[0] for i in _ids(list(schemas.values()))}
    resources = []
    for name, schema in schemas.items():
        resource = referencing.jsonschema.DRAFT4.create_resource(schema)
        uris = [name, *([schema["id"]] if "id" in schema else []), *(f"{b}/{name}" for b in bases)]
        resources += [(uri, resource) for uri in uris]
    registry = referencing.Registry().with_resources(resources)

    def validate(kind: str, document: dict) -> None:
        schema = json.loads((SCHEMAS / f"{kind}-schema.json").read_text())
        jsonschema.Draft4Validator(schema, registry=registry).validate(document)

    return validate


def _ids(node) -> list[str]:
    if isinstance(node, dict):
        own = [node["id"]] if isinstance(node.get("id"), str) else []
        return own + [i for v in node.values() for i in _ids(v)]
    if isinstance(node, list):
        return [i for v in node for i in _ids(v)]
    return []
