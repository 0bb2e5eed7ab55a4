"""The OCI model as values: digests and platforms parsed once, descriptors checked field by field,
images that keep the bytes they were read from, indexes and artifacts serialized canonically."""

import json

import pytest

from ocibuild.errors import DigestError, ImageError, SpecError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, canonical_json
from ocibuild.oci.digest import Digest
from ocibuild.oci.image import Image, parse_image
from ocibuild.oci.index import Artifact, Index, walk
from ocibuild.oci.layer import FileBlob, FileLayer
from ocibuild.oci.platform import Platform

HEX = "a" * 64


@pytest.mark.parametrize("text", [
    f"sha256:{HEX}", "sha512:" + "b" * 128,
])
def test_digests_that_parse(text):
    digest = Digest(text)
    assert digest == text and digest.blob_name == f"blobs/{digest.algorithm}/{digest.encoded}"


@pytest.mark.parametrize("text", [
    "sha256:../../etc/hostname", f"sha256:{HEX}/x", f"sha256:{HEX.upper()}", "sha256:" + "a" * 63,
    f"md5:{HEX}", f"sha256:{HEX}\n", f"SHA256:{HEX}", "", None, 42, f"sha256:{HEX[:-1]}g",
])
def test_malformed_digests_never_parse(text):
    with pytest.raises(DigestError, match="invalid digest"):
        Digest(text)


def test_digest_of_bytes():
    assert Digest.of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_platforms_parsed_once():
    assert Platform.parse("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert Platform.target("linux/arm64") == Platform("linux", "arm64")
    assert Platform.target("linux/arm64/v8").uv_platform == "aarch64-manylinux_2_28"
    assert Platform("linux", "arm64").matches(Platform("linux", "arm64", "v8"))
    assert not Platform("linux", "arm", "v6").matches(Platform("linux", "arm", "v7"))
    with pytest.raises(SpecError, match="unsupported platform"):
        Platform.target("linux/s390x")
    with pytest.raises(SpecError, match="invalid platform"):
        Platform.parse("linux")
    with pytest.raises(ImageError, match="needs string `os`"):
        Platform.from_json({"os": "linux"})


@pytest.mark.parametrize("data, message", [
    (None, "must be a JSON object"),
    ({"digest": f"sha256:{HEX}", "size": 1}, "needs a mediaType"),
    ({"mediaType": "x", "digest": "sha256:../x", "size": 1}, "invalid digest"),
    ({"mediaType": "x", "digest": f"sha256:{HEX}", "size": -1}, "non-negative integer size"),
    ({"mediaType": "x", "digest": f"sha256:{HEX}", "size": True}, "non-negative integer size"),
    ({"mediaType": "x", "digest": f"sha256:{HEX}", "size": 1, "annotations": {"a": 1}}, "annotations"),
    ({"mediaType": "x", "digest": f"sha256:{HEX}", "size": 1, "platform": "linux/amd64"}, "platform"),
])
def test_descriptors_are_checked(data, message):
    with pytest.raises(ImageError, match=message):
        Descriptor.from_json(data, "test")


def test_descriptor_round_trip():
    data = {"mediaType": mediatypes.MANIFEST, "digest": f"sha256:{HEX}", "size": 3, "annotations": {"k": "v"},
            "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}, "artifactType": "x/y"}
    assert Descriptor.from_json(data, "test").to_json() == data


def layer(tmp_path, content: bytes, name: str) -> FileLayer:
    path = tmp_path / name
    path.write_bytes(content)
    return FileLayer(Descriptor.of(mediatypes.LAYER, content), Digest.of(content), path, {"created_by": name})


def test_a_built_image_is_canonical_and_stable(tmp_path):
    image = Image({"architecture": "amd64", "os": "linux", "config": {}}).append(layer(tmp_path, b"one", "a"))
    again = Image({"os": "linux", "config": {}, "architecture": "amd64"}).append(layer(tmp_path, b"one", "a"))
    assert image.digest == again.digest == Digest.of(image.manifest_bytes())
    config = json.loads(image.config_bytes())
    assert config["rootfs"]["diff_ids"] == [Digest.of(b"one")] and config["history"] == [{"created_by": "a"}]
    assert image.manifest_bytes() == canonical_json(json.loads(image.manifest_bytes()))
    assert image.with_config(Cmd=["x"]).digest != image.digest
    assert image.platform == Platform("linux", "amd64")


def test_an_image_read_keeps_its_bytes_until_changed(tmp_path):
    """A Docker v2 manifest with its own key order and spacing is passed through byte for byte."""
    blob = layer(tmp_path, b"layer", "l")
    config = json.dumps({"os": "linux", "architecture": "arm64",
                         "rootfs": {"type": "layers", "diff_ids": [blob.diff_id]}}, indent=3).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": mediatypes.DOCKER_MANIFEST,
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 5,
                    "digest": blob.descriptor.digest}],
        "config": {"mediaType": mediatypes.DOCKER_CONFIG, "size": len(config), "digest": Digest.of(config)},
    }, indent=1).encode()
    image = parse_image(manifest, mediatypes.DOCKER_MANIFEST, config,
                        lambda d, diff_id: FileLayer(d, diff_id, blob.file), "test")
    assert image.manifest_bytes() == manifest and image.config_bytes() == config
    assert image.digest == Digest.of(manifest) and image.media_type == mediatypes.DOCKER_MANIFEST
    assert image.layers[0].descriptor.media_type == mediatypes.LAYER + "+gzip"  # as OCI once rewritten
    assert image.descriptor().platform == Platform("linux", "arm64")
    changed = image.with_annotations(x="y")
    assert changed.media_type == mediatypes.MANIFEST and changed.digest != image.digest
    assert json.loads(changed.manifest_bytes())["layers"][0]["mediaType"] == mediatypes.LAYER + "+gzip"


@pytest.mark.parametrize("manifest, config, message", [
    (b"[]", b"{}", "not a JSON object"),
    (b"{", b"{}", "not valid JSON"),
    (b'{"layers": null}', b"{}", "no list of layers"),
    (b'{"layers": []}', b'{"rootfs": {}}', "no rootfs.diff_ids"),
    (b'{"layers": []}', b'{"rootfs": {"diff_ids": ["sha256:x"]}}', "0 layers but 1 diff_ids"),
    (b'{"layers": [{"mediaType": "m", "digest": "sha256:%s", "size": 1}]}' % HEX.encode(),
     b'{"rootfs": {"diff_ids": ["../x"]}}', "invalid digest"),
])
def test_malformed_images_are_refused(manifest, config, message):
    with pytest.raises(ImageError, match=message):
        parse_image(manifest, mediatypes.MANIFEST, config, lambda d, diff_id: None, "test")


def test_index_over_images_and_an_artifact_with_a_subject(tmp_path):
    amd = Image({"architecture": "amd64", "os": "linux"}).append(layer(tmp_path, b"shared", "s"))
    arm = Image({"architecture": "arm64", "os": "linux"}).append(layer(tmp_path, b"shared", "s"))
    sbom = tmp_path / "sbom.json"
    sbom.write_bytes(b"{}")
    artifact = Artifact("application/spdx+json", (FileBlob(Descriptor.of("application/spdx+json", b"{}"), sbom),),
                        subject=amd.descriptor())
    index = Index((amd, arm, artifact))
    document = json.loads(index.manifest_bytes())
    assert [m.get("platform") for m in document["manifests"]] == [
        {"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}, None]
    assert document["manifests"][2]["artifactType"] == "application/spdx+json"
    manifest = json.loads(artifact.manifest_bytes())
    assert manifest["subject"]["digest"] == amd.digest
    assert manifest["config"] == {"mediaType": mediatypes.EMPTY, "digest": Digest.of(b"{}"), "size": 2}
    assert list(walk(index)) == [amd, arm, artifact, index]
    assert index.images() == (amd, arm)
    assert amd.blobs() == arm.blobs()  # one shared layer, one digest
