"""Bytecode for the image: a `.pyc` beside every `.py` a layer ships, made on the build host.

An image without `.pyc` recompiles every module it imports at every start, and its non-root user
cannot cache the result. So each layer carrying Python source also carries
`DIR/__pycache__/NAME.cpython-3XY.pyc`, compiled without running anything in the image:

- by an interpreter of the image's Python minor version (see `bytecode_for`: the distribution's,
  else the host's, else one `uv python find` / `uv python install` provides: bytecode does not
  depend on the CPU);
- as PEP 552 *checked* hash-based `.pyc`: the source's hash, not its mtime (mtimes are clamped in
  layers, so a timestamp `.pyc` would be stale or wrong). Checked rather than unchecked: a file
  edited inside a container (a debugging session, a mounted fix) is then recompiled instead of
  silently running the old bytecode; the price is one SipHash of the source per import, a small
  fraction of unmarshalling it;
- deterministically: a fresh interpreter with `PYTHONHASHSEED=0` (frozenset constants), no site,
  sources in sorted order, and the image path as the code's file name (`dfile`), never the host's;
- into one pack file per compiler, not a file per `.pyc`: layers read each `.pyc` at its offset.
  Creating thousands of small files is what compiling cost most on a VM's disk (an ML service's
  4000 modules: about 1 ms of file creation each, against 2.5 ms of compiling).

A layer's cache key names the compiling interpreter's full version (`Bytecode.key`).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ocibuild.contract import ocibuild_home
from ocibuild.errors import ImageError
from ocibuild.layers.tarwriter import Entry, read_range, with_parents
from ocibuild.layers.writer import LayerWriter, content_key
from ocibuild.store.atomic import temp_dir, write_atomic
from ocibuild.store.blobs import LayerBlob, cache_key

FORMAT = "pyc-checked-hash-1"  # bump when what is compiled, or how, changes
CHUNK = 400  # sources per compiler process

_COMPILER = r"""
import importlib.util, json, marshal, sys
HEADER = importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little")  # PEP 552 flags: hash-based, checked

def pyc(source, dfile):
    # What py_compile writes. A function, so that nothing of one module is alive while the next
    # is compiled and marshalled: marshal marks objects by their reference counts (FLAG_REF), and
    # constants still held by an earlier module's code change a later module's bytes.
    with open(source, "rb") as f:
        data = f.read()
    code = compile(data, dfile, "exec", dont_inherit=True)
    return HEADER + importlib.util.source_hash(data) + marshal.dumps(code)

pack, jobs = json.load(sys.stdin)
done, offset = [], 0
with open(pack, "wb") as out:
    for source, dfile in jobs:
        try:
            data = pyc(source, dfile)
        except Exception:  # not Python this interpreter can compile (templates, Python 2 files): skipped, as compileall does
            continue
        out.write(data)
        done.append((dfile, offset, len(data)))
        offset += len(data)
json.dump(done, sys.stdout)
"""


@dataclass(frozen=True)
class Compiled:
    """One `.pyc`: `size` bytes of a compiler's pack file from `offset`."""

    pack: Path
    offset: int
    size: int

    def read(self) -> bytes:
        return read_range(self.pack, self.offset, self.size)


_SPARE: dict[str, subprocess.Popen] = {}  # interpreter -> a started compiler nobody took yet
_SPARE_LOCK = threading.Lock()


def _start_compiler(interpreter: str) -> subprocess.Popen:
    """A compiler reading its jobs on stdin: a fresh interpreter with a fixed hash seed (so
    frozenset constants marshal in one order) and no site."""
    env = {"PYTHONHASHSEED": "0", "PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}
    return subprocess.Popen([interpreter, "-S", "-s", "-B", "-c", _COMPILER], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd="/")  # `-c` puts the working directory first on sys.path: no project module shadows json


def _stop_spares() -> None:
    with _SPARE_LOCK:
        for process in _SPARE.values():
            process.kill()
            process.wait()
        _SPARE.clear()


atexit.register(_stop_spares)  # a spare nobody took dies with the command


class _Memo:
    """Bytecode compiled during one `shared_bytecode` block (its packs in `directory`), by what
    decides its bytes: the compiler, the image path and the source bytes."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.compiled: dict[str, Compiled] = {}
        self.failed: set[str] = set()
        self._lock = threading.Lock()

    @staticmethod
    def key(bytecode: Bytecode, source: Path, image_path: str) -> str:
        return cache_key(bytecode.key, image_path, hashlib.sha256(source.read_bytes()).hexdigest())

    def remember(self, key: str, compiled: Compiled | None) -> None:
        with self._lock:
            if compiled is None:
                self.failed.add(key)
            else:
                self.compiled[key] = compiled


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

    def compile(self, sources: Iterable[tuple[Path, str]], scratch: Path) -> dict[str, Compiled]:
        """Compile each (host file, image path) into packs in `scratch`: image path of the `.pyc` ->
        where its bytes are. Sources that do not compile are left without one. Inside
        `shared_bytecode`, a source already compiled there (same bytes, same image path, same
        compiler) is not compiled again, and the packs live as long as the block."""
        memo, jobs, keys, done = _MEMO, [], {}, {}
        last = {path: source for source, path in sources}  # one source per image path: the one a layer keeps
        for path, source in sorted(last.items()):
            if memo is not None:
                key = keys[path] = _Memo.key(self, source, path)
                if key in memo.compiled:
                    done[path] = memo.compiled[key]
                    continue
                if key in memo.failed:
                    continue
            jobs.append((str(source), "/" + path))
        if jobs:
            directory = scratch if memo is None else memo.directory
            directory.mkdir(parents=True, exist_ok=True)
            chunks = [jobs[i:i + CHUNK] for i in range(0, len(jobs), CHUNK)]
            with ThreadPoolExecutor(max(1, min(len(chunks), os.cpu_count() or 1))) as pool:
                packs = list(pool.map(lambda chunk: self._run(chunk, directory), chunks))
            for chunk, compiled in zip(chunks, packs):
                for _, dfile in chunk:
                    found = compiled.get(dfile)
                    if found is not None:
                        done[dfile[1:]] = found
                    if memo is not None:
                        memo.remember(keys[dfile[1:]], found)
        return {self.pyc_path(path): compiled for path, compiled in sorted(done.items())}

    def prestart(self) -> None:
        """Start a compiler now, waiting for its sources, so that the next `compile` (after an
        edit, the one source file) finds it running: its start-up overlaps the work before it."""
        with _SPARE_LOCK:
            if self.interpreter not in _SPARE:
                _SPARE[self.interpreter] = _start_compiler(self.interpreter)

    def _run(self, jobs: list[tuple[str, str]], directory: Path) -> dict[str, Compiled]:
        """Compile `jobs` (host source, "/" + image path) into a new pack in `directory`: each
        image path that compiled -> its `.pyc`. (One source may be compiled for two image paths:
        a module and a link to it, each with its own file name in the code.)"""
        fd, name = tempfile.mkstemp(".pyc-pack", dir=directory)
        os.close(fd)
        pack = Path(name)
        with _SPARE_LOCK:
            process = _SPARE.pop(self.interpreter, None)
        process = process or _start_compiler(self.interpreter)
        out, err = process.communicate(json.dumps([str(pack), jobs]))
        if process.returncode != 0:
            raise ImageError(f"cannot compile bytecode with {self.interpreter}: {err.strip()[-300:]}")
        return {dfile: Compiled(pack, offset, size) for dfile, offset, size in json.loads(out)}

    def add_to(self, entries: list[Entry], scratch: Path,
               select: Callable[[str], bool] = lambda path: True) -> list[Entry]:
        """`entries` with a `.pyc` entry (0644, root, the layer's time) for each regular `.py` file
        that `select` accepts, unless the entries already have one at that path."""
        present = {e.path for e in entries}
        sources = [(e.source, e.path) for e in entries
                   if e.kind == "file" and e.source is not None and e.path.endswith(".py") and select(e.path)
                   and self.pyc_path(e.path) not in present]
        compiled = self.compile(sources, scratch)
        added = [Entry(path, "file", 0o644, source=c.pack, size=c.size, offset=c.offset) for path, c in compiled.items()]
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


SYSTEM_BIN = Path("/usr/bin")  # where a Linux distribution installs its own interpreters
_VERSION = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,4}")
_PROBE = "import importlib.util, json, marshal, platform; print(platform.python_version())"


@lru_cache(maxsize=None)
def bytecode_for(python_version: str) -> Bytecode:
    """The compiler for an image running Python `python_version`: the distribution's interpreter
    of that minor version when the host has one (`/usr/bin/python3.X`), else the one running
    ocibuild when its minor version matches, else one uv finds or installs.

    The distribution's comes first because it does not depend on which venv or pyenv runs
    ocibuild (the same host then gives the same digests, and the same distribution release the
    same bytes: patch releases do change some modules' bytecode, 7 of an ML service's 3955
    between 3.11.2 and 3.11.7); it is what Debian-based images, the default base among them,
    run themselves; and distributions build it with PGO and LTO, so it compiles 1.5x faster than
    a plain source build such as pyenv's.
    """
    minor = python_minor(python_version)
    system = SYSTEM_BIN / f"python{minor}"
    version = _system_version(system)
    if version is not None and python_minor(version) == minor:
        return Bytecode(minor, str(system), version)
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == minor:
        current = ".".join(str(v) for v in sys.version_info[:3])
        return Bytecode(minor, sys.executable, current)
    interpreter = _uv_python(minor)
    version = _probe(interpreter)
    if version is None or python_minor(version) != minor:
        raise ImageError(f"uv gave Python {version} at {interpreter} for bytecode, not {minor}")
    return Bytecode(minor, interpreter, version)


def _probe(interpreter: str) -> str | None:
    """The full version of `interpreter`, if it runs the compiler's imports (a distribution's
    minimal Python may lack some)."""
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}
    try:  # from "/": `-c` puts the working directory first on sys.path, and a project's platform.py is not the stdlib
        out = subprocess.run([interpreter, "-S", "-s", "-B", "-c", _PROBE], capture_output=True, text=True,
                             env=env, timeout=60, cwd="/")
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip()
    return version if out.returncode == 0 and _VERSION.fullmatch(version) else None


def _system_version(interpreter: Path) -> str | None:
    """`_probe(interpreter)`, remembered under the builder's home by the file's identity (device,
    inode, size, mtime), so that a command does not start an interpreter just to ask: an
    upgraded interpreter is another file, and is asked again."""
    try:
        st = interpreter.stat()
    except OSError:
        return None
    if os.path.realpath(interpreter) == os.path.realpath(sys.executable):
        return ".".join(str(v) for v in sys.version_info[:3])
    identity = f"{os.path.realpath(interpreter)} {st.st_dev} {st.st_ino} {st.st_size} {st.st_mtime_ns}"
    record = ocibuild_home() / "cache" / "interpreters" / cache_key(identity)
    try:
        known = record.read_text(encoding="ascii").strip()
        if _VERSION.fullmatch(known):
            return known
    except (OSError, ValueError):
        pass
    version = _probe(str(interpreter))
    if version is not None:  # a failure is not remembered: it may be passing (a timeout, a missing stdlib)
        try:
            record.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(record, version.encode())
        except OSError:  # a read-only home: asked again next time
            pass
    return version


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
