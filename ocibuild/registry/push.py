"""Pushing an image, an index or an artifact: blobs first (several at once), manifests after the
blobs and children they name, the tag last.

For each distinct blob: HEAD, and skip what the repository has; mount across repositories when
the blob came from another repository of the same registry; otherwise upload it, streaming from
disk. Manifests go as the exact bytes whose digest is reported.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ocibuild.errors import RegistryError
from ocibuild.oci.digest import Digest
from ocibuild.oci.index import Manifest, walk
from ocibuild.oci.layer import Blob
from ocibuild.oci.reference import Reference
from ocibuild.registry.client import Repository
from ocibuild.registry.session import Registries
from ocibuild.store.blobs import BlobStore

WORKERS = 4


@dataclass
class PushReport:
    reference: Reference
    digest: Digest
    skipped: list[Digest] = field(default_factory=list)
    mounted: list[Digest] = field(default_factory=list)
    uploaded: list[Digest] = field(default_factory=list)
    referrers: list[Digest] = field(default_factory=list)

    @property
    def pushed(self) -> Reference:
        """`REGISTRY/REPOSITORY@DIGEST`: what a script should deploy."""
        return Reference(self.reference.registry, self.reference.repository, None, self.digest)

    def summary(self) -> str:
        referrers = f", {len(self.referrers)} referrers" if self.referrers else ""
        return (f"{self.pushed} ({len(self.uploaded)} uploaded, {len(self.mounted)} mounted, "
                f"{len(self.skipped)} already there{referrers})")


def push(root: Manifest, ref: Reference, registries: Registries, blobs: BlobStore,
         workers: int = WORKERS, referrers: tuple[Manifest, ...] = ()) -> PushReport:
    """`referrers` (manifests whose subject is `root` or one of its images) go after the tag.
    A digest in `ref` is a claim about what is pushed: another one is refused before anything is sent."""
    if ref.digest is not None and ref.digest != root.digest:
        raise RegistryError(f"{ref} names {ref.digest}, but what would be pushed is {root.digest}")
    repo = registries.repository(ref.api_host, ref.repository)
    report = PushReport(ref, root.digest)
    manifests = list(walk(root))
    unique: dict[Digest, Blob | bytes] = {}
    for manifest in manifests + [m for r in referrers for m in walk(r)]:
        unique.update(manifest.inline_blobs())
        unique.update({b.descriptor.digest: b for b in manifest.blobs()})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(lambda item: (item[0], _push_blob(*item, repo, blobs)), unique.items()))
    for digest, outcome in outcomes:
        getattr(report, outcome).append(digest)
    for manifest in manifests[:-1]:  # children by digest, before the manifests that name them
        repo.put_manifest(manifest.digest, manifest.manifest_bytes(), manifest.media_type)
    repo.put_manifest(ref.tag or root.digest, root.manifest_bytes(), root.media_type)
    if referrers:
        from ocibuild.registry.referrers import push_referrers

        report.referrers = push_referrers(repo, referrers)
    return report


def _push_blob(digest: Digest, blob: Blob | bytes, repo: Repository, blobs: BlobStore) -> str:
    outcome = _send_blob(digest, blob, repo, blobs)
    blobs.add_origin(digest, str(repo))
    return outcome


def _send_blob(digest: Digest, blob: Blob | bytes, repo: Repository, blobs: BlobStore) -> str:
    if repo.blob_exists(digest):
        return "skipped"
    if isinstance(blob, bytes):
        path: Path = blobs.add_bytes(blob)
        repo.upload(digest, len(blob), path)
        return "uploaded"
    # the blob's own repository first, then where this machine last pushed or pulled it
    for origin in ([blob.origin] if blob.origin else []) + blobs.origins(digest):
        host, _, source = origin.partition("/")
        if host == repo.transport.host and source != repo.name and repo.mount(digest, source):
            return "mounted"
    repo.upload(digest, blob.descriptor.size, blob.path())
    return "uploaded"
