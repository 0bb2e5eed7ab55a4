"""A real private index: pypiserver with basic auth on loopback, serving a wheel that exists nowhere else."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import free_port, need

PACKAGE = "ocibuild-private-zz9"
MODULE = "ocibuild_private_zz9"
VERSION = "1.0.0"
USER = "builder"
PASSWORD = "pw-7f3c9a1e-DO-NOT-LEAK-5b2d"  # grepped for everywhere the build writes


def write_wheel(dest: Path) -> Path:
    """A pure-Python wheel written by hand (a zip with its dist-info and RECORD)."""
    files = {
        f"{MODULE}/__init__.py": b'VALUE = "from the private index"\n',
        f"{MODULE}-{VERSION}.dist-info/METADATA":
            f"Metadata-Version: 2.1\nName: {PACKAGE}\nVersion: {VERSION}\n".encode(),
        f"{MODULE}-{VERSION}.dist-info/WHEEL":
            b"Wheel-Version: 1.0\nGenerator: ocibuild-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = f"{MODULE}-{VERSION}.dist-info/RECORD"
    lines = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{name},sha256={digest},{len(data)}")
    lines.append(f"{record},,")
    files[record] = ("\n".join(lines) + "\n").encode()
    wheel = dest / f"{MODULE}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return wheel


@dataclass
class PrivateIndex:
    host: str  # 127.0.0.1:PORT
    user: str = USER
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return f"http://{self.host}/simple/"


@pytest.fixture(scope="session")
def private_index(tmp_path_factory):
    server = shutil.which("pypi-server", path=str(Path(sys.executable).parent)) or shutil.which("pypi-server")
    need(server is not None, "pypiserver is not installed (pip install -e .[test])")
    from passlib.apache import HtpasswdFile

    root = tmp_path_factory.mktemp("private-index")
    packages = root / "packages"
    packages.mkdir()
    write_wheel(packages)
    htpasswd = HtpasswdFile(str(root / "htpasswd"), new=True)
    htpasswd.set_password(USER, PASSWORD)
    htpasswd.save()
    port = free_port()
    log = open(root / "server.log", "wb")
    process = subprocess.Popen([server, "run", "-i", "127.0.0.1", "-p", str(port), "-P", str(root / "htpasswd"),
                                "-a", "update,download,list", "--disable-fallback", str(packages)],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/simple/", timeout=1).status_code in (200, 401):
                    break
            except requests.ConnectionError:
                pass
            assert process.poll() is None and time.time() < deadline, (root / "server.log").read_text()
            time.sleep(0.2)
        yield PrivateIndex(f"127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(10)
        log.close()


# uv.lock and pylock.toml name the index they came from, so they are made here rather than
# checked in; numpy 1.26.4 (not the newest) is what the lock pins, for the resolution date.
LOCKED_AT = "2024-02-07T00:00:00Z"


def locked_service(name: str, dest: Path) -> Path:
    """A copy of `fixtures/services/uvlock` (with its `uv.lock`) or `.../pylock` (with a
    `pylock.toml` exported from that lock), locked as of LOCKED_AT."""
    import uv

    from tests.conftest import FIXTURES, copy_service

    root = copy_service(FIXTURES / "services" / name, dest)
    project = root if name == "uvlock" else dest.parent / f"{dest.name}-project"
    if name == "pylock":
        project.mkdir()
        shutil.copy(FIXTURES / "services" / "uvlock" / "pyproject.toml", project / "pyproject.toml")
    with open(project / "pyproject.toml", "a") as pyproject:  # the lock's date, as the project's setting
        pyproject.write(f'\n[tool.uv]\nexclude-newer = "{LOCKED_AT}"\n')
    uv_bin = uv.find_uv_bin()
    subprocess.run([uv_bin, "lock", "--quiet"], cwd=project, check=True)
    if name == "pylock":
        subprocess.run([uv_bin, "export", "--quiet", "--format", "pylock.toml", "--no-dev", "--no-emit-project",
                        "--frozen", "-o", str(root / "pylock.toml")], cwd=project, check=True)
    return root
