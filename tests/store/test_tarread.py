"""`open_tar`: the headers `tarfile` reads whole are bounded, malformed numbers are a TarError."""

from __future__ import annotations

import io
import time
import tarfile
import tracemalloc

import pytest

from ocibuild.store.tarread import MAX_CHAINED_HEADERS, MAX_HEADER_BYTES, HeaderRefused, open_tar, well_formed_records
from tests.hostile import file, header_bomb, make_tar


@pytest.mark.parametrize("kind,name", [(tarfile.XHDTYPE, "PAX"), (tarfile.GNUTYPE_LONGNAME, "GNU long name")])
def test_a_header_bigger_than_the_bound_is_refused_unread(tmp_path, kind, name):
    size = 64 << 20
    bomb = header_bomb(tmp_path / "bomb.tar.gz", size, kind)
    assert bomb.stat().st_size < 2 << 20  # what an attacker sends
    tracemalloc.start()
    try:
        with pytest.raises(HeaderRefused, match=rf"refusing archive: a {name} header of {size} bytes at byte 0 "):
            with open_tar(bomb, "r:*") as tar:
                list(tar)
        assert tracemalloc.get_traced_memory()[1] < 8 << 20  # the header was never read
        # what tarfile alone does with the same archive: holds the whole header in memory
        tracemalloc.reset_peak()
        with tarfile.open(bomb, "r:*") as tar:
            list(tar)
        assert tracemalloc.get_traced_memory()[1] > size
    finally:
        tracemalloc.stop()


def test_long_names_and_attributes_within_the_bound_still_read(tmp_path):
    long_name = "d/" * 300 + "file.txt"  # a PAX path record of ~600 bytes
    member = file(long_name, b"data")
    member.pax_headers = {"SCHILY.xattr.user.note": "x" * (MAX_HEADER_BYTES // 2)}
    data = make_tar([member])
    with open_tar(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        [info] = tar.getmembers()
        assert info.name == long_name and tar.extractfile(info).read() == b"data"


def test_sparse_members_are_refused():
    """A PAX sparse map (its numbers parsed by tarfile from the member's data) and an old GNU
    sparse header whose extension blocks run past the end: refused, never a traceback."""
    member = file("sparse", b"not-a-number\n" + b"\0" * 499)
    member.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse",
                          "GNU.sparse.realsize": "10"}
    pax_sparse = make_tar([member], mode="w")
    with pytest.raises(ValueError):  # tarfile alone: an exception no caller expects from a tar
        with tarfile.open(fileobj=io.BytesIO(pax_sparse)) as tar:
            tar.getmembers()
    old_gnu = bytearray(tarfile.TarInfo("s").tobuf(tarfile.GNU_FORMAT))
    old_gnu[156:157] = tarfile.GNUTYPE_SPARSE
    old_gnu[482] = 1  # "isextended": an extension block follows, but the archive ends
    old_gnu[148:156] = b"%06o\0 " % (sum(old_gnu[:148]) + 256 + sum(old_gnu[156:]))
    for data in (pax_sparse, bytes(old_gnu)):
        with pytest.raises(HeaderRefused, match=r"refusing archive: a sparse member at byte 0"):
            with open_tar(fileobj=io.BytesIO(data)) as tar:
                tar.getmembers()


def test_a_pax_header_whose_records_do_not_tile_is_refused_in_linear_time():
    """CVE-2024-6232: on Python < 3.11.10 tarfile parses `2 2 2 ... 2=` in quadratic time and memory."""
    body = b"2 " * (256 << 10) + b"="
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, len(body)
    data = header.tobuf(tarfile.USTAR_FORMAT) + body + b"\0" * (-len(body) % 512) + make_tar([file("a")], mode="w")
    started = time.perf_counter()
    with pytest.raises(HeaderRefused, match="refusing archive: a malformed PAX header at byte 0"):
        with open_tar(fileobj=io.BytesIO(data)) as tar:
            tar.getmembers()
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize("records,ok", [
    (b"11 path=ab\n", True),
    (b"11 path=ab\n27 mtime=1700000000.123456\n", True),
    (b"12 path=a=b\n", True),  # "=" in the value
    (b"11 path=ab\n0", False),  # trailing garbage
    (b"10 path=ab\n", False),  # length too short
    (b"12 path=ab\n", False),  # length past the end
    (b"9 =ab\n\n\n\n", False),  # empty keyword
    (b"11 pathxab\n", False),  # no "="
    (b"x1 path=ab\n", False),
    (b"", True),
])
def test_well_formed_records(records, ok):
    assert well_formed_records(records) is ok


def test_a_chain_of_extended_headers_is_refused():
    """Each extended header in front of a member is a level of recursion in tarfile: 2,000 of
    them (a few KiB of gzip) end in a RecursionError without the bound."""
    header = tarfile.TarInfo("././@PaxHeader")
    header.type, header.size = tarfile.XHDTYPE, 0
    block = header.tobuf(tarfile.USTAR_FORMAT)
    data = block * (MAX_CHAINED_HEADERS + 1) + make_tar([file("a")], mode="w")
    with pytest.raises(HeaderRefused, match=rf"more than {MAX_CHAINED_HEADERS} extended headers in a row"):
        with open_tar(fileobj=io.BytesIO(data)) as tar:
            tar.getmembers()
    with open_tar(fileobj=io.BytesIO(block * 3 + make_tar([file("a")], mode="w"))) as tar:
        assert [m.name for m in tar] == ["a"]


def test_archives_as_tar_tools_write_them_still_read(tmp_path):
    """GNU tar's own format (long names as `././@LongLink`), POSIX pax with long links and xattrs."""
    long_name = "x" * 300
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        link = tarfile.TarInfo("l" * 200)
        link.type, link.linkname = tarfile.SYMTYPE, "t" * 200
        member = file(long_name, b"data")
        if fmt == tarfile.PAX_FORMAT:
            member.pax_headers = {"SCHILY.xattr.security.capability": "\x01" * 20, "comment": "é"}
        data = make_tar([member, link], mode="w") if fmt == tarfile.PAX_FORMAT else _gnu([member, link])
        with open_tar(fileobj=io.BytesIO(data)) as tar:
            assert [(m.name, m.linkname) for m in tar] == [(long_name, ""), ("l" * 200, "t" * 200)]


def _gnu(members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(info.data) if getattr(info, "data", None) is not None else None)
    return buf.getvalue()


def test_global_headers_with_many_keys_are_refused(tmp_path):
    """tarfile copies the global keys into every later member: 40 keys over 2,000 members would be
    80,000 dict entries from a small archive (and gigabytes at a real member count)."""
    members = [file(f"f{i}", b"") for i in range(2000)]
    many = io.BytesIO()
    with tarfile.open(fileobj=many, mode="w:gz", format=tarfile.PAX_FORMAT,
                      pax_headers={f"k{i}": "v" for i in range(40)}) as tar:
        for info in members:
            tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(HeaderRefused, match="global PAX headers with more than"):
        with open_tar(fileobj=io.BytesIO(many.getvalue()), mode="r:gz") as tar:
            list(tar)
    commit = io.BytesIO()  # what `git archive` writes: one global comment
    with tarfile.open(fileobj=commit, mode="w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": "0" * 40}) as tar:
        tar.addfile(file("a", b"data"), io.BytesIO(b"data"))
    with open_tar(fileobj=io.BytesIO(commit.getvalue()), mode="r:gz") as tar:
        assert [m.name for m in tar] == ["a"]
