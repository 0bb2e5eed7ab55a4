"""OCI image layouts: the JSON files every layout sink writes, and the `oci-dir` sink."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ocibuild.image.model import INDEX_TYPE, Image, canonical_json
from ocibuild.registry.reference import Reference

OCI_LAYOUT = canonical_json({"imageLayoutVersion": "1.0.0"})


def index_json(image: Image, name: Reference) -> bytes:
    descriptor = image.manifest_descriptor(
        annotations={"io.containerd.image.name": str(name), "org.opencontainers.image.ref.name": name.tag},
        platform=image.platform)
    return canonical_json({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [descriptor.to_json()]})


def docker_manifest_json(image: Image, name: Reference) -> bytes:
    """docker-archive's `manifest.json`, pointing at the same blobs as the OCI layout."""
    return canonical_json([{
        "Config": blob_name(image.config_descriptor().digest),
        "RepoTags": [name.familiar],
        "Layers": [blob_name(layer.descriptor.digest) for layer in image.layers],
    }])


def repositories_json(image: Image, name: Reference) -> bytes:
    repository = name.familiar.rsplit(":", 1)[0]
    return canonical_json({repository: {name.tag: image.config_descriptor().digest.removeprefix("sha256:")}})


def blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def all_blobs(image: Image) -> list[tuple[str, Path | bytes]]:
    return [(image.digest, image.manifest_bytes())] + image.blobs()


def write_oci_dir(image: Image, name: Reference, dest: Path) -> None:
    """Write a layout directory next to `dest`, then swap it in."""
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        (staged / "blobs" / "sha256").mkdir(parents=True)
        for digest, source in all_blobs(image):
            target = staged / blob_name(digest)
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                _link_or_copy(source, target)
        (staged / "oci-layout").write_bytes(OCI_LAYOUT)
        (staged / "index.json").write_bytes(index_json(image, name))
        _swap_in(staged, dest)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link cached blobs (they are immutable, named by digest); copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _swap_in(staged: Path, dest: Path) -> None:
    if dest.exists():
        if not (dest / "oci-layout").is_file() and any(dest.iterdir()):
            raise FileExistsError(f"{dest} exists and is not an OCI layout: refusing to replace it")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.rename(dest, old)
        os.rename(staged, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staged, dest)
