"""Typed records: a bento.yaml or model.yaml is checked field by field; a bad one found in the
store is skipped with a warning, never a crash of `list` for the whole store."""

import logging

import pytest
import yaml

from ocibuild.bento.info import BentoInfo, ModelPin
from ocibuild.bento.store import BentoStore
from ocibuild.bento.build import build_bento
from ocibuild.errors import RecordError
from tests.conftest import ECHO, copy_service

GOOD = {"name": "echo", "version": "1", "created": "2024-01-02T03:04:05.000000+00:00", "service": "service:Echo",
        "image": {"python_version": "3.11"}, "platform": "linux/amd64", "envs": [], "apis": [],
        "files": {"count": 1, "size": 2}, "ocibuild_version": "0.1.0",
        "models": [{"name": "m", "version": "v1", "digest": "sha256:" + "a" * 64, "size": 3}]}


def test_a_good_record_has_typed_parts():
    for service in ("pkg.service:Echo", "my-service:Svc", "service:Modèle"):  # what the loader imports
        BentoInfo.from_dict({**GOOD, "service": service, "envs": [{"name": "A_1", "value": None}]}, "bento.yaml")
    info = BentoInfo.from_dict(GOOD, "bento.yaml")
    assert info.models == [ModelPin("m", "v1", "sha256:" + "a" * 64, 3)] and info.base is None
    assert BentoInfo.from_dict(info.to_dict(), "again") == info


@pytest.mark.parametrize("change, message", [
    ({"created": 12345}, "field 'created' must be str, not int"),
    ({"created": "yesterday"}, "not an ISO 8601 time"),
    ({"name": "../../etc"}, "invalid tag"),
    ({"version": "/abs/dir"}, "invalid version"),
    ({"version": "latest"}, "not an exact version"),
    ({"models": [{"name": "m", "version": "../../x", "digest": "sha256:" + "a" * 64, "size": 3}]}, "invalid version"),
    ({"models": [{"name": "m", "version": "v1", "digest": "sha256:../x", "size": 3}]}, "invalid digest"),
    ({"models": "all"}, "field 'models' must be"),
    ({"base": {"reference": "python", "digest": "nope"}}, "invalid digest"),
    ({"extra": 1}, "unknown field 'extra'"),
    ({"image": {}}, "python_version is missing"),
    ({"service": "..up:Svc"}, "service '..up:Svc' is not module:Class"),
    ({"service": "os:system; rm"}, "is not module:Class"),
    ({"service": "a/b:Svc"}, "is not module:Class"),
    ({"envs": [{"name": "TOKEN\n", "value": "x"}]}, "is not a name and a string or null value"),
    ({"envs": [{"value": "x"}]}, "is not a name and a string or null value"),
    ({"envs": [{"name": 5, "value": "x"}]}, "is not a name and a string or null value"),
    ({"envs": [{"name": "A=B", "value": "x"}]}, "is not a name and a string or null value"),
    ({"envs": [{"name": "A", "value": ["x"]}]}, "is not a name and a string or null value"),
])
def test_bad_records_are_refused_with_one_line(change, message):
    with pytest.raises(RecordError, match=message) as refused:
        BentoInfo.from_dict({**GOOD, **change}, "bento.yaml")
    assert "\n" not in str(refused.value)


def test_missing_field_and_not_a_mapping():
    with pytest.raises(RecordError, match="missing field 'service'"):
        BentoInfo.from_dict({k: v for k, v in GOOD.items() if k != "service"}, "bento.yaml")
    with pytest.raises(RecordError, match="expected a mapping"):
        BentoInfo.from_dict(["x"], "bento.yaml")


def alias_bomb(record: dict) -> str:
    """`record` as YAML whose `image` holds nine nested aliases of nine items: 9^9 once expanded."""
    levels = ["  l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = yaml.safe_dump(record, sort_keys=False)
    return text.replace("image:\n", "image:\n" + "\n".join(levels) + "\n", 1)


def test_a_record_with_yaml_aliases_is_refused_before_anything_expands_it(tmp_path):
    path = tmp_path / "bento.yaml"
    path.write_text(alias_bomb(GOOD))
    with pytest.raises(RecordError, match="YAML aliases are not allowed") as refused:
        BentoInfo.load(path)
    assert "\n" not in str(refused.value)
    path.write_text("name: &n echo\n" + yaml.safe_dump({k: v for k, v in GOOD.items() if k != "name"}))
    assert BentoInfo.load(path).name == "echo"  # an aliased scalar expands to nothing: harmless


def test_a_damaged_bento_in_the_store_is_skipped_by_list(home, tmp_path, caplog, ocibuild):
    store = BentoStore(home)
    root = copy_service(ECHO, tmp_path / "echo")
    build_bento(root, store, version="1")
    damaged = build_bento(root, store, version="2")
    record = yaml.safe_load((damaged.path / "bento.yaml").read_text())
    (damaged.path / "bento.yaml").write_text(yaml.safe_dump({**record, "created": 12345}))
    with caplog.at_level(logging.WARNING):
        assert [str(b.tag) for b in store.list()] == ["echo:1"]
    assert "field 'created' must be str" in caplog.text
    assert str(store.get("echo").tag) == "echo:1"
    result = ocibuild("get", "echo:2", ok=False)
    assert result.exit_code == 1 and "field 'created' must be str" in result.output
    assert "echo:1" in ocibuild("list").output
