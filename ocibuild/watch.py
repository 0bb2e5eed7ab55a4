"""Build again whenever the service's files change: `ocibuild build --watch`.

An edit loop is a series of builds of one directory, and for a one-file edit most of what a
one-shot command costs is starting the interpreter and importing ocibuild. A watch pays that once:

- This process forks a child for every build, and then imports the modules of ocibuild that the
  build imported, so the next child finds them imported. The child loads the user's `service.py`
  afresh (this process never imports it, so no build sees an earlier build's modules), and
  whatever a build does, `os._exit` in user code included, ends only it.
- The file watcher (watchfiles: inotify on Linux, FSEvents on macOS) runs in a process of its
  own, forked before anything else, and reports over a pipe. So the process that forks builds
  never has a second thread: forking a process with threads can leave the child a lock that
  nobody will release.
- Only a change to a file the bento would collect starts a build: `.bentoignore` is read again
  for every change, and neither editors' swap and backup files nor what watchfiles' default
  filter skips (`.git`, `.venv`, `node_modules`, caches) count, nor anything under `skip`
  (ocibuild's own store). Changes made while a build runs start the next build.

This module knows how to watch and fork; what a build is, it is given.
"""

from __future__ import annotations

import importlib
import json
import os
import select
import signal
import sys
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from ocibuild.bento.collect import ignore_spec
from ocibuild.errors import WatchError

PACKAGE = __name__.partition(".")[0]
STEP_MS = 10  # events closer together than this are one change (an editor's save: a write, a rename)


def collected_changes(root: Path, paths: Iterable[str], skip: Iterable[Path] = ()) -> list[str]:
    """The changed `paths` (absolute) that a build of `root` would collect, relative to it, sorted."""
    spec = ignore_spec(root)
    skipped = [p.resolve() for p in skip]
    found = set()
    for path in map(Path, paths):
        if not path.is_relative_to(root) or path == root or any(path.is_relative_to(s) for s in skipped):
            continue
        rel = path.relative_to(root).as_posix()
        if not spec.match_file(rel + "/" if path.is_dir() else rel):
            found.add(rel)
    return sorted(found)


def watch(root: Path, build: Callable[[], int], say: Callable[[str], None], skip: Iterable[Path] = ()) -> None:
    """Run `build` (which returns an exit code) in a forked child now and after every change to
    what `root` collects, until interrupted."""
    if not hasattr(os, "fork"):
        raise WatchError("--watch needs a system that can fork a process (Linux, macOS)")
    root = root.resolve()
    watcher, changes = _start_watcher(root, list(skip))
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            code, modules = _run_forked(build)
            _import(modules)
            say(f"Watching {root} for changes (Ctrl-C to stop)" if code == 0 else
                f"Build failed (exit code {code}); watching {root} for changes (Ctrl-C to stop)")
            changed = _next_changes(changes, watcher)
            say(f"Changed: {', '.join(changed[:5])}" + (f" and {len(changed) - 5} more" if len(changed) > 5 else ""))
    except (KeyboardInterrupt, _Terminated):
        say(f"Stopped watching {root}")
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(changes)
        _stop(watcher)


class _Terminated(Exception):
    """SIGTERM: a supervisor ends the watch, as Ctrl-C would."""


def _terminate(signum, frame):
    raise _Terminated


def _run_forked(build: Callable[[], int]) -> tuple[int, list[str]]:
    """`build`'s exit code, run in a child of this process, and the modules of this package the
    child imported (which this process then imports, for the next child to find imported)."""
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to the caller's stack
        os.close(read_end)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        code = 70  # EX_SOFTWARE: a bug, shown as the interpreter would show it
        try:
            code = build()
        except KeyboardInterrupt:
            code = 130
        except SystemExit as exc:  # as the interpreter reads it
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            try:  # before the exit status: the parent reads this to its end, then waits
                with open(write_end, "w") as report:
                    report.write("\n".join(m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")))
            except OSError:  # the watch is gone
                pass
            os._exit(code)
    os.close(write_end)
    with open(read_end) as report:
        try:
            modules = report.read().split()  # until the child ends
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), modules
        except KeyboardInterrupt:  # Ctrl-C reached the child too: let it end its build cleanly first
            _reap(pid)
            raise
        except _Terminated:  # only this process was told: the build ends as on Ctrl-C
            os.kill(pid, signal.SIGINT)
            _reap(pid)
            raise


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:  # already reaped, just before the interruption
        pass


def _import(modules: Iterable[str]) -> None:
    """Import what a build imported (this package's modules only: never the user's code)."""
    for name in modules:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a module a build made up; the next build imports what it needs
                pass


def _start_watcher(root: Path, skip: list[Path]) -> tuple[int, int]:
    """The watcher's pid, and the read end of the pipe it reports on: one JSON line per change,
    the list of paths changed, or `{"error": ...}` before it ends."""
    import watchfiles  # the parent imports it only to fork the process that uses it: no thread here

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it; Ctrl-C is the parent's to handle
        code = 0
        try:
            _report_changes(root, skip, write_end, watchfiles)
        except BaseException as exc:  # noqa: BLE001 - whatever ended it, the parent must hear why
            code = 1
            message = str(exc) or type(exc).__name__
            try:
                os.write(write_end, json.dumps({"error": message}).encode() + b"\n")
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(write_end)
    return pid, read_end


def _report_changes(root: Path, skip: list[Path], out: int, watchfiles) -> None:
    parent = os.getppid()
    for batch in watchfiles.watch(root, debounce=1600, step=STEP_MS, rust_timeout=1000, yield_on_timeout=True,
                                  raise_interrupt=False):
        if os.getppid() != parent:  # the watch ended without telling us (killed): so do we
            return
        changed = collected_changes(root, (path for _, path in batch), skip)
        if changed:
            os.write(out, json.dumps(changed).encode() + b"\n")


def _next_changes(changes: int, watcher: int) -> list[str]:
    """Wait for the watcher's next report, then take any more already sent: one build for all."""
    buffered = b""
    found: set[str] = set()
    timeout = None
    while True:
        ready, _, _ = select.select([changes], [], [], timeout)
        if not ready:
            return sorted(found)
        chunk = os.read(changes, 1 << 16)
        if not chunk:
            raise WatchError(f"the file watcher stopped (exit code {_stop(watcher)})")
        buffered += chunk
        *lines, buffered = buffered.split(b"\n")
        for line in lines:
            report = json.loads(line)
            if isinstance(report, dict):
                raise WatchError(f"cannot watch for changes: {report['error']}")
            found.update(report)
        timeout = 0 if found and not buffered else None


def _stop(watcher: int) -> int:
    try:
        os.kill(watcher, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return os.waitstatus_to_exitcode(os.waitpid(watcher, 0)[1])
    except ChildProcessError:
        return 0
