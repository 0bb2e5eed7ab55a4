"""Pushing referrers (SBOMs, provenance: manifests with a `subject`) so that clients find them.

Each referrer is put by digest. A registry with the OCI 1.1 referrers API answers that put with an
`OCI-Subject` header and indexes it itself; for one without (distribution 2.8, the Debian
`docker-registry`), the referrers tag schema: an image index tagged `sha256-<hex of the subject>`
listing every referrer of that subject, merged with what the tag already lists.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ocibuild.errors import RegistryError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, canonical_json, parse_json
from ocibuild.oci.digest import Digest
from ocibuild.oci.index import Manifest
from ocibuild.registry.client import MAX_MANIFEST, Repository


def referrers_tag(subject: Digest) -> str:
    algorithm, _, hexdigest = str(subject).partition(":")
    return f"{algorithm}-{hexdigest}"[:128]


def subject_of(manifest: Manifest) -> Descriptor | None:
    subject = parse_json(manifest.manifest_bytes(), f"manifest {manifest.digest}").get("subject")
    return Descriptor.from_json(subject, f"the subject of {manifest.digest}") if subject is not None else None


def put_referrer(repo: Repository, manifest: Manifest) -> bool:
    """Put `manifest` by digest; True when the registry says it indexed the subject itself."""
    headers = repo.put_manifest(str(manifest.digest), manifest.manifest_bytes(), manifest.media_type)
    return bool(headers.get("OCI-Subject"))


def tagged_referrers(repo: Repository, subject: Digest) -> list[dict]:
    """What the fallback tag lists now (nothing if it does not exist), each entry checked as a
    descriptor: it is the registry's answer, merged into what this push writes back."""
    response = repo.transport.request("GET", f"/v2/{repo.name}/manifests/{referrers_tag(subject)}", repo.push,
                                      expected=(200, 404), headers={"Accept": mediatypes.INDEX}, stream=True,
                                      what=f"read the referrers of {subject} in {repo.name}")
    try:  # a 404's answer is read too: read to its end, the connection goes back to the pool
        data = response.raw.read(MAX_MANIFEST + 1, decode_content=True)
    finally:
        response.close()
    if response.status_code == 404:
        return []
    if len(data) > MAX_MANIFEST:
        raise RegistryError(f"{repo}: the referrers index of {subject} is too large")
    where = f"the referrers index of {subject} in {repo.name}"
    manifests = parse_json(data, where).get("manifests")
    if not isinstance(manifests, list):
        return []
    return [Descriptor.from_json(m, f"{where}, entry {i}").to_json() for i, m in enumerate(manifests)]


def push_referrers(repo: Repository, referrers: tuple[Manifest, ...]) -> list[Digest]:
    """Put each referrer; where the registry did not index them, update the subject's tag.
    Returns the digests of the referrers pushed."""
    unindexed: dict[Digest, list[Manifest]] = {}
    with ThreadPoolExecutor(max(1, min(len(referrers), 4))) as pool:  # independent puts, at once
        indexed = list(pool.map(lambda manifest: put_referrer(repo, manifest), referrers))
    for manifest, by_registry in zip(referrers, indexed):
        subject = subject_of(manifest)
        if not by_registry and subject is not None:
            unindexed.setdefault(subject.digest, []).append(manifest)
    for subject, manifests in unindexed.items():
        listed = tagged_referrers(repo, subject)
        known = {m.get("digest") for m in listed}
        for manifest in manifests:
            if str(manifest.digest) not in known:
                document = parse_json(manifest.manifest_bytes(), f"manifest {manifest.digest}")
                annotations = document.get("annotations") if isinstance(document.get("annotations"), dict) else None
                descriptor = manifest.descriptor(annotations or None)  # the spec: the referrer's own annotations
                listed.append(descriptor.to_json())
        index = canonical_json({"schemaVersion": 2, "mediaType": mediatypes.INDEX, "manifests": listed})
        repo.put_manifest(referrers_tag(subject), index, mediatypes.INDEX)
    return [m.digest for m in referrers]
