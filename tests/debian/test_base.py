"""The default base and system_packages from real Debian packages, verified and run in Docker."""

import http.server
import lzma
import shutil
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest
from debian.deb822 import Release
import requests

from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.base import Sources
from ocibuild.containerize import ContainerizeOptions, containerize as containerize_bento
from ocibuild.debian.archive import DebianArchive, release_date
from ocibuild.debian.settings import DebianSettings
from ocibuild.errors import DebianError
from ocibuild.debian.lock import DebianLock
from ocibuild.debian.installed import read_base_system
from ocibuild.errors import SpecError
from ocibuild.store.atomic import directory_lock
from ocibuild.store.blobs import BlobStore
from ocibuild.registry.auth import Keychain
from ocibuild.registry.config import RegistryConfig
from ocibuild.registry.session import Registries
from tests.builds import write
from tests.hostile import file, make_tar
from tests.conftest import FIXTURES, copy_service, free_port, need

GOMP = FIXTURES / "services" / "gomp"


def containerize(bento, home: Path, cache: BlobStore | None = None):
    sources = Sources(Registries(RegistryConfig(), Keychain([])), cache or BlobStore(home / "cache"), home)
    return containerize_bento(bento, ContainerizeOptions(), sources)


@pytest.fixture(scope="module")
def gomp(tmp_path_factory):
    home = tmp_path_factory.mktemp("gomp-home")
    bento = build_bento(copy_service(GOMP, tmp_path_factory.mktemp("src") / "gomp"), BentoStore(home))
    return home, bento, containerize(bento, home)


def test_lock_pins_the_base_and_the_system_packages(gomp):
    home, bento, image = gomp
    lock = DebianLock.parse((bento.path / "env/debian/packages.lock").read_text())
    assert lock.release == "bookworm" and lock.architecture == "amd64"
    assert {"python3.11", "libc6", "ca-certificates", "tzdata"} <= {p.name for p in lock.base}
    assert [p.name for p in lock.system] == ["libgomp1"]  # its dependencies are in the base already
    assert all(len(p.sha256) == 64 for p in lock.base + lock.system)
    assert [h["created_by"] for h in image.history][:2] == [
        f"ocibuild: Debian bookworm base ({len(lock.base)} packages)", "ocibuild: Debian packages libgomp1"]


def test_base_layer_content(gomp, tmp_path):
    home, bento, image = gomp
    with tarfile.open(image.layers[0].path()) as tar:
        members = {m.name: m for m in tar.getmembers()}
        passwd = tar.extractfile("etc/passwd").read().decode()
        status = tar.extractfile("var/lib/dpkg/status.d/python3.11").read().decode()
    assert members["tmp"].mode == 0o1777 and members["home/ocibuild"].uid == 1000
    assert "ocibuild:x:1000:1000" in passwd
    assert "Package: python3.11\n" in status and status.endswith("Status: install ok installed\n")
    assert members["etc/ssl/certs/ca-certificates.crt"].size > 100_000
    assert "bin/sh" not in members and "usr/bin/dpkg" not in members  # distroless: no shell, no dpkg
    with tarfile.open(image.layers[1].path()) as tar:
        assert any(n.endswith("libgomp.so.1") for n in tar.getnames())


def test_the_standard_library_ships_hash_based_bytecode(gomp):
    """Debian compiles it in a maintainer script that never runs here: the base layer carries it."""
    home, bento, image = gomp
    with tarfile.open(image.layers[0].path()) as tar:
        members = {m.name: m for m in tar.getmembers()}
        header = tar.extractfile("usr/lib/python3.11/__pycache__/os.cpython-311.pyc").read(16)
    assert int.from_bytes(header[4:8], "little") == 0b11
    sources = [n for n, m in members.items() if n.startswith("usr/lib/python3.11/") and n.endswith(".py") and m.isreg()]
    compiled = [n for n in sources if n.replace(".py", "").rpartition("/")[0] + "/__pycache__/"
                + n.rpartition("/")[2][:-3] + ".cpython-311.pyc" in members]
    assert len(sources) > 500 and len(compiled) >= 0.98 * len(sources)  # only files that are not Python 3 are left


def test_two_builds_give_the_same_digest(gomp, tmp_path):
    home, bento, image = gomp
    again = build_bento(copy_service(GOMP, tmp_path / "gomp"), BentoStore(home))
    second = containerize(again, home, BlobStore(tmp_path / "fresh"))
    assert [l.descriptor.digest for l in second.layers[:-1]] == [l.descriptor.digest for l in image.layers[:-1]]
    assert containerize(bento, home, BlobStore(tmp_path / "fresh2")).digest == image.digest


def test_runs_in_docker_with_a_working_standard_library(gomp, docker_engine, tmp_path):
    home, bento, image = gomp
    archive = write(image, tmp_path / "gomp.tar", tag="ocibuild-test/gomp:debian")
    assert subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True).returncode == 0
    check = ("import ssl, sqlite3, zlib, ctypes, venv, tempfile, ctypes.util;"
             "ctx = ssl.create_default_context(); assert ctx.cert_store_stats()['x509_ca'] > 100;"
             "sqlite3.connect(':memory:').execute('select 1'); zlib.compress(b'x');"
             "ctypes.CDLL('libgomp.so.1'); tempfile.mkstemp();"
             "import zoneinfo; zoneinfo.ZoneInfo('Europe/Paris'); print('ok')")
    try:
        verbose = subprocess.run(["docker", "run", "--rm", "--network", "host", "ocibuild-test/gomp:debian", "python3", "-v",
                                  "-c", "import json, email.parser, ssl"], capture_output=True, text=True, timeout=120)
        assert "/usr/lib/python3.11/json/__pycache__/__init__.cpython-311.pyc matches" in verbose.stderr
        assert "# could not create" not in verbose.stderr  # the image's user never compiles the standard library
        out = subprocess.run(["docker", "run", "--rm", "--network", "host", "ocibuild-test/gomp:debian", "python3", "-c",
                              check], capture_output=True, text=True, timeout=120)
        assert out.stdout.strip() == "ok", out.stderr
        venv = subprocess.run(["docker", "run", "--rm", "--network", "host", "ocibuild-test/gomp:debian", "python3", "-m",
                               "venv", "/tmp/env"], capture_output=True, text=True, timeout=120)
        assert venv.returncode == 0, venv.stderr
        port = free_port()
        server = subprocess.Popen(["docker", "run", "--rm", "--name", "ocibuild-gomp", "--network", "host", "-e",
                                   f"PORT={port}", "ocibuild-test/gomp:debian"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    response = requests.post(f"http://127.0.0.1:{port}/threads", json={}, timeout=1)
                    break
                except requests.ConnectionError:
                    threading.Event().wait(0.2)
            assert response.status_code == 200 and response.json() >= 1
        finally:
            subprocess.run(["docker", "stop", "ocibuild-gomp"], capture_output=True)
            server.wait(30)
    finally:
        subprocess.run(["docker", "rmi", "ocibuild-test/gomp:debian"], capture_output=True)


def test_a_tampered_deb_in_the_cache_is_refused(gomp, tmp_path):
    home, bento, image = gomp
    lock = DebianLock.parse((bento.path / "env/debian/packages.lock").read_text())
    settings = DebianSettings.load(home)
    archive = DebianArchive(settings, lock.release, lock.architecture, DebianSettings.cache_dir(home))
    victim = lock.system[0]
    copy_cache = tmp_path / "debian-cache"
    (copy_cache / "debs").mkdir(parents=True)
    original = archive.deb(victim)
    tampered = copy_cache / "debs" / original.name
    data = bytearray(original.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    with pytest.raises(DebianError, match="libgomp1.*does not match its SHA256"):
        DebianArchive(settings, lock.release, lock.architecture, copy_cache).deb(victim)


class LocalMirror:
    """A loopback HTTP mirror holding a real signed InRelease and whatever Packages we put there."""

    def __init__(self, root: Path):
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)  # noqa: E731
        http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def mirror(tmp_path):
    settings = DebianSettings.load(tmp_path)
    need(shutil.which("gpgv") is not None and settings.keyring.is_file(), "gpgv or the Debian keyring is missing")
    dists = tmp_path / "mirror" / "dists" / "bookworm"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    (dists / "InRelease").write_bytes(requests.get(f"{settings.mirror}/dists/bookworm/InRelease", timeout=30).content)
    local = LocalMirror(tmp_path / "mirror")
    yield dists, DebianSettings(local.url, require_signature=True)
    local.httpd.shutdown()


def test_a_tampered_packages_index_is_refused(mirror, tmp_path):
    dists, settings = mirror
    (dists / "main" / "binary-amd64" / "Packages.xz").write_bytes(lzma.compress(b"Package: evil\nVersion: 1\n"))
    with pytest.raises(DebianError, match="Packages.xz does not match the SHA256 and size in Release"):
        DebianArchive(settings, "bookworm", "amd64", tmp_path / "cache").index()


def test_a_tampered_release_is_refused(mirror, tmp_path):
    dists, settings = mirror
    signed = (dists / "InRelease").read_text()
    assert "Codename: bookworm" in signed
    (dists / "InRelease").write_text(signed.replace("Codename: bookworm", "Codename: bookwurm", 1))
    with pytest.raises(DebianError, match="does not carry a valid signature"):
        DebianArchive(settings, "bookworm", "amd64", tmp_path / "cache").index()


def test_a_signed_release_of_another_suite_is_refused(mirror, tmp_path):
    """A validly signed bookworm InRelease served for trixie: a mirror choosing what we get."""
    dists, settings = mirror
    trixie = dists.parent / "trixie"
    trixie.mkdir()
    shutil.copy(dists / "InRelease", trixie / "InRelease")
    with pytest.raises(DebianError, match="the mirror's InRelease for trixie is that of bookworm: refusing it"):
        DebianArchive(settings, "trixie", "amd64", tmp_path / "cache").index()


def test_a_release_older_than_one_read_before_is_passed_over(mirror, tmp_path, caplog):
    """A mirror replaying an old signed release (bookworm's has no Valid-Until to expire it) gets
    the newest one this machine has read from it, as apt keeps its newest lists."""
    dists, settings = mirror
    cache = tmp_path / "cache"
    first = DebianArchive(settings, "bookworm", "amd64", cache)
    served = first.release()
    assert not (cache / "releases").exists()  # not before its index is here: it may never come
    first._kept_with_index()  # as `index` does once the index is verified and cached
    [kept] = (cache / "releases").iterdir()
    assert Release(kept.read_bytes())["Date"] == served["Date"]  # the newest read so far
    newer = kept.read_text().replace(f"Date: {served['Date']}", "Date: Sat, 01 Jan 2095 00:00:00 UTC", 1)
    kept.write_text(newer)  # as if a release of 2095 had been read from this mirror before
    again = DebianArchive(settings, "bookworm", "amd64", cache).release()
    assert again["Date"] == "Sat, 01 Jan 2095 00:00:00 UTC" and kept.read_text() == newer
    assert f"serves bookworm's release of {served['Date']}, older than the one of Sat, 01 Jan 2095" in caplog.text
    kept.write_text(newer.replace("2095", "2001"))  # an older one read before: the mirror's is newer
    newest = DebianArchive(settings, "bookworm", "amd64", cache)
    assert newest.release()["Date"] == served["Date"]
    newest._kept_with_index()
    assert Release(kept.read_bytes())["Date"] == served["Date"]


def test_a_newer_release_kept_by_another_build_meanwhile_is_not_replaced(mirror, tmp_path):
    """Two builds read the kept release, then each keeps what it was served: the one that comes
    second compares again, under the lock, and does not put back an older release."""
    dists, settings = mirror
    cache = tmp_path / "cache"
    seed = DebianArchive(settings, "bookworm", "amd64", cache)
    served = seed.release()
    seed._kept_with_index()
    [kept] = (cache / "releases").iterdir()
    older = kept.read_text().replace(f"Date: {served['Date']}", "Date: Sat, 01 Jan 2000 00:00:00 UTC", 1)
    kept.write_text(older)
    slow = DebianArchive(settings, "bookworm", "amd64", cache)
    assert slow.release()["Date"] == served["Date"]  # newer than the kept one of 2000: to be kept
    newer = older.replace("2000", "2095")
    kept.write_text(newer)  # meanwhile another build kept a release of 2095
    slow._kept_with_index()
    assert kept.read_text() == newer
    assert [p.name for p in (cache / "staging").iterdir()] == []
    # the comparison and the write are one step: while another holds the lock, nothing is written
    kept.write_text(older)
    slow._keep = (kept, served.dump().encode(), release_date(served, "bookworm"))
    with directory_lock(kept.parent):
        writer = threading.Thread(target=slow._kept_with_index)
        writer.start()
        writer.join(0.5)
        assert writer.is_alive() and kept.read_text() == older
    writer.join(10)
    assert Release(kept.read_bytes())["Date"] == served["Date"]


def test_the_index_is_fetched_by_its_hash_where_the_release_offers_it(mirror, tmp_path):
    dists, settings = mirror
    archive = DebianArchive(settings, "bookworm", "amd64", tmp_path / "cache")
    assert archive.release()["Acquire-By-Hash"] == "yes"
    by_hash = dists / "main" / "binary-amd64" / "by-hash" / "SHA256" / archive.index_digest()
    by_hash.parent.mkdir(parents=True)
    by_hash.write_bytes(lzma.compress(b"Package: evil\nVersion: 1\n"))  # and none at the plain path
    with pytest.raises(DebianError, match="Packages.xz does not match the SHA256 and size in Release"):
        archive.index()
    assert not (tmp_path / "cache" / "releases").exists()  # a release whose index never came is not kept


RELEASE = "Suite: stable\nCodename: trixie\nDate: Sat, 01 Nov 2026 09:00:00 UTC\n"


@pytest.mark.parametrize("extra, problem", [
    ("", None),
    ("Valid-Until: Sat, 08 Jan 2011 00:00:00 UTC\n", "trixie's InRelease expired on Sat, 08 Jan 2011"),
    ("Valid-Until: Sat, 08 Jan 2099 00:00:00 UTC\n", None),
    ("Valid-Until: soon\n", "trixie's InRelease has an unreadable Valid-Until 'soon'"),
    ("Valid-Until: Sat, 08 Jan 2099 00:00:00 -0000\n", None),  # -0000: UTC, not a naive time
])
def test_a_release_is_good_until_its_valid_until(extra, problem):
    from datetime import UTC, datetime

    from debian.deb822 import Release

    from ocibuild.debian.archive import check_release

    release = Release(RELEASE + extra)
    now = datetime(2026, 12, 3, tzinfo=UTC)
    if problem is None:
        check_release(release, "trixie", now)
        check_release(release, "stable", now)
    else:
        with pytest.raises(DebianError, match=problem):
            check_release(release, "trixie", now)
    if "Valid-Until" in extra:  # a snapshot archive: releases past their Valid-Until, by design
        check_release(Release(RELEASE + extra.replace("2099", "2011")), "trixie", None)


def test_valid_until_is_checked_unless_a_snapshot_archive_says_otherwise(tmp_path):
    assert DebianSettings.load(tmp_path, {"OCIBUILD_DEBIAN_MIRROR": "http://m"}).check_valid_until
    assert not DebianSettings.load(tmp_path, {"OCIBUILD_DEBIAN_MIRROR": "http://m",
                                              "OCIBUILD_DEBIAN_CHECK_VALID_UNTIL": "0"}).check_valid_until
    (tmp_path / "debian.yaml").write_text("mirror: http://m\ncheck_valid_until: false\nrequire_signature: true\n")
    settings = DebianSettings.load(tmp_path, {})
    assert not settings.check_valid_until and settings.require_signature


def test_an_unchecked_signature_is_said(mirror, tmp_path, caplog):
    dists, settings = mirror
    unchecked = DebianSettings(settings.mirror, require_signature=False, keyring=tmp_path / "no-keyring.gpg")
    assert DebianArchive(unchecked, "bookworm", "amd64", tmp_path / "cache").release()["Codename"] == "bookworm"
    assert "the signature of bookworm's InRelease is not checked" in caplog.text
    assert not (tmp_path / "cache" / "releases").exists()  # never kept as the newest: it could be anyone's
    (dists / "InRelease").write_bytes(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\nno blank line")
    with pytest.raises(DebianError, match="the mirror's InRelease is not a readable signed message"):
        DebianArchive(unchecked, "bookworm", "amd64", tmp_path / "cache").release()


def test_an_endless_inrelease_is_not_read_whole(mirror, tmp_path):
    dists, settings = mirror
    (dists / "InRelease").write_bytes(b"x" * (17 << 20))
    with pytest.raises(DebianError, match="InRelease is larger than 16777216 bytes: refusing it"):
        DebianArchive(settings, "bookworm", "amd64", tmp_path / "cache").release()


def test_a_deb_larger_than_packages_declares_is_cut_off(tmp_path):
    """An endless answer stops at the size the (signed) index declares; nothing is left behind."""
    from ocibuild.debian.index import DebPackage

    (tmp_path / "mirror" / "pool").mkdir(parents=True)
    (tmp_path / "mirror" / "pool" / "big.deb").write_bytes(b"x" * (4 << 20))
    local = LocalMirror(tmp_path / "mirror")
    try:
        package = DebPackage("big", "1", "amd64", "pool/big.deb", "0" * 64, 100)
        cache = tmp_path / "cache"
        with pytest.raises(DebianError, match="big_1.deb from the mirror is larger than the 100 bytes Packages declares"):
            DebianArchive(DebianSettings(local.url), "bookworm", "amd64", cache).deb(package)
        assert [p for p in cache.rglob("*") if p.is_file()] == []
    finally:
        local.httpd.shutdown()


def test_unknown_package_and_unshipped_python(home, tmp_path):
    src = copy_service(GOMP, tmp_path / "bad")
    (src / "service.py").write_text((src / "service.py").read_text().replace("libgomp1", "no-such-package-zz"))
    with pytest.raises(Exception, match="Debian package 'no-such-package-zz' does not exist"):
        build_bento(src, BentoStore(home))
    (src / "service.py").write_text((GOMP / "service.py").read_text().replace('python_version="3.11"', 'python_version="3.12"'))
    with pytest.raises(SpecError, match='no Debian release ships Python 3.12 .*base_image="python:3.12-slim"'):
        build_bento(src, BentoStore(home))
    assert BentoStore(home).list() == []


def test_system_packages_on_a_debian_based_base(python_base, docker_engine, tmp_path):
    """The mmdebstrap base: bookworm from its os-release, what it has from its dpkg status."""
    home = tmp_path / "home"
    src = copy_service(GOMP, tmp_path / "gomp")
    (src / "service.py").write_text((GOMP / "service.py").read_text().replace(
        'PythonImage(python_version="3.11")', f'PythonImage(python_version="3.11", base_image="{python_base}")'))
    bento = build_bento(src, BentoStore(home))
    lock = DebianLock.parse((bento.path / "env/debian/packages.lock").read_text())
    assert lock.release == "bookworm" and lock.base == ()
    assert [p.name for p in lock.system] == ["libgomp1"]  # libc6 and gcc-12-base are in the base already
    image = containerize(bento, home)
    assert image.history[-len(image.layers):][1]["created_by"] == "ocibuild: Debian packages libgomp1"
    archive = write(image, tmp_path / "g.tar", tag="ocibuild-test/gomp:slim")
    assert subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True).returncode == 0
    try:
        out = subprocess.run(["docker", "run", "--rm", "--network", "host", "ocibuild-test/gomp:slim", "python3", "-c",
                              "import ctypes; ctypes.CDLL('libgomp.so.1'); print('ok')"], capture_output=True, text=True)
        assert out.stdout.strip() == "ok", out.stderr
    finally:
        subprocess.run(["docker", "rmi", "ocibuild-test/gomp:slim"], capture_output=True)


def layer_with(tmp_path, files: dict[str, bytes]) -> Path:
    path = tmp_path / f"layer-{len(list(tmp_path.iterdir()))}.tar"
    path.write_bytes(make_tar([file(name, data) for name, data in files.items()], mode="w"))
    return path


def test_system_packages_need_a_debian_base(tmp_path):
    alpine = layer_with(tmp_path, {"etc/os-release": b'ID=alpine\nPRETTY_NAME="Alpine Linux"\n'})
    with pytest.raises(DebianError, match="need a Debian-based base; fake is Alpine Linux"):
        read_base_system([alpine], "fake")
    with pytest.raises(DebianError, match="fake has no /etc/os-release"):
        read_base_system([layer_with(tmp_path, {"etc/hostname": b"x"})], "fake")


def test_later_layers_win_and_removed_packages_do_not_count(tmp_path):
    first = layer_with(tmp_path, {"etc/os-release": b"ID=debian\nVERSION_CODENAME=bookworm\n",
                                  "var/lib/dpkg/status": b"Package: a\nVersion: 1\nStatus: install ok installed\n\n"
                                                         b"Package: b\nVersion: 1\nStatus: deinstall ok config-files\n"})
    second = layer_with(tmp_path, {"var/lib/dpkg/status.d/c": b"Package: c\nVersion: 2\nProvides: virt (= 3)\n",
                                   "etc/os-release": b"ID=debian\nVERSION_CODENAME=trixie\n"})
    system = read_base_system([first, second], "base")
    assert system.release == "trixie"
    assert system.installed == {"a": "1", "c": "2", "virt": "3"}
