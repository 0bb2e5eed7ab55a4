import sys

import pytest

import ocibuild
from ocibuild.errors import SpecError
from ocibuild.sdk.images import PythonImage
from ocibuild.sdk.openapi import openapi_document
from ocibuild.sdk.schema import SchemaError, check, json_schema
from ocibuild.sdk.service import service_spec


def test_python_image_defaults_to_building_interpreter():
    assert PythonImage().python_version == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert PythonImage(python_version="3.13").python_version == "3.13"


@pytest.mark.parametrize("version", ["3", "banana", "3.11.2", "2.7", "3.7", "", "3.x"])
def test_python_image_rejects_bad_versions(version):
    with pytest.raises(SpecError, match="python_version"):
        PythonImage(python_version=version)


def test_chaining_returns_new_values():
    base = PythonImage(python_version="3.11")
    image = base.python_packages("numpy>=1.26", "requests[socks]; python_version>'3.8'") \
        .requirements_file("reqs.txt").system_packages("libgomp1")
    assert base.packages == ()
    assert image.packages == ("numpy>=1.26", "requests[socks]; python_version>'3.8'")
    assert image.requirements_files == ("reqs.txt",)
    assert image.debian_packages == ("libgomp1",)


@pytest.mark.parametrize("requirement", ["numpy>>1", "not a requirement!", "numpy[", ""])
def test_malformed_requirement_is_rejected_at_definition(requirement):
    with pytest.raises(SpecError, match="invalid Python requirement"):
        PythonImage().python_packages(requirement)


@pytest.mark.parametrize("name", ["Libgomp1", "a", "-x", "lib gomp"])
def test_bad_debian_names(name):
    with pytest.raises(SpecError, match="Debian package"):
        PythonImage().system_packages(name)


@pytest.mark.parametrize("path", ["/etc/reqs.txt", "../x.txt", "sub/../../x.txt", ""])
def test_inputs_outside_the_service_directory_are_rejected(path):
    for method in (PythonImage().requirements_file, PythonImage().pyproject_toml):
        with pytest.raises(SpecError, match="inside the service directory"):
            method(path)


def test_a_requirements_file_linking_out_of_the_service_is_refused(tmp_path):
    from ocibuild.python.inputs import gather

    (tmp_path / "secret.txt").write_text("numpy\n")
    service = tmp_path / "svc"
    service.mkdir()
    (service / "reqs.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(SpecError, match="leads outside"):
        gather(service, PythonImage().requirements_file("reqs.txt"), {})


def test_service_spec_envs_and_apis():
    @ocibuild.service(envs=[{"name": "TOKEN"}, {"name": "MODE", "value": "fast"}])
    class MyService:
        @ocibuild.api
        def predict(self, text: str, k: int = 3) -> list[str]:
            """Predict things."""
            return [text] * k

        def helper(self):
            pass

    spec = service_spec(MyService)
    assert spec.name == "myservice"
    assert spec.required_envs() == ("TOKEN",)
    assert [a.name for a in spec.apis] == ["predict"]
    assert spec.apis[0].input_schema() == {
        "type": "object", "properties": {"text": {"type": "string"}, "k": {"type": "integer"}},
        "required": ["text"], "additionalProperties": False}
    doc = openapi_document(spec)
    assert doc["paths"]["/predict"]["post"]["summary"] == "Predict things."


@pytest.mark.parametrize("envs, message", [
    ([{"name": "1BAD"}], "invalid env name"),
    ([{"name": "A-B"}], "invalid env name"),
    ([{"name": "TOKEN\n"}], "invalid env name"),  # `$` in a pattern would admit the newline
    ([{"name": "X"}, {"name": "X", "value": "1"}], "declared twice"),
    ([{"value": "1"}], "invalid env"),
    ([{"name": "X", "value": 3}], "expected a string"),
])
def test_bad_envs(envs, message):
    with pytest.raises(SpecError, match=message):
        @ocibuild.service(envs=envs)
        class S:
            pass


@pytest.mark.parametrize("name", ["Upper", "has space", "-lead", "a" * 64])
def test_bad_service_names(name):
    with pytest.raises(SpecError, match="invalid service name"):
        @ocibuild.service(name=name)
        class S:
            pass


def test_image_must_be_python_image():
    with pytest.raises(SpecError, match="PythonImage"):
        @ocibuild.service(image="python:3.11")
        class S:
            pass


def test_schema_check_converts_and_names_fields():
    assert check(3, float, "x") == 3.0
    assert check([1, 2], list[int], "x") == [1, 2]
    assert check(None, int | None, "x") is None
    assert check({"a": "b"}, dict[str, str], "x") == {"a": "b"}
    with pytest.raises(SchemaError, match=r"x\[1\]: expected integer"):
        check([1, "2"], list[int], "x")
    with pytest.raises(SchemaError, match="x: expected integer"):
        check(True, int, "x")
    with pytest.raises(SchemaError):
        check("1", float, "x")
    with pytest.raises(SchemaError, match="x: 10000000000000000000... is too large for a float"):
        check(10 ** 400, float, "x")  # JSON admits it; float() would raise OverflowError
    with pytest.raises(SchemaError, match="x: expected array of hashable items"):
        check([[1]], set[list], "x")  # a set of JSON arrays: TypeError, unhashable
    assert check([1, 2, 1], set[int], "x") == {1, 2}
    assert json_schema(int | None) == {"anyOf": [{"type": "integer"}, {"type": "null"}]}


def test_env_stages_as_in_bentoml():
    @ocibuild.service(envs=[{"name": "BOTH"}, {"name": "TOKEN", "stage": "build"},
                            {"name": "MODE", "value": "fast", "stage": "runtime"}])
    class Staged:
        pass

    spec = service_spec(Staged)
    assert [e.name for e in spec.envs] == ["BOTH", "MODE"]  # what the runtime sees and requires
    assert spec.required_envs() == ("BOTH",)
    assert [e.name for e in spec.build_envs()] == ["BOTH", "TOKEN"]
    with pytest.raises(SpecError, match="invalid stage 'deploy' for env X"):
        ocibuild.service(envs=[{"name": "X", "stage": "deploy"}])(type("S", (), {}))


def test_library_classes_in_hints_get_a_generic_schema():
    class Tensor:
        pass

    assert json_schema(Tensor) == {}
    assert json_schema(list[Tensor]) == {"type": "array", "items": {}}
    assert check([1, "a"], Tensor, "x") == [1, "a"]
