"""Docker archives (`docker save`): reading one as a base image, and the `manifest.json` and
`repositories` files an OCI archive carries so that `docker load` accepts it too.

`manifest.json` is a list of `{Config, RepoTags, Layers}`; a docker archive has no OCI manifest,
so the image read from one is serialized anew. Member names come from the input: only names of
members that exist in the tar are opened, and a blob is trusted only for the digest it hashes to.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from ocibuild.errors import ImageError, OcibuildError
from ocibuild.formats.layout import TarReader, read_small
from ocibuild.layers.compression import sniff
from ocibuild.oci.descriptor import Descriptor, canonical_json, parse_json
from ocibuild.oci.digest import Digest
from ocibuild.oci.image import Image
from ocibuild.oci.layer import FileLayer
from ocibuild.oci.reference import Reference
from ocibuild.store.blobs import BlobStore
from ocibuild.store.tarread import open_tar

MAX_BLOB = 1 << 40


def manifest_json(image: Image, name: Reference) -> bytes:
    """docker-archive's `manifest.json`, pointing at the same blobs as the OCI layout."""
    return canonical_json([{
        "Config": image.config_descriptor().digest.blob_name,
        "RepoTags": [name.familiar],
        "Layers": [layer.descriptor.digest.blob_name for layer in image.layers],
    }])


def repositories_json(image: Image, name: Reference) -> bytes:
    repository = name.familiar.rsplit(":", 1)[0]
    return canonical_json({repository: {name.tag: image.config_descriptor().digest.encoded}})


def read_docker_archive(path: Path, blobs: BlobStore) -> tuple[Image, Digest]:
    """The first image of a docker archive, and the digest of its config (its only stable name)."""
    if not path.is_file():
        raise ImageError(f"docker-archive:{path} is not a file")
    try:
        with open_tar(path, "r:") as tar:
            return _read(TarReader(tar, f"docker-archive:{path}"), blobs)
    except (tarfile.TarError, EOFError, OSError) as exc:
        if isinstance(exc, OcibuildError):
            raise
        raise ImageError(f"docker-archive:{path} is not a readable tar archive: {exc}") from None


def _read(reader: TarReader, blobs: BlobStore) -> tuple[Image, Digest]:
    where = reader.where
    entries = parse_json(read_small(reader, "manifest.json"), f"{where}: manifest.json", list)
    if not entries or not isinstance(entries[0], dict):
        raise ImageError(f"{where}: manifest.json lists no image")
    entry = entries[0]
    config_name, layer_names = entry.get("Config"), entry.get("Layers")
    if not isinstance(config_name, str) or not isinstance(layer_names, list) \
            or not all(isinstance(n, str) for n in layer_names):
        raise ImageError(f"{where}: manifest.json needs a Config name and a list of Layers")
    config_bytes = read_small(reader, config_name)
    config = parse_json(config_bytes, f"{where}: {config_name}")
    rootfs = config.get("rootfs")
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layer_names):
        raise ImageError(f"{where}: {len(layer_names)} layers but the config lists "
                         f"{len(diff_ids) if isinstance(diff_ids, list) else 'no'} diff_ids")
    history = config.get("history") or [{"created_by": "base layer"}] * len(layer_names)
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise ImageError(f"{where}: the config has a malformed history")
    layers = []
    for name, diff_id in zip(layer_names, diff_ids):
        with reader.open(name, MAX_BLOB) as f:
            try:  # one pass: verified, or named by its hash
                stored = blobs.add_blob(f, _named_digest(name), None)
            except ImageError as exc:
                raise ImageError(f"{where}: {name}: {exc}") from None
        with open(stored, "rb") as blob:
            media_type = sniff(blob.read(4)).media_type
        digest = Digest(f"{stored.parent.name}:{stored.name}")
        layers.append(FileLayer(Descriptor(media_type, digest, stored.stat().st_size), Digest(diff_id), stored))
    top = {k: v for k, v in config.items() if k not in ("rootfs", "history")}
    return Image(top, tuple(layers), tuple(history)), Digest.of(config_bytes)


def _named_digest(name: str) -> Digest | None:
    """Newer `docker save` names layers by digest (verified on copy); older ones are hashed as copied."""
    parts = name.removeprefix("./").split("/")
    if len(parts) == 3 and parts[0] == "blobs":
        try:
            return Digest(f"{parts[1]}:{parts[2]}")
        except ImageError:
            return None
    return None
