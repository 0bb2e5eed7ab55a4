"""Pushing an image: blobs first (several at once), the manifest last.

For each distinct blob: HEAD, and skip what the repository has; mount across repositories when
the blob came from another repository of the same registry; otherwise upload it, streaming from
disk. Only then the manifest, as the exact bytes whose digest is reported.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ocibuild.image.model import (
    CONFIG_TYPE,
    MANIFEST_TYPE,
    Descriptor,
    Image,
    Layer,
    sha256_digest,
)
from ocibuild.layers.cache import LayerCache
from ocibuild.registry.client import Repository
from ocibuild.registry.reference import Reference
from ocibuild.registry.session import Registries

WORKERS = 4


@dataclass(frozen=True)
class PushSource:
    """What goes to the registry: the manifest and config bytes, and the layers."""

    manifest: bytes
    media_type: str
    config: bytes
    layers: tuple[Layer, ...]

    @classmethod
    def of(cls, image: Image) -> PushSource:
        return cls(image.manifest_bytes(), MANIFEST_TYPE, image.config_bytes(), image.layers)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)


@dataclass
class PushReport:
    reference: Reference
    digest: str
    skipped: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.reference.registry}/{self.reference.repository}@{self.digest} "
                f"({len(self.uploaded)} uploaded, {len(self.mounted)} mounted, {len(self.skipped)} already there)")


def push(source: PushSource, ref: Reference, registries: Registries, cache: LayerCache,
         workers: int = WORKERS) -> PushReport:
    repo = registries.repository(ref.api_host, ref.repository)
    report = PushReport(ref, source.digest)
    config_digest = sha256_digest(source.config)
    config_path = cache.add_blob(io.BytesIO(source.config), config_digest, len(source.config))
    config_layer = Layer(Descriptor(CONFIG_TYPE, config_digest, len(source.config)), config_digest, config_path)
    unique = {layer.descriptor.digest: layer for layer in (*source.layers, config_layer)}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda layer: (layer.descriptor.digest, _push_blob(layer, repo, registries, cache)),
                                 unique.values()))
    for digest, outcome in outcomes:
        getattr(report, outcome).append(digest)
    repo.put_manifest(ref.tag or source.digest, source.manifest, source.media_type)
    return report


def _push_blob(layer: Layer, repo: Repository, registries: Registries, cache: LayerCache) -> str:
    digest, size = layer.descriptor.digest, layer.descriptor.size
    if repo.blob_exists(digest):
        return "skipped"
    if layer.origin:
        host, _, source = layer.origin.partition("/")
        if host == repo.transport.host and source != repo.name and repo.mount(digest, source):
            return "mounted"
        if not layer.path.is_file():
            registries.origin(layer.origin).fetch_blob(digest, size, cache)
    repo.upload(digest, size, layer.path)
    return "uploaded"
