"""`Descriptor`: what points at a blob (media type, digest, size), and canonical JSON."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ocibuild.errors import DigestError, ImageError
from ocibuild.oci.digest import Digest
from ocibuild.oci.platform import Platform


def canonical_json(data) -> bytes:
    """Sorted keys, no spaces: the same value always gives the same bytes and digest."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_json(data: bytes, where: str, expected: type = dict):
    """A JSON object (or, with `expected=list`, a list) from untrusted bytes, or an ImageError
    naming `where`."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageError(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:  # json's decoder recurses per level: `[[[[...` a few KB deep
        raise ImageError(f"{where} is not valid JSON: nested too deeply") from None
    if not isinstance(value, expected):
        raise ImageError(f"{where} is not a JSON {'object' if expected is dict else expected.__name__}")
    return value


def string_map(value: object, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ImageError(f"{where}: annotations must map strings to strings")
    return dict(value)


@dataclass(frozen=True)
class Descriptor:
    """What points at a blob: media type, digest and size, plus what an index or artifact adds."""

    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None

    @classmethod
    def of(cls, media_type: str, data: bytes, **extra) -> Descriptor:
        return cls(media_type, Digest.of(data), len(data), **extra)

    @classmethod
    def from_json(cls, data: object, where: str) -> Descriptor:
        """A descriptor read from a manifest, an index or a response: every field checked."""
        if not isinstance(data, dict):
            raise ImageError(f"{where}: a descriptor must be a JSON object")
        media_type, size, artifact_type = data.get("mediaType"), data.get("size"), data.get("artifactType")
        if not isinstance(media_type, str) or not media_type:
            raise ImageError(f"{where}: a descriptor needs a mediaType")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageError(f"{where}: a descriptor needs a non-negative integer size")
        if artifact_type is not None and not isinstance(artifact_type, str):
            raise ImageError(f"{where}: artifactType must be a string")
        platform = data.get("platform")
        try:
            digest = Digest(data.get("digest"))
        except DigestError as exc:  # name the input: a bare "invalid digest" does not say where
            raise DigestError(f"{where}: {exc}") from None
        return cls(media_type, digest, size, string_map(data.get("annotations"), where),
                   Platform.from_json(platform, where) if platform is not None else None, artifact_type)

    def to_json(self) -> dict:
        out = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out


class Manifested:
    """What every manifest (image, index, artifact) derives from its bytes: its digest, and a
    descriptor naming it (subclasses give `manifest_bytes()`, `media_type`, and what else their
    descriptor says: a platform, an artifact type)."""

    def manifest_bytes(self) -> bytes:
        raise NotImplementedError

    media_type: str

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest_bytes())

    def descriptor(self, annotations: dict | None = None) -> Descriptor:
        data = self.manifest_bytes()
        return Descriptor(self.media_type, Digest.of(data), len(data), annotations, **self._described())

    def _described(self) -> dict:
        return {}
