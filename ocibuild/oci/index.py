"""`Index` (an image index over images, artifacts or indexes) and `Artifact` (a manifest that is
not a runnable image: an SBOM, a provenance, anything whose config is not an image config).

Both, like `Image`, offer what every sink needs: the manifest bytes and media type, the small
blobs held in memory (`inline_blobs`), the file blobs (`blobs`), and their children (`children`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

from ocibuild.errors import ImageError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, Manifested, canonical_json
from ocibuild.oci.digest import Digest
from ocibuild.oci.image import Image
from ocibuild.oci.layer import Blob
from ocibuild.oci.platform import Platform

EMPTY_CONFIG = b"{}"


@dataclass(frozen=True)
class Artifact(Manifested):
    """An OCI artifact manifest (an SBOM, a bento, a model, a cache): typed layers, maybe a subject."""

    artifact_type: str
    layers: tuple[Blob, ...] = ()
    subject: Descriptor | None = None
    annotations: dict = field(default_factory=dict)
    config: Blob | None = None  # None: the empty config `{}`
    raw: tuple[bytes, str] | None = field(default=None, compare=False, repr=False)  # (bytes, media type) read

    @property
    def media_type(self) -> str:
        return self.raw[1] if self.raw else mediatypes.MANIFEST

    def manifest_bytes(self) -> bytes:
        if self.raw:
            return self.raw[0]
        config = self.config.descriptor if self.config else Descriptor.of(mediatypes.EMPTY, EMPTY_CONFIG)
        manifest = {"schemaVersion": 2, "mediaType": mediatypes.MANIFEST, "artifactType": self.artifact_type,
                    "config": config.to_json(), "layers": [b.descriptor.to_json() for b in self.layers]}
        if self.subject:
            manifest["subject"] = self.subject.to_json()
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return canonical_json(manifest)

    def _described(self) -> dict:
        return {"artifact_type": self.artifact_type or None}

    def inline_blobs(self) -> dict[Digest, bytes]:
        return {} if self.config else {Digest.of(EMPTY_CONFIG): EMPTY_CONFIG}

    def blobs(self) -> tuple[Blob, ...]:
        return ((self.config,) if self.config else ()) + self.layers

    def children(self) -> tuple:
        return ()


@dataclass(frozen=True)
class Index(Manifested):
    """An OCI image index: one manifest per platform, as built or as read (then its exact bytes are kept)."""

    manifests: tuple[Manifest, ...]
    annotations: dict = field(default_factory=dict)
    subject: Descriptor | None = None
    raw: tuple[bytes, str] | None = field(default=None, compare=False, repr=False)

    @property
    def media_type(self) -> str:
        return self.raw[1] if self.raw else mediatypes.INDEX

    def manifest_bytes(self) -> bytes:
        if self.raw:
            return self.raw[0]
        index = {"schemaVersion": 2, "mediaType": mediatypes.INDEX,
                 "manifests": [m.descriptor().to_json() for m in self.manifests]}
        if self.subject:
            index["subject"] = self.subject.to_json()
        if self.annotations:
            index["annotations"] = dict(self.annotations)
        return canonical_json(index)


    def inline_blobs(self) -> dict[Digest, bytes]:
        return {}

    def blobs(self) -> tuple[Blob, ...]:
        return ()

    def children(self) -> tuple[Manifest, ...]:
        return self.manifests

    def images(self) -> tuple[Image, ...]:
        return tuple(m for m in walk(self) if isinstance(m, Image))


Manifest = Union[Image, Artifact, Index]


def for_platform(descriptors: list[Descriptor], platform: Platform, where: str) -> list[Descriptor]:
    """An index's entries that can serve `platform` (one without a platform serves any), or an
    error naming what the index has: the one rule for layouts, archives and registries alike."""
    matching = [d for d in descriptors if d.platform is None or d.platform.matches(platform)]
    if not matching:
        available = ", ".join(str(d.platform) for d in descriptors if d.platform) or "none"
        raise ImageError(f"{where} has no image for {platform} (it has {available})")
    return matching


def walk(root: Manifest) -> Iterator[Manifest]:
    """Every manifest under `root`, children before their parent: the order a push needs."""
    for child in root.children():
        yield from walk(child)
    yield root
