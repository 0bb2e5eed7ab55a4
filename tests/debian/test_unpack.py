"""Packages streamed into layer members, on small `.deb`s made here (ar + control.tar + data.tar)."""

from __future__ import annotations

import io
import lzma
import tarfile
from pathlib import Path

import pytest

from ocibuild.errors import DebianError
from ocibuild.debian.base import debian_layer
from ocibuild.debian.index import DebPackage
from ocibuild.debian.unpack import DebLayer
from ocibuild.store.blobs import BlobStore
from ocibuild.layers.compression import Compression
from ocibuild.layers.tarwriter import write_members

EPOCH = 1_700_000_000


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", mode: int = 0o644, uid: int = 0,
           gid: int = 0, linkname: str = "", uname: str = "root") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid, info.linkname = kind, mode, uid, gid, linkname
    info.uname = info.gname = uname
    info.mtime = EPOCH + 1000  # later than the layer's epoch: must be clamped
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _tar(members, compress=lzma.compress) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return compress(buf.getvalue())


def _ar(files: list[tuple[str, bytes]]) -> bytes:
    out = b"!<arch>\n"
    for name, data in files:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def make_deb(directory: Path, name: str, members) -> Path:
    control = f"Package: {name}\nVersion: 1.0\nArchitecture: amd64\nDescription: test\n".encode()
    path = directory / f"{name}.deb"
    path.write_bytes(_ar([("debian-binary", b"2.0\n"),
                          ("control.tar.xz", _tar([member("./"), member("./control", data=control)])),
                          ("data.tar.xz", _tar(members))]))
    return path


TOOL = [member("./", tarfile.DIRTYPE, mode=0o755), member("./usr/", tarfile.DIRTYPE, mode=0o755),
        member("./usr/bin/", tarfile.DIRTYPE, mode=0o755),
        member("./usr/bin/tool", data=b"#!tool\n", mode=0o4755),
        member("./usr/bin/tool-again", tarfile.LNKTYPE, mode=0o4755, linkname="./usr/bin/tool"),
        member("./usr/bin/t", tarfile.SYMTYPE, mode=0o777, linkname="tool"),
        member("./var/", tarfile.DIRTYPE, mode=0o755), member("./var/local/", tarfile.DIRTYPE, mode=0o2775, gid=50),
        member("./var/spool/", tarfile.DIRTYPE, mode=0o755, uid=8, gid=12, uname="mail")]


def stream(*debs: tuple[str, Path]) -> bytes:
    layer = DebLayer()
    out = io.BytesIO()

    def members():
        for name, path in debs:
            yield from layer.package(path, name)
        yield from layer.status_records()

    write_members(members(), out, EPOCH)
    return out.getvalue()


def read(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_members_keep_modes_links_and_the_packages_owners(tmp_path):
    members = read(stream(("tool", make_deb(tmp_path, "tool", TOOL))))
    assert list(members) == ["usr", "usr/bin", "usr/bin/tool", "usr/bin/tool-again", "usr/bin/t", "var", "var/local",
                             "var/spool", "var/lib", "var/lib/dpkg", "var/lib/dpkg/status.d",
                             "var/lib/dpkg/status.d/tool"]
    assert members["usr/bin/tool"].mode == 0o4755  # setuid kept
    assert members["usr/bin/tool-again"].islnk() and members["usr/bin/tool-again"].linkname == "usr/bin/tool"
    assert members["usr/bin/t"].issym() and members["usr/bin/t"].linkname == "tool"
    assert (members["var/local"].mode, members["var/local"].gid) == (0o2775, 50)
    assert (members["var/spool"].uid, members["var/spool"].gid) == (8, 12)  # numeric, from the package
    assert all(m.uname == m.gname == "" and m.mtime == EPOCH for m in members.values())


def test_shared_directories_are_written_once_and_bytes_are_deterministic(tmp_path):
    tool = make_deb(tmp_path, "tool", TOOL)
    other = make_deb(tmp_path, "other", [member("./usr/", tarfile.DIRTYPE, mode=0o700),
                                         member("./usr/bin/other", data=b"x", mode=0o755),
                                         member("./usr/bin/linked", tarfile.LNKTYPE, linkname="./usr/bin/tool")])
    data = stream(("tool", tool), ("other", other))
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
    assert names.count("usr") == 1 and read(data)["usr"].mode == 0o755  # the first package's directory
    assert read(data)["usr/bin/linked"].linkname == "usr/bin/tool"  # a hard link into an earlier package
    assert data == stream(("tool", tool), ("other", other))


@pytest.mark.parametrize("bad, why", [
    (member("./../etc/shadow", data=b"x"), "outside the image's root"),
    (member("./usr/../../x", data=b"x"), "outside the image's root"),
    (member("/etc/passwd", data=b"x"), "outside the image's root"),
    (member("./dev/sda", tarfile.BLKTYPE), "a device"),
    (member("./dev/null", tarfile.CHRTYPE), "a device"),
    (member("./run/fifo", tarfile.FIFOTYPE), "a fifo"),
    (member("./usr/bin/x", tarfile.LNKTYPE, linkname="./etc/shadow"), "not a file earlier in the layer"),
    (member("./usr/bin/y", tarfile.LNKTYPE, linkname="./usr/bin"), "not a file earlier in the layer"),
])
def test_unsafe_members_are_refused_naming_the_package(tmp_path, bad, why):
    deb = make_deb(tmp_path, "evil", [member("./usr/", tarfile.DIRTYPE), member("./usr/bin/", tarfile.DIRTYPE), bad])
    with pytest.raises(DebianError, match=f"package evil: refusing .*{why}"):
        stream(("evil", deb))


class FakeArchive:
    def __init__(self, debs: dict[str, Path]):
        self.debs = debs

    def deb(self, package: DebPackage) -> Path:
        return self.debs[package.name]


def test_a_base_layer_gets_the_skeleton_after_the_packages(tmp_path):
    certs = make_deb(tmp_path, "ca-certificates", [
        member("./usr/share/ca-certificates/mozilla/B.crt", data=b"B\n\n"),
        member("./usr/share/ca-certificates/mozilla/A.crt", data=b"A"),
        member("./usr/share/doc/ca-certificates/README", data=b"not a cert")])
    debs = {"tool": make_deb(tmp_path, "tool", TOOL), "ca-certificates": certs}
    packages = tuple(DebPackage(name, "1.0", "amd64", f"pool/{name}.deb", "0" * 64, 1) for name in debs)
    blobs = [debian_layer(packages, FakeArchive(debs), BlobStore(tmp_path / f"cache{i}"), Compression.GZIP, EPOCH,
                          skeleton_for="3.11") for i in range(2)]
    assert blobs[0] == blobs[1]
    with tarfile.open(BlobStore(tmp_path / "cache0").blob_path(blobs[0].digest)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        bundle = tar.extractfile("etc/ssl/certs/ca-certificates.crt").read()
        status = tar.extractfile("var/lib/dpkg/status.d/ca-certificates").read().decode()
        assert "ocibuild:x:1000:1000:" in tar.extractfile("etc/passwd").read().decode()
    assert bundle == b"A\nB\n"
    assert status.startswith("Package: ca-certificates\n") and status.endswith("Status: install ok installed\n")
    assert members["usr/bin/python3"].linkname == "python3.11"
    assert (members["home/ocibuild"].uid, members["home/ocibuild"].gid, members["home/ocibuild"].mode) == (1000, 1000, 0o755)
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    assert members["usr/bin/tool"].mode == 0o4755
