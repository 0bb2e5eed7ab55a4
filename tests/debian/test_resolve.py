"""The resolver on small hand-written Packages indexes."""

import pytest

from ocibuild.debian.index import LazyPackageIndex, PackageIndex, parse_packages, parse_stanza, scan
from ocibuild.debian.resolve import ResolveError, installed_names, resolve

PACKAGES = """\
Package: app
Version: 1.0
Architecture: amd64
Depends: libc6 (>= 2.34), python3 | python3-alt, mail-transport-agent
Filename: pool/a/app_1.0_amd64.deb
SHA256: 01
Size: 10

Package: libc6
Version: 2.36-9
Architecture: amd64
Filename: pool/l/libc6_2.36-9_amd64.deb
SHA256: 02
Size: 20

Package: libc6
Version: 2.31-1
Architecture: amd64
Filename: pool/l/libc6_2.31-1_amd64.deb
SHA256: 03
Size: 20

Package: libc6
Version: 2.40-1
Architecture: arm64
Filename: pool/l/libc6_2.40-1_arm64.deb
SHA256: 04
Size: 20

Package: python3
Version: 3.11.2-1
Architecture: amd64
Pre-Depends: python3-minimal (= 3.11.2-1)
Filename: pool/p/python3_3.11.2-1_amd64.deb
SHA256: 05
Size: 30

Package: python3-minimal
Version: 3.11.2-1
Architecture: amd64
Depends: python3 (>= 3.11)
Filename: pool/p/python3-minimal_3.11.2-1_amd64.deb
SHA256: 06
Size: 30

Package: python3-alt
Version: 1
Architecture: all
Filename: pool/p/python3-alt_1_all.deb
SHA256: 07
Size: 1

Package: postfix
Version: 3.7
Architecture: amd64
Provides: mail-transport-agent
Filename: pool/p/postfix_3.7_amd64.deb
SHA256: 08
Size: 40

Package: exim4
Version: 4.96
Architecture: amd64
Provides: mail-transport-agent
Filename: pool/e/exim4_4.96_amd64.deb
SHA256: 09
Size: 40

Package: needs-new
Version: 1
Architecture: amd64
Depends: libc6 (>= 3.0)
Filename: pool/n/needs-new_1_amd64.deb
SHA256: 10
Size: 1

Package: versioned-virtual
Version: 1
Architecture: amd64
Depends: api (>= 2)
Filename: pool/v/vv_1_amd64.deb
SHA256: 11
Size: 1

Package: api-v1
Version: 1
Architecture: amd64
Provides: api (= 1)
Filename: pool/a/api-v1_1_amd64.deb
SHA256: 12
Size: 1

Package: api-v3
Version: 1
Architecture: amd64
Provides: api (= 3)
Filename: pool/a/api-v3_1_amd64.deb
SHA256: 13
Size: 1
"""


def make_index(kind: str, architecture: str):
    """The eager index (every paragraph parsed by python-debian) or the lazy one (parsed when read)."""
    if kind == "eager":
        return PackageIndex(parse_packages(PACKAGES), architecture)
    return LazyPackageIndex(PACKAGES, architecture)


@pytest.fixture(params=["eager", "lazy"])
def index(request):
    return make_index(request.param, "amd64")


def test_the_lazy_parser_reads_paragraphs_as_python_debian_does():
    paragraphs = [p for p in PACKAGES.split("\n\n") if p.strip()]
    assert [parse_stanza(p) for p in paragraphs] == parse_packages(PACKAGES)


def test_the_lazy_index_parses_only_what_it_reads_and_its_scan_can_be_cached():
    import json

    lazy = LazyPackageIndex(PACKAGES, "amd64", json.loads(json.dumps(scan(PACKAGES.encode()))))
    assert names(resolve(lazy, ["versioned-virtual"])) == ["api-v3=1", "versioned-virtual=1"]
    assert len(lazy._parsed) < len(parse_packages(PACKAGES))


def names(packages):
    return [f"{p.name}={p.version}" for p in packages]


def test_closure_with_versions_alternatives_virtuals_and_cycles(index):
    assert names(resolve(index, ["app"])) == [
        "app=1.0", "exim4=4.96", "libc6=2.36-9", "python3=3.11.2-1", "python3-minimal=3.11.2-1"]


def test_the_same_request_gives_the_same_set(index):
    assert resolve(index, ["app"]) == resolve(index, ["app"])


def test_installed_packages_are_skipped_when_they_satisfy(index):
    base = [p for p in parse_packages(PACKAGES) if p.name in ("libc6", "python3-alt", "postfix") and p.version != "2.31-1"]
    result = resolve(index, ["app"], installed=installed_names(base))
    assert names(result) == ["app=1.0"]  # postfix provides mail-transport-agent
    result = resolve(index, ["app"], installed={"libc6": "2.31-1"})  # too old: the newer one is added
    assert "libc6=2.36-9" in names(result)


def test_chosen_alternative_is_reused(index):
    assert "python3-alt=1" not in names(resolve(index, ["python3", "app"]))


def test_versioned_virtual_dependency(index):
    assert names(resolve(index, ["versioned-virtual"])) == ["api-v3=1", "versioned-virtual=1"]


def test_excluded_names_are_left_out(index):
    assert "libc6=2.36-9" not in names(resolve(index, ["app"], excluded=frozenset({"libc6"})))


def test_missing_packages_name_themselves(index):
    with pytest.raises(ResolveError, match="Debian package 'nope' does not exist"):
        resolve(index, ["nope"])
    with pytest.raises(ResolveError, match=r"cannot satisfy libc6 \(>= 3.0\) \(needed by needs-new 1\)"):
        resolve(index, ["needs-new"])


@pytest.mark.parametrize("kind", ["eager", "lazy"])
def test_other_architectures_are_ignored(kind):
    index = make_index(kind, "arm64")
    assert names(resolve(index, ["libc6"])) == ["libc6=2.40-1"]
    assert not index.knows("app")


def test_a_lazy_index_is_freed_as_soon_as_it_is_dropped():
    """No reference cycle: an index (50 MB of text for a real archive) must not wait for the cyclic
    garbage collector, or a multi-platform build holds one per architecture at once."""
    import gc
    import weakref

    lazy = LazyPackageIndex(PACKAGES, "amd64")
    resolve(lazy, ["app"])  # fills the providers' cache too
    gone = weakref.ref(lazy)
    gc.disable()
    try:
        del lazy
        assert gone() is None
    finally:
        gc.enable()


def test_a_provides_line_before_any_package_belongs_to_none():
    assert scan(b"Source: x\nProvides: ghost\n\nPackage: a\nProvides: b\n") == {
        "packages": {"a": [(27, 50)]}, "provides": {"b": [(27, 50)]}}
