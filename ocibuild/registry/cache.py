"""A layer cache in a registry, for runners that start with an empty `$OCIBUILD_HOME`.

`containerize --cache-to REF` pushes a small OCI artifact (`application/vnd.ocibuild.cache.v1`):
its config maps each layer's content key (the same key the local cache uses: locked wheel
RECORDs or the lock's lines, Debian packages' hashes, Python version, platform, compression,
time, layer-format version) to the layer's descriptor and diff_id, and each set key (a whole
dependency lock) to its layers; its layers are those blobs, so they stay in the registry and can
be mounted from it. `--cache-from REF` reads it: on a local miss a key found there gives a layer
that is not built, whose bytes stay in the registry (`RegistryLayer`: mounted or skipped at
push, downloaded and verified only when an output needs them).

Nothing read is trusted: an entry is used only if the registry has a blob of that digest (HEAD);
when the output needs the bytes anyway (an archive, a layout, `--load`), they are downloaded at
once, verified against the digest, and the diff_id is recomputed from them: an entry whose blob
is missing or whose diff_id is wrong is dropped with a warning and that layer is built normally.
A key that two sources (two caches, or the local cache and a registry cache) map to different
diff_ids is an error: equal inputs must give equal layers.

`RegistryCacheStore` is a `BlobStore` that consults the registry on a local miss and records
every key the build used; the builders (`LayerWriter`, `dependency_layers`, `debian_layer`) only
see a blob store, so they need no hook of their own.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pyzstd

from ocibuild.errors import AuthError, ImageError, RegistryError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, canonical_json, parse_json
from ocibuild.oci.digest import Digest
from ocibuild.oci.index import Artifact
from ocibuild.oci.layer import FileBlob, Layer
from ocibuild.oci.reference import Reference
from ocibuild.registry.client import Repository
from ocibuild.registry.pull import RegistryLayer, find_manifest
from ocibuild.registry.push import PushReport, push
from ocibuild.registry.session import Registries
from ocibuild.store.blobs import CHUNK, FORMAT, BlobStore, LayerBlob

log = logging.getLogger(__name__)

CACHE_TYPE = "application/vnd.ocibuild.cache.v1"
CACHE_CONFIG = "application/vnd.ocibuild.cache.config.v1+json"
MAX_CONFIG = 4 * 1024 * 1024
KEY = re.compile(r"[0-9a-f]{64}")
LAYER_TYPES = {mediatypes.LAYER, mediatypes.LAYER + "+gzip", mediatypes.LAYER + "+zstd"}

Set = list[tuple[LayerBlob, str]]


def blob_json(blob: LayerBlob) -> dict:
    return {"digest": str(blob.digest), "diff_id": str(blob.diff_id), "size": blob.size, "media_type": blob.media_type}


def _blob(data: object, where: str) -> LayerBlob:
    if not isinstance(data, dict):
        raise ImageError(f"{where}: an entry is not an object")
    blob = LayerBlob.from_json(data)
    if blob.media_type not in LAYER_TYPES:
        raise ImageError(f"{where}: entry {blob.digest[:19]} has media type {blob.media_type}")
    return blob


class CacheSource:
    """One `--cache-from` artifact, read and checked: its repository and its entries."""

    def __init__(self, repo: Repository, layers: dict[str, LayerBlob], sets: dict[str, Set], where: str,
                 locks: dict[str, dict] | None = None):
        self.repo, self.layers, self.sets, self.where = repo, layers, sets, where
        self.locks = locks or {}  # {key: {"kind": "python"|"debian", "text": ...}}: see bento.lockcache

    @classmethod
    def read(cls, ref: Reference, registries: Registries, blobs: BlobStore) -> CacheSource | None:
        """None (with a warning) when the registry has no such cache yet: the first run."""
        try:
            repo, data, media_type, digest = find_manifest(ref, registries)
        except AuthError:
            raise
        except RegistryError as exc:
            log.warning("cache %s not read, building without it: %s", ref, exc)
            return None
        where = f"cache {ref}"
        document = parse_json(data, where)
        if document.get("artifactType") != CACHE_TYPE:
            raise ImageError(f"{where} is {document.get('artifactType') or 'a plain image'}, not {CACHE_TYPE}")
        config = Descriptor.from_json(document.get("config"), f"the config of {where}")
        if config.media_type != CACHE_CONFIG or config.size > MAX_CONFIG:
            raise ImageError(f"{where}: its config is {config.media_type} of {config.size} bytes: refusing it")
        table = parse_json(repo.fetch_blob(config.digest, config.size, blobs).read_bytes(), where)
        if table.get("format") != FORMAT:  # another layer format: none of its keys can match ours
            log.warning("%s was written for layer format %s, not %s: ignoring it", where, table.get("format"), FORMAT)
            return cls(repo, {}, {}, where)
        layers, sets, locks = table.get("layers") or {}, table.get("sets") or {}, table.get("locks") or {}
        if not isinstance(layers, dict) or not isinstance(sets, dict) or not isinstance(locks, dict):
            raise ImageError(f"{where}: malformed layers, sets or locks")
        if not all(isinstance(v, dict) and isinstance(v.get("kind"), str) and isinstance(v.get("text"), str)
                   for v in locks.values()):
            raise ImageError(f"{where}: malformed lock entry")
        for key in [*layers, *sets, *locks]:
            if not KEY.fullmatch(key):
                raise ImageError(f"{where}: {key[:80]!r} is not a cache key")
        try:
            parsed_layers = {k: _blob(v, where) for k, v in layers.items()}
            parsed_sets = {k: [(_blob(e["blob"], where), str(e["description"])) for e in v]
                           for k, v in sets.items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ImageError(f"{where}: malformed entry: {exc}") from None
        return cls(repo, parsed_layers, parsed_sets, where, locks)


class RegistryCacheStore(BlobStore):
    """The local blob store, with registry caches behind it; it remembers what the build used."""

    def __init__(self, local: BlobStore, sources: list[CacheSource], needs_bytes: bool):
        super().__init__(local.root)
        self.created = local.created  # one store on disk: one record of what the command wrote
        self.needs_bytes = needs_bytes
        self.layers: dict[str, tuple[LayerBlob, CacheSource]] = {}
        self.sets: dict[str, tuple[Set, CacheSource]] = {}
        for source in sources:
            for key, blob in source.layers.items():
                self._merge(self.layers, key, blob, source, [blob])
            for key, entries in source.sets.items():
                self._merge(self.sets, key, entries, source, [b for b, _ in entries])
        self.remote: dict[Digest, Repository] = {}  # blobs this build takes from a registry
        self.used_layers: dict[str, LayerBlob] = {}
        self.used_sets: dict[str, Set] = {}
        self._usable: dict[Digest, bool] = {}
        self.locks: dict[str, dict] = {}  # read from the sources (first wins), and written by --cache-to
        for source in sources:
            for key, lock in source.locks.items():
                self.locks.setdefault(key, lock)

    @staticmethod
    def _merge(table: dict, key: str, value, source: CacheSource, blobs: list[LayerBlob]) -> None:
        if key in table and [b.diff_id for b in _blobs(table[key][0])] != [b.diff_id for b in blobs]:
            raise ImageError(f"cache key collision: {source.where} and {table[key][1].where} map {key[:16]} "
                             "to different layers")
        table.setdefault(key, (value, source))

    # -- what the builders call --------------------------------------------------------------

    def lookup(self, key: str) -> LayerBlob | None:
        found = super().lookup(key)
        if found is None and key in self.layers:
            blob, source = self.layers[key]
            found = blob if self._take(blob, source) else None
            if found is None:
                del self.layers[key]
        if found is not None:
            self._record_layer(key, found)
        return found

    def lookup_set(self, key: str) -> Set | None:
        found = super().lookup_set(key)
        if found is None and key in self.sets:
            entries, source = self.sets[key]
            found = entries if all(self._take(b, source) for b, _ in entries) else None
            if found is None:
                del self.sets[key]
        if found is not None:
            self._record_set(key, found)
        return found

    def layer(self, key: str, write: Callable[[BinaryIO], LayerBlob]) -> LayerBlob:
        blob = super().layer(key, write)
        self._record_layer(key, blob)
        return blob

    def store_set(self, key: str, layers: Set) -> None:
        super().store_set(key, layers)
        self._record_set(key, layers)

    def as_layer(self, blob: LayerBlob, history: dict) -> Layer:
        repo = self.remote.get(blob.digest)
        if repo is not None and not self.has_blob(blob.digest):
            return RegistryLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, repo, self, history)
        return super().as_layer(blob, history)

    # -- checks --------------------------------------------------------------------------------

    def _take(self, blob: LayerBlob, source: CacheSource) -> bool:
        """Whether a registry entry may stand for a layer: its blob is there (and, when the
        output needs the bytes, they hash to the entry's diff_id)."""
        if blob.digest in self._usable:
            return self._usable[blob.digest]
        ok = self._check(blob, source)
        self._usable[blob.digest] = ok
        if ok and not self.has_blob(blob.digest):
            self.remote[blob.digest] = source.repo
        return ok

    def _check(self, blob: LayerBlob, source: CacheSource) -> bool:
        if not self.has_blob(blob.digest) and not source.repo.blob_exists(blob.digest, for_push=False):
            log.warning("%s names blob %s, which %s does not have: building that layer", source.where,
                        blob.digest[:19], source.repo)
            return False
        if self.needs_bytes or self.has_blob(blob.digest):
            path = source.repo.fetch_blob(blob.digest, blob.size, self)  # verified against digest and size
            actual = diff_id_of(path)
            if actual != blob.diff_id:
                log.warning("%s says blob %s has diff_id %s, but it is %s: building that layer", source.where,
                            blob.digest[:19], blob.diff_id[:19], actual[:19])
                return False
        return True

    def _record_layer(self, key: str, blob: LayerBlob) -> None:
        known = self.layers.get(key)
        if known and known[0].diff_id != blob.diff_id:
            raise ImageError(f"cache key collision: {known[1].where} maps {key[:16]} to diff_id "
                             f"{known[0].diff_id[:19]}, this build made {blob.diff_id[:19]}")
        self.used_layers[key] = blob

    def _record_set(self, key: str, entries: Set) -> None:
        known = self.sets.get(key)
        if known and [b.diff_id for b, _ in known[0]] != [b.diff_id for b, _ in entries]:
            raise ImageError(f"cache key collision: {known[1].where} maps the set {key[:16]} to other layers "
                             "than this build made")
        self.used_sets[key] = list(entries)

    # -- --cache-to ------------------------------------------------------------------------------

    def artifact(self) -> Artifact:
        table = {"format": FORMAT,
                 "layers": {k: blob_json(b) for k, b in sorted(self.used_layers.items())},
                 "sets": {k: [{"blob": blob_json(b), "description": d} for b, d in v]
                          for k, v in sorted(self.used_sets.items())},
                 "locks": dict(sorted(self.locks.items()))}
        data = canonical_json(table)
        config = FileBlob(Descriptor.of(CACHE_CONFIG, data), self.add_bytes(data))
        blobs = {b.digest: b for b in self.used_layers.values()}
        blobs.update({b.digest: b for entries in self.used_sets.values() for b, _ in entries})
        layers = tuple(self.as_layer(b, {}) for _, b in sorted(blobs.items()))
        return Artifact(CACHE_TYPE, layers, config=config)


def _blobs(value) -> list[LayerBlob]:
    return [value] if isinstance(value, LayerBlob) else [b for b, _ in value]


def diff_id_of(path: Path) -> Digest:
    """The digest of the uncompressed tar in a layer blob (gzip, zstd or none)."""
    sha = hashlib.sha256()
    with open(path, "rb") as raw:
        head = raw.read(4)
        raw.seek(0)
        if head.startswith(b"\x1f\x8b"):
            stream = gzip.GzipFile(fileobj=raw)
        elif head.startswith(b"\x28\xb5\x2f\xfd"):
            stream = pyzstd.ZstdFile(raw)
        else:
            stream = raw
        try:
            while chunk := stream.read(CHUNK):
                sha.update(chunk)
        except (OSError, EOFError, pyzstd.ZstdError) as exc:
            raise ImageError(f"blob {path.name[:12]} does not decompress: {exc}") from None
    return Digest(f"sha256:{sha.hexdigest()}")


def open_cache(local: BlobStore, registries: Registries, cache_from: list[str], needs_bytes: bool) -> RegistryCacheStore:
    sources = [CacheSource.read(Reference.parse(ref), registries, local) for ref in cache_from]
    return RegistryCacheStore(local, [s for s in sources if s is not None], needs_bytes)


def write_cache(store: RegistryCacheStore, ref: str, registries: Registries) -> PushReport:
    target = Reference.parse(ref)
    if target.digest is not None:
        raise ImageError(f"--cache-to {ref}: name a tag, not a digest")
    return push(store.artifact(), target, registries, store)
