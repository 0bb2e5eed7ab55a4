"""`open_tar`: the headers `tarfile` reads whole are bounded, malformed numbers are a TarError."""

from __future__ import annotations

import io
import tarfile
import tracemalloc

import pytest

from ocibuild.store.tarread import MAX_HEADER_BYTES, HeaderRefused, open_tar
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


def test_a_malformed_sparse_map_is_a_tar_error_not_a_crash():
    member = file("sparse", b"not-a-number\n" + b"\0" * 499)
    member.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse",
                          "GNU.sparse.realsize": "10"}
    data = make_tar([member], mode="w")
    with pytest.raises(ValueError):  # tarfile alone: an exception no caller expects from a tar
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.getmembers()
    with pytest.raises(HeaderRefused, match="refusing archive: a malformed header at byte 0"):
        with open_tar(fileobj=io.BytesIO(data)) as tar:
            tar.getmembers()
