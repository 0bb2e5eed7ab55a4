"""The rootless promise, tested as an unprivileged user: build and containerize a service on the
default Debian base with no root, and find no trace of the builder's uid in the image.

The test machine runs as root, and root's venv lives under a 0700 `/root`, so the user gets a venv
of its own, made with Debian's `/usr/bin/python3` (the oldest Python we admit) in a world-readable
directory, from a copy of this checkout (installed, not editable: nothing is written into it).
"""

from __future__ import annotations

import io
import json
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import ECHO, ROOT, need
from tests.test_watch import Watching

USER, WANTED_UID = "ocibuild-rootless", 4321
DEBIAN_PYTHON = Path("/usr/bin/python3")


def _rootless_user() -> pwd.struct_passwd:
    """The unprivileged user, created once (another run may be creating it at the same moment)."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-M", "-u", str(WANTED_UID), "-s", "/usr/sbin/nologin", USER], capture_output=True)
        return pwd.getpwnam(USER)


def _uv() -> str:
    import uv

    return uv.find_uv_bin()


@pytest.fixture(scope="module")
def rootless(tmp_path_factory):
    """(user, workdir, venv): a user that cannot chown, a dir it owns, an ocibuild it can run."""
    need(os.geteuid() == 0, "creating an unprivileged user needs root")
    need(shutil.which("setpriv") is not None and shutil.which("useradd") is not None, "setpriv or useradd is missing")
    need(DEBIAN_PYTHON.is_file(), f"{DEBIAN_PYTHON} (Debian's python3) is missing")
    user = _rootless_user()
    assert user.pw_uid not in (0, 1000)
    top = Path(tempfile.mkdtemp(prefix="ocibuild-rootless-", dir="/tmp"))
    try:
        top.chmod(0o755)
        source = top / "source"  # a copy: building the package must not write into the checkout
        shutil.copytree(ROOT / "ocibuild", source / "ocibuild", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(ROOT / name, source / name)
        venv = top / "venv"
        for command in ([_uv(), "venv", "--quiet", "--python", str(DEBIAN_PYTHON), str(venv)],
                        [_uv(), "pip", "install", "--quiet", "--python", str(venv / "bin/python"), str(source)]):
            out = subprocess.run(command, capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr
        work = top / "work"
        work.mkdir()
        shutil.copytree(ECHO, work / "echo", ignore=shutil.ignore_patterns("__pycache__"))
        for path in [work, *work.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
        yield user, work, venv
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _user_env(work: Path) -> dict[str, str]:
    # the machine's settings (CA bundle, proxies, indexes) stay; nothing may point into root's files or this checkout
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "UV_", "PYTHON", "VIRTUAL_ENV", "OCIBUILD_"))}
    env.update(PATH="/usr/bin:/bin", HOME=str(work), OCIBUILD_HOME=str(work / "ocibuild"),
               OCIBUILD_DEBIAN_CACHE=str(work / "debian-cache"))
    return env


def _setpriv(user: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups"]


def _as_user(user: pwd.struct_passwd, work: Path, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_setpriv(user), *command], capture_output=True, text=True, env=_user_env(work), cwd=work,
                          timeout=900)


def _layers(archive: Path):
    """(path, TarFile) of each layer of a docker-archive, base first."""
    with tarfile.open(archive) as outer:
        manifest = json.load(outer.extractfile("manifest.json"))
        for name in manifest[0]["Layers"]:
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(name).read())) as layer:
                yield name, layer


@pytest.mark.slow
def test_build_and_containerize_as_an_unprivileged_user(rootless):
    user, work, venv = rootless
    started = time.monotonic()
    built = _as_user(user, work, str(venv / "bin/ocibuild"), "build", str(work / "echo"), "--version", "rootless")
    assert built.returncode == 0, built.stdout + built.stderr
    tag = built.stdout.strip().split()[-1]
    out = _as_user(user, work, str(venv / "bin/ocibuild"), "containerize", tag, "-o", str(work / "out.tar"),
                   "--format", "archive")
    assert out.returncode == 0, out.stdout + out.stderr
    print(f"rootless build + containerize: {time.monotonic() - started:.1f}s", file=sys.stderr)

    owners: set[tuple[int, int]] = set()
    base: dict[str, tarfile.TarInfo] = {}
    for index, (name, layer) in enumerate(_layers(work / "out.tar")):
        for member in layer.getmembers():
            owners.add((member.uid, member.gid))
            assert user.pw_uid not in (member.uid, member.gid), f"{name}: {member.name} is owned by the builder"
            assert member.uname == member.gname == "", f"{name}: {member.name} names its owner"
            if index == 0:
                base[member.name] = member
        if index == 0:
            passwd = layer.extractfile("etc/passwd").read().decode()
    # root, the runtime user, and the one group a base package names (base-files: var/local is root:staff)
    assert owners <= {(0, 0), (1000, 1000), (0, 50)}, owners
    assert base["usr/bin/python3.11"].isfile() and base["usr/bin/python3"].linkname == "python3.11"
    assert "ocibuild:x:1000:1000:" in passwd
    assert (base["home/ocibuild"].uid, base["home/ocibuild"].gid, base["home/ocibuild"].mode) == (1000, 1000, 0o755)
    # modes as the packages define them: setgid and sticky bits are kept
    assert (base["var/local"].mode, base["var/local"].gid) == (0o2775, 50)
    assert base["var/tmp"].mode == base["tmp"].mode == 0o1777
    if shutil.which("dpkg-deb"):  # judged by dpkg itself: every special mode and owner the packages give
        assert _special_members(work) <= {(n, m.mode, m.uid, m.gid) for n, m in base.items()}


def _manifest_digests(archive: Path) -> list[str]:
    with tarfile.open(archive) as outer:
        return [m["digest"] for m in json.load(outer.extractfile("index.json"))["manifests"]]


@pytest.mark.slow
def test_watch_as_an_unprivileged_user(rootless):
    """Watching files, forking builds and giving each its process group need no privilege."""
    user, work, venv = rootless
    output = work / "watched.tar"
    command = (*_setpriv(user), str(venv / "bin/ocibuild"))
    with Watching(str(work / "echo"), "--containerize", "--image-output", str(output), command=command,
                  env=_user_env(work), cwd=work) as watching:
        assert watching.stdout_line(timeout=600) == str(output), watching.rest_of_stderr()
        first = _manifest_digests(output)
        with (work / "echo" / "service.py").open("a") as f:  # root appends; the file stays the user's
            f.write("# edited\n")
        assert watching.stdout_line(timeout=120) == str(output)
        assert _manifest_digests(output) != first
        assert watching.interrupt() == 0
    assert output.stat().st_uid == user.pw_uid


def _special_members(work: Path) -> set[tuple[str, int, int, int]]:
    """(path, mode, uid, gid) of each member of the base's packages that is not plain root-owned."""
    (lock,) = (work / "ocibuild").rglob("packages.lock")
    special = set()
    base = lock.read_text().split("[base]\n", 1)[1].split("[system]", 1)[0]
    for line in base.splitlines():
        deb = work / "debian-cache" / "debs" / f"{line.split()[3]}.deb"
        data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            special |= {(m.name.removeprefix("./").rstrip("/"), m.mode, m.uid, m.gid) for m in tar
                        if (m.mode & 0o7000 or m.uid or m.gid) and m.name.removeprefix("./") != ""}
    assert special, "the base's packages define no special mode or owner: this check would prove nothing"
    return special
