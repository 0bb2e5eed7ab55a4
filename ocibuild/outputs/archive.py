"""The default output: ONE tar holding an OCI image layout and a docker `manifest.json` over the
same blobs, which `docker load` (20.10 and newer), `podman load`, `skopeo copy oci-archive:` and
`ctr images import` all accept. Entries are in a fixed order with fixed metadata.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from ocibuild.image.model import Image
from ocibuild.outputs.layout import (
    OCI_LAYOUT,
    all_blobs,
    blob_name,
    docker_manifest_json,
    index_json,
    repositories_json,
)
from ocibuild.registry.reference import Reference


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info


def write_archive(image: Image, name: Reference, dest: Path) -> None:
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as raw, tarfile.open(fileobj=raw, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for member, data in [("oci-layout", OCI_LAYOUT), ("index.json", index_json(image, name)),
                                 ("manifest.json", docker_manifest_json(image, name)),
                                 ("repositories", repositories_json(image, name))]:
                tar.addfile(_info(member, len(data)), io.BytesIO(data))
            tar.addfile(_info("blobs", directory=True))
            tar.addfile(_info("blobs/sha256", directory=True))
            for digest, source in all_blobs(image):
                if isinstance(source, bytes):
                    tar.addfile(_info(blob_name(digest), len(source)), io.BytesIO(source))
                else:
                    with open(source, "rb") as f:
                        tar.addfile(_info(blob_name(digest), os.fstat(f.fileno()).st_size), f)
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
