"""Images from a registry: manifests and config now, layer bytes only when a sink needs them.

Mirrors configured for the reference's registry are tried first. Indexes and Docker manifest
lists are followed to the target platform. Layers keep their repository, so a push to the same
registry mounts them instead of downloading them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ocibuild.errors import AuthError, ImageError, RegistryError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, parse_json
from ocibuild.oci.digest import Digest
from ocibuild.oci.image import Image, config_descriptor_of, parse_image
from ocibuild.oci.index import for_platform
from ocibuild.oci.layer import Layer
from ocibuild.oci.platform import Platform
from ocibuild.oci.reference import Reference
from ocibuild.registry.client import Repository
from ocibuild.registry.session import Registries
from ocibuild.store.blobs import BlobStore

MAX_CONFIG = 4 * 1024 * 1024


@dataclass(frozen=True)
class RegistryLayer(Layer):
    """A layer still in a registry: downloaded (and verified) into the blob store on first use."""

    descriptor: Descriptor
    diff_id: Digest
    repository: Repository = field(compare=False)
    blobs: BlobStore = field(compare=False)
    history: dict = field(default_factory=dict)

    def path(self) -> Path:
        return self.repository.fetch_blob(self.descriptor.digest, self.descriptor.size, self.blobs)

    @property
    def origin(self) -> str:
        return f"{self.repository.transport.host}/{self.repository.name}"


def find_manifest(ref: Reference, registries: Registries) -> tuple[Repository, bytes, str, Digest]:
    """(repository, bytes, media type, digest) from the first endpoint that has the reference."""
    failures = []
    for endpoint in registries.config.pull_endpoints(ref.registry, ref.api_host):
        repo = registries.repository(endpoint.host, ref.repository)
        try:
            return (repo, *repo.manifest(ref.reference))
        except AuthError:
            raise
        except RegistryError as exc:
            failures.append(str(exc))
    raise RegistryError(f"cannot pull {ref}: " + "; ".join(failures))


def resolve_digest(ref: Reference, registries: Registries) -> Digest:
    """The digest a tag points at now (of the index, for multi-platform images)."""
    return find_manifest(ref, registries)[3]


def pull_image(ref: Reference, registries: Registries, blobs: BlobStore, platform: Platform) -> tuple[Image, Digest]:
    """The image for `platform` (its layers not downloaded), and the digest `ref` names."""
    repo, data, media_type, digest = find_manifest(ref, registries)
    document = parse_json(data, f"the manifest of {ref}")
    if document.get("mediaType", media_type) in mediatypes.INDEXES or "manifests" in document:
        chosen = select_platform(document, platform, ref)
        data, media_type, _ = repo.manifest(chosen)
    where = str(ref)
    config = config_descriptor_of(data, where)
    if config.size > MAX_CONFIG:
        raise ImageError(f"{ref}: its config declares {config.size} bytes: refusing it")
    config_bytes = repo.fetch_blob(config.digest, config.size, blobs).read_bytes()
    image = parse_image(data, media_type, config_bytes,
                        lambda d, diff_id: RegistryLayer(d, diff_id, repo, blobs), where)
    return image, digest


def select_platform(index: dict, platform: Platform, ref: Reference) -> Digest:
    entries = index.get("manifests")
    if not isinstance(entries, list):
        raise ImageError(f"the index of {ref} has no list of manifests")
    descriptors = [Descriptor.from_json(e, f"the index of {ref}, manifest {i}") for i, e in enumerate(entries)]
    return for_platform(descriptors, platform, str(ref))[0].digest
