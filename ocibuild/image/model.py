"""Descriptors, layers and images; `append` and `with_config` return new images."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
DOCKER_LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
# Docker's layer types carry the same bytes as OCI's; images we write use OCI's.
_DOCKER_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "application/vnd.oci.image.layer.v1.tar",
}


def canonical_json(data) -> bytes:
    """Sorted keys, no spaces: the same value always gives the same bytes and digest."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layer_type(media_type: str) -> str:
    return _DOCKER_LAYER_TYPES.get(media_type, media_type)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict | None = None
    platform: dict | None = None

    def to_json(self) -> dict:
        out = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out

    @classmethod
    def of(cls, media_type: str, data: bytes, **extra) -> Descriptor:
        return cls(media_type, sha256_digest(data), len(data), **extra)


@dataclass(frozen=True)
class Layer:
    """A layer blob with its uncompressed digest and history entry.

    `path` is where its bytes are, or will be once fetched: a layer of a registry base names the
    repository it can be fetched or mounted from in `origin` ("host/repository"), and is only
    downloaded when a sink needs its bytes.
    """

    descriptor: Descriptor
    diff_id: str
    path: Path
    history: dict = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True)
class Image:
    """An image: `config` is the whole OCI config object except rootfs and history."""

    config: dict
    layers: tuple[Layer, ...] = ()
    annotations: dict = field(default_factory=dict)
    history: tuple[dict, ...] = ()  # the base's entries (layered or empty), then one per appended layer

    def append(self, *layers: Layer) -> Image:
        return dataclasses.replace(self, layers=self.layers + tuple(layers),
                                   history=self.history + tuple(layer.history for layer in layers))

    def with_config(self, **changes) -> Image:
        """Replace keys of the config's `config` object (Env, Entrypoint, ...)."""
        inner = {**self.config.get("config", {}), **changes}
        return dataclasses.replace(self, config={**self.config, "config": inner})

    def with_top(self, **changes) -> Image:
        """Replace top-level config keys (created, architecture, ...)."""
        return dataclasses.replace(self, config={**self.config, **changes})

    def with_annotations(self, **annotations: str) -> Image:
        return dataclasses.replace(self, annotations={**self.annotations, **annotations})

    def config_json(self) -> dict:
        return {
            **self.config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            "history": list(self.history),
        }

    def config_bytes(self) -> bytes:
        return canonical_json(self.config_json())

    def config_descriptor(self) -> Descriptor:
        return Descriptor.of(CONFIG_TYPE, self.config_bytes())

    def manifest_json(self) -> dict:
        manifest = {
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": self.config_descriptor().to_json(),
            "layers": [layer.descriptor.to_json() for layer in self.layers],
        }
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return manifest

    def manifest_bytes(self) -> bytes:
        return canonical_json(self.manifest_json())

    def manifest_descriptor(self, **extra) -> Descriptor:
        return Descriptor.of(MANIFEST_TYPE, self.manifest_bytes(), **extra)

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest_bytes())

    @property
    def platform(self) -> dict:
        platform = {"architecture": self.config.get("architecture", "amd64"), "os": self.config.get("os", "linux")}
        if self.config.get("variant"):
            platform["variant"] = self.config["variant"]
        return platform

    def size(self) -> int:
        return len(self.config_bytes()) + len(self.manifest_bytes()) + sum(l.descriptor.size for l in self.layers)

    def blobs(self) -> list[tuple[str, Path | bytes]]:
        """(digest, path or bytes) for every blob, config first, without duplicates."""
        seen, out = set(), []
        for digest, source in [(self.config_descriptor().digest, self.config_bytes())] + \
                [(l.descriptor.digest, l.path) for l in self.layers]:
            if digest not in seen:
                seen.add(digest)
                out.append((digest, source))
        return out
