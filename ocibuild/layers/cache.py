"""The content-addressed cache under `$OCIBUILD_HOME/cache`.

`blobs/sha256/<hex>` holds layer blobs (ours and base images'), `layers/<key>.json` maps a
layer's inputs to the blob written for them, and `sets/<key>.json` maps a whole group of inputs
(such as a dependency lock) to its layers, so a warm build is a few small reads and no tar pass.
Every write goes to a temporary file and is renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import BinaryIO

from ocibuild.errors import ImageError
from ocibuild.layers.tarwriter import CHUNK, HashingWriter, LayerBlob

# Bump when the layer format changes, so that old cache entries are never reused.
FORMAT = "ocibuild-layer-v1"


def cache_key(*parts: str | bytes) -> str:
    sha = hashlib.sha256(FORMAT.encode())
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        sha.update(len(data).to_bytes(8, "big"))
        sha.update(data)
    return sha.hexdigest()


class LayerCache:
    def __init__(self, root: Path):
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.tmp = root / "tmp"

    def blob_path(self, digest: str) -> Path:
        return self.blobs / digest.removeprefix("sha256:")

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def lookup(self, key: str) -> LayerBlob | None:
        blob = self._read_json("layers", key)
        if blob is None:
            return None
        layer = LayerBlob(**blob)
        return layer if self.has_blob(layer.digest) else None

    def lookup_set(self, key: str) -> list[tuple[LayerBlob, str]] | None:
        """The (blob, description) list stored for `key`, if every blob is still present."""
        entries = self._read_json("sets", key)
        if entries is None:
            return None
        layers = [(LayerBlob(**e["blob"]), e["description"]) for e in entries]
        return layers if all(self.has_blob(b.digest) for b, _ in layers) else None

    def store_set(self, key: str, layers: list[tuple[LayerBlob, str]]) -> None:
        self._write_json("sets", key, [{"blob": asdict(b), "description": d} for b, d in layers])

    def layer(self, key: str, write: Callable[[BinaryIO], LayerBlob]) -> LayerBlob:
        """The cached layer for `key`, or the result of `write` into a new blob file."""
        cached = self.lookup(key)
        if cached is not None:
            return cached
        self.blobs.mkdir(parents=True, exist_ok=True)
        with self._temp_file() as (tmp, f):
            blob = write(f)
            f.flush()
            os.replace(tmp, self.blob_path(blob.digest))
        self._write_json("layers", key, asdict(blob))
        return blob

    def add_blob(self, src: BinaryIO, digest: str | None, size: int | None = None) -> Path:
        """Copy a blob in, verifying its digest (and size) as it streams; refuse a mismatch.

        With `digest` None the blob is named by what it hashes to (a source that does not say).
        """
        if digest is not None and self.has_blob(digest):
            return self.blob_path(digest)
        self.blobs.mkdir(parents=True, exist_ok=True)
        with self._temp_file() as (tmp, f):
            hashing = HashingWriter(f)
            try:
                while chunk := src.read(CHUNK):
                    hashing.write(chunk)
            finally:
                hashing.close()
            if digest is not None and (hashing.digest != digest or (size is not None and hashing.size != size)):
                raise ImageError(f"blob {digest} is corrupt: its content hashes to {hashing.digest}"
                                 f" ({hashing.size} bytes, expected {size})")
            f.flush()
            path = self.blob_path(hashing.digest)
            os.replace(tmp, path)
        return path

    def _temp_file(self):
        return _TempFile(self.tmp)

    def _read_json(self, kind: str, key: str):
        try:
            return json.loads((self.root / kind / f"{key}.json").read_text())
        except (OSError, ValueError):
            return None

    def _write_json(self, kind: str, key: str, data) -> None:
        directory = self.root / kind
        directory.mkdir(parents=True, exist_ok=True)
        with self._temp_file() as (tmp, f):
            f.write(json.dumps(data).encode())
            f.flush()
            os.replace(tmp, directory / f"{key}.json")


class _TempFile:
    """A temporary file in `directory`, removed on exit unless it was renamed away."""

    def __init__(self, directory: Path):
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory)
        self.path = Path(name)
        self.file = os.fdopen(fd, "wb")

    def __enter__(self):
        return self.path, self.file

    def __exit__(self, *exc):
        self.file.close()
        self.path.unlink(missing_ok=True)
