"""Publishers: where an image or index goes. One interface, interchangeable sinks (after ko):
an archive for `docker load`, an OCI layout directory, a registry, the local Docker engine, or
several at once. A publisher receives an Image or Index and never asks where its bytes live.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ocibuild.errors import ImageError
from ocibuild.oci.image import Image
from ocibuild.oci.index import Index, Manifest
from ocibuild.oci.platform import Platform
from ocibuild.oci.reference import Reference
from ocibuild.registry.session import Registries
from ocibuild.store.blobs import BlobStore


@dataclass(frozen=True)
class Published:
    """What a publisher did: the reference it produced (for scripts), a line for people, and for
    a registry what happened to each blob (`uploaded`, `mounted`, `skipped`) by digest."""

    reference: str
    message: str
    blobs: dict = field(default_factory=dict)


class Publisher(Protocol):
    def publish(self, root: Manifest, referrers: tuple[Manifest, ...] = ()) -> Published:
        """`referrers`: manifests whose subject is `root` or one of its images (SBOMs, provenance)."""


@contextmanager
def writing(dest: Path) -> Iterator[None]:
    """A full disk or a denied write names the output, not a temp file that no longer exists."""
    try:
        yield
    except OSError as exc:
        raise ImageError(f"cannot write {dest}: {exc.strerror or exc}") from None


def check_writable(dest: Path) -> None:
    """Refuse an output whose directory cannot be written, before anything is published (a push
    runs first, and should not be followed by an output that could never be written)."""
    parent = dest.absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ImageError(f"cannot write {dest}: {parent} is not a directory this user may write")


def loadable_image(root: Manifest, platform: Platform | None) -> Image | None:
    """The image a docker `manifest.json` names: the root image, or an index's image for `platform`."""
    if isinstance(root, Image):
        return root
    if isinstance(root, Index):
        return next((i for i in root.images() if platform is None or i.platform.matches(platform)), None)
    return None


@dataclass(frozen=True)
class ArchivePublisher:
    """One tar: an OCI layout plus docker's `manifest.json` for the image of `load_platform`."""

    dest: Path
    name: Reference
    load_platform: Platform | None = None

    def publish(self, root: Manifest, referrers: tuple[Manifest, ...] = ()) -> Published:
        from ocibuild.formats.archive import write_archive

        with writing(self.dest):
            write_archive(root, self.name, self.dest, loadable_image(root, self.load_platform), referrers)
        return Published(str(self.dest), f"Image {self.name.familiar} {root.digest} written to {self.dest}")


@dataclass(frozen=True)
class LayoutPublisher:
    """Writes an image or index into an OCI layout directory."""

    dest: Path
    name: Reference

    def publish(self, root: Manifest, referrers: tuple[Manifest, ...] = ()) -> Published:
        from ocibuild.formats.layout import write_layout

        with writing(self.dest):
            write_layout(root, self.name, self.dest, referrers)
        return Published(str(self.dest), f"Image {self.name.familiar} {root.digest} written to {self.dest}")


@dataclass(frozen=True)
class RegistryPublisher:
    """Pushes an image or index, and its referrers, to a registry."""

    target: Reference
    registries: Registries
    blobs: BlobStore

    def publish(self, root: Manifest, referrers: tuple[Manifest, ...] = ()) -> Published:
        from ocibuild.registry.push import push

        report = push(root, self.target, self.registries, self.blobs, referrers=referrers)
        outcomes = {d: outcome for outcome in ("skipped", "mounted", "uploaded") for d in getattr(report, outcome)}
        return Published(str(report.pushed), f"Pushed {report.summary()}", outcomes)


@dataclass(frozen=True)
class DockerPublisher:
    """Writes the archive (kept at `archive`, or a temporary file) and `docker load`s it."""

    name: Reference
    archive: Path | None = None
    load_platform: Platform | None = None

    def publish(self, root: Manifest, referrers: tuple[Manifest, ...] = ()) -> Published:
        from ocibuild.engine import docker_load, require_engine

        if self.archive is not None:  # written first: without an engine, the image is still there
            written = ArchivePublisher(self.archive, self.name, self.load_platform).publish(root, referrers)
            require_engine(f"; the image is in {self.archive}")
            return Published(self.name.familiar, f"{written.message}\n{docker_load(self.archive)}")
        require_engine()
        with tempfile.TemporaryDirectory(prefix="ocibuild-load-") as tmp:
            archive = Path(tmp) / "image.tar"
            ArchivePublisher(archive, self.name, self.load_platform).publish(root)
            return Published(self.name.familiar, docker_load(archive))


@dataclass(frozen=True)
class MultiPublisher:
    """Several outputs of one build, in order (a push last: its reference is what a script reads)."""

    publishers: tuple[Publisher, ...] = field(default=())

    def publish(self, root: Manifest, referrers: tuple[Manifest, ...] = ()) -> list[Published]:
        return [p.publish(root, referrers) for p in self.publishers]
