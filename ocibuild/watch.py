"""Build again whenever the service's files change: `ocibuild build --watch`.

An edit loop is a series of builds of one directory, and for a one-file edit most of what a
one-shot command costs is starting the interpreter and importing ocibuild. A watch pays that once:

- This process forks a child for every build, and then imports the modules of ocibuild that the
  build imported, so the next child finds them imported. The child loads the user's `service.py`
  afresh (this process never imports it, so no build sees an earlier build's modules), and
  whatever a build does, `os._exit` in user code included, ends only it.
- Each build is a process group of its own, so this process decides how it ends: Ctrl-C here
  is passed on to the whole build once, as a terminal would send it (SIGTERM or SIGHUP here: a
  SIGTERM); a build still running after `GRACE` seconds, or at the next Ctrl-C, is killed. On
  Linux a build also ends if this process dies. The watch never ends with a build running.
- The file watcher (watchfiles: inotify on Linux, FSEvents on macOS) runs in a process of its
  own, forked before anything else, and reports over a pipe. So the process that forks builds
  never has a second thread: forking a process with threads can leave the child a lock that
  nobody will release.
- Only a change to a file the bento would collect starts a build: `.bentoignore` is read again
  for every change (and a change to it always counts), and neither editors' swap and backup
  files nor what watchfiles' default filter skips (`.git`, `.venv`, `node_modules`, caches)
  count, nor anything under `skip` (ocibuild's own store), nor what ocibuild makes while it
  writes an output (an image output inside the directory would otherwise start a build with each
  write). Changes made while a build runs start the next build.

This module knows how to watch and fork; what a build is, it is given.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path

from ocibuild.bento.collect import IGNORE_FILE, ignore_spec
from ocibuild.errors import SpecError, WatchError
from ocibuild.store.atomic import is_temporary

PACKAGE = __name__.partition(".")[0]
STEP_MS = 10  # events closer together than this are one change (an editor's save: a write, a rename)
GRACE = 10.0  # seconds an interrupted build has to end before it is killed
_STOPS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
_ENDS = (signal.SIGTERM, signal.SIGHUP)  # a supervisor's or a closed terminal's: the watch ends as on Ctrl-C


def collected_changes(root: Path, paths: Iterable[str], skip: Iterable[Path] = ()) -> list[str]:
    """The changed `paths` (absolute) that a build of `root` would collect, relative to it, sorted.
    A `.bentoignore` that cannot be read lets every change count: the build says what is wrong."""
    try:
        spec = ignore_spec(root)
    except (OSError, SpecError):
        spec = None
    skipped = [p.resolve() for p in skip]
    found = set()
    for path in map(Path, paths):
        if not path.is_relative_to(root) or path == root or any(path.is_relative_to(s) for s in skipped):
            continue
        rel = path.relative_to(root).as_posix()
        if any(is_temporary(part) for part in rel.split("/")):  # an output's, being written (a build's own)
            continue
        if spec is None or rel == IGNORE_FILE or not spec.match_file(rel + "/" if path.is_dir() else rel):
            found.add(rel)
    return sorted(found)


def watch(root: Path, build: Callable[[], int], say: Callable[[str], None], skip: Iterable[Path] = ()) -> None:
    """Run `build` (which returns an exit code) in a forked child now and after every change to
    what `root` collects, until interrupted."""
    if not hasattr(os, "fork"):
        raise WatchError("--watch needs a system that can fork a process (Linux, macOS)")
    root = root.resolve()
    watcher, changes = _start_watcher(root, list(skip))
    previous = {signum: signal.signal(signum, _terminate) for signum in _ENDS}
    try:
        while True:
            code, modules = _run_forked(build, changes)
            _import(modules)
            if code == 0 and not modules:  # it never reached its end (os._exit in the service's code?)
                code = 1
                say("error: the build ended before it finished, without an error (os._exit in the service's code?)")
            say(f"Watching {root} for changes (Ctrl-C to stop)" if code == 0 else
                f"Build failed (exit code {code}); watching {root} for changes (Ctrl-C to stop)")
            changed = _next_changes(changes, watcher)
            if _nobody_reads():
                raise WatchError("nobody reads the results any more (standard output is a closed pipe)")
            say("Changed: " + (", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
                               if changed else "files the watcher could not name"))
    except (KeyboardInterrupt, _Terminated):
        say(f"Stopped watching {root}")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(changes)
        _stop(watcher)


class _Terminated(Exception):
    """SIGTERM or SIGHUP: the watch ends, as on Ctrl-C."""


def _terminate(signum, frame):
    raise _Terminated


def _run_forked(build: Callable[[], int], *inherited: int) -> tuple[int, list[str]]:
    """`build`'s exit code, run in a child of this process (in a process group of its own; the
    file descriptors `inherited` closed there), and the modules of this package the child
    imported, which this process then imports for the next child to find imported. No modules:
    the child ended before its end."""
    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # the child ends here, whatever happens: never in the caller's stack
        code = 70
        try:
            code = _child(build, write_end, (read_end, *inherited))
        finally:
            os._exit(code)
    try:
        _set_group(pid)
        os.close(write_end)
        _release()  # a Ctrl-C held during the fork is raised here, where the build is stopped
        status = os.waitpid(pid, 0)[1]
    except (KeyboardInterrupt, _Terminated) as exc:
        _stop_build(pid, signal.SIGINT if isinstance(exc, KeyboardInterrupt) else signal.SIGTERM)
        os.close(read_end)
        raise
    return os.waitstatus_to_exitcode(status), _read_report(read_end)


def _child(build: Callable[[], int], report: int, inherited: tuple[int, ...]) -> int:
    """Run the build as a process of its own would: its exit code; its atexit handlers run (the
    ones that end what it started, multiprocessing's daemons among them)."""
    os.setpgid(0, 0)
    _end_with_parent()
    for fd in inherited:
        os.close(fd)
    _no_input()
    for signum in _ENDS:
        signal.signal(signum, signal.SIG_DFL)
    # outside the terminal's foreground group, a write to it would stop the build (`stty tostop`)
    signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    code = 70  # EX_SOFTWARE: a bug, shown as the interpreter would show it
    try:
        _release()  # a Ctrl-C sent while the child was made is raised here
        code = build()
    except KeyboardInterrupt:
        code = 130
    except SystemExit as exc:  # as the interpreter reads it
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)  # what is left runs to its end (or SIGKILL)
    _flush()  # the build's result is out before its process ends
    try:
        atexit._run_exitfuncs()  # what the interpreter's exit does; os._exit (below) skips it
    except BaseException:  # noqa: BLE001 - nothing may reach the caller's stack
        pass
    _flush()
    # At the very end: the parent reads it once this process is gone. Never blocking: whatever
    # does not fit the pipe is left out (a name cut short only fails to import).
    try:
        os.set_blocking(report, False)
        os.write(report, "\n".join(m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")).encode())
    except OSError:
        pass
    return code


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed, or a reader gone
            pass


def _read_report(fd: int) -> list[str]:
    """What the ended child wrote (never waiting: a process it left behind may hold the pipe)."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while chunk := os.read(fd, 1 << 16):
            data += chunk
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    return data.decode(errors="replace").split()


def _fork() -> int:
    """`os.fork()`, with Ctrl-C and SIGTERM held until `_release()`. Raised inside fork's own
    handlers in this process (the logging module releases its lock there), a KeyboardInterrupt is
    printed and lost: the watch would go on after Ctrl-C. (Held for this thread: the watch has no
    other, which a signal could reach instead.)"""
    _flush()  # or the child would write this process's buffered lines again
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOPS)
    try:
        return os.fork()
    except OSError:
        _release()
        raise


def _release() -> None:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOPS)


def _set_group(pid: int) -> None:
    """The child's own process group, set from here too: signals sent to it before the child has
    run `setpgid` must still reach it."""
    try:
        os.setpgid(pid, pid)
    except OSError:  # already done by the child, or the child is gone
        pass


def _end_with_parent() -> None:
    """On Linux, SIGTERM when the watch dies (killed, or its terminal closed): a build in a
    process group of its own would otherwise run on, orphaned."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that
        os._exit(1)


def _no_input() -> None:
    """Standard input from /dev/null: a build never reads it, and a process outside the terminal's
    foreground group that tried would be stopped (SIGTTIN), and the watch with it."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)


def _stop_build(pid: int, signum: int) -> None:
    """End a build the watch was interrupted during: `signum` to its process group, as the
    terminal or the supervisor sent it here; SIGKILL after `GRACE` seconds or at the next
    interruption."""
    _signal_group(pid, signum)
    deadline = time.monotonic() + GRACE
    try:
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
            time.sleep(0.02)
    except ChildProcessError:
        return
    except (KeyboardInterrupt, _Terminated):
        pass
    _signal_group(pid, signal.SIGKILL)
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


def _import(modules: Iterable[str]) -> None:
    """Import what a build imported: this package's modules only, never the user's code (which
    runs in the build, and could write other names into its report)."""
    for name in modules:
        if (name == PACKAGE or name.startswith(PACKAGE + ".")) and name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - a module a build made up; the next build imports what it needs
                pass


def _start_watcher(root: Path, skip: list[Path]) -> tuple[int, int]:
    """The watcher's pid, and the read end of the pipe it reports on: one JSON line per change,
    the list of paths changed (empty: it could not name them), or `{"error": ...}` before it ends."""
    import watchfiles  # the parent imports it only to fork the process that uses it: no thread here

    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # the watcher ends here, whatever happens: never in the caller's stack
        code = 0
        try:
            os.close(read_end)
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it; Ctrl-C is the parent's to handle
            _release()
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
    _release()
    return pid, read_end


def _report_changes(root: Path, skip: list[Path], out: int, watchfiles) -> None:
    """Watch `root` until this process's parent is gone. The watcher is started again after an
    event it cannot read (a file name that is not UTF-8: skipped), and when `root` is replaced
    (removed and made again: a change, which a build finds out)."""
    parent = os.getppid()
    failures = 0
    while True:
        identity = _identity(root)
        try:
            for batch in watchfiles.watch(root, debounce=1600, step=STEP_MS, rust_timeout=1000,
                                          yield_on_timeout=True, raise_interrupt=False):
                if os.getppid() != parent:  # the watch ended without telling us (killed): so do we
                    return
                failures = 0
                if _identity(root) != identity:
                    os.write(out, b"[]\n")
                    break
                changed = collected_changes(root, (path for _, path in batch), skip)
                if changed:
                    os.write(out, json.dumps(changed).encode() + b"\n")
        except RuntimeError:  # watchfiles' own error: an event it could not read (a name not UTF-8)
            failures += 1  # skipped, not a change: reading such a file is an event too, and a build reads it
            if failures > 3:  # not one event but the watcher itself
                raise


def _identity(root: Path) -> tuple[int, int]:
    try:
        stat = os.stat(root)
    except FileNotFoundError:
        raise WatchError(f"{root} is gone (removed or moved): start the watch again where it is") from None
    return stat.st_dev, stat.st_ino


def _next_changes(changes: int, watcher: int) -> list[str]:
    """Wait for the watcher's next report, then take any more already sent: one build for all."""
    buffered = b""
    found: set[str] = set()
    reported = False
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
            reported = True
        timeout = 0 if reported and not buffered else None


def _nobody_reads() -> bool:
    """Whether standard output is a pipe whose reader has gone (poll says POLLERR): every build
    would be stored, then fail to say so."""
    if not hasattr(select, "poll"):
        return False
    poller = select.poll()
    try:
        poller.register(sys.stdout.fileno(), 0)
    except (ValueError, OSError):  # closed, or no file descriptor
        return False
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _stop(watcher: int) -> int:
    try:
        os.kill(watcher, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return os.waitstatus_to_exitcode(os.waitpid(watcher, 0)[1])
    except ChildProcessError:
        return 0
