"""SBOM facts carried by a registry cache are checked before a fresh runner uses them."""

import json

from ocibuild.oci.platform import Platform
from ocibuild.supplychain.locks import read_locks
from ocibuild.supplychain.records import WHEELS, record_key, restore_sbom_records, sbom_records
from ocibuild.supplychain.wheels import wheels_record


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
