"""Publisher sinks: each takes an Image or Index, whatever holds its bytes, and writes what
independent readers (and ocibuild's own readers) accept."""

import json
import os
import tarfile

import pytest

from ocibuild.errors import ImageError
from ocibuild.formats.layout import read_image
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor
from ocibuild.oci.digest import Digest
from ocibuild.oci.image import Image
from ocibuild.oci.index import Index
from ocibuild.oci.layer import FileLayer
from ocibuild.oci.platform import Platform
from ocibuild.oci.reference import Reference
from ocibuild.publish import ArchivePublisher, LayoutPublisher, MultiPublisher, loadable_image
from ocibuild.store.blobs import BlobStore

NAME = Reference.image_name("demo:1")


def tar_layer(tmp_path, name: str) -> FileLayer:
    path = tmp_path / f"{name}.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(name)
        tar.addfile(info)
    data = path.read_bytes()
    return FileLayer(Descriptor.of(mediatypes.LAYER, data), Digest.of(data), path, {"created_by": name})


@pytest.fixture
def index(tmp_path):
    shared = tar_layer(tmp_path, "shared")
    images = [Image({"architecture": arch, "os": "linux", "config": {}}).append(shared, tar_layer(tmp_path, arch))
              for arch in ("amd64", "arm64")]
    return Index(tuple(images))


def test_layout_round_trip_of_an_index(index, tmp_path):
    published = LayoutPublisher(tmp_path / "layout", NAME).publish(index)
    assert published.reference == str(tmp_path / "layout")
    back = read_image(tmp_path / "layout", "oci-layout", None, None, BlobStore(tmp_path / "blobs"))
    assert back.digest == index.digest and back.manifest_bytes() == index.manifest_bytes()
    assert [i.digest for i in back.images()] == [i.digest for i in index.images()]
    arm = read_image(tmp_path / "layout", "oci-layout", "1", Platform.target("linux/arm64"), BlobStore(tmp_path / "b2"))
    assert arm.digest == index.manifests[1].digest
    blobs = [p for p in (tmp_path / "layout" / "blobs" / "sha256").iterdir()]
    assert len(blobs) == 2 * 2 + 3 + 1  # 2 manifests + 2 configs, 3 distinct layers, the index


def test_archive_of_an_index_loads_the_chosen_platform(index, tmp_path):
    ArchivePublisher(tmp_path / "a.tar", NAME, Platform.target("linux/arm64")).publish(index)
    with tarfile.open(tmp_path / "a.tar") as tar:
        docker = json.loads(tar.extractfile("manifest.json").read())
        layout_index = json.loads(tar.extractfile("index.json").read())
    arm = index.manifests[1]
    assert docker[0]["Config"] == arm.config_descriptor().digest.blob_name
    assert layout_index["manifests"][0]["digest"] == index.digest
    assert layout_index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == "1"
    back = read_image(tmp_path / "a.tar", "oci-archive", None, None, BlobStore(tmp_path / "blobs"))
    assert back.digest == index.digest


def test_loadable_image_and_multi_publisher(index, tmp_path):
    assert loadable_image(index, Platform.target("linux/amd64")) is index.manifests[0]
    assert loadable_image(index, Platform.parse("linux/s390x")) is None
    results = MultiPublisher((LayoutPublisher(tmp_path / "l", NAME), ArchivePublisher(tmp_path / "a.tar", NAME))
                             ).publish(index.manifests[0])
    assert [r.reference for r in results] == [str(tmp_path / "l"), str(tmp_path / "a.tar")]


def test_layout_output_is_readable_as_the_umask_allows_and_replaces_only_layouts(index, tmp_path):
    old = os.umask(0o022)
    try:
        LayoutPublisher(tmp_path / "layout", NAME).publish(index)
    finally:
        os.umask(old)
    modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "layout").rglob("*")}
    assert modes <= {0o755, 0o644} and (tmp_path / "layout").stat().st_mode & 0o777 == 0o755
    LayoutPublisher(tmp_path / "layout", NAME).publish(index.manifests[0])  # a layout is replaced
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "file").write_text("keep")
    with pytest.raises(ImageError, match="not an OCI layout"):
        LayoutPublisher(tmp_path / "precious", NAME).publish(index)
    assert (tmp_path / "precious" / "file").read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["amd64.tar", "arm64.tar", "layout", "precious",
                                                          "shared.tar"]


def test_outputs_never_write_through_a_symlink_or_over_a_directory_that_merely_has_oci_layout(index, tmp_path):
    from tests.hostile import snapshot

    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "important.txt").write_text("important")
    (elsewhere / "data" / "oci-layout").write_text("{}")
    (elsewhere / "data" / "thesis.tex").write_text("years of work")
    (out / "image.tar").symlink_to(elsewhere / "important.txt")
    (out / "layout").symlink_to(elsewhere / "data")
    (out / "dangling").symlink_to(elsewhere / "new")
    before = snapshot(elsewhere / "data", elsewhere / "important.txt")  # staging may come and go beside them
    ArchivePublisher(out / "image.tar", NAME).publish(index)  # the link is replaced, its target kept
    assert not (out / "image.tar").is_symlink() and tarfile.is_tarfile(out / "image.tar")
    for dest in (out / "layout", out / "dangling", elsewhere / "data"):
        with pytest.raises(ImageError, match="exists and is not an OCI layout: refusing to replace it"):
            LayoutPublisher(dest, NAME).publish(index)
    assert snapshot(elsewhere / "data", elsewhere / "important.txt") == before and not (elsewhere / "new").exists()
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_reading_referrers_copies_only_the_artifacts_whose_subject_is_inside(index, tmp_path):
    """An artifact of something else in the same layout is never loaded: its blobs are not copied
    into the store (nor read at all: here one is missing)."""
    from ocibuild.formats.layout import read_with_referrers
    from ocibuild.oci.index import Artifact
    from ocibuild.oci.layer import FileBlob

    def blob(name: str, data: bytes) -> FileBlob:
        (tmp_path / name).write_bytes(data)
        return FileBlob(Descriptor.of("application/json", data), tmp_path / name)

    ours = Artifact("application/spdx+json", (blob("sbom", b'{"sbom": 1}'),), subject=index.descriptor())
    other = Artifact("application/spdx+json", (blob("orphan", b'{"sbom": 2}'),),
                     subject=Descriptor.of(mediatypes.MANIFEST, b"another image"))
    layout = tmp_path / "layout"
    LayoutPublisher(layout, NAME).publish(index, (ours, other))
    (layout / Digest.of(b'{"sbom": 2}').blob_name).unlink()
    store = BlobStore(tmp_path / "store")
    root, referrers = read_with_referrers(layout, "oci-layout", store)
    assert root.digest == index.digest and [r.digest for r in referrers] == [ours.digest]
    assert store.has_blob(Digest.of(b'{"sbom": 1}')) and not store.has_blob(Digest.of(b'{"sbom": 2}'))
