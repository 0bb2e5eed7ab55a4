"""SBOM facts carried by a registry cache are checked before a fresh runner uses them."""

import json

from ocibuild.oci.platform import Platform
from ocibuild.supplychain.locks import read_locks
from ocibuild.supplychain.records import WHEELS, record_key, restore_sbom_records, sbom_records
from ocibuild.supplychain.wheels import wheel_file, wheels_record


def test_a_record_naming_a_wheel_the_lock_does_not_accept_is_skipped(example, tmp_path):
    bento = example.bento
    locks = read_locks(bento, Platform.target(bento.info.platform))
    path = wheels_record(locks.python_path, bento.info.python_version, locks.platform, tmp_path / "cache")
    key = record_key(WHEELS, path)
    lie = {"numpy": {"file": "numpy.whl", "sha256": "0" * 64, "license": {}}}
    restore_sbom_records(bento, tmp_path, {key: {"kind": WHEELS, "text": json.dumps(lie)}})
    assert not path.exists()
    restore_sbom_records(bento, tmp_path, {key: {"kind": WHEELS, "text": "[not json"}})
    assert not path.exists()
    accepted = next(line.split("sha256:")[1][:64] for line in locks.python_path.read_text().splitlines()
                    if "--hash=sha256:" in line)
    truth = {"numpy": {"file": "numpy.whl", "sha256": accepted, "license": {}}}
    restore_sbom_records(bento, tmp_path, {key: {"kind": WHEELS, "text": json.dumps(truth)}})
    assert json.loads(path.read_text()) == truth
    assert sbom_records(bento, tmp_path)[key]["kind"] == WHEELS


def test_a_record_of_another_shape_is_skipped(example, tmp_path):
    """A record that names an accepted wheel but is malformed would break every SBOM of the bento
    once written: it is never written."""
    bento = example.bento
    locks = read_locks(bento, Platform.target(bento.info.platform))
    path = wheels_record(locks.python_path, bento.info.python_version, locks.platform, tmp_path / "cache")
    key = record_key(WHEELS, path)
    accepted = next(line.split("sha256:")[1][:64] for line in locks.python_path.read_text().splitlines()
                    if "--hash=sha256:" in line)
    for fact in [{"sha256": accepted, "license": {}}, {"file": "numpy.whl", "sha256": accepted, "license": "MIT"},
                 {"file": "numpy.whl", "sha256": accepted, "license": {"classifiers": "MIT"}},
                 {"file": "../numpy.whl", "sha256": accepted}, {"file": "numpy.whl", "sha256": accepted, "x": 1},
                 ["numpy.whl", accepted]]:
        restore_sbom_records(bento, tmp_path, {key: {"kind": WHEELS, "text": json.dumps({"numpy": fact})}})
        assert not path.exists(), fact
    good = {"file": "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl", "sha256": accepted,
            "license": {"expression": "BSD-3-Clause", "classifiers": ["BSD License"], "spdx": True}}
    restore_sbom_records(bento, tmp_path, {key: {"kind": WHEELS, "text": json.dumps({"numpy": good})}})
    assert json.loads(path.read_text()) == {"numpy": good}


def test_a_wheel_file_is_named_as_on_disk_and_its_record_is_accepted(example, tmp_path):
    url = "https://files.example/whl/cpu/torch-2.5.1%2Bcpu-cp311-cp311-linux_x86_64.whl?X-Signature=abc"
    assert wheel_file(url) == "torch-2.5.1+cpu-cp311-cp311-linux_x86_64.whl"
    assert wheel_file("numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl") == \
        "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.whl"
    bento = example.bento
    locks = read_locks(bento, Platform.target(bento.info.platform))
    path = wheels_record(locks.python_path, bento.info.python_version, locks.platform, tmp_path / "cache")
    accepted = next(line.split("sha256:")[1][:64] for line in locks.python_path.read_text().splitlines()
                    if "--hash=sha256:" in line)
    fact = {"file": wheel_file(url), "sha256": accepted, "license": {}}
    restore_sbom_records(bento, tmp_path, {record_key(WHEELS, path): {"kind": WHEELS, "text": json.dumps({"x": fact})}})
    assert json.loads(path.read_text()) == {"x": fact}


def test_licenses_come_from_what_the_dependency_install_recorded(tmp_path, monkeypatch):
    """The dependency layers' install keeps each METADATA header: the SBOM reads the licenses from
    there, and installs the lock again only when no record exists."""
    from ocibuild.python import deps
    from ocibuild.store.blobs import BlobStore
    from ocibuild.supplychain.wheels import installed_licenses

    lock = tmp_path / "requirements.lock.txt"
    lock.write_text("six==1.16.0 \\\n    --hash=sha256:" + "a" * 64 + "\n")
    platform, cache = Platform.target("linux/amd64"), tmp_path / "cache"
    installs = []

    def install(lock, target, python_version, platform):
        installs.append(target)
        (target / "six-1.16.0.dist-info").mkdir(parents=True)
        (target / "six-1.16.0.dist-info" / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: six\nLicense: MIT\n\nSix is a Python 2 and 3 compatibility library.\n")

    monkeypatch.setattr(deps, "install", install)
    assert installed_licenses(lock, "3.11", platform, cache) == {"six": {"license": "MIT"}}
    assert len(installs) == 1  # no record: installed once, in a temporary directory
    BlobStore(cache).remember(deps.METADATA, deps.metadata_key(lock, "3.11", platform),
                              {"six-1.16.0.dist-info": "Metadata-Version: 2.1\nName: six\nLicense-Expression: MIT"})
    assert installed_licenses(lock, "3.11", platform, cache) == {"six": {"expression": "MIT"}}
    assert len(installs) == 1  # the record answered
    assert installed_licenses(lock, "3.11", Platform.target("linux/arm64"), cache) == {"six": {"license": "MIT"}}
    assert len(installs) == 2  # another platform: another install


def test_a_base_purl_names_the_repository_and_never_a_local_base():
    from ocibuild.supplychain.spdx import BaseRef, base_purl

    digest = "sha256:" + "a" * 64
    purl = "pkg:oci/python@sha256%3A" + "a" * 64
    assert base_purl(BaseRef(f"localhost:5000/team/python@{digest}", digest)) == purl  # the port is no tag
    assert base_purl(BaseRef("registry.example:5000/python:3.11", digest)) == purl
    assert base_purl(BaseRef("local base image", digest)) is None
