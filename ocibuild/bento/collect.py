"""Which files of a service directory go into a bento (`.bentoignore`, gitignore semantics)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pathspec

from ocibuild.errors import SpecError

IGNORE_FILE = ".bentoignore"
BUILTIN_IGNORES = (".git/", "__pycache__/", "*.pyc", ".venv/")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceFile:
    """A file to copy (`link` None) or a symlink to recreate (`link` is its relative target)."""

    relpath: str
    size: int
    link: str | None = None


def ignore_spec(root: Path) -> pathspec.PathSpec:
    lines = list(BUILTIN_IGNORES)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file():
        try:
            lines += ignore_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as exc:
            raise SpecError(f"{ignore_file} is not UTF-8 text (byte {exc.start})") from None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as exc:  # pathspec's pattern errors
        raise SpecError(f"{ignore_file}: {exc}") from None


def collect_files(root: Path) -> list[SourceFile]:
    """Every file under `root` not ignored, sorted; links leaving `root` are skipped with a warning."""
    root = root.resolve()
    spec = ignore_spec(root)
    found: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        rel_dir = base.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        kept_dirs = []
        for d in sorted(dirnames):
            rel = prefix + d
            if spec.match_file(rel + "/"):
                continue
            if (base / d).is_symlink():
                filenames.append(d)  # handled as a link below, never descended into
            else:
                kept_dirs.append(d)
        dirnames[:] = kept_dirs
        for f in sorted(filenames):
            rel = prefix + f
            if spec.match_file(rel):
                continue
            entry = _source_file(root, base / f, rel)
            if entry:
                found.append(entry)
    return sorted(found, key=lambda s: s.relpath)


def _source_file(root: Path, path: Path, rel: str) -> SourceFile | None:
    if not path.is_symlink():
        return SourceFile(rel, path.stat().st_size) if path.is_file() else None
    try:
        target = path.resolve()
    except (RuntimeError, OSError):  # a loop: Python 3.11 raises RuntimeError, 3.13 OSError
        log.warning("skipping %s: symlink loop", rel)
        return None
    if not target.exists():
        log.warning("skipping %s: broken symlink", rel)
        return None
    if not target.is_relative_to(root):
        log.warning("skipping %s: symlink points outside the service directory", rel)
        return None
    return SourceFile(rel, 0, os.path.relpath(target, path.parent))


def check_module_kept(files: list[SourceFile], module_name: str) -> None:
    """The service's own module must be in the bento: a `.bentoignore` that drops it would give a
    bento, and an image, that cannot start."""
    path = module_name.replace(".", "/")
    if not any(f.relpath in (f"{path}.py", f"{path}/__init__.py") for f in files):
        raise SpecError(f"{path}.py, the service's module, is excluded by {IGNORE_FILE} (or is a link "
                        "leaving the service directory): the bento could not start the service")
