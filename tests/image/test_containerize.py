"""Containerize the example: reproducible, incremental, valid, accepted by independent consumers."""

import json

import jsonschema
import shutil
import subprocess
import tarfile

import pytest

from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.errors import ImageError
from ocibuild.store.blobs import BlobStore
from ocibuild.oci.platform import Platform
from ocibuild.layers.compression import Compression
from tests.conftest import need
from tests.builds import config_of, containerize, write


def test_layer_order_and_config(example):
    image = example.image
    created_by = [h["created_by"] for h in image.history]
    model = example.bento.info.models[0]
    assert created_by[-3:] == ["ocibuild: serving runtime", f"ocibuild: model summarization-weights:{model.version}",
                               f"ocibuild: bento {example.bento.tag}"]
    assert any("numpy" in c for c in created_by)
    config = config_of(image)
    assert len(config["rootfs"]["diff_ids"]) == len(image.layers)
    inner = config["config"]
    env = dict(e.split("=", 1) for e in inner["Env"])
    assert env["SUMMARY_SENTENCES"] == "2" and "SUMMARY_API_KEY" not in env
    assert env["PYTHONUNBUFFERED"] == "1" and env["PATH"].endswith("/usr/bin:/sbin:/bin")
    assert inner["Cmd"] == ["serve"] and inner["ExposedPorts"] == {"3000/tcp": {}}
    assert inner["User"] == "1000:1000" and inner["WorkingDir"] == "/app/src"
    assert config["created"] == example.bento.info.created[:19] + "Z"
    labels = inner["Labels"]
    assert labels["io.ocibuild.bento"] == str(example.bento.tag)
    assert labels["org.opencontainers.image.base.digest"].startswith("sha256:")
    assert image.annotations["org.opencontainers.image.version"] == example.bento.info.version


def test_the_dependency_install_keeps_each_metadata_header_for_the_sbom(example):
    from ocibuild.containerize import lock_path
    from ocibuild.python.deps import METADATA, metadata_key

    platform = Platform.target(example.bento.info.platform)
    recorded = example.cache.recall(METADATA, metadata_key(lock_path(example.bento), example.bento.info.python_version,
                                                           platform))
    numpy = next(text for name, text in recorded.items() if name.startswith("numpy-"))
    assert "\nName: numpy\n" in numpy and "License" in numpy and "\n\n" not in numpy  # headers only
    assert any(name.startswith("uvicorn-") for name in recorded)


def test_same_bento_same_digest_in_fresh_caches_and_directories(example, tmp_path):
    again = containerize(example, cache=BlobStore(tmp_path / "fresh-cache"))
    assert again.digest == example.image.digest
    a = write(example.image, tmp_path / "one" / "a.tar")
    b = write(again, tmp_path / "two" / "b.tar")
    assert a.read_bytes() == b.read_bytes()


def test_source_date_epoch_sets_every_time(example, tmp_path):
    image = containerize(example, source_date_epoch=1_600_000_000)
    assert config_of(image)["created"] == "2020-09-13T12:26:40Z"
    assert image.digest != example.image.digest
    assert image.digest == containerize(example, source_date_epoch=1_600_000_000,
                                        cache=BlobStore(tmp_path / "c")).digest
    layout = write(image, tmp_path / "layout", "oci-dir")
    top = layout / "blobs/sha256" / image.layers[-1].descriptor.digest.removeprefix("sha256:")
    with tarfile.open(top) as tar:
        assert {m.mtime for m in tar.getmembers()} == {1_600_000_000}


def test_epoch_zero_is_honoured_and_platform_must_match_the_lock(example):
    assert config_of(containerize(example, source_date_epoch=0))["created"] == "1970-01-01T00:00:00Z"
    with pytest.raises(ImageError, match="was locked for linux/amd64, not linux/arm64"):
        containerize(example, platform=Platform.parse("linux/arm64"))


def test_zstd_and_none_change_blobs_not_diff_ids(example):
    zstd = containerize(example, compression=Compression.ZSTD)
    none = containerize(example, compression=Compression.NONE)
    ours = slice(1, None)  # the base layer is passed through as it is
    assert [l.diff_id for l in zstd.layers] == [l.diff_id for l in example.image.layers]
    assert all(l.descriptor.media_type.endswith("+zstd") for l in zstd.layers[ours])
    assert all(l.descriptor.digest == l.diff_id for l in none.layers[ours])
    assert zstd.layers[0].descriptor == example.image.layers[0].descriptor


def test_editing_service_py_rebuilds_only_the_top_layer(example, tmp_path):
    src = tmp_path / "edited"
    shutil.copytree(example.bento.path / "src", src)
    (src / "service.py").write_text((src / "service.py").read_text() + "\n# an edit\n")
    edited = build_bento(src, BentoStore(example.home))
    image = containerize(example, bento=edited)
    before = [l.descriptor.digest for l in example.image.layers]
    after = [l.descriptor.digest for l in image.layers]
    assert len(before) == len(after)
    assert before[:-1] == after[:-1]
    assert before[-1] != after[-1]


def test_manifest_config_index_validate_against_the_spec(example, oci_schema, tmp_path):
    oci_schema("image-manifest", json.loads(example.image.manifest_bytes()))
    oci_schema("config", config_of(example.image))
    layout = write(example.image, tmp_path / "layout", "oci-dir")
    oci_schema("image-index", json.loads((layout / "index.json").read_text()))
    oci_schema("image-layout", json.loads((layout / "oci-layout").read_text()))
    broken = {**json.loads(example.image.manifest_bytes()), "config": {"digest": "sha256:nothex", "size": -1}}
    with pytest.raises(jsonschema.ValidationError):
        oci_schema("image-manifest", broken)


def test_archive_holds_layout_and_docker_manifest_over_the_same_blobs(example, tmp_path):
    archive = write(example.image, tmp_path / "img.tar")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())
        index = json.loads(tar.extractfile("index.json").read())
    assert {"oci-layout", "index.json", "manifest.json", "repositories"} <= names
    assert manifest[0]["RepoTags"] == ["summarization:test"]
    assert all(p in names for p in manifest[0]["Layers"] + [manifest[0]["Config"]])
    annotations = index["manifests"][0]["annotations"]
    assert annotations["org.opencontainers.image.ref.name"] == "test"
    assert annotations["io.containerd.image.name"] == "docker.io/library/summarization:test"
    assert f"blobs/sha256/{example.image.digest.removeprefix('sha256:')}" in names


def run(*cmd):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stderr}"
    return result.stdout


def test_skopeo_inspects_both_formats(example, tmp_path):
    need(shutil.which("skopeo") is not None, "skopeo is not installed")
    archive = write(example.image, tmp_path / "img.tar")
    layout = write(example.image, tmp_path / "layout", "oci-dir")
    for ref in (f"oci-archive:{archive}:test", f"oci:{layout}:test"):
        info = json.loads(run("skopeo", "inspect", ref))
        assert info["Digest"] == example.image.digest
        assert len(info["Layers"]) == len(example.image.layers)
    run("skopeo", "copy", f"oci-archive:{archive}:test", f"dir:{tmp_path / 'copied'}")


def test_umoci_unpacks_both_formats(example, tmp_path):
    need(shutil.which("umoci") is not None, "umoci is not installed")
    layout = write(example.image, tmp_path / "layout", "oci-dir")
    run("umoci", "unpack", "--rootless", "--image", f"{layout}:test", str(tmp_path / "b1"))
    extracted = tmp_path / "from-archive"
    extracted.mkdir()
    with tarfile.open(write(example.image, tmp_path / "img.tar")) as tar:
        tar.extractall(extracted)  # our own output
    run("umoci", "unpack", "--rootless", "--image", f"{extracted}:test", str(tmp_path / "b2"))
    rootfs = tmp_path / "b2" / "rootfs"
    assert (rootfs / "app/src/service.py").is_file()
    assert (rootfs / "app/bento.yaml").is_file()
    assert (rootfs / "opt/ocibuild/runtime/ocibuild/runtime/entrypoint.py").is_file()
    assert not (rootfs / "opt/ocibuild/runtime/ocibuild/cli.py").exists()  # the builder stays out
    assert next((rootfs / "opt/ocibuild/python").glob("numpy-*.dist-info"))


def test_the_runtime_user_owns_its_home_and_nothing_else(example):
    """umoci's rootless unpack maps every owner to the caller, so owners are read from the layers."""
    owners = {}
    for layer in example.image.layers[1:]:  # ours; the base is passed through
        with tarfile.open(layer.path()) as tar:
            owners.update({m.name: (m.uid, m.gid) for m in tar.getmembers()})
    assert owners["home/ocibuild"] == (1000, 1000)
    assert {o for name, o in owners.items() if name != "home/ocibuild"} == {(0, 0)}


def test_ctr_imports_the_archive(example, docker_engine, containerd, tmp_path):
    sock = containerd
    archive = write(example.image, tmp_path / "img.tar", tag="ocibuild-ctr-test:1")
    run("ctr", "--address", sock, "-n", "ocibuild-test", "images", "import", str(archive))
    listed = run("ctr", "--address", sock, "-n", "ocibuild-test", "images", "ls", "-q")
    assert "docker.io/library/ocibuild-ctr-test:1" in listed.split()
    run("ctr", "--address", sock, "-n", "ocibuild-test", "images", "rm", "docker.io/library/ocibuild-ctr-test:1")
