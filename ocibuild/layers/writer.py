"""`LayerWriter`: how one build writes layers (blob store, compression, time), held once.

A layer is looked up by a key over its inputs before anything is read; only a miss reads files,
tars, compresses and hashes them in one pass into the blob store.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from ocibuild.layers.compression import Compression
from ocibuild.layers.tarwriter import Entry, write_layer
from ocibuild.oci.layer import Layer
from ocibuild.store.blobs import BlobStore, LayerBlob, cache_key


@dataclass(frozen=True)
class LayerWriter:
    """Writes layers into the blob store with one compression and mtime clamp, cached by content key."""

    blobs: BlobStore
    compression: Compression
    epoch: int  # every mtime is clamped to it

    def at(self, epoch: int) -> LayerWriter:
        return dataclasses.replace(self, epoch=epoch)

    def key(self, *parts: str | bytes) -> str:
        """A cache key over `parts` and this writer's settings."""
        return cache_key(*parts, self.compression.key, str(self.epoch))

    def write(self, key: str, entries: Callable[[], list[Entry]]) -> LayerBlob:
        """The layer cached under `key`; `entries` is only called (and read) on a miss."""
        cached = self.blobs.lookup(key)
        if cached is not None:
            return cached
        planned = entries()
        return self.blobs.layer(key, lambda out: write_layer(planned, out, self.compression, self.epoch))

    def content(self, kind: str, entries: list[Entry]) -> LayerBlob:
        """A layer keyed by every entry's metadata and bytes: equal keys mean equal layers."""
        return self.write(content_key(kind, entries, self.compression, self.epoch), lambda: entries)

    def layer(self, blob: LayerBlob, history: dict) -> Layer:
        return self.blobs.as_layer(blob, history)


def content_key(kind: str, entries: list[Entry], compression: Compression, epoch: int) -> str:
    parts = [kind, compression.key, str(epoch)]
    for e in entries:
        parts.append(f"{e.path}|{e.kind}|{e.mode:o}|{e.uid}|{e.gid}|{e.linkname}|{e.mtime}")
        if e.source is not None:
            parts.append(hashlib.sha256(e.content()).hexdigest())
    return cache_key(*parts)
