"""`ocibuild build --watch`: a build now and after every change the bento would collect, each in
a child of the warm process, until Ctrl-C."""

from __future__ import annotations

import gzip
import io
import json
import os
import queue
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from ocibuild import watch
from ocibuild.watch import collected_changes
from tests.conftest import ECHO, copy_service, run_process
from tests.test_cli import assert_one_line_error


class Watching:
    """A running `ocibuild build --watch`, whose stdout and stderr lines can be waited for."""

    def __init__(self, *args: str, command: tuple[str, ...] = (sys.executable, "-m", "ocibuild"), **popen):
        """`command`: how ocibuild is run; `popen`: more for Popen (env, cwd)."""
        self.process = subprocess.Popen([*command, "build", *args, "--watch"], stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True, **popen)
        self.out: queue.Queue[str] = queue.Queue()
        self.err: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.readers = [threading.Thread(target=lambda s=stream, q=lines: [q.put(line.rstrip("\n")) for line in s],
                                         daemon=True)
                        for stream, lines in ((self.process.stdout, self.out), (self.process.stderr, self.err))]
        for reader in self.readers:
            reader.start()

    def stdout_line(self, timeout: float = 120) -> str:
        return self.out.get(timeout=timeout)

    def stderr_until(self, prefix: str, timeout: float = 120) -> str:
        """Stderr's lines up to the first that starts with `prefix`; that line."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.err.get(timeout=max(0.0, deadline - time.monotonic()))
            self.stderr.append(line)
            if line.startswith(prefix):
                return line

    def rest_of_stderr(self) -> list[str]:
        """Once the process has ended: every stderr line not yet waited for."""
        for reader in self.readers:
            reader.join(timeout=30)
        return list(self.err.queue)

    def children(self) -> set[int]:
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in path.read_text().split()}

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=30)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> Watching:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def echo(tmp_path):
    service = copy_service(ECHO, tmp_path / "echo")
    (service / ".bentoignore").write_text("notes.txt\nout/\n")
    return service


def bento_count(home: Path) -> int:
    return len(list((home / "bentos").glob("*/*/bento.yaml")))


def test_only_changes_the_bento_would_collect_count(tmp_path):
    root = tmp_path / "svc"
    (root / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "data").mkdir()
    (root / ".bentoignore").write_text("*.log\ndata/\n")
    home = root / "home"
    paths = [root / "service.py", root / "run.log", root / "data" / "x.csv", root / "data", root / "pkg" / "m.py",
             root / "pkg" / "__pycache__" / "m.cpython-311.pyc", root / ".git" / "HEAD", tmp_path / "elsewhere.py",
             root, home / "bentos" / "x", root / "gone.py"]
    assert collected_changes(root, map(str, paths), skip=[home]) == ["gone.py", "pkg/m.py", "service.py"]
    (root / ".bentoignore").write_text("service.py\n")  # read again for every change
    assert collected_changes(root, [str(root / "service.py")]) == []


def test_a_build_runs_in_a_child_and_this_process_then_imports_the_package_modules_it_used(tmp_path, monkeypatch):
    (tmp_path / "probe").mkdir()
    (tmp_path / "probe" / "__init__.py").write_text("")
    (tmp_path / "probe" / "used.py").write_text("")
    (tmp_path / "theirs.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(watch, "PACKAGE", "probe")

    def build() -> int:
        import probe.used  # noqa: F401
        import theirs  # noqa: F401 - not the package's: never imported by the watch itself

        return 3
    code, modules = watch._run_forked(build)
    assert code == 3 and sorted(modules) == ["probe", "probe.used"]
    assert "probe.used" not in sys.modules  # the build ran elsewhere
    watch._import(modules + ["probe.made_up", "theirs"])  # a name from the user's code is never imported here
    assert "probe.used" in sys.modules and "theirs" not in sys.modules
    for name in ("probe", "probe.used"):
        monkeypatch.delitem(sys.modules, name)


# Run in a process of its own, with one thread as the watch has: a signal sent to a process
# reaches any thread that does not hold it, and pytest's process may have several.
CTRL_C_IN_FORK = """
import os, signal, sys, time
from ocibuild import watch

asked = [True]
def ctrl_c():  # Ctrl-C, as it lands in the middle of fork's own handlers
    if asked:
        asked.clear()
        os.kill(os.getpid(), signal.SIGINT)
def slow_child():  # the child's copy: the Ctrl-C is passed on before the child has run anything
    if asked:
        time.sleep(0.5)
os.register_at_fork(after_in_parent=ctrl_c, after_in_child=slow_child)
forked, fork, watching = [], os.fork, os.getpid()
os.fork = lambda: forked.append(fork()) or forked[-1]
try:
    watch._run_forked(lambda: os._exit(0))
    print("not interrupted")
except KeyboardInterrupt:
    if os.getpid() != watching:
        print("escaped into the child's copy of the caller's stack")
        os._exit(0)
    try:
        os.waitpid(forked[0], os.WNOHANG)
        print("interrupted, the build not waited for")
    except ChildProcessError:
        print("interrupted, the build waited for")
"""


def test_a_ctrl_c_that_lands_inside_fork_is_not_lost_nor_escapes_into_the_child():
    """Raised inside fork's own handlers, a KeyboardInterrupt is printed and dropped: the watch
    would go on after Ctrl-C. Held until the fork is done, it ends the build's wait; passed on to
    the child before the child has run anything, it ends the child there, never in its copy of
    the caller's stack (where it would carry on as the watch)."""
    result = subprocess.run([sys.executable, "-c", CTRL_C_IN_FORK], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout == "interrupted, the build waited for\n", result.stdout + result.stderr


def test_watch_rebuilds_on_an_edit_only_survives_a_broken_build_and_stops_on_ctrl_c(home, echo):
    with Watching(str(echo)) as watching:
        first = watching.stdout_line()
        assert first.startswith("Built bento echo:")
        watching.stderr_until("Watching ")
        watcher = watching.children()
        assert len(watcher) == 1  # the file watcher; no build is running

        (echo / "notes.txt").write_text("ignored: no build")
        (echo / ".service.py.swp").write_text("an editor's swap file: no build")
        with pytest.raises(queue.Empty):
            watching.stdout_line(timeout=1.5)

        with (echo / "service.py").open("a") as f:
            f.write("# edited\n")
        second = watching.stdout_line()
        assert second.startswith("Built bento echo:") and second != first
        assert watching.stderr_until("Changed: ") == "Changed: service.py"
        watching.stderr_until("Watching ")
        assert bento_count(home) == 2

        (echo / "service.py").write_text("def broken(:\n")
        watching.stderr_until("Changed: service.py")
        failed = watching.stderr_until("Build failed")
        assert failed.startswith("Build failed (exit code ") and "watching" in failed
        errors = [line for line in watching.stderr if line.startswith("error: ")]
        assert len(errors) == 1 and "service.py:1" in errors[0] and "syntax error" in errors[0]
        assert not any("Traceback" in line for line in watching.stderr)

        (echo / "service.py").write_text("import os\nos._exit(3)\n")  # user code ends its build's process
        assert watching.stderr_until("Build failed") .startswith("Build failed (exit code 3)")
        assert bento_count(home) == 2 and watching.process.poll() is None

        (echo / "service.py").write_text((ECHO / "service.py").read_text())
        assert watching.stdout_line().startswith("Built bento echo:")
        watching.stderr_until("Watching ")
        assert bento_count(home) == 3

        assert watching.interrupt() == 0
        assert any(line.startswith("Stopped watching") for line in watching.rest_of_stderr())
        time.sleep(0.5)
        assert not any(alive(pid) for pid in watcher), "the file watcher outlived the watch"


def service_text(prelude: str) -> str:
    """The echo service, with `prelude` run when it is imported."""
    return prelude + "\n" + (ECHO / "service.py").read_text()


def test_what_a_build_leaves_running_neither_holds_the_watch_nor_outlives_its_exit_handlers(home, echo):
    """A multiprocessing daemon ends with the build, as at an interpreter's exit; a bare fork
    lives on, holding what the build had open, and the watch goes on regardless."""
    (echo / "service.py").write_text(service_text(
        "import multiprocessing, os, pathlib, time\n"
        "if multiprocessing.parent_process() is None and not os.environ.get('LINGERING'):\n"
        "    os.environ['LINGERING'] = '1'\n"
        "    daemon = multiprocessing.get_context('fork').Process(target=time.sleep, args=(60,), daemon=True)\n"
        "    daemon.start()\n"
        "    forked = os.fork()\n"
        "    if forked == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    pathlib.Path(__file__).with_name('notes.txt').write_text(f'{daemon.pid} {forked}')\n"))
    watching = Watching(str(echo))
    forked = None
    try:
        assert watching.stdout_line(timeout=60).startswith("Built bento echo:")
        assert watching.stderr_until("Watching ", timeout=30).startswith("Watching ")
        daemon, forked = map(int, (echo / "notes.txt").read_text().split())
        assert not alive(daemon) and alive(forked)
        (echo / "service.py").write_text((ECHO / "service.py").read_text())
        assert watching.stdout_line(timeout=60).startswith("Built bento echo:")
    finally:
        watching.kill()
        if forked:
            os.kill(forked, signal.SIGKILL)


LONG_BUILD = ("import pathlib, subprocess, time\n"  # a build with a process of its own, held for a minute
              "helper = subprocess.Popen(['sleep', '60'])\n"
              "pathlib.Path(__file__).with_name('notes.txt').write_text(str(helper.pid))\n")


def started_build(watching: Watching, echo: Path) -> tuple[int, int]:
    """The pids of the running build and of the helper it started, once both exist."""
    deadline = time.monotonic() + 30
    while not (echo / "notes.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    [build] = watching.children() - {min(watching.children())}  # the watcher is the first child
    return build, int((echo / "notes.txt").read_text())


@pytest.mark.parametrize(("signum", "ignored"), [(signal.SIGINT, False), (signal.SIGINT, True),
                                                 (signal.SIGHUP, False), (signal.SIGKILL, False)])
def test_stopping_the_watch_alone_ends_the_running_build_and_what_it_started(home, echo, signum, ignored):
    """Sent to the watch's pid only, as a process manager, an IDE's stop button or a closed
    terminal sends it: the build's whole process group gets it too. A build that ignores Ctrl-C
    is killed at the next one; a watch killed outright takes its build with it (not what the
    build started: a one-shot build killed outright leaves that too)."""
    prelude = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n" if ignored else ""
    (echo / "service.py").write_text(service_text(prelude + LONG_BUILD + "time.sleep(60)\n"))
    with Watching(str(echo)) as watching:
        build, helper = started_build(watching, echo)
        build = {build} if signum == signal.SIGKILL else {build, helper}
        assert all(alive(pid) for pid in build)
        started = time.monotonic()
        watching.process.send_signal(signum)
        if ignored:
            time.sleep(1)
            assert watching.process.poll() is None and all(alive(pid) for pid in build)
            watching.process.send_signal(signum)
        assert watching.process.wait(timeout=30) == (-9 if signum == signal.SIGKILL else 0)
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in build) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in build)
        assert time.monotonic() - started < 10
        assert not (home / "bentos").exists() or bento_count(home) == 0
        if alive(helper):
            os.kill(helper, signal.SIGKILL)


def test_a_file_name_that_is_not_utf8_is_skipped_not_a_loop(home, echo):
    with Watching(str(echo)) as watching:
        watching.stdout_line()
        watching.stderr_until("Watching ")
        with open(bytes(echo) + b"/\xff.txt", "w") as f:  # watchfiles cannot name it
            f.write("x")
        with pytest.raises(queue.Empty):
            watching.stdout_line(timeout=3)
        assert watching.process.poll() is None
        with (echo / "service.py").open("a") as f:
            f.write("# edited\n")
        assert watching.stdout_line().startswith("Built bento echo:")


def test_a_closed_standard_output_ends_the_watch(home, echo, tmp_path):
    errors = tmp_path / "stderr"
    process = subprocess.Popen([sys.executable, "-m", "ocibuild", "build", str(echo), "--watch"],
                               stdout=subprocess.PIPE, stderr=errors.open("w"), text=True)
    try:
        assert process.stdout.readline().startswith("Built bento echo:")
        process.stdout.close()  # the reader goes, as in `ocibuild build --watch | head -1`
        time.sleep(0.5)
        with (echo / "service.py").open("a") as f:
            f.write("# edited\n")
        assert process.wait(timeout=30) == 1
        assert errors.read_text().splitlines()[-1] == ("error: nobody reads the results any more "
                                                       "(standard output is a closed pipe)")
        assert bento_count(home) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_bad_bentoignore_fails_a_build_not_the_watch_and_a_change_to_it_always_counts(home, echo):
    (echo / ".bentoignore").write_text("notes.txt\n!\n")
    with Watching(str(echo)) as watching:
        assert watching.stderr_until("error: ") == f"error: {echo.resolve()}/.bentoignore: Invalid git pattern: '!'"
        assert watching.stderr_until("Build failed").startswith("Build failed (exit code ")
        (echo / ".bentoignore").write_text(".bentoignore\nnotes.txt\n")  # ignores itself, as .dockerignore often does
        assert watching.stdout_line().startswith("Built bento echo:")
        (echo / ".bentoignore").write_text(".bentoignore\n")
        assert watching.stdout_line().startswith("Built bento echo:")


def test_a_build_that_ends_without_finishing_is_a_failure(home, echo):
    with Watching(str(echo), "--output", "json") as watching:
        record = json.loads(watching.stdout_line())  # one line per build: a JSON Lines stream
        assert record["tag"].startswith("echo:")
        watching.stderr_until("Watching ")
        (echo / "service.py").write_text("import os\nos._exit(0)\n")
        assert watching.stderr_until("error: ").startswith("error: the build ended before it finished")
        assert watching.stderr_until("Build failed").startswith("Build failed (exit code 1)")


def test_a_service_directory_that_goes_away_ends_the_watch(home, tmp_path, echo):
    with Watching(str(echo)) as watching:
        watching.stderr_until("Watching ")
        echo.rename(tmp_path / "moved")
        assert watching.process.wait(timeout=30) == 1
        assert watching.stderr_until("error: ") == (f"error: cannot watch for changes: {echo.resolve()} is gone "
                                                    "(removed or moved): start the watch again where it is")


def test_a_service_directory_replaced_by_another_is_watched_again(home, tmp_path, echo):
    replacement = copy_service(echo, tmp_path / "replacement")
    with Watching(str(echo)) as watching:
        watching.stderr_until("Watching ")
        echo.rename(tmp_path / "old")
        replacement.rename(echo)  # as a checkout tool or `rm -rf && cp -r` leaves it
        assert watching.stderr_until("Changed: ") == "Changed: files the watcher could not name"
        assert watching.stdout_line().startswith("Built bento echo:")
        watching.stderr_until("Watching ")
        with (echo / "service.py").open("a") as f:
            f.write("# edited in the new directory\n")
        assert watching.stderr_until("Changed: ") == "Changed: service.py"
        assert watching.stdout_line().startswith("Built bento echo:")


def test_sigterm_ends_the_watch_and_its_watcher(home, echo):
    with Watching(str(echo)) as watching:
        watching.stderr_until("Watching ")
        watcher = watching.children()
        watching.process.terminate()
        assert watching.process.wait(timeout=30) == 0
        assert "Stopped watching" in watching.stderr_until("Stopped watching")
        time.sleep(0.5)
        assert not any(alive(pid) for pid in watcher)


def test_a_watcher_that_dies_ends_the_watch_with_one_line(home, echo):
    with Watching(str(echo)) as watching:
        watching.stderr_until("Watching ")
        [watcher] = watching.children()
        os.kill(watcher, signal.SIGKILL)
        assert watching.process.wait(timeout=30) == 1
        assert watching.stderr_until("error: ") == "error: the file watcher stopped (exit code -9)"
        assert watching.rest_of_stderr() == []


def top_layer_files(output: Path) -> dict[str, bytes]:
    """The files of an image's last layer, from an OCI layout or an OCI archive."""
    if output.is_file():
        with tarfile.open(output) as archive:
            read = lambda name: archive.extractfile(name).read()  # noqa: E731
            return _top_layer(read)
    return _top_layer(lambda name: (output / name).read_bytes())


def _top_layer(read) -> dict[str, bytes]:
    index = json.loads(read("index.json"))
    blob = lambda digest: read("blobs/sha256/" + digest.removeprefix("sha256:"))  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]))
    with tarfile.open(fileobj=gzip.GzipFile(fileobj=io.BytesIO(blob(manifest["layers"][-1]["digest"])))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "name"), [("oci-layout", "out"), ("oci-archive", "image.tar")])
def test_watch_containerize_writes_each_edit_into_the_image_once(home, echo, python_base, fmt, name):
    (echo / ".bentoignore").write_text("out/\n*.tar\n")
    output = echo / name  # in the service directory, and ignored there: allowed
    with Watching(str(echo), "--containerize", "--base", python_base, "--format", fmt,
                        "--image-output", str(output), "--sbom-format", "none", "--no-provenance") as watching:
        assert watching.stdout_line() == str(output)
        watching.stderr_until("Watching ")
        assert b"edited" not in top_layer_files(output)["app/src/service.py"]

        with (echo / "service.py").open("a") as f:
            f.write("# edited\n")
        assert watching.stdout_line() == str(output)
        assert watching.stderr_until("Done in ").startswith("Done in ")
        assert "1 layers built" in watching.stderr[-1], watching.stderr[-1]
        assert top_layer_files(output)["app/src/service.py"].endswith(b"# edited\n")
        # writing the output (its temporary siblings included) is not a change that starts a build
        with pytest.raises(queue.Empty):
            watching.stdout_line(timeout=1.5)
        assert not [line for line in watching.stderr if line.startswith("Changed: ") and line != "Changed: service.py"]
        assert watching.interrupt() == 0


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--version", "1"], "--watch builds a new version for every change: --version names one"),
    (["--containerize"], "--watch --containerize needs --image-output, --push or --load"),
    (["--containerize", "--image-output", "{echo}/image.tar"], "is in {echo}, where the next build would collect it"),
    (["--containerize", "--push", "127.0.0.1:1/x:1", "--metadata-file", "{echo}/meta.json"],
     "--metadata-file {echo}/meta.json is in"),
    (["--containerize", "--image-output", "{echo}/../echo/image.tar"], "where the next build would collect it"),
    (["--containerize", "--image-output", "{link}/image.tar"], "where the next build would collect it"),
])
def test_watch_refuses_what_would_loop_or_clash(home, echo, extra, fragment):
    link = echo.parent / "link"
    link.symlink_to(echo)
    args = [arg.format(echo=echo, link=link) for arg in extra]
    result = run_process("build", str(echo), "--watch", *args, timeout=30)
    assert result.returncode == 2
    assert_one_line_error(result, fragment.format(echo=echo))
    assert not (home / "bentos").exists()
