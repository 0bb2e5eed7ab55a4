"""`ocibuild build` against the real package index (small packages), and the store's guarantees."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.errors import LockError
from ocibuild.python.lock import lock_problem
from tests.conftest import ECHO, EXAMPLE, copy_service, import_example_model, run_process

SERVICE = '''
import ocibuild

@ocibuild.service(image=ocibuild.images.PythonImage(python_version="3.11").python_packages({packages}))
class Tiny:
    @ocibuild.api
    def ping(self) -> str:
        return "pong"
'''


def tiny_service(tmp_path, packages='"six==1.16.0"'):
    root = tmp_path / "tiny"
    root.mkdir()
    (root / "service.py").write_text(SERVICE.format(packages=packages))
    return root


def test_build_writes_a_complete_bento(home, tmp_path):
    root = copy_service(EXAMPLE, tmp_path / "svc")
    (root / "debug.log").write_text("ignored by .bentoignore")
    import_example_model(home)
    bento = build_bento(root, BentoStore(home))
    info = bento.info
    assert info.name == "summarization" and info.service == "service:Summarization"
    assert info.envs == [{"name": "SUMMARY_API_KEY", "value": None}, {"name": "SUMMARY_SENTENCES", "value": "2"}]
    assert sorted(p.name for p in (bento.path / "src").iterdir()) == [".bentoignore", "README.md", "service.py"]
    lock = (bento.path / "env/python/requirements.lock.txt").read_text()
    assert "numpy==" in lock and "--hash=sha256:" in lock and "uvicorn==" in lock
    assert lock_problem(lock) is None  # what uv writes is what an imported or cached lock may hold
    assert "numpy>=1.26" in (bento.path / "env/python/requirements.txt").read_text()
    openapi = json.loads((bento.path / "apis/openapi.json").read_text())
    assert set(openapi["paths"]) >= {"/summarize", "/stats", "/healthz"}
    assert info.files["count"] == 3


def test_same_requirements_give_the_same_lock(home, tmp_path):
    store = BentoStore(home)
    root = tiny_service(tmp_path)
    first, second = build_bento(root, store), build_bento(root, store)
    lock = (first.path / "env/python/requirements.lock.txt").read_text()
    assert lock == (second.path / "env/python/requirements.lock.txt").read_text()
    assert str(home) not in lock and "# via -r requirements.txt" in lock


def test_the_loaded_hook_gets_the_spec_before_anything_is_written(home, tmp_path):
    store = BentoStore(home)
    seen = []
    hook = lambda spec: seen.append((spec.name, spec.image.python_version, [str(b.tag) for b in store.list()]))  # noqa: E731
    bento = build_bento(tiny_service(tmp_path), store, version="1", loaded_hook=hook)
    assert seen == [("tiny", "3.11", [])] and [str(b.tag) for b in store.list()] == [str(bento.tag)]


def test_lock_is_for_the_target_platform_not_the_host(home, tmp_path):
    """Markers are evaluated for the target: on this x86_64 host, only the arm64 lock has six."""
    from ocibuild.oci.platform import Platform

    root = tiny_service(tmp_path, '"six==1.16.0; platform_machine == \'aarch64\'"')
    locks = {}
    for name in ("linux/arm64", "linux/amd64"):
        bento = build_bento(root, BentoStore(home), platform=Platform.target(name))
        assert bento.info.platform == name
        locks[name] = (bento.path / "env/python/requirements.lock.txt").read_text()
    assert "six==1.16.0" in locks["linux/arm64"]
    assert "six==" not in locks["linux/amd64"]


def test_unknown_package_fails_with_uv_reason_and_stores_nothing(home, tmp_path):
    root = tiny_service(tmp_path, '"ocibuild-no-such-package-zz9"')
    with pytest.raises(LockError, match="ocibuild-no-such-package-zz9 was not found"):
        build_bento(root, BentoStore(home))
    assert BentoStore(home).list() == []
    assert not any((home / "tmp").iterdir())


def test_conflict_fails(home, tmp_path):
    root = tiny_service(tmp_path, '"six==1.16.0", "six==1.15.0"')
    with pytest.raises(LockError, match="six"):
        build_bento(root, BentoStore(home))


def test_requirements_file_is_read_relative_to_service(home, tmp_path):
    root = tiny_service(tmp_path, '"six"')
    (root / "service.py").write_text((root / "service.py").read_text().replace(
        '.python_packages("six")', '.python_packages("six").requirements_file("reqs/extra.txt")'))
    (root / "reqs").mkdir()
    (root / "reqs/extra.txt").write_text("idna==3.7\n")
    bento = build_bento(root, BentoStore(home))
    assert "idna==3.7" in (bento.path / "env/python/requirements.lock.txt").read_text()


def test_explicit_version_and_latest(home, tmp_path):
    store = BentoStore(home)
    root = copy_service(ECHO, tmp_path / "echo")
    build_bento(root, store, version="1.0")
    build_bento(root, store, version="0.9")  # created later, so newest despite the smaller name
    assert store.get("echo").info.version == "0.9"
    assert store.get("echo:latest").info.version == "0.9"
    assert store.get("echo:1.0").info.version == "1.0"


class StallingIndex:
    """A loopback 'package index' that accepts connections and never answers."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/simple"
        self.accepted = threading.Event()
        self.conns = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            self.accepted.set()

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def test_build_killed_half_way_leaves_store_as_it_was(home, tmp_path):
    store = BentoStore(home)
    root = copy_service(ECHO, tmp_path / "echo")
    build_bento(root, store, version="1")
    before = sorted(p.relative_to(home / "bentos") for p in (home / "bentos").rglob("*"))
    index = StallingIndex()
    try:
        proc = subprocess.Popen([sys.executable, "-m", "ocibuild", "build", str(root)],
                                env={**os.environ, "UV_INDEX_URL": index.url, "UV_DEFAULT_INDEX": index.url,
                                     "UV_NO_CACHE": "1", "UV_HTTP_TIMEOUT": "300"},
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert index.accepted.wait(60), "the build never reached the locking step"
        assert any((home / "tmp").iterdir()), "the build should be staging by now"
        assert proc.poll() is None, "the build ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        index.close()
    after = sorted(p.relative_to(home / "bentos") for p in (home / "bentos").rglob("*"))
    assert after == before
    assert [str(b.tag) for b in store.list()] == ["echo:1"]
    killed = list((home / "tmp").iterdir())
    assert killed, "SIGKILL leaves the staging directory behind"
    with store.staging() as live:  # a build still running: its staging must survive
        build_bento(root, store, version="2")
        assert sorted((home / "tmp").iterdir()) == [live]


def test_two_concurrent_builds_both_land(home, tmp_path):
    root = copy_service(ECHO, tmp_path / "echo")
    procs = [subprocess.Popen([sys.executable, "-m", "ocibuild", "build", str(root)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    bentos = BentoStore(home).list()
    assert len(bentos) == 2 and bentos[0].tag != bentos[1].tag
    for b in bentos:
        assert (b.path / "env/python/requirements.lock.txt").is_file()


def test_same_explicit_version_twice_is_refused(home, tmp_path):
    root = copy_service(ECHO, tmp_path / "echo")
    assert run_process("build", str(root), "--version", "v1").returncode == 0
    second = run_process("build", str(root), "--version", "v1")
    assert second.returncode == 1
    assert second.stderr.strip() == "error: bento echo:v1 already exists"


def test_explicit_service_entry_point(home, tmp_path):
    root = tmp_path / "multi"
    (root / "app").mkdir(parents=True)
    (root / "app/__init__.py").write_text("")
    (root / "app/api.py").write_text(
        "import ocibuild\n\n@ocibuild.service\nclass One:\n    pass\n\n"
        "@ocibuild.service(name='two')\nclass Two:\n    pass\n")
    with pytest.raises(Exception, match="several services .One, Two.: choose one with --service app.api:CLASS"):
        build_bento(root, BentoStore(home), entry_point="app.api")
    bento = build_bento(root, BentoStore(home), entry_point="app.api:Two")
    assert bento.info.name == "two" and bento.info.service == "app.api:Two"
