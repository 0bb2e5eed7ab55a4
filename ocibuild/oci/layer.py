"""Blobs and layers whose bytes are reached on demand.

A sink asks `path()` when it needs the bytes, and never has to know whether they sit in the
local blob store, or still in a registry (`ocibuild.registry.pull.RegistryLayer` fetches and
verifies them on first use). `origin` names the repository a blob can be mounted from.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.digest import Digest


class Blob(ABC):
    descriptor: Descriptor

    @abstractmethod
    def path(self) -> Path:
        """A local file holding exactly the verified bytes the descriptor names."""

    @property
    def origin(self) -> str | None:
        """`host/repository` a registry holds this blob in, for cross-repository mounts."""
        return None


class Layer(Blob):
    diff_id: Digest  # of the uncompressed tar
    history: dict  # the image history entry that goes with this layer


@dataclass(frozen=True)
class FileBlob(Blob):
    """A blob already on disk (a config, an SBOM), addressed by its descriptor."""

    descriptor: Descriptor
    file: Path

    def path(self) -> Path:
        return self.file


@dataclass(frozen=True)
class FileLayer(Layer):
    """A layer already on disk: its descriptor, the digest of its uncompressed tar, its history entry."""

    descriptor: Descriptor
    diff_id: Digest
    file: Path
    history: dict = field(default_factory=dict)

    def path(self) -> Path:
        return self.file
