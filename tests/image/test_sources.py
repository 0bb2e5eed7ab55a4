"""Base images from local sources, and the refusal of corrupt ones."""

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from ocibuild.errors import ImageError
from ocibuild.base import resolve_base
from ocibuild.store.blobs import BlobStore
from ocibuild.oci.platform import DEFAULT_PLATFORM, Platform
from tests.builds import local_sources, write


def load_local_base(reference: str, cache: BlobStore, platform: Platform):
    return resolve_base(reference, platform, local_sources(cache))


def layout_dir(python_base: str) -> Path:
    return Path(python_base.removeprefix("oci-layout:").rsplit(":", 1)[0])


def tar_dir(directory: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w") as tar:
        for path in sorted(directory.rglob("*")):
            tar.add(path, arcname=path.relative_to(directory).as_posix(), recursive=False)
    return dest


@pytest.fixture
def archive(python_base, tmp_path) -> Path:
    return tar_dir(layout_dir(python_base), tmp_path / "base.tar")


def test_layout_archive_and_docker_archive_give_the_same_layers(python_base, archive, example, tmp_path):
    cache = BlobStore(tmp_path / "cache")
    from_dir = load_local_base(python_base, cache, DEFAULT_PLATFORM)
    from_tar = load_local_base(f"oci-archive:{archive}:3.11-slim", cache, DEFAULT_PLATFORM)
    assert from_dir.image.layers == from_tar.image.layers
    assert from_dir.digest == from_tar.digest
    # our own archive is also a docker-archive: build on top of it
    ours = write(example.image, tmp_path / "ours.tar")
    from_docker = load_local_base(f"docker-archive:{ours}", cache, DEFAULT_PLATFORM)
    assert [l.diff_id for l in from_docker.image.layers] == [l.diff_id for l in example.image.layers]
    assert [l.descriptor.digest for l in from_docker.image.layers] == [l.descriptor.digest for l in example.image.layers]


def test_truncated_archive_is_refused(archive, tmp_path):
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) // 2])
    cache = BlobStore(tmp_path / "cache")
    with pytest.raises(ImageError, match="truncated.tar"):
        load_local_base(f"oci-archive:{truncated}:3.11-slim", cache, DEFAULT_PLATFORM)
    assert not any(p.is_file() for p in (cache.root / "blobs").rglob("*"))


def test_corrupt_layer_blob_is_refused_and_not_cached(python_base, tmp_path):
    layout = shutil.copytree(layout_dir(python_base), tmp_path / "layout")
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs/sha256" / index["manifests"][0]["digest"].removeprefix("sha256:")
    layer = json.loads(manifest_path.read_text())["layers"][0]
    blob = layout / "blobs/sha256" / layer["digest"].removeprefix("sha256:")
    with open(blob, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))
    cache = BlobStore(tmp_path / "cache")
    with pytest.raises(ImageError, match=f"blob {layer['digest']} is corrupt"):
        load_local_base(f"oci-layout:{layout}:3.11-slim", cache, DEFAULT_PLATFORM)
    assert not cache.has_blob(layer["digest"])


def test_corrupt_manifest_is_refused(python_base, tmp_path):
    layout = shutil.copytree(layout_dir(python_base), tmp_path / "layout")
    index = json.loads((layout / "index.json").read_text())
    manifest_path = layout / "blobs/sha256" / index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest_path.write_text(manifest_path.read_text().replace("schemaVersion", "schemaversion"))
    with pytest.raises(ImageError, match="is corrupt"):
        load_local_base(f"oci-layout:{layout}", BlobStore(tmp_path / "cache"), DEFAULT_PLATFORM)


@pytest.mark.parametrize("reference, message", [
    ("oci-layout:/nonexistent/dir", "does not exist"),
    ("zip:/x", "expected one of"),
])
def test_bad_references(reference, message, tmp_path):
    with pytest.raises(ImageError, match=message):
        load_local_base(reference, BlobStore(tmp_path), DEFAULT_PLATFORM)


def test_not_a_tar(tmp_path):
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"hello" * 1000)
    with pytest.raises(ImageError, match="not a readable tar archive"):
        load_local_base(f"oci-archive:{bogus}", BlobStore(tmp_path), DEFAULT_PLATFORM)


def test_unknown_ref_and_wrong_platform(python_base, tmp_path):
    cache = BlobStore(tmp_path)
    with pytest.raises(ImageError, match="no image tagged 'nope'"):
        load_local_base(f"{python_base.rsplit(':', 1)[0]}:nope", cache, DEFAULT_PLATFORM)
    with pytest.raises(ImageError, match="no image for linux/arm64"):
        load_local_base(python_base, cache, Platform.parse("linux/arm64"))


def test_old_style_docker_archive_layers_are_hashed_in_one_copy(tmp_path):
    """`ID/layer.tar` members carry no digest: the copy into the cache names them by their hash."""
    import hashlib
    import io

    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    layer_bytes = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                         "config": {}}).encode()
    archive = tmp_path / "old.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in [("abc/layer.tar", layer_bytes), ("cfg.json", config),
                           ("manifest.json", json.dumps([{"Config": "cfg.json", "Layers": ["abc/layer.tar"]}]).encode())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cache = BlobStore(tmp_path / "cache")
    base = load_local_base(f"docker-archive:{archive}", cache, DEFAULT_PLATFORM)
    (only,) = base.image.layers
    assert only.descriptor.digest == diff_id and only.descriptor.size == len(layer_bytes)
    assert only.descriptor.media_type == "application/vnd.oci.image.layer.v1.tar"
    assert only.path().read_bytes() == layer_bytes
