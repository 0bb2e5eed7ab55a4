"""The Debian lock's text: written and read back the same, and every field checked on reading,
since a bento (and so its lock) can come from an archive or a registry."""

from __future__ import annotations

import pytest

from ocibuild.debian.index import DebPackage
from ocibuild.debian.lock import DebianLock
from ocibuild.errors import DebianError

SHA = "a" * 64
PYTHON = DebPackage("python3.11", "3.11.2-6+deb12u6", "amd64", "pool/main/p/python3.11/python3.11_3.11.2-6+deb12u6_amd64.deb",
                    SHA, 573_288)
GOMP = DebPackage("libgomp1", "12.2.0-14+deb12u1", "amd64", "pool/main/g/gcc-12/libgomp1_12.2.0-14+deb12u1_amd64.deb",
                  "b" * 64, 117_000)
LOCK = DebianLock("bookworm", "amd64", (PYTHON,), (GOMP,))


def test_round_trip():
    parsed = DebianLock.parse(LOCK.text())
    assert parsed == LOCK
    assert parsed.text() == LOCK.text()


def replace_line(old: str, new: str) -> str:
    text = LOCK.text()
    assert old in text
    return text.replace(old, new, 1)


@pytest.mark.parametrize("text", [
    replace_line(SHA, "../../../../../../tmp/escape"),  # the sha256 names the cached .deb
    replace_line(SHA, "A" * 64),
    replace_line("pool/main/p/python3.11/", "pool/../../../"),  # the pool path names a URL
    replace_line("pool/main/p/python3.11/", "/etc/"),
    replace_line(" 573288 ", " -1 "),
    replace_line("python3.11 3.11.2", "Python3.11 3.11.2"),
    replace_line("python3.11 3.11.2", "python3.11 3.11.2 extra"),
    replace_line("[base]", "[other]"),
    replace_line("[base]\n", ""),
    replace_line("release bookworm", "release ../bookworm"),
    replace_line("architecture amd64", "architecture amd64/../x"),
    "",
    "not a lock\n",
])
def test_hostile_locks_are_refused(text):
    with pytest.raises(DebianError, match="Debian lock"):
        DebianLock.parse(text)


@pytest.mark.parametrize("package", [
    DebPackage("libc6", "2.36-9+deb12u10", "arm64", "pool/main/g/glibc/libc6_2.36-9+deb12u10_arm64.deb", SHA, 1),
    DebPackage("tzdata", "2025b-0+deb12u1", "all", "pool/main/t/tzdata/tzdata_2025b-0+deb12u1_all.deb", SHA, 1),
    DebPackage("libstd-rust-1.63", "1.63.0+dfsg1-2", "amd64",
               "pool/main/r/rustc/libstd-rust-1.63_1.63.0+dfsg1-2_amd64.deb", SHA, 1),
    DebPackage("firmware-misc-nonfree", "1:20230210-5~bpo11+1", "all",
               "pool/non-free-firmware/f/firmware-nonfree/firmware-misc-nonfree_20230210-5~bpo11+1_all.deb", SHA, 1),
])
def test_real_packages_are_accepted(package):
    lock = DebianLock("bookworm", package.architecture, (), (package,))
    assert DebianLock.parse(lock.text()) == lock
