"""Bentos and models as OCI artifacts through the real registry: fresh homes on both sides."""

from __future__ import annotations

import json

import pytest
import requests

from ocibuild.artifacts import BENTO_TYPE, MODEL_TYPE, bento_artifact, model_artifact, push_artifact
from ocibuild.bento.store import BentoStore
from ocibuild.errors import ArchiveError, RegistryError
from ocibuild.models.store import ModelStore
from ocibuild.oci.reference import Reference
from ocibuild.registry.push import push
from ocibuild.store.blobs import BlobStore
from tests.conftest import import_example_model
from tests.registry.conftest import plain_registry, registry_bin  # noqa: F401 (fixtures)
from tests.registry.fixtures import FaultProxy
from tests.registry.test_registry import registries

MODEL = "summarization-weights"


def manifest_of(host: str, repo: str, tag: str) -> dict:
    answer = requests.get(f"http://{host}/v2/{repo}/manifests/{tag}",
                          headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def uploads(proxy: FaultProxy) -> list[str]:
    """Blob uploads the proxy saw finish (monolithic PUT with a digest)."""
    return [path for method, path, _ in proxy.seen if method == "PUT" and "/blobs/uploads/" in path]


def test_a_model_goes_through_the_registry_into_a_fresh_home(plain_registry, ocibuild, home, tmp_path, monkeypatch):
    import_example_model(home)
    stored = ModelStore(home).get(MODEL)
    target = f"oci://{plain_registry.host}/models/weights:v1"
    out = ocibuild("models", "export", MODEL, target).output
    assert "uploaded" in out
    manifest = manifest_of(plain_registry.host, "models/weights", "v1")
    assert manifest["artifactType"] == MODEL_TYPE
    assert manifest["annotations"]["io.ocibuild.tag"] == str(stored.tag)
    assert manifest["annotations"]["io.ocibuild.model.digest"] == stored.info.digest
    assert manifest["annotations"]["io.ocibuild.size"] == str(stored.info.size)
    assert manifest["annotations"]["org.opencontainers.image.created"] == stored.info.created

    fresh = tmp_path / "fresh"
    monkeypatch.setenv("OCIBUILD_HOME", str(fresh))
    assert f"Imported model {stored.tag}" in ocibuild("models", "import", target).output
    copy = ModelStore(fresh).get(str(stored.tag))
    assert copy.info == stored.info
    assert {p.relative_to(copy.files): p.read_bytes() for p in copy.files.rglob("*") if p.is_file()} == \
           {p.relative_to(stored.files): p.read_bytes() for p in stored.files.rglob("*") if p.is_file()}
    # importing it again is refused as an existing version, and leaves the store as it was
    assert ocibuild("models", "import", target, ok=False).exit_code != 0


def test_a_bento_goes_through_the_registry_into_a_fresh_home(example, plain_registry, ocibuild, home):
    target = f"oci://{plain_registry.host}/bentos/summarization:v1"
    report = push_artifact(bento_artifact(example.bento, example.cache), target, registries(home), example.cache)
    manifest = manifest_of(plain_registry.host, "bentos/summarization", "v1")
    assert manifest["artifactType"] == BENTO_TYPE
    pins = [f"{m.name}:{m.version}@{m.digest}" for m in example.bento.info.models]
    assert pins and json.loads(manifest["annotations"]["io.ocibuild.models"]) == pins
    assert len(manifest["layers"]) == 1 + len(pins)

    assert f"Imported {example.bento.tag}" in ocibuild("import", target).output
    imported = BentoStore(home).get(str(example.bento.tag))
    assert imported.info == example.bento.info
    assert (imported.path / "bento.yaml").read_bytes() == (example.bento.path / "bento.yaml").read_bytes()
    model = ModelStore(home).get(str(example.bento.info.models[0].tag))
    assert model.info.digest == example.bento.info.models[0].digest
    # the same bento, exported again from the fresh home, is the same artifact
    again = bento_artifact(imported, BlobStore(home / "cache"))
    assert again.digest == report.digest


def test_an_image_pushed_after_the_model_artifact_mounts_the_model_layer(example, plain_registry, tmp_path):
    proxy = FaultProxy(plain_registry.host, ["ok"])
    try:
        model = ModelStore(example.home).get(str(example.bento.info.models[0].tag))
        artifact = model_artifact(model, example.cache)
        layer = artifact.layers[0]
        assert layer.descriptor.digest in {l.descriptor.digest for l in example.image.layers}, \
            "the model artifact's layer is not the image's model layer"
        regs = registries(tmp_path)
        push_artifact(artifact, f"oci://{proxy.host}/mounts/model:v1", regs, example.cache)
        proxy.seen.clear()
        report = push(example.image, Reference.parse(f"{proxy.host}/mounts/app:v1"), regs, example.cache)
        assert layer.descriptor.digest in report.mounted
        assert not any(layer.descriptor.digest in path for path in uploads(proxy))
        assert any(method == "POST" and f"mount={layer.descriptor.digest}" in path for method, path, _ in proxy.seen)
    finally:
        proxy.stop()


def test_a_tampered_artifact_is_refused_and_nothing_is_stored(plain_registry, ocibuild, home, tmp_path, monkeypatch):
    import_example_model(home)
    ocibuild("models", "export", MODEL, f"oci://{plain_registry.host}/models/tampered:v1")
    proxy = FaultProxy(plain_registry.host, ["ok"], corrupt_blobs=True)
    try:
        fresh = tmp_path / "fresh"
        monkeypatch.setenv("OCIBUILD_HOME", str(fresh))
        result = ocibuild("models", "import", f"oci://{proxy.host}/models/tampered:v1", ok=False)
        assert result.exit_code != 0 and "does not match its digest" in result.output
        assert ModelStore(fresh).list() == []
        # a model artifact is not a bento: refused by its artifactType
        result = ocibuild("import", f"oci://{plain_registry.host}/models/tampered:v1", ok=False)
        assert result.exit_code != 0 and MODEL_TYPE in result.output and BENTO_TYPE in result.output
        assert BentoStore(fresh).list() == []
    finally:
        proxy.stop()


def test_a_layer_of_an_unknown_type_is_refused(plain_registry, home, tmp_path):
    from ocibuild.artifacts import import_model_artifact
    from ocibuild.oci.descriptor import Descriptor
    from ocibuild.oci.index import Artifact
    from ocibuild.oci.layer import FileBlob

    data = tmp_path / "blob"
    data.write_bytes(b"not a tar")
    blob = FileBlob(Descriptor.of("application/x-evil", data.read_bytes()), data)
    cache = BlobStore(home / "cache")
    push_artifact(Artifact(MODEL_TYPE, (blob,)), f"oci://{plain_registry.host}/models/evil:v1", registries(home), cache)
    with pytest.raises((ArchiveError, RegistryError), match="application/x-evil"):
        import_model_artifact(ModelStore(home), f"oci://{plain_registry.host}/models/evil:v1", registries(home), cache)
