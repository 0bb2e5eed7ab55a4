"""Failures in the user's own code, told in one line that names their file and line.

The builder imports `service.py` to read its spec, and the runtime imports and instantiates it to
serve it; either can meet any exception the user's code raises. The line a person needs is the
innermost frame inside the service directory (`service.py:12`), not ocibuild's or importlib's
frames; the whole traceback stays chained to the error for `--verbose`.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

from ocibuild.errors import OcibuildError


def shown(root: Path, filename: str) -> str:
    """A path as the user knows it: relative to the service directory when inside it."""
    path = Path(filename).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def origin(root: Path, exc: BaseException) -> str | None:
    """`file:line` of the innermost frame of `exc` in the service's own code, or None when no
    frame is. Not the service's: frozen or generated code (`<frozen importlib._bootstrap>`, no
    path, though it would resolve inside the service directory when that is the working
    directory), and packages imported from a path entry inside it (a project's `.venv`)."""
    libraries = [p for p in _path_entries() if p != root and p.is_relative_to(root)]
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _own(root, f.filename, libraries)]
    return f"{shown(root, frames[-1].filename)}:{frames[-1].lineno}" if frames else None


def failure(root: Path, exc: BaseException, doing: str) -> str:
    """One line for an exception the user's code raised while ocibuild was `doing` something
    with it (importing `service`, starting `Summarization`)."""
    if isinstance(exc, SyntaxError) and exc.filename and _own(root, exc.filename, []):
        # its own file and line (the frames are importlib's); one from `compile` or `ast.parse`
        # names `<unknown>`, and is told by the frame that called it, as any other exception
        return f"{shown(root, exc.filename)}:{exc.lineno}: syntax error: {exc.msg or 'invalid syntax'}"
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - the user's __str__ may fail too
        text = "(its message cannot be shown)"
    what = text if isinstance(exc, OcibuildError) else f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    where = origin(root, exc)
    return " ".join(f"{where or doing}: {what}".split())


def _own(root: Path, filename: str, libraries: list[Path]) -> bool:
    if not Path(filename).is_absolute():
        return False
    path = Path(filename).resolve()
    return path.is_relative_to(root) and not any(path.is_relative_to(lib) for lib in libraries)


def _path_entries() -> list[Path]:
    entries = []
    for entry in sys.path:
        try:
            entries.append(Path(entry or ".").resolve())
        except (OSError, RuntimeError, ValueError):
            continue
    return entries
