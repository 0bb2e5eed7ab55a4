"""The safe extractor against hostile archives built in memory.

Every refusal checks the message (which names the member and the rule), that nothing outside the
destination changed (the whole test directory but `dest`, and /etc/passwd), and, for the limits,
that extraction stopped at the limit instead of writing the bomb out.
"""

from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest

from ocibuild.errors import ArchiveError
from ocibuild.store.extract import ExtractLimits, Tree, extract, normalize
from tests.hostile import (
    cve_2025_4517_chain,
    directory,
    file,
    hardlink,
    lying_size_tar,
    make_tar,
    make_victim,
    snapshot,
    special,
    symlink,
)

PASSWD = Path("/etc/passwd")


@pytest.fixture
def place(tmp_path):
    """(dest, victim): an empty destination and a victim directory beside it."""
    make_victim(tmp_path / "victim")
    dest = tmp_path / "dest"
    dest.mkdir()
    return dest, tmp_path / "victim"


def run(dest: Path, data: bytes, limits: ExtractLimits = ExtractLimits()) -> None:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        extract(tar, dest, limits)


def outside(dest: Path) -> dict:
    """Everything the test can see that is not the destination."""
    roots = [p for p in dest.parent.iterdir() if p != dest]
    return snapshot(*roots, PASSWD)


def refused(dest: Path, data: bytes, message: str, limits: ExtractLimits = ExtractLimits()) -> None:
    before = outside(dest)
    with pytest.raises(ArchiveError, match=message) as caught:
        run(dest, data, limits)
    assert "\n" not in str(caught.value)
    assert outside(dest) == before


HOSTILE = {
    "cve-2025-4517 symlink chain": (lambda dest_len: cve_2025_4517_chain(1, "victim", dest_len),
                                    r"'a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/l+' would be written beneath the symlink 'a'"),
    "dotdot member": ([file("../victim/pwned")], r"path '../victim/pwned' contains '\.\.'"),
    "dotdot inside member": ([file("sub/../../victim/pwned")], r"path 'sub/../../victim/pwned' contains '\.\.'"),
    "absolute member": ([file("/tmp/pwned-by-test")], r"absolute path '/tmp/pwned-by-test'"),
    "symlink outside, file through it": ([symlink("out", "../victim"), file("out/pwned")],
                                         r"link 'out' points outside it \('../victim'\)"),
    "absolute symlink": ([symlink("out", "/etc")], r"link 'out' points outside it \('/etc'\)"),
    "file through an inside symlink": ([directory("real"), symlink("in", "real"), file("in/f")],
                                       r"'in/f' would be written beneath the symlink 'in'"),
    # lexically `sub/up/..` is `sub`; through the earlier link `sub/up` -> `..` it is `..`
    "symlink to a symlink that escapes": ([symlink("sub/up", ".."), symlink("esc", "sub/up/../victim"),
                                           file("esc/pwned")],
                                          r"link 'esc' points outside it \('sub/up/\.\./victim'\)"),
    # `l` is inside while `sub` is a plain dir; turning `sub` into a link to `.` would send it out
    "later symlink re-routes an earlier one": ([symlink("l", "sub/../victim"), symlink("sub", ".")],
                                               r"symlink 'sub' would re-route a link extracted before it"),
    "hard link to /etc/passwd": ([hardlink("pw", "/etc/passwd")],
                                 r"hard link 'pw' points outside it or to no earlier file in the archive "
                                 r"\('/etc/passwd'\)"),
    "hard link via dotdot": ([hardlink("s", "../victim/secret")],
                             r"hard link 's' points outside it or to no earlier file"),
    "hard link to a later member": ([hardlink("early", "late"), file("late")],
                                    r"hard link 'early' points outside it or to no earlier file .*'late'"),
    "hard link to a symlink": ([symlink("s", "x"), hardlink("h", "s")],
                               r"hard link 'h' points outside it or to no earlier file"),
    "hard link to a directory": ([directory("d"), hardlink("h", "d")],
                                 r"hard link 'h' points outside it or to no earlier file"),
    "character device": ([special("null", tarfile.CHRTYPE)], r"'null' is a device, fifo or other special file"),
    "block device": ([special("disk", tarfile.BLKTYPE)], r"'disk' is a device, fifo or other special file"),
    "fifo": ([special("pipe", tarfile.FIFOTYPE)], r"'pipe' is a device, fifo or other special file"),
    "duplicate file": ([file("f", b"1"), file("f", b"2")], r"'f' appears twice in the archive"),
    "file over a symlink": ([symlink("f", "x"), file("f")], r"'f' appears twice in the archive"),
    "file beneath a file": ([file("f"), file("f/g")], r"'f/g' would be written beneath the file 'f'"),
    "root as a file": ([file("./")], r"'\./' names the archive root but is not a directory"),
}


@pytest.mark.parametrize("members, message", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_members_are_refused(place, members, message):
    dest, victim = place
    if callable(members):
        members = members(len(str(dest)))
    refused(dest, make_tar(members), message)
    assert not (victim / "pwned").exists()


def test_symlink_loop_is_refused(place):
    dest, _ = place
    refused(dest, make_tar([symlink("a", "b"), symlink("b", "a"), symlink("c", "a/x")]),
            r"link 'c' is part of a symlink loop")


def test_the_chain_fools_this_interpreters_data_filter(tmp_path):
    """The CVE archive above is a real exploit: the interpreter's own `data` filter lets it out
    (on Pythons without the fix), which is why `extract` never relies on it."""
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no extraction filters at all")
    if sys.version_info >= (3, 11, 13):
        pytest.skip("this Python has the CVE-2025-4517 fix")
    victim = make_victim(tmp_path / "victim")
    (tmp_path / "dest").mkdir()
    chain = cve_2025_4517_chain(1, "victim", len(str(tmp_path / "dest")))
    with tarfile.open(fileobj=io.BytesIO(make_tar(chain))) as tar:
        tar.extractall(tmp_path / "dest", filter="data")
    assert (victim / "pwned").read_bytes() == b"owned"


def test_names_with_nul_or_nothing_are_refused(place):
    dest, _ = place
    nul = file("a")
    nul.pax_headers = {"path": "a\0b"}
    refused(dest, make_tar([nul]), r"path 'a\\x00b' contains a NUL byte")
    with pytest.raises(ArchiveError, match="empty name"):
        normalize("")
    with pytest.raises(ArchiveError, match="empty or '.' component"):
        normalize("a//b")


def test_gzip_bomb_stops_at_the_file_limit(place):
    dest, _ = place
    data = make_tar([file("zeros", b"\0" * (8 << 20))])
    assert len(data) < 64 << 10  # 8 MiB of zeros in a few KiB
    limits = ExtractLimits(max_file_bytes=1 << 20)
    refused(dest, data, r"refusing archive: 'zeros' is larger than 1 MiB "
                        r"\(raise the limit with --max-archive-file-size\)", limits)
    assert (dest / "zeros").stat().st_size <= 1 << 20  # stopped at the limit, not after the bomb


def test_total_size_limit(place):
    dest, _ = place
    data = make_tar([file(f"part{i}", b"\0" * (300 << 10)) for i in range(5)])
    refused(dest, data, r"its contents exceed 1 MiB at 'part3' \(raise the limit with --max-archive-size\)",
            ExtractLimits(max_total_bytes=1 << 20))
    assert sum(p.stat().st_size for p in dest.iterdir()) <= 1 << 20


def test_member_count_limit(place):
    dest, _ = place
    members = [file(f"f{i}") for i in range(11)]
    refused(dest, make_tar(members), r"it has more than 10 members \(raise the limit with --max-archive-members\)",
            ExtractLimits(max_members=10))
    assert len(list(dest.iterdir())) == 10
    fresh = dest.parent / "fresh"
    fresh.mkdir()
    run(fresh, make_tar(members[:10]), ExtractLimits(max_members=10))


def test_header_that_claims_more_than_the_archive_holds(place):
    dest, _ = place
    refused(dest, lying_size_tar("big", 1 << 20, b"only this"),
            r"the data of 'big' is cut short or corrupt")


def test_a_well_formed_tree_is_extracted_exactly(place):
    dest, _ = place
    members = [
        directory("./"),
        directory("src", 0o775),
        file("src/app.py", b"print()\n", 0o664),
        file("src/run.sh", b"#!/bin/sh\n", 0o4777),  # setuid and world-write dropped, x kept
        file("deep/er/data.bin", b"\1\2\3"),  # parents not in the archive
        symlink("src/up", ".."),
        symlink("latest", "src/up/deep/er/data.bin"),  # through an earlier link, still inside
        symlink("dangling", "not-yet"),
        hardlink("copy.bin", "./deep/er/data.bin"),
        directory("sticky", 0o1777),
    ]
    run(dest, make_tar(members))
    assert (dest / "src/app.py").read_bytes() == b"print()\n"
    assert stat.S_IMODE((dest / "src/app.py").stat().st_mode) == 0o644
    assert stat.S_IMODE((dest / "src/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "src").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "sticky").stat().st_mode) == 0o755
    assert os.readlink(dest / "latest") == "src/up/deep/er/data.bin"
    assert (dest / "latest").read_bytes() == b"\1\2\3"
    assert os.readlink(dest / "dangling") == "not-yet"
    assert os.stat(dest / "copy.bin").st_ino == os.stat(dest / "deep/er/data.bin").st_ino
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "copy.bin", "dangling", "deep", "deep/er", "deep/er/data.bin", "latest",
        "src", "src/app.py", "src/run.sh", "src/up", "sticky"]


def test_every_compression_and_no_filter_argument(place, monkeypatch):
    """Works without `filter=` and never calls tarfile's extraction (as on Debian's 3.11.2)."""
    dest, _ = place

    def forbidden(*args, **kwargs):
        raise AssertionError("tarfile extraction was used")

    monkeypatch.setattr(tarfile.TarFile, "extractall", forbidden)
    monkeypatch.setattr(tarfile.TarFile, "extract", forbidden)
    for i, mode in enumerate(["w", "w:gz", "w:bz2", "w:xz"]):
        (dest / str(i)).mkdir()
        run(dest / str(i), make_tar([file("f", b"data")], mode))
        assert (dest / str(i) / "f").read_bytes() == b"data"


def run_under(dest: Path, members: list, under: str, limits: ExtractLimits = ExtractLimits(), **kwargs) -> tuple:
    with tarfile.open(fileobj=io.BytesIO(make_tar(members)), mode="r:*") as tar:
        return extract(tar, dest, limits, under=under, **kwargs)


UNDER = "opt/m/foo/1"


def test_a_subtree_is_taken_straight_into_dest_with_its_links_at_their_depth(place):
    dest, _ = place
    spent = run_under(dest, [directory("opt"), directory("opt/m"), directory("opt/m/foo"), directory(UNDER),
                             file(f"{UNDER}/files/w.bin", b"w"), symlink(f"{UNDER}/latest", "files/w.bin"),
                             hardlink(f"{UNDER}/same", f"{UNDER}/files/w.bin")], UNDER)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["files", "files/w.bin", "latest", "same"]
    assert os.readlink(dest / "latest") == "files/w.bin" and (dest / "same").read_bytes() == b"w"
    assert spent == (7, 1)


def test_layers_of_one_import_share_the_budget_and_name_the_limit_given(place):
    dest, _ = place
    limits = ExtractLimits(max_members=10)
    spent = run_under(dest, [file(f"a/{i}") for i in range(8)], "a", limits)
    with pytest.raises(ArchiveError, match=r"it has more than 10 members \(raise the limit"):
        run_under(dest, [file(f"b/{i}") for i in range(4)], "b", limits, at="second", spent=spent)


def test_a_later_layer_cannot_re_route_a_link_an_earlier_layer_walked_through(place):
    """The first layer's link walks `models/m/1/files/l/..` by names alone (nothing is there yet);
    were `l` later a link to `.`, each `..` would climb out for real."""
    dest, victim = place
    tree = Tree()
    escape = "../models/m/1/files/" + "l/" * 4 + "../" * 8 + "victim"
    run_under(dest, [symlink("app/src/x", escape)], "app", tree=tree)
    before = outside(dest)
    with pytest.raises(ArchiveError, match="symlink 'models/m/1/files/l' would re-route a link extracted before it"):
        run_under(dest, [symlink("opt/models/m/1/files/l", ".")], "opt/models/m/1", at="models/m/1", tree=tree)
    assert outside(dest) == before


@pytest.mark.parametrize("members, message", [
    # the moved-symlink attack: inside the layer `tmp` leads back in; beside the subtree it is refused
    ([symlink("tmp", "d/d"), directory("d/d"), symlink(UNDER, "../../../../tmp/../../victim")],
     r"'tmp' is outside opt/m/foo/1/"),
    ([symlink(UNDER, "../../../victim")], r"'opt/m/foo/1' names the archive root but is not a directory"),
    ([symlink(f"{UNDER}/up", "../../x")], r"link 'up' points outside it"),
    ([file("opt/m", b"x")], r"'opt/m' is not a directory, where opt/m/foo/1/ is expected"),
    ([file("opt/m/foo/2/f")], r"'opt/m/foo/2/f' is outside opt/m/foo/1/"),
    ([file("opt/m/x"), hardlink(f"{UNDER}/h", "opt/m/x")], r"'opt/m/x' is outside"),
    ([file(f"{UNDER}/f"), hardlink(f"{UNDER}/h", "opt/m/foo/1/../../x")], r"contains '\.\.'|points outside"),
])
def test_anything_beside_the_subtree_is_refused(place, members, message):
    dest, victim = place
    before = outside(dest)
    with pytest.raises(ArchiveError, match=message):
        run_under(dest, members, UNDER)
    assert outside(dest) == before


def test_link_resolution_is_bounded_per_link_and_per_archive(tmp_path, monkeypatch):
    """A few bytes of archive must not buy hours of resolving: 40 hops through long targets."""
    from ocibuild.store import extract as module

    def fresh(name: str) -> Path:
        (tmp_path / name).mkdir()
        return tmp_path / name

    refused(fresh("a"), make_tar([symlink("long", "/".join(["a"] * 300))]),
            "link 'long' has a target of more than 256 parts")
    chain = [symlink(f"l{i}", f"l{i + 1}" + "/d/.." * 100) for i in range(39, 0, -1)]
    refused(fresh("b"), make_tar([directory("d"), symlink("l40", "d"), *chain]), r"link 'l\d+' takes too many steps")
    monkeypatch.setattr(module, "MAX_TREE_STEPS", 1000)
    members = [directory("d")] + [symlink(f"p{i}", "/".join(["d/x/.."] * 20)) for i in range(30)]  # 60 steps each
    refused(fresh("c"), make_tar(members), r"link 'p\d+' takes too many steps to resolve")
