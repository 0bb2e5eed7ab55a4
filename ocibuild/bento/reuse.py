"""Nothing re-resolved that did not change: locks remembered by their inputs.

`build` resolves two locks, the Python one (uv, against package indexes) and the Debian one
(against the archive's signed index). Each is a function of its inputs: the requirements, the
constraints and pyproject uv reads, the indexes, the Python version and the platform; the Debian
packages asked for, the base's installed packages, the release, the architecture and the mirror.
The last lock made from the same inputs is kept in `$OCIBUILD_HOME/cache/locks/` under a hash of
them, and a build with the same inputs reuses it with no network access. `--refresh` resolves
again (and remembers the new answer), to pick up newer releases of what is not pinned.

Environment variables that change how uv resolves (`UV_*`) are inputs; credentials are not
(they change who may read an index, not what it holds), and are never written anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from ocibuild.store.atomic import write_atomic
from ocibuild.store.blobs import cache_key

FORMAT = "locks-1"
_SECRET_WORDS = ("PASSWORD", "USERNAME", "TOKEN", "AUTH", "CREDENTIAL", "KEY")


class LockCache:
    def __init__(self, home: Path, refresh: bool = False):
        self.root = home / "cache" / "locks"
        self.refresh = refresh

    def path(self, kind: str, inputs: Iterable[str | bytes]) -> Path:
        return self.root / f"{kind}-{cache_key(FORMAT, kind, *inputs)}"

    def text(self, kind: str, inputs: Iterable[str | bytes], resolve: Callable[[], str]) -> str:
        """The text `resolve` gave for the same inputs before, else (or with refresh) its new answer."""
        path = self.path(kind, inputs)
        if not self.refresh and path.is_file():
            return path.read_text()
        text = resolve()
        self.remember(path, text)
        return text

    def file(self, kind: str, inputs: Iterable[str | bytes], target: Path, resolve: Callable[[], None]) -> bool:
        """Write `target` as `resolve` did for the same inputs (True: reused), else call `resolve`
        (which writes `target`) and remember what it wrote."""
        path = self.path(kind, inputs)
        if not self.refresh and path.is_file():
            target.write_bytes(path.read_bytes())
            return True
        resolve()
        self.remember(path, target.read_text())
        return False

    def remember(self, path: Path, text: str) -> None:
        write_atomic(path, text.encode(), 0o644)


def uv_settings(environ) -> list[str]:
    """The `UV_*` settings of `environ` that may change a resolution (no credentials)."""
    return [f"{k}={v}" for k, v in sorted(environ.items())
            if k.startswith("UV_") and not any(word in k for word in _SECRET_WORDS)]


def file_input(path: Path | None) -> bytes:
    return b"" if path is None else path.read_bytes()
