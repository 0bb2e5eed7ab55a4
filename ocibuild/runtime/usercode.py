"""Failures in the user's own code, told in one line that names their file and line.

The builder imports `service.py` to read its spec, and the runtime imports and instantiates it to
serve it; either can meet any exception the user's code raises. The line a person needs is the
innermost frame inside the service directory (`service.py:12`), not ocibuild's or importlib's
frames; the whole traceback stays chained to the error for `--verbose`.
"""

from __future__ import annotations

import traceback
from pathlib import Path

from ocibuild.errors import OcibuildError


def shown(root: Path, filename: str) -> str:
    """A path as the user knows it: relative to the service directory when inside it."""
    path = Path(filename).resolve()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def origin(root: Path, exc: BaseException) -> str | None:
    """`file:line` of the innermost frame of `exc` inside `root`, or None when none is (a frame
    of frozen or generated code, `<frozen importlib._bootstrap>`, has no path: it is no file of
    the service's, even when the service directory is the working directory)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).is_absolute() and Path(f.filename).resolve().is_relative_to(root)]
    return f"{shown(root, frames[-1].filename)}:{frames[-1].lineno}" if frames else None


def failure(root: Path, exc: BaseException, doing: str) -> str:
    """One line for an exception the user's code raised while ocibuild was `doing` something
    with it (importing `service`, starting `Summarization`)."""
    if isinstance(exc, SyntaxError):  # its own file and line: the frames are importlib's
        where = f"{shown(root, exc.filename)}:{exc.lineno}" if exc.filename else doing
        return f"{where}: syntax error: {exc.msg}"
    what = str(exc) if isinstance(exc, OcibuildError) else f"{type(exc).__name__}: {exc}"
    where = origin(root, exc)
    return f"{where}: {what}" if where else f"{doing}: {what}"
