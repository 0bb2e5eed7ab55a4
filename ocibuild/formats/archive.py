"""The default output: ONE tar holding an OCI image layout and a docker `manifest.json` over the
same blobs, which `docker load` (20.10 and newer), `podman load`, `skopeo copy oci-archive:` and
`ctr images import` all accept. Entries are in a fixed order with fixed metadata. Reading one is
reading a layout (`layout.read_image(path, "oci-archive", ...)`).
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from ocibuild.formats.docker_archive import manifest_json, repositories_json
from ocibuild.formats.layout import OCI_LAYOUT, contents, index_json
from ocibuild.oci.image import Image
from ocibuild.oci.index import Manifest
from ocibuild.oci.reference import Reference
from ocibuild.store.atomic import TempFile


def _info(name: str, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if directory:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.size, info.mode = size, 0o644
    return info


def write_archive(root: Manifest, name: Reference, dest: Path, loadable: Image | None,
                  referrers: tuple[Manifest, ...] = ()) -> None:
    """`loadable` is the image docker's `manifest.json` names (None: the archive has none);
    `referrers` are listed in `index.json` after the root (see `layout.index_json`). A symlink
    at `dest` is replaced, never written through."""
    dest = dest.absolute()
    members = [("oci-layout", OCI_LAYOUT), ("index.json", index_json(root, name, referrers))]
    if loadable is not None:
        members += [("manifest.json", manifest_json(loadable, name)), ("repositories", repositories_json(loadable, name))]
    with TempFile(dest.parent) as tmp:
        with tarfile.open(fileobj=tmp.file, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for member, data in members:
                tar.addfile(_info(member, len(data)), io.BytesIO(data))
            blobs = list(contents(root, referrers))
            for directory in ["blobs", *sorted({digest.blob_name.rsplit("/", 1)[0] for digest, _ in blobs})]:
                tar.addfile(_info(directory, directory=True))
            for digest, source in blobs:
                if isinstance(source, bytes):
                    tar.addfile(_info(digest.blob_name, len(source)), io.BytesIO(source))
                else:
                    with open(source, "rb") as f:
                        tar.addfile(_info(digest.blob_name, os.fstat(f.fileno()).st_size), f)
        tmp.commit(dest)
