import gzip
import hashlib
import io
import tarfile

import pyzstd
import pytest

from ocibuild.layers.compression import Compression, sniff
from ocibuild.python.plan import Distribution, group_distributions, record_files
from ocibuild.layers.tarwriter import Entry, tree_entries, with_parents, write_layer


def sample_tree(root):
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "b.py").write_text("b")
    (root / "pkg" / "a.sh").write_text("#!/bin/sh\n")
    (root / "pkg" / "a.sh").chmod(0o755)
    (root / "link").symlink_to("pkg/b.py")
    return with_parents(tree_entries(root, "opt/x"))


def write(entries, compression=Compression.GZIP, epoch=1_700_000_000):
    out = io.BytesIO()
    blob = write_layer(entries, out, compression, epoch)
    return blob, out.getvalue()


@pytest.mark.parametrize("compression", list(Compression))
def test_digests_match_the_bytes(tmp_path, compression):
    blob, data = write(sample_tree(tmp_path), compression)
    assert blob.digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert blob.size == len(data)
    raw = {Compression.GZIP: gzip.decompress, Compression.ZSTD: pyzstd.decompress,
           Compression.NONE: lambda d: d}[compression](data)
    assert blob.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert blob.media_type == compression.media_type
    assert sniff(data[:4]) is compression


def test_deterministic_across_directories_and_times(tmp_path):
    first, data1 = write(sample_tree(tmp_path / "a"))
    entries = sample_tree(tmp_path / "b")
    for e in entries:
        if e.source:
            import os
            os.utime(e.source, (2_000_000_000, 2_000_000_000))
    second, data2 = write(entries)
    assert first == second and data1 == data2


def test_members_are_normalized(tmp_path):
    _, data = write(sample_tree(tmp_path), Compression.NONE, epoch=1000)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["opt", "opt/x", "opt/x/link", "opt/x/pkg", "opt/x/pkg/a.sh", "opt/x/pkg/b.py"]
    assert all(m.mtime == 1000 and m.uid == 0 and m.gid == 0 and m.uname == "" and m.gname == "" for m in members)
    assert all(not m.pax_headers for m in members)
    modes = {m.name: m.mode for m in members}
    assert modes["opt/x/pkg/a.sh"] == 0o755 and modes["opt/x/pkg/b.py"] & 0o777 == 0o644
    assert next(m for m in members if m.name == "opt/x/link").linkname == "pkg/b.py"


def test_gzip_header_has_no_name_or_time(tmp_path):
    _, data = write(sample_tree(tmp_path))
    assert data[4:8] == b"\0\0\0\0"  # MTIME
    assert data[3] & 0x08 == 0  # no FNAME flag


def test_mtime_clamped_not_raised(tmp_path):
    entries = [Entry("old", "dir", 0o755, mtime=500), Entry("new", "dir", 0o755, mtime=5000)]
    _, data = write(entries, Compression.NONE, epoch=1000)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert {m.name: m.mtime for m in tar.getmembers()} == {"new": 1000, "old": 500}


def test_grouping_big_alone_small_together():
    mb = 1024 * 1024
    dists = [Distribution("numpy-2.dist-info", ("numpy/x",), 60 * mb, b"n"),
             Distribution("six-1.dist-info", ("six.py",), 1 * mb, b"s"),
             Distribution("click-8.dist-info", ("click/x",), 1 * mb, b"c"),
             Distribution("scipy-1.dist-info", ("scipy/x",), 90 * mb, b"sc")]
    groups = group_distributions(dists, unclaimed=("bin/tool",))
    assert [[d.name for d in g.distributions] for g in groups] == [
        ["numpy-2.dist-info"], ["scipy-1.dist-info"], ["click-8.dist-info", "six-1.dist-info", "(unclaimed files)"]]
    assert groups[2].files == ("bin/tool", "click/x", "six.py")


def test_record_files_refuses_escaping_paths():
    record = b"pkg/a.py,sha256=x,1\n../../etc/passwd,,\n/abs,,\npkg/RECORD,,\n"
    assert record_files(record) == ("pkg/RECORD", "pkg/a.py")


def test_zstd_output_does_not_depend_on_core_count(tmp_path, monkeypatch):
    entries = sample_tree(tmp_path)
    outputs = set()
    for cores in (1, 2, 8):
        monkeypatch.setattr("os.cpu_count", lambda cores=cores: cores)
        outputs.add(write(entries, Compression.ZSTD)[1])
    assert len(outputs) == 1


def test_a_failing_stage_reaches_the_writer(tmp_path):
    class Full:
        def write(self, data):
            raise OSError(28, "No space left on device")

    entries = sample_tree(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        write_layer(entries, Full(), Compression.GZIP, 0)


def test_gzip_is_written_at_its_level_and_the_cache_key_names_it(tmp_path, monkeypatch):
    """Another level is another blob: a key without the level would hand a blob of the old level
    to a build of the new one, and the digest would depend on the cache."""
    from ocibuild.layers import compression
    from ocibuild.layers.writer import LayerWriter
    from ocibuild.store.blobs import BlobStore

    _, data = write(sample_tree(tmp_path))
    assert data[8] == 4  # gzip's XFL: "fastest" (level 1)
    writer = LayerWriter(BlobStore(tmp_path / "cache"), Compression.GZIP, 0)
    fast = writer.key("x")
    monkeypatch.setattr(compression, "GZIP_LEVEL", 6)
    assert writer.key("x") != fast
    _, data = write(sample_tree(tmp_path / "again"))
    assert data[8] == 0
