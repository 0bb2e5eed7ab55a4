"""Referrers for what containerize made: for each image, an SBOM and a provenance artifact whose
`subject` is that image's manifest (OCI 1.1 artifact manifests, empty config)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ocibuild.bento.store import Bento
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.image import Image
from ocibuild.oci.index import Artifact, Index, Manifest
from ocibuild.oci.layer import FileBlob
from ocibuild.store.blobs import BlobStore
from ocibuild.supplychain import provenance, spdx
from ocibuild.supplychain.locks import read_locks
from ocibuild.supplychain.spdx import BaseRef

BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"
CREATED = "org.opencontainers.image.created"


@dataclass(frozen=True)
class SupplyChainOptions:
    """What is attached to an image as referrers: the SBOM format and the provenance."""

    sbom: str = "spdx"  # spdx, cyclonedx or none
    provenance: bool = True
    source_date_epoch: int | None = None
    base: str | None = None  # the --base given to containerize
    provenance_time: bool = False  # stamp the provenance with the time (only without SOURCE_DATE_EPOCH)
    parameters: dict | None = None  # containerize's options, for the provenance
    home: object = None  # $OCIBUILD_HOME: Debian licenses read from the locked .debs (None: not read)
    wheels: dict | None = None  # what `finish_wheels` found: {platform: Wheels}


def images_of(root: Manifest) -> tuple[Image, ...]:
    return (root,) if isinstance(root, Image) else root.images() if isinstance(root, Index) else ()


def base_ref(bento: Bento, image: Image, base_option: str | None) -> BaseRef | None:
    """The base the image names in its annotations, unless it is made of the locked Debian
    packages (those are listed one by one). A local base is named without its path."""
    digest = image.annotations.get(BASE_DIGEST)
    if digest is None or (base_option is None and bento.info.base_image is None):
        return None
    if base_option is None and bento.info.base is not None:  # the registry base pinned at build time
        return BaseRef(bento.info.base.reference, bento.info.base.digest)  # as `ocibuild sbom` names it
    return BaseRef(image.annotations.get(BASE_NAME, "local base image"), digest)


def sbom_bytes(bento: Bento, platform, fmt: str, base: BaseRef | None, source_date_epoch: int | None,
               home=None, found: dict | None = None) -> tuple[bytes, str]:
    """(document, media type) of the SBOM in `fmt`; with `home` (the Debian archive's settings and
    cache), Debian packages carry the licenses their copyright files name and Python distributions
    the one wheel installed for the platform (`found`: what `finish_wheels` already asked uv)."""
    locks = read_locks(bento, platform)
    wheels = None
    if home is not None and str(platform) in (found or {}):
        wheels = found[str(platform)].facts or {}  # uv could not say: not asked twice
    elif home is not None:
        from ocibuild.supplychain.wheels import selected_wheels

        wheels = selected_wheels(locks.python_path, bento.info.python_version, platform, home / "cache")
    if fmt == "cyclonedx":
        from ocibuild.supplychain import cyclonedx

        return cyclonedx.cyclonedx_bytes(bento, platform, base=base, source_date_epoch=source_date_epoch,
                                         wheels=wheels), cyclonedx.MEDIA_TYPE
    finder = None
    if home is not None and locks.debian is not None:
        from ocibuild.supplychain.licenses import deb_license_finder

        finder = deb_license_finder(home, locks.debian.release, locks.debian.architecture)
    document = spdx.spdx_document(bento, platform, base=base, source_date_epoch=source_date_epoch, locks=locks,
                                  deb_licenses=finder, wheels=wheels)
    return spdx.spdx_bytes(document), spdx.MEDIA_TYPE


def find_wheels(bento: Bento, platforms, home) -> dict:
    """`{platform: Wheels}` for the platforms whose wheel facts are not yet remembered: which wheel
    uv resolves each locked pin to (index metadata only), asked in a thread beside the layers.
    Nothing is written: `finish_wheels` adds the licenses once the image's layers are made, and
    `remember_wheels` keeps the facts, so a build that fails leaves the cache as it was."""
    if home is None:
        return {}
    from ocibuild.supplychain import wheels

    found = {}
    for platform in platforms:
        lock = read_locks(bento, platform).python_path
        record = wheels.wheels_record(lock, bento.info.python_version, platform, home / "cache")
        if not record.is_file():
            found[str(platform)] = wheels.ask(record, lock, bento.info.python_version, platform)
    return found


def finish_wheels(found: dict, home) -> dict:
    """`find_wheels`' answers with each wheel's license metadata: what the dependency layers'
    install recorded (or, when they all came from the cache, an install that uv then links from
    its own cache rather than downloading the wheels a second time)."""
    return {platform: asked.with_licenses(home / "cache") for platform, asked in found.items()}


def remember_wheels(found: dict) -> None:
    for asked in found.values():
        asked.keep()


def _artifact(blobs: BlobStore, subject: Image, artifact_type: str, data: bytes, created: str) -> Artifact:
    path = blobs.add_bytes(data)
    layer = FileBlob(Descriptor.of(artifact_type, data), path)
    return Artifact(artifact_type, (layer,), Descriptor(subject.media_type, subject.digest, len(subject.manifest_bytes())),
                    {CREATED: created})


def referrers(root: Manifest, bento: Bento, image_name: str, blobs: BlobStore,
              options: SupplyChainOptions) -> tuple[Artifact, ...]:
    """SBOM then provenance, image by image, in the order of the images."""
    out = []
    created = spdx.created(bento, options.source_date_epoch)
    for image in images_of(root):
        platform = image.platform
        locks = read_locks(bento, platform)
        base = base_ref(bento, image, options.base)
        if options.sbom != "none":
            data, media_type = sbom_bytes(bento, platform, options.sbom, base, options.source_date_epoch, options.home,
                                          options.wheels)
            out.append(_artifact(blobs, image, media_type, data, created))
        if options.provenance:
            started = None
            if options.provenance_time:
                started = created if options.source_date_epoch is not None else \
                    datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            # the provenance names the base whatever it is (the Debian-made one too, by its layer digest)
            built_on = base or (BaseRef(image.annotations.get(BASE_NAME, "local base image"),
                                        image.annotations[BASE_DIGEST]) if BASE_DIGEST in image.annotations else None)
            statement = provenance.provenance_statement(bento, platform, image_name, image.digest, base=built_on,
                                                        locks=locks, parameters=options.parameters, started=started)
            out.append(_artifact(blobs, image, provenance.MEDIA_TYPE, provenance.statement_bytes(statement), created))
    return tuple(out)
