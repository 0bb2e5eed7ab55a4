"""Progress bars: shown only when the CLI asks (a terminal), counting the bytes really moved."""

import io

import ocibuild.progress as progress
from ocibuild.layers.compression import Compression
from ocibuild.layers.tarwriter import Entry
from ocibuild.layers.writer import LayerWriter
from ocibuild.registry.client import FileSegment
from ocibuild.store.blobs import BlobStore


def test_quiet_by_default_and_bars_count_bytes(tmp_path, capsys, monkeypatch):
    source = tmp_path / "f"
    source.write_bytes(b"x" * 300_000)
    entries = [Entry("f", "file", 0o644, source=source, size=300_000)]
    LayerWriter(BlobStore(tmp_path / "a"), Compression.NONE, 0).content("t", entries)
    assert capsys.readouterr().err == ""

    monkeypatch.setattr(progress, "_bars", True)
    blob = LayerWriter(BlobStore(tmp_path / "b"), Compression.NONE, 0).content("t", entries)
    assert "writing layer" in capsys.readouterr().err
    with progress.task("upload", blob.size) as task:
        segment = FileSegment(BlobStore(tmp_path / "b").blob_path(blob.digest), 0, blob.size, task)
        while segment.read(65536):
            pass
        segment.close()
        assert task.bar.n == blob.size
    counted = progress.CountingReader(io.BytesIO(b"abc"), progress.Task())
    assert counted.read() == b"abc"
