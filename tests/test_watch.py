"""`ocibuild build --watch`: a build now and after every change the bento would collect, each in
a child of the warm process, until Ctrl-C."""

import gzip
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

    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "ocibuild", "build", *args, "--watch"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
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
    watch._import(modules + ["probe.made_up"])
    assert "probe.used" in sys.modules and "theirs" not in sys.modules
    for name in ("probe", "probe.used"):
        monkeypatch.delitem(sys.modules, name)


def test_watch_rebuilds_on_an_edit_only_survives_a_broken_build_and_stops_on_ctrl_c(home, echo):
    watching = Watching(str(echo))
    try:
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
        assert not any(Path(f"/proc/{pid}").exists() for pid in watcher), "the file watcher outlived the watch"
    finally:
        watching.kill()


def test_sigterm_ends_the_watch_and_its_watcher(home, echo):
    watching = Watching(str(echo))
    try:
        watching.stderr_until("Watching ")
        watcher = watching.children()
        watching.process.terminate()
        assert watching.process.wait(timeout=30) == 0
        assert "Stopped watching" in watching.stderr_until("Stopped watching")
        time.sleep(0.5)
        assert not any(Path(f"/proc/{pid}").exists() for pid in watcher)
    finally:
        watching.kill()


def test_a_watcher_that_dies_ends_the_watch_with_one_line(home, echo):
    watching = Watching(str(echo))
    try:
        watching.stderr_until("Watching ")
        [watcher] = watching.children()
        os.kill(watcher, signal.SIGKILL)
        assert watching.process.wait(timeout=30) == 1
        assert watching.stderr_until("error: ") == "error: the file watcher stopped (exit code -9)"
        assert watching.rest_of_stderr() == []
    finally:
        watching.kill()


def top_layer_files(layout: Path) -> dict[str, bytes]:
    index = json.loads((layout / "index.json").read_text())
    blob = lambda digest: layout / "blobs" / "sha256" / digest.removeprefix("sha256:")  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_bytes())
    with tarfile.open(fileobj=gzip.open(blob(manifest["layers"][-1]["digest"]))) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


@pytest.mark.slow
def test_watch_containerize_writes_each_edit_into_the_image(home, echo, python_base):
    layout = echo / "out"  # in the service directory, and ignored there: allowed
    watching = Watching(str(echo), "--containerize", "--base", python_base, "--format", "oci-layout",
                        "--image-output", str(layout), "--sbom-format", "none", "--no-provenance")
    try:
        assert watching.stdout_line() == str(layout)
        watching.stderr_until("Watching ")
        assert b"edited" not in top_layer_files(layout)["app/src/service.py"]

        with (echo / "service.py").open("a") as f:
            f.write("# edited\n")
        assert watching.stdout_line() == str(layout)
        assert watching.stderr_until("Done in ").startswith("Done in ")
        assert "1 layers built" in watching.stderr[-1], watching.stderr[-1]
        assert top_layer_files(layout)["app/src/service.py"].endswith(b"# edited\n")
        assert watching.interrupt() == 0
    finally:
        watching.kill()


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--version", "1"], "--watch builds a new version for every change: --version names one"),
    (["--containerize"], "--watch --containerize needs --image-output, --push or --load"),
    (["--containerize", "--image-output", "{echo}/image.tar"], "is in {echo}, where the next build would collect it"),
    (["--containerize", "--push", "127.0.0.1:1/x:1", "--metadata-file", "{echo}/meta.json"],
     "--metadata-file {echo}/meta.json is in"),
])
def test_watch_refuses_what_would_loop_or_clash(home, echo, extra, fragment):
    result = run_process("build", str(echo), "--watch", *[arg.format(echo=echo) for arg in extra], timeout=30)
    assert result.returncode == 2
    assert_one_line_error(result, fragment.format(echo=echo))
    assert not (home / "bentos").exists()
