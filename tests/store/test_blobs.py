"""The blob store and the crash-safe files under it: verified writes, keys computed by ocibuild,
reads bounded by declared sizes, temp files of dead writers swept, of live ones kept."""

import io
import json
import os
import subprocess
import sys

import pytest

from ocibuild.errors import ImageError
from ocibuild.layers.compression import Compression
from ocibuild.layers.tarwriter import Entry
from ocibuild.layers.writer import LayerWriter, content_key
from ocibuild.oci.digest import Digest
from ocibuild.store.atomic import PREFIX, TempFile, sweep
from ocibuild.store.blobs import BlobStore


class Endless(io.RawIOBase):
    """A source that never ends: what a registry lying about a blob's size looks like."""

    def __init__(self):
        self.served = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = b"\0" * len(buffer)
        self.served += len(buffer)
        return len(buffer)


def test_a_blob_is_stored_under_the_digest_it_hashes_to(tmp_path):
    blobs = BlobStore(tmp_path)
    path = blobs.add_blob(io.BytesIO(b"hello"), Digest.of(b"hello"), 5)
    assert path == tmp_path / Digest.of(b"hello").blob_name and path.read_bytes() == b"hello"
    assert blobs.add_blob(io.BytesIO(b"other"), None) == blobs.blob_path(Digest.of(b"other"))


@pytest.mark.parametrize("data, size, message", [
    (b"hellO", 5, "hashes to"), (b"hello!", 5, "more than the 5 bytes"), (b"hell", 5, "fewer than the 5 bytes")])
def test_a_corrupt_blob_is_refused_and_nothing_is_left(tmp_path, data, size, message):
    blobs = BlobStore(tmp_path)
    with pytest.raises(ImageError, match=message):
        blobs.add_blob(io.BytesIO(data), Digest.of(b"hello"), size)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_source_sending_more_than_declared_is_not_read_to_its_end(tmp_path):
    source = Endless()
    with pytest.raises(ImageError, match="more than the 183 bytes"):
        BlobStore(tmp_path).add_blob(io.BufferedReader(source), Digest.of(b"x"), 183)
    assert source.served < 1 << 20  # one buffer, not the 512 MiB it would have sent


def test_layer_keys_are_ours_and_a_damaged_entry_is_a_miss(tmp_path):
    source = tmp_path / "f"
    source.write_bytes(b"content")
    entries = [Entry("f", "file", 0o644, source=source, size=7)]
    writer = LayerWriter(BlobStore(tmp_path / "store"), Compression.GZIP, 0)
    first = writer.content("t", entries)
    assert writer.content("t", entries) == first
    key = content_key("t", entries, Compression.GZIP, 0)
    source.write_bytes(b"CONTENT")
    assert content_key("t", entries, Compression.GZIP, 0) != key  # the bytes are in the key
    assert content_key("t", entries, Compression.ZSTD, 0) != content_key("t", entries, Compression.GZIP, 0)
    assert content_key("t", entries, Compression.GZIP, 1) != content_key("t", entries, Compression.GZIP, 0)
    entry = tmp_path / "store" / "layers" / f"{key}.json"
    entry.write_text(json.dumps({"digest": "sha256:../../../etc/passwd", "diff_id": "x", "size": 1,
                                 "media_type": "m"}))
    assert writer.blobs.lookup(key) is None  # never a path from a cache entry it did not validate
    for size in ("1e999", "-1", "1.5", "true", '"7"'):  # 1e999 is a float infinity: int() would overflow
        entry.write_text(f'{{"digest": "{first.digest}", "diff_id": "{first.diff_id}", "size": {size}, '
                         f'"media_type": "{first.media_type}"}}')
        assert writer.blobs.lookup(key) is None, size


def test_a_lookup_needs_the_blob_itself(tmp_path):
    source = tmp_path / "f"
    source.write_bytes(b"content")
    writer = LayerWriter(BlobStore(tmp_path / "store"), Compression.NONE, 0)
    blob = writer.content("t", [Entry("f", "file", 0o644, source=source, size=7)])
    writer.blobs.blob_path(blob.digest).unlink()
    assert writer.blobs.lookup(content_key("t", [Entry("f", "file", 0o644, source=source, size=7)],
                                           Compression.NONE, 0)) is None


def test_a_store_knows_which_blobs_it_wrote_without_listing_them(tmp_path):
    """`created` is what a report calls built: blobs written through this object, never those
    that were there already (an edit's report must not list a store that only grows)."""
    source = tmp_path / "f"
    source.write_bytes(b"content")
    entries = [Entry("f", "file", 0o644, source=source, size=7)]
    before = BlobStore(tmp_path / "store")
    before.add_bytes(b"config")
    layer = LayerWriter(before, Compression.GZIP, 0).content("t", entries)
    assert before.created == {Digest.of(b"config"), layer.digest}
    blobs = BlobStore(tmp_path / "store")
    assert LayerWriter(blobs, Compression.GZIP, 0).content("t", entries) == layer  # a cache hit
    blobs.add_bytes(b"config")
    blobs.add_blob(io.BytesIO(b"config"), Digest.of(b"config"), 6)
    assert blobs.created == set()
    blobs.add_blob(io.BytesIO(b"new"), None)
    blobs.add_bytes(b"newer")
    assert blobs.created == {Digest.of(b"new"), Digest.of(b"newer")}
    with pytest.raises(ImageError):
        blobs.add_blob(io.BytesIO(b"hellO"), Digest.of(b"hello"), 5)
    assert Digest.of(b"hello") not in blobs.created and Digest.of(b"hellO") not in blobs.created


def test_a_write_into_the_store_sweeps_only_its_temp_directory(tmp_path, monkeypatch):
    """Each write sweeps the directory its temp file is made in. The blob and record directories
    grow with every build; sweeping them made every write, and so every edit, O(store)."""
    blobs = BlobStore(tmp_path / "store")
    blobs.add_bytes(b"seed")
    blobs.remember("layers", "0" * 64, {})
    listed = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": listed.append(os.fspath(path)) or real(path))
    blobs.add_bytes(b"config")
    blobs.remember("layers", "1" * 64, {"x": 1})
    blobs.add_origin(Digest.of(b"config"), "registry.example/repo")
    source = tmp_path / "f"
    source.write_bytes(b"x")
    LayerWriter(blobs, Compression.GZIP, 0).content("t", [Entry("f", "file", 0o644, source=source, size=1)])
    assert listed and set(listed) == {os.fspath(blobs.tmp)}
    assert blobs.recall("layers", "1" * 64) == {"x": 1} and blobs.origins(Digest.of(b"config")) == ["registry.example/repo"]
    assert list(blobs.tmp.iterdir()) == []


def test_committed_files_get_the_umask_modes(tmp_path):
    old = os.umask(0o027)
    try:
        with TempFile(tmp_path) as tmp:
            tmp.file.write(b"x")
            target = tmp.commit(tmp_path / "out")
    finally:
        os.umask(old)
    assert target.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_sweep_removes_what_dead_writers_left_and_keeps_live_ones(tmp_path):
    killed = subprocess.run([sys.executable, "-c", (
        "import os, sys; from pathlib import Path; from ocibuild.store.atomic import TempFile, temp_dir\n"
        f"t = TempFile(Path({str(tmp_path)!r})); cm = temp_dir(Path({str(tmp_path)!r})); d = cm.__enter__()\n"
        "os.kill(os.getpid(), 9)")])
    assert killed.returncode == -9
    left = sorted(tmp_path.iterdir())
    assert len(left) == 2 and all(p.name.startswith(PREFIX) for p in left)
    with TempFile(tmp_path) as live:
        sweep(tmp_path)
        assert sorted(tmp_path.iterdir()) == [live.path]
    assert list(tmp_path.iterdir()) == []


def test_writers_in_many_threads_never_sweep_each_other(tmp_path):
    """Each temp file is created and locked under the directory's lock, which a sweep also takes:
    a sweep in another thread never sees an entry between its creation and its writer's lock
    (without that, about one write in twenty failed here with the temp file gone)."""
    import threading

    from ocibuild.store.atomic import write_atomic

    errors = []

    def write(n: int) -> None:
        for i in range(100):
            try:
                write_atomic(tmp_path / f"{n}-{i}", b"x")
            except OSError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(list(tmp_path.iterdir())) == 800
