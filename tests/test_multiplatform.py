"""Multi-platform images (amd64 + arm64 from one bento, an OCI index in every output) and the
supply-chain record attached to each image (SPDX SBOM, SLSA provenance), judged by real consumers:
docker, skopeo, ctr, podman, umoci, the registry, spdx-tools.

The example is built on the default Debian base (packages of each architecture from the mirror):
nothing is executed for arm64 and there is no emulation.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from ocibuild.bento.build import build_bento
from ocibuild.bento.info import LOCK, BentoInfo
from ocibuild.bento.store import Bento, BentoStore
from ocibuild.cli import cli
from ocibuild.oci.platform import Platform, host_platform
from tests.conftest import EXAMPLE, copy_service, import_example_model, need
from tests.registry.conftest import plain_registry, registry_bin  # noqa: F401  (fixtures)

AMD64, ARM64 = Platform("linux", "amd64"), Platform("linux", "arm64")
MOMENT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
EPOCH = "1767323045"
ELF_MACHINE = {"amd64": 62, "arm64": 183}  # EM_X86_64, EM_AARCH64
REF_NAME = "org.opencontainers.image.ref.name"
SPDX, INTOTO = "application/spdx+json", "application/vnd.in-toto+json"


def run(*cmd, timeout=600):
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stderr}"
    return result.stdout


def ocibuild(home: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), env={"OCIBUILD_HOME": str(home), "SOURCE_DATE_EPOCH": EPOCH},
                                catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@dataclass
class Multi:
    home: Path
    bento: Bento
    archive: Path
    layout: Path

    def blob(self, digest: str) -> bytes:
        return (self.layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()

    def json(self, digest: str) -> dict:
        return json.loads(self.blob(digest))

    @property
    def index_json(self) -> dict:
        return json.loads((self.layout / "index.json").read_text())

    @property
    def root(self) -> dict:
        return self.index_json["manifests"][0]

    def images(self) -> dict[str, dict]:
        """architecture -> (descriptor, manifest)"""
        return {d["platform"]["architecture"]: (d, self.json(d["digest"]))
                for d in self.json(self.root["digest"])["manifests"]}


def build_multi(home: Path, src: Path, models_from: Path | None = None) -> Bento:
    if models_from is None:
        import_example_model(home)
    else:  # the same model version: a model's version names the time it was imported
        shutil.copytree(models_from / "models", home / "models")
    return build_bento(src, BentoStore(home), version="1", now=MOMENT, platforms=(AMD64, ARM64))


@pytest.fixture(scope="module")
def multi(tmp_path_factory) -> Multi:
    root = tmp_path_factory.mktemp("multi")
    src = copy_service(EXAMPLE, root / "summarization")
    home = root / "home"
    bento = build_multi(home, src)
    archive, layout = root / "multi.tar", root / "layout"
    ocibuild(home, "containerize", "summarization:1", "-o", str(archive), "--image-tag", "ocibuild-multi:1")
    ocibuild(home, "containerize", "summarization:1", "--format", "oci-dir", "-o", str(layout),
             "--image-tag", "ocibuild-multi:1")
    return Multi(home, bento, archive, layout)


# --- the bento --------------------------------------------------------------------------------


def test_the_bento_holds_one_lock_per_platform(multi):
    info = multi.bento.info
    assert info.platform == "linux/amd64" and info.platforms == ["linux/amd64", "linux/arm64"]
    for slug in ("linux-amd64", "linux-arm64"):
        assert "numpy==" in (multi.bento.path / f"env/python/requirements.{slug}.lock.txt").read_text()
        assert f"architecture {slug.split('-')[1]}" in (multi.bento.path / f"env/debian/packages.{slug}.lock").read_text()
    assert not (multi.bento.path / LOCK).exists()


def test_a_single_platform_bento_keeps_todays_layout(tmp_path):
    info = BentoInfo("svc", "1", "2026-01-01T00:00:00+00:00", "service:Svc", {"python_version": "3.11"},
                     "linux/amd64", [], [], {"count": 0, "size": 0}, "0")
    assert "platforms" not in info.to_dict() and info.targets == ["linux/amd64"]
    # bento.yaml of a bento built before multi-platform support reads as it did
    assert BentoInfo.from_dict(info.to_dict(), "bento.yaml") == info


# --- the index --------------------------------------------------------------------------------


def test_every_output_holds_an_index_of_two_images(multi, oci_schema):
    assert multi.root["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert multi.root["annotations"][REF_NAME] == "1"
    index = multi.json(multi.root["digest"])
    oci_schema("image-index", index)
    assert [d["platform"] for d in index["manifests"]] == [{"architecture": "amd64", "os": "linux"},
                                                           {"architecture": "arm64", "os": "linux"}]
    for arch, (descriptor, manifest) in multi.images().items():
        oci_schema("image-manifest", manifest)
        config = multi.json(manifest["config"]["digest"])
        assert (config["architecture"], config["os"]) == (arch, "linux")
    with tarfile.open(multi.archive) as tar:  # the archive holds the same layout
        assert json.loads(tar.extractfile("index.json").read()) == multi.index_json
        docker = json.loads(tar.extractfile("manifest.json").read())
    host = multi.images()[host_platform().architecture][1]
    assert docker[0]["Config"] == f"blobs/sha256/{host['config']['digest'].split(':')[1]}"


def test_layers_identical_across_platforms_share_one_digest(multi):
    by_step = {}  # architecture -> {history created_by: layer digest}
    for arch, (_, manifest) in multi.images().items():
        history = multi.json(manifest["config"]["digest"])["history"]
        assert len(history) == len(manifest["layers"])
        by_step[arch] = {h["created_by"]: l["digest"] for h, l in zip(history, manifest["layers"])}
    amd, arm = by_step["amd64"], by_step["arm64"]
    shared = [step for step in amd if step in arm and amd[step] == arm[step]]
    assert "ocibuild: serving runtime" in shared
    assert any(s.startswith("ocibuild: model summarization-weights") for s in shared)
    assert any(s.startswith("ocibuild: bento summarization:1") for s in shared)
    pure = [s for s in amd if s.startswith("ocibuild: python packages") and "numpy" not in s]
    assert pure and all(s in shared for s in pure), (pure, shared)
    different = [s for s in amd if s not in shared]
    assert any("Debian" in s for s in different) and any("numpy" in s for s in different)


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    return struct.unpack_from("<H", data, 18)[0]


def files_in_layers(multi: Multi, manifest: dict, wanted) -> dict[str, bytes]:
    """The first bytes of each regular file whose name `wanted` accepts, from the image's layers."""
    found = {}
    for layer in manifest["layers"]:
        path = multi.layout / "blobs" / "sha256" / layer["digest"].split(":")[1]
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and wanted(member.name):
                    found[member.name] = tar.extractfile(member).read(64)
    return found


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_each_image_holds_binaries_of_its_architecture(multi, arch):
    _, manifest = multi.images()[arch]
    found = files_in_layers(multi, manifest, lambda n: n.endswith("usr/bin/python3.11")
                            or ("numpy/_core/_multiarray_umath" in n and n.endswith(".so")))
    pythons = [n for n in found if n.endswith("python3.11")]
    numpys = [n for n in found if n.endswith(".so")]
    assert pythons and numpys, sorted(found)
    assert {elf_machine(found[n]) for n in pythons + numpys} == {ELF_MACHINE[arch]}


def test_reproducible_index_digest_across_two_builds(multi, tmp_path):
    src = copy_service(EXAMPLE, tmp_path / "summarization")
    home = tmp_path / "home"
    build_multi(home, src, models_from=multi.home)
    layout = tmp_path / "layout"
    ocibuild(home, "containerize", "summarization:1", "--format", "oci-dir", "-o", str(layout),
             "--image-tag", "ocibuild-multi:1")
    again = json.loads((layout / "index.json").read_text())
    assert again == multi.index_json  # the index and every referrer: same digests


# --- real consumers ---------------------------------------------------------------------------


def test_docker_loads_and_runs_the_host_image_of_the_archive_skopeo_copies_whole(multi, docker_engine, tmp_path):
    need(shutil.which("skopeo") is not None, "skopeo is not installed")
    run("docker", "load", "-i", str(multi.archive))
    try:
        out = run("docker", "run", "--rm", "--network", "host", "ocibuild-multi:1", "python3", "-c",
                  "import platform, numpy; print(platform.machine(), numpy.__version__)")
        assert out.split()[0] == {"amd64": "x86_64", "arm64": "aarch64"}[host_platform().architecture]
    finally:
        subprocess.run(["docker", "rmi", "-f", "ocibuild-multi:1"], capture_output=True)
    run("skopeo", "copy", "--all", f"oci-archive:{multi.archive}:1", f"oci:{tmp_path / 'copy'}:all")
    copied = json.loads((tmp_path / "copy" / "index.json").read_text())["manifests"][0]
    assert copied["digest"] == multi.root["digest"]
    for descriptor, manifest in multi.images().values():
        assert (tmp_path / "copy" / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).is_file()
        for layer in manifest["layers"]:
            assert (tmp_path / "copy" / "blobs" / "sha256" / layer["digest"].split(":")[1]).is_file()
    raw = json.loads(run("skopeo", "inspect", "--raw", f"oci-archive:{multi.archive}:1"))
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]


def test_load_platform_puts_the_arm64_image_in_manifest_json(multi, tmp_path):
    archive = tmp_path / "arm.tar"
    ocibuild(multi.home, "containerize", "summarization:1", "-o", str(archive), "--load-platform", "linux/arm64",
             "--sbom-format", "none", "--no-provenance")
    with tarfile.open(archive) as tar:
        docker = json.loads(tar.extractfile("manifest.json").read())
        index = json.loads(tar.extractfile("index.json").read())
    arm = multi.images()["arm64"][1]
    assert docker[0]["Config"].endswith(arm["config"]["digest"].split(":")[1])
    assert [m.get("artifactType") for m in index["manifests"]] == [None]


def test_ctr_imports_every_platform(multi, docker_engine, containerd):
    sock = containerd
    ctr = ("ctr", "--address", sock, "-n", "ocibuild-multi")
    run(*ctr, "images", "import", "--all-platforms", str(multi.archive))
    try:
        listed = run(*ctr, "images", "ls")
        assert "docker.io/library/ocibuild-multi:1" in listed and "linux/amd64,linux/arm64" in listed
    finally:
        subprocess.run([*ctr, "images", "rm", "docker.io/library/ocibuild-multi:1"], capture_output=True)


def test_podman_loads_and_runs_the_archive(multi, tmp_path):
    need(shutil.which("podman") is not None, "podman is not installed (run scripts/setup.sh)")
    short = Path(tempfile.mkdtemp(prefix="ocb-pm-", dir="/tmp"))  # podman wants a runroot under 50 characters
    root, runroot = tmp_path / "podman-root", short / "run"
    podman = ("podman", "--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs")
    run(*podman, "load", "-i", str(multi.archive))
    out = run(*podman, "run", "--rm", "--network", "host", "--ulimit", "nofile=1024:1024", "--ulimit",
              "nproc=1024:1024", "ocibuild-multi:1",
              "python3", "-c", "import platform; print(platform.machine())")
    assert out.strip() == {"amd64": "x86_64", "arm64": "aarch64"}[host_platform().architecture]
    subprocess.run([*podman, "system", "reset", "-f"], capture_output=True)
    shutil.rmtree(short, ignore_errors=True)


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_umoci_unpacks_each_platform(multi, arch, tmp_path):
    need(shutil.which("umoci") is not None and shutil.which("skopeo") is not None, "umoci or skopeo missing")
    single = tmp_path / "single"
    run("skopeo", "--override-arch", arch, "copy", f"oci:{multi.layout}:1", f"oci:{single}:{arch}")
    run("umoci", "unpack", "--rootless", "--image", f"{single}:{arch}", str(tmp_path / "bundle"))
    python = (tmp_path / "bundle" / "rootfs" / "usr" / "bin" / "python3.11").read_bytes()[:64]
    assert elf_machine(python) == ELF_MACHINE[arch]


# --- SBOM and provenance ----------------------------------------------------------------------


def referrers_of(multi: Multi) -> dict[str, dict[str, dict]]:
    """image digest -> artifactType -> artifact manifest, from the layout's index.json."""
    out: dict = {}
    for d in multi.index_json["manifests"][1:]:
        manifest = multi.json(d["digest"])
        assert d["artifactType"] == manifest["artifactType"]
        out.setdefault(manifest["subject"]["digest"], {})[manifest["artifactType"]] = manifest
    return out


def test_each_image_has_an_sbom_and_a_provenance_referrer(multi, oci_schema):
    found = referrers_of(multi)
    images = multi.images()
    assert set(found) == {d["digest"] for d, _ in images.values()}
    for descriptor, _ in images.values():
        for kind in (SPDX, INTOTO):
            artifact = found[descriptor["digest"]][kind]
            oci_schema("image-manifest", artifact)
            assert artifact["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
            assert [l["mediaType"] for l in artifact["layers"]] == [kind]
            assert artifact["subject"] == {k: descriptor[k] for k in ("mediaType", "digest", "size")}


def sbom_of(multi: Multi, arch: str) -> tuple[dict, bytes]:
    descriptor = multi.images()[arch][0]
    data = multi.blob(referrers_of(multi)[descriptor["digest"]][SPDX]["layers"][0]["digest"])
    return json.loads(data), data


@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_the_sbom_is_valid_spdx_listing_numpy_and_python3_11(multi, arch, tmp_path):
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document, data = sbom_of(multi, arch)
    (tmp_path / "sbom.spdx.json").write_bytes(data)
    assert validate_full_spdx_document(parse_file(str(tmp_path / "sbom.spdx.json"))) == []
    lock = (multi.bento.path / f"env/python/requirements.linux-{arch}.lock.txt").read_text()
    numpy_version = next(l for l in lock.splitlines() if l.startswith("numpy==")).split("==")[1].split()[0]
    packages = {p["name"]: p for p in document["packages"]}
    purls = lambda p: [r["referenceLocator"] for r in p.get("externalRefs", [])]  # noqa: E731
    assert packages["numpy"]["versionInfo"] == numpy_version
    wheel_purl = purls(packages["numpy"])[0]
    assert wheel_purl.startswith(f"pkg:pypi/numpy@{numpy_version}?file_name=numpy-{numpy_version}-cp311-cp311-manylinux")
    assert wheel_purl.endswith({"amd64": "x86_64.whl", "arm64": "aarch64.whl"}[arch])
    [checksum] = packages["numpy"]["checksums"]  # the one wheel installed, among those the lock accepts
    assert f"--hash=sha256:{checksum['checksumValue']}" in lock
    assert "BSD" in packages["numpy"]["licenseComments"]  # from the installed wheel's METADATA
    python = packages["python3.11"]
    assert purls(python)[0].startswith(f"pkg:deb/debian/python3.11@") and f"arch={arch}" in purls(python)[0]
    assert "source package python3.11" in python["sourceInfo"] and python["checksums"][0]["algorithm"] == "SHA256"
    assert "MPL-2.0" in packages["ca-certificates"]["licenseComments"]  # from its DEP-5 copyright file
    contained = {r["relatedSpdxElement"] for r in document["relationships"] if r["relationshipType"] == "CONTAINS"}
    assert {packages["numpy"]["SPDXID"], python["SPDXID"]} <= contained


def test_ocibuild_sbom_writes_the_attached_document_without_building(multi, tmp_path):
    out = tmp_path / "arm.spdx.json"
    ocibuild(multi.home, "sbom", "summarization:1", "--platform", "linux/arm64", "-o", str(out))
    assert out.read_bytes() == sbom_of(multi, "arm64")[1]
    default = ocibuild(multi.home, "sbom", "summarization:1").output
    assert json.loads(default) == sbom_of(multi, host_platform().architecture)[0]


def test_the_provenance_names_the_image_bento_locks_and_builder(multi):
    found = referrers_of(multi)
    for arch, (descriptor, _) in multi.images().items():
        statement = json.loads(multi.blob(found[descriptor["digest"]][INTOTO]["layers"][0]["digest"]))
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
        assert statement["subject"][0]["digest"] == {"sha256": descriptor["digest"].split(":")[1]}
        definition = statement["predicate"]["buildDefinition"]
        assert definition["externalParameters"]["bento"] == "summarization:1"
        assert definition["externalParameters"]["platform"] == f"linux/{arch}"
        names = [d["name"] for d in definition["resolvedDependencies"]]
        assert "summarization:1" in names
        assert f"env/python/requirements.linux-{arch}.lock.txt" in names
        assert f"env/debian/packages.linux-{arch}.lock" in names
        base = next(d for d in definition["resolvedDependencies"] if d.get("annotations", {}).get("role") == "base image")
        assert base["name"] == "debian:bookworm" and len(base["digest"]["sha256"]) == 64
        assert statement["predicate"]["runDetails"]["builder"]["version"]["ocibuild"]
        assert "startedOn" not in statement["predicate"]["runDetails"]["metadata"]


# --- the registry -----------------------------------------------------------------------------


def tag_schema_referrers(host: str, repository: str, digest: str) -> list[dict]:
    response = requests.get(f"http://{host}/v2/{repository}/manifests/{digest.replace(':', '-')}",
                            headers={"Accept": "application/vnd.oci.image.index.v1+json"}, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["manifests"]


def test_push_an_index_with_referrers_and_pull_it_back(multi, plain_registry, tmp_path):
    need(shutil.which("skopeo") is not None, "skopeo is not installed")
    host = plain_registry.host
    # the registry has no referrers API: the tag schema is used
    assert requests.get(f"http://{host}/v2/ocibuild/multi/referrers/sha256:{'0' * 64}", timeout=10).status_code == 404
    ocibuild(multi.home, "containerize", "summarization:1", "--push", f"{host}/ocibuild/multi:1")
    raw = json.loads(run("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{host}/ocibuild/multi:1"))
    assert raw == multi.json(multi.root["digest"])
    run("skopeo", "copy", "--all", "--src-tls-verify=false", f"docker://{host}/ocibuild/multi:1",
        f"oci:{tmp_path / 'pulled'}:1")
    pulled = json.loads((tmp_path / "pulled" / "index.json").read_text())["manifests"][0]
    assert pulled["digest"] == multi.root["digest"]
    for descriptor, _ in multi.images().values():
        listed = tag_schema_referrers(host, "ocibuild/multi", descriptor["digest"])
        assert sorted(m["artifactType"] for m in listed) == sorted([SPDX, INTOTO])
    # `ocibuild push` of the archive carries the index and its referrers too, merging the tag
    ocibuild(multi.home, "push", str(multi.archive), f"{host}/ocibuild/again:1")
    for descriptor, _ in multi.images().values():
        listed = tag_schema_referrers(host, "ocibuild/again", descriptor["digest"])
        assert sorted(m["artifactType"] for m in listed) == sorted([SPDX, INTOTO])
    ocibuild(multi.home, "push", str(multi.layout), f"{host}/ocibuild/again:1")  # again: no duplicates
    listed = tag_schema_referrers(host, "ocibuild/again", multi.images()["arm64"][0]["digest"])
    assert len(listed) == 2 and all("org.opencontainers.image.created" in m["annotations"] for m in listed)


def test_cyclonedx_sbom_validates_and_is_deterministic(multi, tmp_path):
    pytest.importorskip("cyclonedx")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    out = tmp_path / "arm.cdx.json"
    ocibuild(multi.home, "sbom", "summarization:1", "--platform", "linux/arm64", "--format", "cyclonedx", "-o", str(out))
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(out.read_text()) is None
    again = ocibuild(multi.home, "sbom", "summarization:1", "--platform", "linux/arm64", "--format", "cyclonedx").output
    assert again.encode() == out.read_bytes()
    purls = {c.get("purl", "") for c in json.loads(again)["components"]}
    assert any(p.startswith("pkg:pypi/numpy@") and p.endswith("aarch64.whl") for p in purls)
    assert any(p.startswith("pkg:deb/debian/python3.11@") and "arch=arm64" in p for p in purls)
    layout = tmp_path / "layout"
    ocibuild(multi.home, "containerize", "summarization:1", "--format", "oci-dir", "-o", str(layout),
             "--sbom-format", "cyclonedx", "--no-provenance")
    listed = json.loads((layout / "index.json").read_text())["manifests"][1:]
    assert [m["artifactType"] for m in listed] == ["application/vnd.cyclonedx+json"] * 2


def test_a_multi_platform_base_gives_each_image_its_own_platform(multi, tmp_path):
    """The multi-platform layout itself as `--base`: each image starts with its platform's image."""
    layout = tmp_path / "on-base"
    ocibuild(multi.home, "containerize", "summarization:1", "--format", "oci-dir", "-o", str(layout),
             "--base", f"oci-layout:{multi.layout}:1")
    index = json.loads((layout / "index.json").read_text())["manifests"][0]
    root = json.loads((layout / "blobs" / "sha256" / index["digest"].split(":")[1]).read_text())
    for descriptor in root["manifests"]:
        arch = descriptor["platform"]["architecture"]
        manifest = json.loads((layout / "blobs" / "sha256" / descriptor["digest"].split(":")[1]).read_text())
        base_layers = [l["digest"] for l in multi.images()[arch][1]["layers"]]
        assert [l["digest"] for l in manifest["layers"][:len(base_layers)]] == base_layers
    # the SBOM names that base image, not the Debian packages the bento locked for its own base
    on_base = Multi(multi.home, multi.bento, multi.archive, layout)
    for image_digest, artifacts in referrers_of(on_base).items():
        packages = on_base.json(artifacts[SPDX]["layers"][0]["digest"])["packages"]
        purls = [r["referenceLocator"] for p in packages for r in p.get("externalRefs", [])]
        assert [p["comment"] for p in packages if p.get("primaryPackagePurpose") == "CONTAINER"][1:] == ["the base image"]
        assert any(p.startswith("pkg:pypi/numpy@") for p in purls)
        assert not [p for p in purls if p.startswith(("pkg:deb/", "pkg:oci/"))], image_digest  # a local base: no purl


def test_a_package_without_a_wheel_for_one_platform_is_named(tmp_path):
    """A wheel for x86_64 only, on a local index: locking for arm64 names the package and platform."""
    import base64
    import hashlib
    import zipfile

    index = tmp_path / "simple" / "onlyx86zz"
    index.mkdir(parents=True)
    files = {"onlyx86zz/__init__.py": b"", "onlyx86zz-1.0.dist-info/METADATA":
             b"Metadata-Version: 2.1\nName: onlyx86zz\nVersion: 1.0\n", "onlyx86zz-1.0.dist-info/WHEEL":
             b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: false\nTag: cp311-cp311-manylinux_2_17_x86_64\n"}
    record = "".join(f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
                     for n, d in files.items())
    files["onlyx86zz-1.0.dist-info/RECORD"] = (record + "onlyx86zz-1.0.dist-info/RECORD,,\n").encode()
    wheel = index / "onlyx86zz-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    (index / "index.html").write_text(f'<a href="{wheel.name}#sha256={hashlib.sha256(wheel.read_bytes()).hexdigest()}">'
                                      f'{wheel.name}</a>')
    src = tmp_path / "svc"
    src.mkdir()
    (src / "service.py").write_text(
        "import ocibuild\n\n"
        f"image = ocibuild.images.PythonImage(python_version='3.11').python_packages('onlyx86zz')"
        f".extra_index_url('file://{tmp_path / 'simple'}')\n\n\n"
        "@ocibuild.service(image=image)\nclass Svc:\n    @ocibuild.api\n    def ping(self) -> str:\n        return 'ok'\n")
    home = tmp_path / "home"
    result = ocibuild(home, "build", str(src), "--platform", "linux/amd64,linux/arm64", ok=False)
    assert result.exit_code != 0
    message = result.output.strip()
    assert "linux/arm64" in message and "onlyx86zz" in message and len(message.splitlines()) == 1, message
    assert not (home / "bentos").exists() or not any((home / "bentos").rglob("bento.yaml"))


def test_multi_platform_dependency_groups_keep_pure_python_apart():
    from ocibuild.python.plan import Distribution, group_distributions

    pure = Distribution("click-8.dist-info", ("click/__init__.py",), 10, b"r1")
    native = Distribution("pyyaml-6.dist-info", ("yaml/__init__.py", "_yaml.cpython-311-x86_64-linux-gnu.so"), 10, b"r2")
    vendored = Distribution("x-1.dist-info", ("x.libs/libgfortran-1a2b.so.5.0.0",), 10, b"r3")
    assert [g.distributions for g in group_distributions([native, pure, vendored])] == [(pure, native, vendored)]
    assert [g.distributions for g in group_distributions([native, pure, vendored], split_native=True)] == \
        [(pure,), (native, vendored)]


def test_a_registry_with_the_referrers_api_gets_no_fallback_tag(multi, tmp_path):
    """A registry answering a subject-bearing put with `OCI-Subject` (OCI 1.1) indexes referrers
    itself: no `sha256-<hex>` tag is written. A minimal stand-in on loopback records the requests."""
    import hashlib
    import http.server
    import threading

    from ocibuild.formats.layout import read_with_referrers
    from ocibuild.oci.reference import Reference
    from ocibuild.registry.auth import Keychain
    from ocibuild.registry.config import RegistryConfig
    from ocibuild.registry.push import push
    from ocibuild.registry.session import Registries
    from ocibuild.store.blobs import BlobStore

    puts: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200 if self.path == "/v2/" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_HEAD(self):  # every blob is "already there"
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_PUT(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            puts.append(self.path.rsplit("/", 1)[1])
            self.send_response(201)
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(body).hexdigest())
            subject = json.loads(body).get("subject")
            if subject:
                self.send_header("OCI-Subject", subject["digest"])
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        blobs = BlobStore(tmp_path / "blobs")
        root, attached = read_with_referrers(multi.layout, "oci-layout", blobs)
        host = f"127.0.0.1:{server.server_address[1]}"
        report = push(root, Reference.parse(f"{host}/team/multi:1"), Registries(RegistryConfig(), Keychain([])),
                      blobs, referrers=attached)
    finally:
        server.shutdown()
    assert len(report.referrers) == 4
    assert not [p for p in puts if p.startswith("sha256-")], puts
    assert puts.index("1") < min(puts.index(str(r.digest)) for r in attached)  # the tag, then the referrers
