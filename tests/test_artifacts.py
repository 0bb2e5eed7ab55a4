"""Bentos and models as OCI artifacts through the real registry: fresh homes on both sides."""

from __future__ import annotations

import json
import re

import pytest
import requests

from ocibuild.artifacts import BENTO_TYPE, MODEL_TYPE, bento_artifact, model_artifact, push_artifact
from ocibuild.bento.store import BentoStore
from ocibuild.errors import ArchiveError, RegistryError
from ocibuild.models.store import ModelStore
from ocibuild.oci import mediatypes
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


def _push_layers(host: str, repo: str, artifact_type: str, layers: list[tuple[list, dict]], tmp_path,
                 models: str = "[]") -> str:
    """An artifact of hand-made layers ([members], annotations) pushed to `host`; its oci:// target."""
    from ocibuild.oci.descriptor import Descriptor
    from ocibuild.oci.index import Artifact
    from ocibuild.oci.layer import FileBlob
    from tests.hostile import make_tar

    blobs = []
    for i, (members, annotations) in enumerate(layers):
        path = tmp_path / f"layer{i}.tar.gz"
        path.write_bytes(make_tar(members))
        blobs.append(FileBlob(Descriptor.of(mediatypes.LAYER + "+gzip", path.read_bytes(), annotations=annotations), path))
    target = f"oci://{host}/{repo}:v1"
    push_artifact(Artifact(artifact_type, tuple(blobs), annotations={"io.ocibuild.models": models}), target,
                  registries(tmp_path), BlobStore(tmp_path / "push-cache"))
    return target


DEEP = "/".join(["d"] * 12)


@pytest.mark.parametrize("kind", ["model", "bento"])
def test_a_link_that_would_change_meaning_when_moved_writes_and_deletes_nothing_outside(
        plain_registry, ocibuild, home, tmp_path, kind):
    """A relative link that stays inside the layer where it is extracted (`tmp` leads back into
    the layer) but, moved to the store's staging directory, leads to any directory: importing
    must neither empty that directory (a model) nor write into it (a bento's second model layer)."""
    from ocibuild.artifacts import MODEL
    from tests.hostile import directory, file, make_victim, snapshot, symlink

    victim = make_victim(tmp_path / "victim")
    assert str(victim).startswith("/tmp/")  # in the layer, `tmp/...` leads through the link `tmp`
    escape = "../../../../tmp/" + "../" * 12 + str(victim).lstrip("/")
    planter = [symlink("tmp", DEEP), directory(DEEP + "/" + str(victim).removeprefix("/tmp/")),
               directory("opt/ocibuild/models/foo"), symlink("opt/ocibuild/models/foo/1", escape)]
    if kind == "model":
        target = _push_layers(plain_registry.host, "evil/model", MODEL_TYPE, [(planter, {MODEL: "foo:1"})], tmp_path)
        command = ["models", "import", target]
    else:
        payload = [file("opt/ocibuild/models/foo/1/sitecustomize.py", b"raise SystemExit('code ran')")]
        target = _push_layers(plain_registry.host, "evil/bento", BENTO_TYPE,
                              [([directory("app/src")], {}), (planter, {MODEL: "foo:1"}), (payload, {MODEL: "foo:1"})],
                              tmp_path)
        command = ["import", target]
    before = snapshot(victim)
    result = ocibuild(*command, ok=False)
    assert snapshot(victim) == before
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "refusing archive: 'tmp' is outside opt/ocibuild/models/foo/1/" in result.output
    assert ModelStore(home).list() == [] and BentoStore(home).list() == []
    assert not [p for p in (home / "tmp").iterdir()] if (home / "tmp").is_dir() else True


def test_a_model_layer_cannot_re_route_a_link_of_the_bento_layer(plain_registry, ocibuild, home, tmp_path):
    """The bento layer's link walks models/m/1/files/l/.. by names alone; the model layer's
    `files/l -> .` would make each `..` climb out of the store for real."""
    from ocibuild.artifacts import MODEL
    from tests.hostile import directory, symlink

    escape = "../models/m/1/files/" + "l/" * 20 + "../" * 24 + str(tmp_path).lstrip("/") + "/secret"
    (tmp_path / "secret").write_text("host file")
    target = _push_layers(plain_registry.host, "evil/cross", BENTO_TYPE,
                          [([directory("app/src"), symlink("app/src/x", escape)], {}),
                           ([symlink("opt/ocibuild/models/m/1/files/l", ".")], {MODEL: "m:1"})], tmp_path)
    result = ocibuild("import", target, ok=False)
    assert "symlink 'models/m/1/files/l' would re-route a link extracted before it" in result.output
    assert BentoStore(home).list() == [] and ModelStore(home).list() == []


@pytest.mark.parametrize("named", ["foo:..", "../x:1", "foo", "Foo:1", "foo:a/b"])
def test_a_model_layer_must_name_a_valid_model_before_it_becomes_a_path(plain_registry, ocibuild, home, tmp_path,
                                                                        named):
    from ocibuild.artifacts import MODEL
    from tests.hostile import file

    target = _push_layers(plain_registry.host, "odd/model", MODEL_TYPE,
                          [([file("opt/ocibuild/models/foo/1/model.yaml")], {MODEL: named})], tmp_path)
    result = ocibuild("models", "import", target, ok=False)
    assert result.exit_code != 0 and f"names no model ({named!r})" in result.output
    assert ModelStore(home).list() == []


@pytest.mark.parametrize("models", ["5", '[1, "a"]', "[[], {}]"])
def test_a_models_annotation_of_another_shape_is_one_error(plain_registry, ocibuild, home, tmp_path, models):
    from tests.hostile import directory

    target = _push_layers(plain_registry.host, "odd/bento", BENTO_TYPE, [([directory("app/src")], {})], tmp_path,
                          models=models)
    result = ocibuild("import", target, ok=False)
    assert result.output == f"error: {target}: the io.ocibuild.models annotation is not a list of NAME:VERSION@DIGEST\n"
    assert BentoStore(home).list() == []


def test_archive_limits_apply_to_artifacts_from_a_registry(plain_registry, ocibuild, home, tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.bin").write_bytes(b"w" * 4096)
    ocibuild("models", "import", str(model), "--name", "big")
    target = f"oci://{plain_registry.host}/models/big:v1"
    ocibuild("models", "export", "big", target)
    monkeypatch.setenv("OCIBUILD_HOME", str(tmp_path / "fresh"))
    result = ocibuild("models", "import", target, "--max-archive-file-size", "1K", ok=False)
    assert result.exit_code != 0 and "'files/weights.bin' is larger than 1 KiB" in result.output
    assert ModelStore(tmp_path / "fresh").list() == []
    assert "Imported model big:" in ocibuild("models", "import", target, "--max-archive-file-size", "8K").output


# -- the registry cache ---------------------------------------------------------------------------

def serve_and_ask(image: str) -> str:
    """Run the image's server on a free loopback port and ask it for a summary."""
    import subprocess
    import time

    from tests.conftest import free_port

    port = free_port()
    started = subprocess.run(["docker", "run", "-d", "--rm", "--network", "host", "-e", f"PORT={port}",
                              "-e", "SUMMARY_API_KEY=test", image, "serve"], capture_output=True, text=True)
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        for _ in range(150):
            try:
                if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        answer = requests.post(f"http://127.0.0.1:{port}/summarize", timeout=30,
                               json={"text": "The cat sat on the mat. Quantum chromodynamics binds quarks. "
                                             "It rained.", "sentences": 1})
        assert answer.status_code == 200, answer.text
        return answer.json()
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True)


def test_a_fresh_runner_builds_an_edit_from_the_registry_cache(example, plain_registry, docker_engine, tmp_path,
                                                                monkeypatch):
    import subprocess

    from ocibuild.debian.archive import DebianArchive
    from ocibuild.registry import pull as pull_module
    from ocibuild.python import deps
    from tests.conftest import EXAMPLE, Cli, copy_service

    cli, host = Cli(), plain_registry.host
    cache = f"{host}/cache/summarization:main"
    monkeypatch.setenv("OCIBUILD_HOME", str(example.home))
    # the default base, made of Debian packages, so that a .deb download would show
    first = cli("containerize", str(example.bento.tag),
                "--push", f"{host}/apps/summarization:a", "--cache-to", cache).output
    assert "Cache:" in first
    model = example.bento.info.models[0]
    cli("models", "export", str(model.tag), f"oci://{host}/models/weights:main")

    # runner B: nothing in its home, nothing in its uv cache, and an edit to service.py
    monkeypatch.setenv("OCIBUILD_HOME", str(tmp_path / "runner-b"))
    uv_cache = tmp_path / "uv-cache"
    monkeypatch.setenv("UV_CACHE_DIR", str(uv_cache))
    cli("models", "import", f"oci://{host}/models/weights:main")  # the same version as runner A's
    src = copy_service(EXAMPLE, tmp_path / "src")
    (src / "service.py").write_text((src / "service.py").read_text() + "\n# edited on runner B\n")
    from ocibuild.bento import build as build_module

    def no_resolve(*args, **kwargs):
        raise AssertionError("a lock was resolved although the cache has one for these inputs")

    with monkeypatch.context() as m:  # the Python and Debian locks come from the cache: nothing resolved
        m.setattr(build_module, "lock_requirements", no_resolve)
        m.setattr(build_module, "lock_debian", no_resolve)
        cli("build", str(src), "--cache-from", cache)
    bento = BentoStore(tmp_path / "runner-b").list()[0]
    tag = str(bento.tag)
    for name in ("env/python/requirements.lock.txt", "env/debian/packages.lock"):
        assert (bento.path / name).read_text() == (example.bento.path / name).read_text()

    def no_install(*args, **kwargs):
        raise AssertionError("a dependency or Debian layer was built although the cache has it")

    downloads = []
    original = pull_module.RegistryLayer.path
    monkeypatch.setattr(deps, "install", no_install)
    monkeypatch.setattr(DebianArchive, "deb", no_install)
    monkeypatch.setattr(pull_module.RegistryLayer, "path", lambda self: downloads.append(self) or original(self))
    out = cli("containerize", tag, "--cache-from", cache,
              "--push", f"{host}/apps/runner-b:b").output
    assert downloads == []  # push-only: no cached layer's bytes were downloaded
    # only the edited source layer and the config travel (with the SBOM's and provenance's blobs and
    # their empty config); every other layer is mounted from the cache
    assert re.search(r"\(5 uploaded, [1-9]\d* mounted, 0 already there, 2 referrers\)", out), out
    assert "1 layers uploaded (" in out.splitlines()[-2], out
    assert "1 layers built (" in out.splitlines()[-2], out  # the edit, written through the cache's store
    wheels = [p for p in uv_cache.rglob("*") if p.suffix == ".whl" or p.name.endswith(".dist-info")]
    assert wheels == []
    assert not uv_cache.exists() or not any(p.is_file() for p in uv_cache.rglob("*"))  # uv never ran

    ref = f"{host}/apps/runner-b:b"
    pulled = subprocess.run(["docker", "pull", ref], capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    try:
        assert "Quantum" in serve_and_ask(ref)
    finally:
        subprocess.run(["docker", "rmi", ref], capture_output=True)


def forged_cache(example, host: str, tmp_path, forge) -> str:
    """The example's cache with one layer entry changed by `forge(entry) -> entry`."""
    from ocibuild.oci.descriptor import Descriptor, canonical_json
    from ocibuild.oci.layer import FileBlob
    from ocibuild.oci.index import Artifact
    from ocibuild.registry.cache import CACHE_CONFIG, CACHE_TYPE, open_cache
    from tests.builds import containerize

    regs = registries(tmp_path)
    store = open_cache(example.cache, regs, [], needs_bytes=False)
    containerize(example, cache=store)
    runtime_key = next(k for k, b in store.used_layers.items()
                       if b.digest == example.image.layers[-3].descriptor.digest)  # deps..., runtime, model, source
    table = json.loads(store.artifact().config.path().read_bytes())
    table["layers"][runtime_key] = forge(table["layers"][runtime_key])
    data = canonical_json(table)
    config = FileBlob(Descriptor.of(CACHE_CONFIG, data), example.cache.add_bytes(data))
    ref = f"{host}/cache/forged:{tmp_path.name[-20:].strip('_')}"
    push(Artifact(CACHE_TYPE, store.artifact().layers, config=config), Reference.parse(ref), regs, example.cache)
    return ref


@pytest.mark.parametrize("case", ["missing blob", "wrong diff_id"])
def test_a_cache_entry_that_does_not_hold_is_built_normally_with_a_warning(example, plain_registry, tmp_path, caplog,
                                                                        case):
    from ocibuild.registry.cache import open_cache
    from tests.builds import containerize

    if case == "missing blob":
        forge = lambda e: {**e, "digest": "sha256:" + "0" * 64}  # noqa: E731
    else:
        forge = lambda e: {**e, "diff_id": "sha256:" + "1" * 64}  # noqa: E731
    ref = forged_cache(example, plain_registry.host, tmp_path, forge)
    fresh = BlobStore(tmp_path / "fresh-cache")
    store = open_cache(fresh, registries(tmp_path), [ref], needs_bytes=True)
    with caplog.at_level("WARNING"):
        image = containerize(example, cache=store)
    assert [l.descriptor.digest for l in image.layers] == [l.descriptor.digest for l in example.image.layers]
    assert image.digest == example.image.digest
    assert "building that layer" in caplog.text
    # the runtime layer was built here; the dependency layers came from the registry
    runtime = image.layers[-3].descriptor.digest
    assert runtime not in store.remote and fresh.has_blob(runtime)


def test_a_key_collision_is_an_error(example, plain_registry, tmp_path):
    from ocibuild.errors import ImageError
    from ocibuild.registry.cache import open_cache
    from tests.builds import containerize

    ref = forged_cache(example, plain_registry.host, tmp_path, lambda e: {**e, "diff_id": "sha256:" + "2" * 64})
    # the local cache has the runtime layer under that key with its true diff_id
    store = open_cache(example.cache, registries(tmp_path), [ref], needs_bytes=False)
    with pytest.raises(ImageError, match="cache key collision"):
        containerize(example, cache=store)


@pytest.mark.parametrize("lock, problem", [
    ("numpy==2.0.0 \\\n    --hash=sha256:" + "a" * 64 + "\n", None),
    ("numpy @ https://files.example/numpy-2.0.0-py3-none-any.whl --hash=sha256:" + "a" * 64 + "\n", None),
    ("numpy==2.0.0\n", "no hash for numpy"),
    ("numpy==1.20.0 --hash=sha256:" + "a" * 64 + "\n", "does not satisfy"),
    ("scipy==1.0 --hash=sha256:" + "a" * 64 + "\n", "numpy is not in it"),
    ("numpy>=1 --hash=sha256:" + "a" * 64 + "\n", "not pinned"),
    # an option uv would obey, indented so that it reads as a continuation of numpy's entry
    ("numpy==2.0.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    --extra-index-url http://127.0.0.1:9/simple\n",
     "line 3 is neither a hash nor a comment"),
])
def test_a_cached_python_lock_must_hash_every_entry_and_satisfy_the_requirements(lock, problem):
    from ocibuild.bento.lockcache import python_lock_problem

    found = python_lock_problem(lock, "# service requirements\nnumpy>=1.26\n", "")
    assert found == problem if problem is None else problem in found


def test_the_oras_client_pulls_a_model_artifact_by_its_layer_titles(plain_registry, ocibuild, home, tmp_path):
    """Interop: the `oras` client (the design card's) reads what ocibuild pushes."""
    import oras.provider

    import_example_model(home)
    stored = ModelStore(home).get(MODEL)
    ocibuild("models", "export", MODEL, f"oci://{plain_registry.host}/models/oras:v1")
    client = oras.provider.Registry(hostname=plain_registry.host, insecure=True)
    files = client.pull(target=f"{plain_registry.host}/models/oras:v1", outdir=str(tmp_path / "out"),
                        allowed_media_type=["application/vnd.oci.image.manifest.v1+json"])
    # oras-py takes a tar+gzip layer for a packed directory and unpacks it where its title says:
    # the model's directory, as it is in an image, with the files that match the model's digest
    from ocibuild.models.store import content_digest

    assert [f.rsplit("/", 1)[-1] for f in files] == [f"{stored.info.name}-{stored.info.version}.tar.gz"]
    unpacked = tmp_path / "out" / "opt/ocibuild/models" / stored.info.name / stored.info.version
    assert content_digest(unpacked / "files")[0] == stored.info.digest
    assert (unpacked / "model.yaml").read_bytes() == (stored.path / "model.yaml").read_bytes()
