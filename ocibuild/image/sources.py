"""Base images from local sources: `oci-layout:DIR[:REF]`, `oci-archive:FILE[:REF]`,
`docker-archive:FILE`.

Base layers are passed through as they are: their compressed blobs are copied into the blob
cache by digest (verified as they stream, once) and never decompressed or recompressed. A warm
build reads only the index, the manifest and the config.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ocibuild.errors import ImageError
from ocibuild.image.model import (
    DOCKER_LIST_TYPE,
    INDEX_TYPE,
    Descriptor,
    Image,
    Layer,
    oci_layer_type,
    sha256_digest,
)
from ocibuild.layers.cache import LayerCache
from ocibuild.layers.compression import sniff
from ocibuild.platforms import Platform

TRANSPORTS = ("oci-layout", "oci-archive", "docker-archive")
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class BaseImage:
    image: Image
    name: str  # the reference as given
    digest: str  # the base manifest's digest
    manifest: bytes = b""  # the exact bytes read, to push an image unchanged
    config: bytes = b""


def is_local_reference(text: str) -> bool:
    return text.split(":", 1)[0] in TRANSPORTS


def parse_local_reference(text: str) -> tuple[str, Path, str | None]:
    transport, _, rest = text.partition(":")
    if transport not in TRANSPORTS or not rest:
        raise ImageError(f"invalid base image {text!r}: expected one of "
                         + ", ".join(f"{t}:PATH" for t in TRANSPORTS))
    path, ref = Path(rest), None
    if not path.exists() and ":" in rest and transport != "docker-archive":
        head, _, ref = rest.rpartition(":")
        path = Path(head)
    if not path.exists():
        raise ImageError(f"base image {text!r}: {path} does not exist")
    return transport, path, ref


def load_local_base(text: str, cache: LayerCache, platform: Platform) -> BaseImage:
    transport, path, ref = parse_local_reference(text)
    try:
        if transport == "oci-layout":
            return _from_layout(text, _DirReader(path), ref, cache, platform)
        with tarfile.open(path, "r:") as tar:
            reader = _TarReader(tar)
            if transport == "oci-archive":
                return _from_layout(text, reader, ref, cache, platform)
            return _from_docker_archive(text, reader, cache, platform)
    except (tarfile.TarError, EOFError) as exc:
        raise ImageError(f"base image {text!r} is not a readable tar archive: {exc}") from None
    except (KeyError, ValueError, TypeError) as exc:
        raise ImageError(f"base image {text!r} is malformed: {exc}") from None


class _DirReader:
    def __init__(self, root: Path):
        self.root = root

    def read(self, name: str) -> bytes:
        try:
            return (self.root / name).read_bytes()
        except FileNotFoundError:
            raise KeyError(f"{name} is missing") from None

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        try:
            with open(self.root / name, "rb") as f:
                yield f
        except FileNotFoundError:
            raise KeyError(f"{name} is missing") from None


class _TarReader:
    def __init__(self, tar: tarfile.TarFile):
        self.tar = tar
        self.members = {m.name.lstrip("./").rstrip("/"): m for m in tar.getmembers()}

    @contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        member = self.members.get(name.lstrip("./"))
        if member is None or not member.isfile():
            raise KeyError(f"{name} is missing")
        f = self.tar.extractfile(member)
        try:
            yield f
        finally:
            f.close()

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            data = f.read()
        return data


def _blob_name(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_}"


def _verified(reader, descriptor: dict) -> bytes:
    data = reader.read(_blob_name(descriptor["digest"]))
    if sha256_digest(data) != descriptor["digest"]:
        raise ImageError(f"blob {descriptor['digest']} is corrupt: its content does not match its digest")
    return data


def _select(reader, index: dict, ref: str | None, platform: Platform) -> dict:
    """Follow the index (and nested indexes) to the manifest for `ref` and `platform`."""
    manifests = index.get("manifests", [])
    if ref is not None:
        manifests = [m for m in manifests if (m.get("annotations") or {}).get(REF_NAME) == ref]
        if not manifests:
            raise ImageError(f"no image tagged {ref!r} in the layout")
    for m in manifests:
        if m.get("mediaType") in (INDEX_TYPE, DOCKER_LIST_TYPE):
            return _select(reader, json.loads(_verified(reader, m)), None, platform)
    matching = [m for m in manifests if not m.get("platform")
                or (m["platform"].get("os"), m["platform"].get("architecture")) == (platform.os, platform.architecture)]
    if not matching:
        raise ImageError(f"the layout has no image for {platform}")
    if len(matching) > 1 and ref is None:
        raise ImageError("the layout holds several images: name one as oci-layout:DIR:REF")
    return matching[0]


def _from_layout(text: str, reader, ref: str | None, cache: LayerCache, platform: Platform) -> BaseImage:
    descriptor = _select(reader, json.loads(reader.read("index.json")), ref, platform)
    manifest_bytes = _verified(reader, descriptor)
    manifest = json.loads(manifest_bytes)
    config_bytes = _verified(reader, manifest["config"])
    config = json.loads(config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(manifest["layers"]):
        raise ImageError(f"base image {text!r}: {len(manifest['layers'])} layers but {len(diff_ids)} diff_ids")
    layers = []
    for layer, diff_id in zip(manifest["layers"], diff_ids):
        with reader.open(_blob_name(layer["digest"])) as f:
            path = cache.add_blob(f, layer["digest"], layer["size"])
        layers.append(Layer(Descriptor(oci_layer_type(layer["mediaType"]), layer["digest"], layer["size"]),
                            diff_id, path))
    return BaseImage(image_from_config(config, layers, platform, text), text, descriptor["digest"],
                     manifest_bytes, config_bytes)


def _from_docker_archive(text: str, reader, cache: LayerCache, platform: Platform) -> BaseImage:
    entries = json.loads(reader.read("manifest.json"))
    if not entries:
        raise ImageError(f"base image {text!r}: manifest.json lists no image")
    entry = entries[0]
    config_bytes = reader.read(entry["Config"])
    config = json.loads(config_bytes)
    diff_ids = config["rootfs"]["diff_ids"]
    if len(diff_ids) != len(entry["Layers"]):
        raise ImageError(f"base image {text!r}: {len(entry['Layers'])} layers but {len(diff_ids)} diff_ids")
    layers = []
    for name, diff_id in zip(entry["Layers"], diff_ids):
        with reader.open(name) as f:
            path = cache.add_blob(f, _named_digest(name))  # one pass: verified, or named by its hash
        with open(path, "rb") as blob:
            media_type = sniff(blob.read(4)).media_type
        layers.append(Layer(Descriptor(media_type, f"sha256:{path.name}", path.stat().st_size), diff_id, path))
    image = image_from_config(config, layers, platform, text)
    manifest_digest = sha256_digest(config_bytes)  # docker archives carry no manifest: name the config
    return BaseImage(image, text, manifest_digest)


def _named_digest(name: str) -> str | None:
    """Newer `docker save` names layers by digest (verified on copy); older ones are hashed as copied."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256" and len(parts[2]) == 64:
        return f"sha256:{parts[2]}"
    return None


def image_from_config(config: dict, layers: list[Layer], platform: Platform, text: str) -> Image:
    arch = config.get("architecture")
    if arch and arch != platform.architecture:
        raise ImageError(f"base image {text!r} is for {config.get('os')}/{arch}, not {platform}")
    top = {k: v for k, v in config.items() if k not in ("rootfs", "history")}
    history = tuple(config.get("history") or [{"created_by": "base layer"}] * len(layers))
    return Image(config=top, layers=tuple(layers), history=history)
