"""Sinks for an Image: an archive (OCI layout + docker manifest in one tar), an OCI layout
directory, the local Docker engine. Each takes an Image and a name; none knows about bentos.
Every sink writes beside its destination and renames into place: a failure leaves it as it was.
"""

from __future__ import annotations

from pathlib import Path

from ocibuild.image.model import Image
from ocibuild.registry.reference import Reference

FORMATS = ("archive", "oci-dir")


def write_image(image: Image, name: Reference, fmt: str, dest: Path) -> None:
    from ocibuild.outputs.archive import write_archive
    from ocibuild.outputs.layout import write_oci_dir

    {"archive": write_archive, "oci-dir": write_oci_dir}[fmt](image, name, dest)
