"""`Digest`: `algorithm:hex`, validated before it can name a blob or a path."""

from __future__ import annotations

import hashlib
import re

from ocibuild.errors import DigestError

# The algorithms the OCI image spec registers, with the exact length of their lower-case hex.
_ENCODED = {"sha256": re.compile(r"[a-f0-9]{64}"), "sha512": re.compile(r"[a-f0-9]{128}")}


class Digest(str):
    """A content digest such as `sha256:<64 hex>`.

    A `str` because it is a wire value that goes into JSON, URLs and dict keys unchanged; but
    one that only exists once validated, so `blob_path(digest)` can never be `../../etc`.
    """

    __slots__ = ()

    def __new__(cls, text: object) -> Digest:
        if isinstance(text, Digest):
            return text
        if not isinstance(text, str):
            raise DigestError(f"invalid digest {text!r}: expected a string such as sha256:<64 hex digits>")
        algorithm, sep, encoded = text.partition(":")
        pattern = _ENCODED.get(algorithm)
        if not sep or pattern is None or not pattern.fullmatch(encoded):
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise DigestError(f"invalid digest {shown!r}: expected sha256: and 64, or sha512: and 128, "
                              "lower-case hex digits")
        return super().__new__(cls, text)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}")

    @property
    def algorithm(self) -> str:
        return self.partition(":")[0]

    @property
    def encoded(self) -> str:
        return self.partition(":")[2]

    @property
    def blob_name(self) -> str:
        """Where an OCI layout keeps this blob: `blobs/<algorithm>/<hex>`."""
        return f"blobs/{self.algorithm}/{self.encoded}"

    def hasher(self):
        """A fresh hash object of this digest's algorithm, to verify a stream against it."""
        return hashlib.new(self.algorithm)
