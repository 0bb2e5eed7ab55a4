"""The content-addressed blob store under `$OCIBUILD_HOME/cache`.

`blobs/<algorithm>/<hex>` holds blobs (ours and base images'), each verified against its digest
as it was written; `layers/<key>.json` maps a layer's inputs to the blob written for them, and
`sets/<key>.json` maps a whole group of inputs (such as a dependency lock) to its layers, so a
warm build is a few small reads and no tar pass. Keys are what ocibuild computed from inputs it
read itself, never a digest an input claims. Every write goes through a temp file renamed into
place; what a killed writer left is swept by the next one.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from ocibuild.errors import ImageError, OcibuildError
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.digest import Digest
from ocibuild.oci.layer import FileLayer, Layer
from ocibuild.progress import CountingWriter, task
from ocibuild.store.atomic import TempFile, write_atomic

# Bump when the layer format changes, so that old cache entries are never reused.
FORMAT = "ocibuild-layer-v1"
CHUNK = 1 << 20
_ORIGINS = threading.Lock()


def cache_key(*parts: str | bytes) -> str:
    sha = hashlib.sha256(FORMAT.encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        sha.update(len(data).to_bytes(8, "big"))
        sha.update(data)
    return sha.hexdigest()


@dataclass(frozen=True)
class LayerBlob:
    """A written layer: how its blob is addressed."""

    digest: Digest  # of the compressed blob
    diff_id: Digest  # of the uncompressed tar
    size: int
    media_type: str

    @classmethod
    def from_json(cls, data: dict) -> LayerBlob:
        """From a record (a registry cache's too): a size that is not a non-negative integer is a
        ValueError, never an OverflowError from `int(1e999)`."""
        size = data["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError(f"a layer's size must be a non-negative integer, not {str(size)[:40]}")
        return cls(Digest(data["digest"]), Digest(data["diff_id"]), size, str(data["media_type"]))


class BlobStore:
    def __init__(self, root: Path):
        self.root = root
        self.tmp = root / "tmp"
        self.created: set[Digest] = set()  # blobs this object put in the store: what a report calls built

    def blob_path(self, digest: Digest) -> Path:
        return self.root / Digest(digest).blob_name

    def has_blob(self, digest: Digest) -> bool:
        return self.blob_path(digest).is_file()

    def lookup(self, key: str) -> LayerBlob | None:
        data = self._read_json("layers", key)
        try:
            layer = LayerBlob.from_json(data) if data is not None else None
        except (OcibuildError, KeyError, TypeError, ValueError):
            return None  # a damaged entry is a miss: the layer is written again
        return layer if layer is not None and self.has_blob(layer.digest) else None

    def lookup_set(self, key: str) -> list[tuple[LayerBlob, str]] | None:
        """The (blob, description) list stored for `key`, if every blob is still present."""
        entries = self._read_json("sets", key)
        try:
            layers = [(LayerBlob.from_json(e["blob"]), str(e["description"])) for e in entries] if entries else None
        except (OcibuildError, KeyError, TypeError, ValueError):
            return None
        return layers if layers is not None and all(self.has_blob(b.digest) for b, _ in layers) else None

    def store_set(self, key: str, layers: list[tuple[LayerBlob, str]]) -> None:
        self._write_json("sets", key, [{"blob": _json(b), "description": d} for b, d in layers])

    def layer(self, key: str, write: Callable[[BinaryIO], LayerBlob]) -> LayerBlob:
        """The cached layer for `key`, or the result of `write` into a new blob file."""
        cached = self.lookup(key)
        if cached is not None:
            return cached
        with TempFile(self.tmp, mode=0o644) as tmp, task("writing layer") as progress:
            blob = write(CountingWriter(tmp.file, progress))
            target = self.blob_path(blob.digest)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.commit(target)
        self.created.add(blob.digest)
        self._write_json("layers", key, _json(blob))
        return blob

    def as_layer(self, blob: LayerBlob, history: dict) -> Layer:
        """The image layer for a blob this store gave (a registry-backed store may answer with a
        layer whose bytes are still in a registry)."""
        return FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id,
                         self.blob_path(blob.digest), history)

    def add_blob(self, src: BinaryIO, digest: Digest | None, size: int | None = None) -> Path:
        """Copy a blob in, verifying its digest and size as it streams; refuse a mismatch.

        Reading stops one byte past `size`: a source that sends more than it declared is refused
        without being read to its end. With `digest` None the blob is named by its sha256 (a
        source that does not say, such as an old docker archive).
        """
        if digest is not None and self.has_blob(digest):
            return self.blob_path(digest)
        hasher = Digest(digest).hasher() if digest is not None else hashlib.sha256()
        limit = None if size is None else size + 1
        written = 0
        with TempFile(self.tmp, mode=0o644) as tmp:
            while chunk := src.read(CHUNK if limit is None else min(CHUNK, limit - written)):
                hasher.update(chunk)
                tmp.file.write(chunk)
                written += len(chunk)
                if limit is not None and written >= limit:
                    break
            actual = Digest(f"{hasher.name}:{hasher.hexdigest()}")
            if size is not None and written != size:
                raise ImageError(f"blob {digest or actual} is corrupt: {'more' if written > size else 'fewer'} "
                                 f"than the {size} bytes its descriptor declares")
            if digest is not None and actual != digest:
                raise ImageError(f"blob {digest} is corrupt: its content hashes to {actual}")
            target = self.blob_path(actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            path = tmp.commit(target)
        self.created.add(actual)
        return path

    def add_bytes(self, data: bytes) -> Path:
        digest = Digest.of(data)
        if not self.has_blob(digest):
            self.blob_path(digest).parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.blob_path(digest), data, mode=0o644, staging=self.tmp)
            self.created.add(digest)
        return self.blob_path(digest)

    def add_origin(self, digest: Digest, origin: str) -> None:
        """Remember that `origin` (`host/repository`) holds this blob: a later push of any image
        with it to another repository of that registry mounts it instead of uploading it."""
        with _ORIGINS:  # pushes run blobs in threads; temp files of one directory are swept by each writer
            known = self.origins(digest)
            if origin not in known:
                try:
                    self._write_json("origins", Digest(digest).encoded, [origin, *known][:8])
                except OSError:
                    pass  # a hint lost is an upload instead of a mount, never a failure

    def origins(self, digest: Digest) -> list[str]:
        """Where the blob was last seen (a hint only: a mount that fails falls back to an upload)."""
        data = self._read_json("origins", Digest(digest).encoded)
        return [o for o in data if isinstance(o, str)] if isinstance(data, list) else []

    def remember(self, kind: str, key: str, data) -> None:
        """Keep a small JSON record under `kind/key` (facts computed once, such as what an install
        held); `kind` is one of ocibuild's own names, `key` a `cache_key`."""
        self._write_json(kind, key, data)

    def recall(self, kind: str, key: str):
        """The record `remember` kept, or None (a damaged record reads as none)."""
        return self._read_json(kind, key)

    def _read_json(self, kind: str, key: str):
        try:
            return json.loads((self.root / kind / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def _write_json(self, kind: str, key: str, data) -> None:
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        write_atomic(directory / f"{key}.json", json.dumps(data).encode(), staging=self.tmp)


def _json(blob: LayerBlob) -> dict:
    return {k: str(v) if isinstance(v, str) else v for k, v in asdict(blob).items()}
