"""The one place a base image is resolved, for `build` (which pins it and reads what it has
installed) and for `containerize` (which builds on it), so the two can never disagree.

A base is one of: the Debian packages a bento locked (the default), a registry reference (pulled
by the digest the bento pinned at build time), or a local `oci-layout:DIR[:REF]`,
`oci-archive:FILE[:REF]` or `docker-archive:FILE`. Base layers are passed through by digest,
never recompressed; registry layers are only downloaded when a sink needs their bytes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import ImageError
from ocibuild.layers.writer import LayerWriter
from ocibuild.oci.digest import Digest
from ocibuild.oci.image import Image
from ocibuild.oci.platform import Platform
from ocibuild.oci.reference import Reference
from ocibuild.registry.session import Registries
from ocibuild.store.blobs import BlobStore

TRANSPORTS = ("oci-layout", "oci-archive", "docker-archive")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Sources:
    """Where base material comes from: registries, the blob store, and the Debian archive
    configured in `home` (read only when Debian packages are used)."""

    registries: Registries
    blobs: BlobStore
    home: Path | None = None

    def debian_archive(self, release: str, architecture: str):
        from ocibuild.debian.archive import DebianArchive
        from ocibuild.debian.settings import DebianSettings

        if self.home is None:
            raise ImageError("this bento is built on Debian packages, but no Debian archive is configured")
        return DebianArchive(DebianSettings.load(self.home), release, architecture, DebianSettings.cache_dir(self.home))


@dataclass(frozen=True)
class BaseImage:
    """The image a service's layers go on, and where it came from (for labels, SBOM and provenance)."""

    image: Image
    name: str  # the reference as given
    digest: Digest  # what the reference named: a manifest or index (a docker archive's config)
    local: bool = False  # a path on this machine: its name must never go into an image


def is_local(reference: str) -> bool:
    return reference.split(":", 1)[0] in TRANSPORTS


def _names_a_path(reference: str) -> bool:
    """TRANSPORT:PATH, a known transport or not (an unknown one is refused by `parse_local`)."""
    return is_local(reference) or reference.partition(":")[2].startswith(("/", "."))


def parse_local(text: str) -> tuple[str, Path, str | None]:
    transport, _, rest = text.partition(":")
    if transport not in TRANSPORTS or not rest:
        raise ImageError(f"invalid base image {text!r}: expected one of " + ", ".join(f"{t}:PATH" for t in TRANSPORTS))
    path, ref = Path(rest), None
    if not path.exists() and ":" in rest and transport != "docker-archive":
        head, _, ref = rest.rpartition(":")
        path = Path(head)
    if not path.exists():
        raise ImageError(f"base image {text!r}: {path} does not exist")
    return transport, path, ref


def check_reference(reference: str) -> None:
    """Refuse a base that cannot name an image (a malformed reference, a local path not there)
    before any work, without reading it: `resolve_base` reads it when the layers are built."""
    if _names_a_path(reference):
        parse_local(reference)
    else:
        Reference.parse(reference)


def pin(reference: str | None, registries: Registries) -> tuple[str, Digest] | None:
    """A registry base's reference and the digest its tag names now; None for other bases."""
    if reference is None or is_local(reference):
        return None
    from ocibuild.registry.pull import resolve_digest

    ref = Reference.parse(reference)
    return str(ref), ref.digest or resolve_digest(ref, registries)


def resolve_base(reference: str, platform: Platform, sources: Sources, pinned: Digest | None = None) -> BaseImage:
    """The image `reference` names for `platform` (at the `pinned` digest for a registry tag)."""
    if _names_a_path(reference):
        base = _local(reference, platform, sources.blobs)
    else:
        from ocibuild.registry.pull import pull_image

        ref = Reference.parse(reference)
        if pinned is not None and not ref.digest:
            ref = ref.with_digest(pinned)
        image, digest = pull_image(ref, sources.registries, sources.blobs, platform)
        base = BaseImage(image, str(ref), digest)
    if not base.image.platform.matches(platform):
        raise ImageError(f"base image {reference!r} is for {base.image.platform}, not {platform}")
    # the base manifest's annotations describe the base, not what is built on it
    return dataclasses.replace(base, image=dataclasses.replace(base.image, annotations={}, raw=None))


def _local(reference: str, platform: Platform, blobs: BlobStore) -> BaseImage:
    from ocibuild.formats.docker_archive import read_docker_archive
    from ocibuild.formats.layout import read_image

    transport, path, ref = parse_local(reference)
    if transport == "docker-archive":
        image, digest = read_docker_archive(path, blobs)
        return BaseImage(image, reference, digest, local=True)
    image = read_image(path, transport, ref, platform, blobs)
    if not isinstance(image, Image):
        raise ImageError(f"base image {reference!r} is not a runnable image")
    return BaseImage(image, reference, image.digest, local=True)


def debian_base(lock, python_version: str, platform: Platform, sources: Sources, writer: LayerWriter) -> BaseImage:
    """The default base: the Debian packages the bento locked, as one layer, and a minimal config."""
    from ocibuild.debian.base import debian_layer

    archive = sources.debian_archive(lock.release, lock.architecture)
    blob = debian_layer(lock.base, archive, writer.blobs, writer.compression, writer.epoch, skeleton_for=python_version)
    layer = writer.layer(blob, {"created_by": f"ocibuild: Debian {lock.release} base ({len(lock.base)} packages)"})
    config = {"architecture": platform.architecture, "os": platform.os,
              "config": {"Env": [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8"]}}
    return BaseImage(Image(config).append(layer), f"debian:{lock.release}", blob.digest)
