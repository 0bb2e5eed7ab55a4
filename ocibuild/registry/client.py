"""Operations on one repository of a registry, over a Transport.

Every byte read is checked: manifests against the digest asked for (or the one the registry
announces), blobs against their digest as they stream into the cache. Uploads stream from disk:
one PUT for small blobs, PATCH chunks for large ones; manifests are sent as the exact bytes
whose digest we computed.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ocibuild.errors import ImageError, RegistryError
from ocibuild.oci import mediatypes
from ocibuild.oci.digest import Digest
from ocibuild.progress import CountingReader, Task, task
from ocibuild.registry.transport import Transport
from ocibuild.store.blobs import BlobStore

CHUNK_SIZE = 64 * 1024 * 1024  # blobs up to this size go in one PUT; larger ones in PATCHes of this size
OCTET = {"Content-Type": "application/octet-stream"}
MANIFEST_TYPES = ", ".join([*mediatypes.INDEXES, *mediatypes.MANIFESTS])
MAX_MANIFEST = 4 * 1024 * 1024  # the distribution spec's own limit for manifests


def scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"


class FileSegment:
    """`length` bytes of a file from `offset`, readable as a stream (never loaded whole)."""

    def __init__(self, path: Path, offset: int, length: int, progress: Task = Task()):
        self.file = open(path, "rb")
        self.file.seek(offset)
        self.remaining = length
        self.progress = progress

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        data = self.file.read(n)
        self.remaining -= len(data)
        self.progress.advance(len(data))
        return data

    def __len__(self) -> int:
        return self.remaining

    def close(self) -> None:
        self.file.close()


class Repository:
    def __init__(self, transport: Transport, name: str, chunk_size: int = CHUNK_SIZE):
        self.transport = transport
        self.name = name
        self.chunk_size = chunk_size
        self.pull = (scope(name, "pull"),)
        self.push = (scope(name, "pull,push"),)

    def __str__(self) -> str:
        return f"{self.transport.host}/{self.name}"

    def blob_exists(self, digest: Digest, for_push: bool = True) -> bool:
        response = self.transport.request("HEAD", f"/v2/{self.name}/blobs/{digest}", self.push if for_push else self.pull,
                                          expected=(200, 404), what=f"check blob {digest[:19]} in {self.name}")
        response.close()
        return response.status_code == 200

    def manifest(self, reference: str) -> tuple[bytes, str, Digest]:
        """(bytes, media type, digest) of a manifest or index, verified, at most MAX_MANIFEST bytes."""
        response = self.transport.request("GET", f"/v2/{self.name}/manifests/{reference}", self.pull,
                                          expected=(200,), headers={"Accept": MANIFEST_TYPES}, stream=True,
                                          what=f"read {self.name}:{reference}")
        try:
            data = response.raw.read(MAX_MANIFEST + 1, decode_content=True)
        except (OSError, ValueError) as exc:
            raise RegistryError(f"{self}: reading the manifest of {reference} failed: {exc}") from None
        finally:
            response.close()
        if len(data) > MAX_MANIFEST:
            raise RegistryError(f"{self}: the manifest of {reference} is larger than {MAX_MANIFEST} bytes: refusing it")
        digest = Digest.of(data)
        try:
            claimed = Digest(reference) if ":" in reference else response.headers.get("Docker-Content-Digest")
            claimed = Digest(claimed) if claimed else None
        except ImageError as exc:
            raise RegistryError(f"{self}: the registry named the manifest of {reference} with {exc}") from None
        if claimed and claimed != digest:
            raise RegistryError(f"{self}: the manifest for {reference} hashes to {digest}, not {claimed}: refusing it")
        media_type = response.headers.get("Content-Type", "").split(";")[0]
        return data, media_type, digest

    def fetch_blob(self, digest: Digest, size: int, blobs: BlobStore) -> Path:
        """Stream a blob into the store, verifying it and reading no more than `size` bytes; a
        broken transfer is retried from the start."""
        if blobs.has_blob(digest):
            return blobs.blob_path(digest)
        attempts = self.transport.retry.attempts
        for attempt in range(attempts):
            response = self.transport.request("GET", f"/v2/{self.name}/blobs/{digest}", self.pull, expected=(200,),
                                              stream=True, what=f"download blob {digest[:19]} from {self.name}")
            try:
                with task(f"download {digest.encoded[:12]}", size) as progress:
                    path = blobs.add_blob(CountingReader(response.raw, progress), digest, size)
                blobs.add_origin(digest, str(self))
                return path
            except ImageError as exc:
                raise RegistryError(f"{self} sent a blob that does not match its digest: {exc}") from None
            except (OSError, ValueError) as exc:  # reset mid-body (urllib3's errors are OSErrors)
                if attempt + 1 == attempts:
                    raise RegistryError(f"{self}: downloading {digest[:19]} kept failing: {exc}") from None
            finally:
                response.close()
        raise RegistryError(f"{self}: could not download {digest}")

    def mount(self, digest: Digest, source: str) -> bool:
        """Cross-repository mount; False when the registry wants an ordinary upload instead."""
        response = self.transport.request("POST", f"/v2/{self.name}/blobs/uploads/?mount={digest}&from={source}",
                                          self.push + (scope(source, "pull"),), expected=(201, 202),
                                          what=f"mount {digest[:19]} from {source} into {self.name}")
        response.close()
        if response.status_code == 202 and response.headers.get("Location"):
            cancel = self.transport.request("DELETE", response.headers["Location"], self.push, expected=(204, 404, 405),
                                            what="cancel an unused upload")
            cancel.close()
        return response.status_code == 201

    def upload(self, digest: Digest, size: int, path: Path) -> None:
        """Upload from disk; if the registry got it but the answer was lost, a HEAD says so."""
        try:
            with task(f"upload {digest.encoded[:12]}", size) as progress:
                self._upload(digest, size, path, progress)
        except RegistryError:
            if not self.blob_exists(digest):
                raise

    def _upload(self, digest: Digest, size: int, path: Path, progress: Task) -> None:
        start = self.transport.request("POST", f"/v2/{self.name}/blobs/uploads/", self.push, expected=(202,),
                                       headers={"Content-Length": "0"}, what=f"start an upload to {self.name}")
        start.close()
        location = start.headers.get("Location")
        if not location:
            raise RegistryError(f"{self}: the registry started an upload without a Location")
        what = f"upload {digest[:19]} to {self.name}"
        if size <= self.chunk_size:
            done = self.transport.request("PUT", _with_digest(location, digest), self.push, expected=(201,),
                                          headers={**OCTET, "Content-Length": str(size)}, size=size,
                                          body=lambda: FileSegment(path, 0, size, progress), what=what)
            done.close()
            return
        for offset in range(0, size, self.chunk_size):
            length = min(self.chunk_size, size - offset)
            chunk = self.transport.request(
                "PATCH", location, self.push, expected=(202,), size=length, what=what,
                headers={**OCTET, "Content-Length": str(length), "Content-Range": f"{offset}-{offset + length - 1}"},
                body=lambda offset=offset, length=length: FileSegment(path, offset, length, progress))
            chunk.close()
            location = chunk.headers.get("Location", location)
        done = self.transport.request("PUT", _with_digest(location, digest), self.push, expected=(201,),
                                      headers={"Content-Length": "0"}, what=what)
        done.close()

    def put_manifest(self, reference: str, data: bytes, media_type: str) -> Mapping[str, str]:
        """Put `data` under `reference` (a tag or its digest); the answer's headers (a registry
        with the referrers API says `OCI-Subject` there)."""
        digest = Digest.of(data)
        response = self.transport.request("PUT", f"/v2/{self.name}/manifests/{reference}", self.push, expected=(201,),
                                          headers={"Content-Type": media_type}, body=data, size=len(data),
                                          what=f"push the manifest of {self.name}:{reference}")
        response.close()
        claimed = response.headers.get("Docker-Content-Digest")
        if claimed and claimed != digest:
            raise RegistryError(f"{self}: stored the manifest as {claimed}, but its bytes hash to {digest}")
        return response.headers


def _with_digest(location: str, digest: str) -> str:
    return f"{location}{'&' if '?' in location else '?'}digest={digest}"
