"""Base images from a registry: manifests and config now, layer bytes only when needed.

Mirrors configured for the reference's registry are tried first. Indexes and Docker manifest
lists are followed to the target platform. Layers keep their origin so a push to the same
registry mounts them instead of downloading them.
"""

from __future__ import annotations

import json

from ocibuild.errors import ImageError
from ocibuild.image.model import (
    DOCKER_LIST_TYPE,
    INDEX_TYPE,
    Descriptor,
    Image,
    Layer,
    oci_layer_type,
)
from ocibuild.image.sources import BaseImage, image_from_config
from ocibuild.layers.cache import LayerCache
from ocibuild.platforms import Platform
from ocibuild.registry.client import Repository
from ocibuild.registry.reference import Reference
from ocibuild.registry.session import Registries
from ocibuild.registry.transport import AuthError, RegistryError


def find_manifest(ref: Reference, registries: Registries) -> tuple[Repository, bytes, str, str]:
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


def resolve_digest(ref: Reference, registries: Registries) -> str:
    """The digest a tag points at now (of the index, for multi-platform images)."""
    return find_manifest(ref, registries)[3]


def pull_base(ref: Reference, registries: Registries, cache: LayerCache, platform: Platform) -> BaseImage:
    repo, data, media_type, digest = find_manifest(ref, registries)
    manifest = json.loads(data)
    if manifest.get("mediaType", media_type) in (INDEX_TYPE, DOCKER_LIST_TYPE) or "manifests" in manifest:
        chosen = select_platform(manifest, platform, ref)
        data, media_type, _ = repo.manifest(chosen)
        manifest = json.loads(data)
    config_descriptor = manifest["config"]
    config_path = repo.fetch_blob(config_descriptor["digest"], config_descriptor["size"], cache)
    config = json.loads(config_path.read_bytes())
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(manifest["layers"]):
        raise ImageError(f"{ref}: {len(manifest['layers'])} layers but {len(diff_ids)} diff_ids")
    origin = f"{repo.transport.host}/{repo.name}"
    layers = [Layer(Descriptor(oci_layer_type(l["mediaType"]), l["digest"], l["size"]), diff_id,
                    cache.blob_path(l["digest"]), origin=origin)
              for l, diff_id in zip(manifest["layers"], diff_ids, strict=True)]
    image: Image = image_from_config(config, layers, platform, str(ref))
    return BaseImage(image, str(ref), digest)


def select_platform(index: dict, platform: Platform, ref: Reference) -> str:
    for entry in index.get("manifests", []):
        p = entry.get("platform") or {}
        if (p.get("os"), p.get("architecture")) == (platform.os, platform.architecture):
            return entry["digest"]
    available = ", ".join(f"{(e.get('platform') or {}).get('os')}/{(e.get('platform') or {}).get('architecture')}"
                          for e in index.get("manifests", []))
    raise ImageError(f"{ref} has no image for {platform} (it has {available or 'none'})")


def fetch_missing(image: Image, registries: Registries, cache: LayerCache) -> None:
    """Download the layers a local sink needs that are not in the cache yet."""
    for layer in image.layers:
        if layer.origin and not layer.path.is_file():
            registries.origin(layer.origin).fetch_blob(layer.descriptor.digest, layer.descriptor.size, cache)
