"""Bytecode for the image: a `.pyc` beside every `.py` a layer ships, made on the build host.

An image without `.pyc` recompiles every module it imports at every start, and its non-root user
cannot cache the result. So each layer carrying Python source also carries
`DIR/__pycache__/NAME.cpython-3XY.pyc`, compiled without running anything in the image:

- by an interpreter of the image's Python minor version (the host's when it matches, else one
  `uv python find` / `uv python install` provides: bytecode does not depend on the CPU);
- as PEP 552 *checked* hash-based `.pyc`: the source's hash, not its mtime (mtimes are clamped in
  layers, so a timestamp `.pyc` would be stale or wrong). Checked rather than unchecked: a file
  edited inside a container (a debugging session, a mounted fix) is then recompiled instead of
  silently running the old bytecode; the price is one SipHash of the source per import, a small
  fraction of unmarshalling it;
- deterministically: a fresh interpreter with `PYTHONHASHSEED=0` (frozenset constants), no site,
  sources in sorted order, and the image path as the code's file name (`dfile`), never the host's.

A layer's cache key names the compiling interpreter's full version (`Bytecode.key`).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ocibuild.errors import ImageError
from ocibuild.layers.tarwriter import Entry, with_parents
from ocibuild.layers.writer import LayerWriter, content_key
from ocibuild.store.atomic import temp_dir
from ocibuild.store.blobs import LayerBlob, cache_key

FORMAT = "pyc-checked-hash-1"  # bump when what is compiled, or how, changes
CHUNK = 400  # sources per compiler process

_COMPILER = r"""
import json, py_compile, sys
failed = []
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for source, cfile, dfile in json.load(sys.stdin):
    try:
        py_compile.compile(source, cfile=cfile, dfile=dfile, doraise=True, invalidation_mode=mode)
    except Exception:  # not Python this interpreter can compile (templates, Python 2 files): skipped, as compileall does
        failed.append(source)
json.dump(failed, sys.stdout)
"""


_SPARE: dict[str, subprocess.Popen] = {}  # interpreter -> a started compiler nobody took yet
_SPARE_LOCK = threading.Lock()


def _start_compiler(interpreter: str) -> subprocess.Popen:
    """A compiler reading its jobs on stdin: a fresh interpreter with a fixed hash seed (so
    frozenset constants marshal in one order) and no site."""
    env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}
    return subprocess.Popen([interpreter, "-S", "-s", "-B", "-c", _COMPILER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _stop_spares() -> None:
    with _SPARE_LOCK:
        for process in _SPARE.values():
            process.kill()
            process.wait()
        _SPARE.clear()


atexit.register(_stop_spares)  # a spare nobody took dies with the command


class _Memo:
    """Bytecode compiled during one `shared_bytecode` block, by what decides its bytes."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.compiled: set[Path] = set()
        self.failed: set[Path] = set()
        self._lock = threading.Lock()

    def path(self, bytecode: Bytecode, source: Path, image_path: str) -> Path:
        """Where the `.pyc` of these source bytes at this image path, by this compiler, lives."""
        content = hashlib.sha256(source.read_bytes()).hexdigest()
        return self.directory / (cache_key(bytecode.key, image_path, content) + ".pyc")

    def remember(self, cfile: Path, compiled: bool) -> None:
        with self._lock:
            (self.compiled if compiled else self.failed).add(cfile)


_MEMO: _Memo | None = None


@contextmanager
def shared_bytecode(tmp: Path) -> Iterator[None]:
    """Within the block, each source is compiled once: the images of a multi-platform build ship
    the same `.py` files (the pure-Python files of native distributions, the Debian standard
    library), so every platform after the first compiles almost nothing. One block at a time."""
    global _MEMO
    with temp_dir(tmp) as directory:
        _MEMO = _Memo(directory)
        try:
            yield
        finally:
            _MEMO = None


@dataclass(frozen=True)
class Bytecode:
    """A host interpreter that compiles `.pyc` the image's Python accepts (same minor version)."""

    python_version: str  # the image's, "3.11"
    interpreter: str  # an interpreter of that minor version on this host
    compiler_version: str  # its full version, "3.11.7": part of every cache key

    @property
    def key(self) -> str:
        return f"{FORMAT} cpython-{self.compiler_version}"

    @property
    def cache_tag(self) -> str:
        return "cpython-" + self.python_version.replace(".", "")

    def pyc_path(self, path: str) -> str:
        """`a/b/x.py` -> `a/b/__pycache__/x.cpython-311.pyc` (what the image's importer looks for)."""
        directory, _, name = path.rpartition("/")
        pyc = f"__pycache__/{name[:-3]}.{self.cache_tag}.pyc"
        return f"{directory}/{pyc}" if directory else pyc

    def compile(self, sources: Iterable[tuple[Path, str]], scratch: Path) -> dict[str, Path]:
        """Compile each (host file, image path) into `scratch`: image path of the `.pyc` -> file.
        Sources that do not compile are left without one. Inside `shared_bytecode`, a source
        already compiled there (same bytes, same image path, same compiler) is not compiled again."""
        memo, jobs, done = _MEMO, [], {}
        for source, path in sorted(sources, key=lambda s: s[1]):
            if memo is None:
                jobs.append((str(source), str(scratch / self.pyc_path(path)), "/" + path))
                continue
            cfile = memo.path(self, source, path)
            if cfile in memo.compiled:
                done[path] = cfile
            elif cfile not in memo.failed:
                jobs.append((str(source), str(cfile), "/" + path))
        if jobs:
            chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
            with ThreadPoolExecutor(max(1, min(len(chunks), os.cpu_count() or 1))) as pool:
                failed = set().union(*pool.map(self._run, chunks))
            for source, cfile, dfile in jobs:
                if source not in failed:
                    done[dfile[1:]] = Path(cfile)
                if memo is not None:
                    memo.remember(Path(cfile), source not in failed)
        return {self.pyc_path(path): cfile for path, cfile in sorted(done.items())}

    def prestart(self) -> None:
        """Start a compiler now, waiting for its sources, so that the next `compile` (after an
        edit, the one source file) finds it running: its start-up overlaps the work before it."""
        with _SPARE_LOCK:
            if self.interpreter not in _SPARE:
                _SPARE[self.interpreter] = _start_compiler(self.interpreter)

    def _run(self, jobs: list[tuple[str, str, str]]) -> set[str]:
        with _SPARE_LOCK:
            process = _SPARE.pop(self.interpreter, None)
        process = process or _start_compiler(self.interpreter)
        out, err = process.communicate(json.dumps(jobs))
        if process.returncode != 0:
            raise ImageError(f"cannot compile bytecode with {self.interpreter}: {err.strip()[-300:]}")
        return set(json.loads(out))

    def add_to(self, entries: list[Entry], scratch: Path,
               select: Callable[[str], bool] = lambda path: True) -> list[Entry]:
        """`entries` with a `.pyc` entry (0644, root, the layer's time) for each regular `.py` file
        that `select` accepts, unless the entries already have one at that path."""
        present = {e.path for e in entries}
        sources = [(e.source, e.path) for e in entries
                   if e.kind == "file" and e.source is not None and e.path.endswith(".py") and select(e.path)
                   and self.pyc_path(e.path) not in present]
        compiled = self.compile(sources, scratch)
        added = [Entry(path, "file", 0o644, source=file, size=file.stat().st_size) for path, file in compiled.items()]
        return with_parents([*entries, *added]) if added else entries


def compiled_content(writer: LayerWriter, kind: str, entries: list[Entry], bytecode: Bytecode,
                     select: Callable[[str], bool] = lambda path: True) -> LayerBlob:
    """`writer.content(kind, entries)` with bytecode added: keyed by the sources and the compiler,
    so a hit compiles nothing."""
    key = cache_key(content_key(kind, entries, writer.compression, writer.epoch), bytecode.key)
    cached = writer.blobs.lookup(key)
    if cached is not None:
        return cached
    with temp_dir(writer.blobs.tmp) as scratch:
        return writer.write(key, lambda: bytecode.add_to(entries, scratch, select))


def python_minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


@lru_cache(maxsize=None)
def bytecode_for(python_version: str) -> Bytecode:
    """The compiler for an image running Python `python_version`."""
    minor = python_minor(python_version)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == minor:
        current = ".".join(str(v) for v in sys.version_info[:3])
        return Bytecode(minor, sys.executable, current)
    interpreter = _uv_python(minor)
    version = subprocess.run([interpreter, "-S", "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    if python_minor(version) != minor:
        raise ImageError(f"uv gave Python {version} at {interpreter} for bytecode, not {minor}")
    return Bytecode(minor, interpreter, version)


def _uv_python(minor: str) -> str:
    """An interpreter of CPython `minor` on this host: found by uv, else installed by it."""
    try:
        import uv

        uv_bin = uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        uv_bin = shutil.which("uv")
    if not uv_bin:
        raise ImageError(f"no Python {minor} on this host to compile bytecode with, and no uv to install one")
    find = [uv_bin, "python", "find", "--no-project", f"cpython@{minor}"]
    found = subprocess.run(find, capture_output=True, text=True)
    if found.returncode != 0:
        installed = subprocess.run([uv_bin, "python", "install", f"cpython@{minor}"], capture_output=True, text=True)
        if installed.returncode != 0:
            raise ImageError(f"cannot install Python {minor} with uv to compile bytecode: "
                             + " ".join(installed.stderr.split())[-300:])
        found = subprocess.run(find, capture_output=True, text=True)
    if found.returncode != 0 or not found.stdout.strip():
        raise ImageError(f"uv cannot find Python {minor} to compile bytecode with")
    return found.stdout.strip().splitlines()[-1]
