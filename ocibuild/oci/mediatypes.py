"""Media types ocibuild reads and writes (OCI image spec 1.1, and Docker's v2 equivalents)."""

from __future__ import annotations

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

INDEXES = (INDEX, DOCKER_LIST)
MANIFESTS = (MANIFEST, DOCKER_MANIFEST)
IMAGE_CONFIGS = (CONFIG, DOCKER_CONFIG)
# Docker's layer types carry the same bytes as OCI's; images we write use OCI's.
_DOCKER_LAYERS = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": LAYER + "+gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": LAYER + "+zstd",
    "application/vnd.docker.image.rootfs.diff.tar": LAYER,
}


def oci_layer_type(media_type: str) -> str:
    return _DOCKER_LAYERS.get(media_type, media_type)
