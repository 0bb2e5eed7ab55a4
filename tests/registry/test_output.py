"""What containerize tells scripts (stdout: references, the pushed one last) and CI (the
metadata file), against the real registry."""

import json

import pytest

from tests.conftest import ECHO, copy_service, run_process


@pytest.fixture
def echo_bento(home, tmp_path):
    src = copy_service(ECHO, tmp_path / "echo")
    assert run_process("build", str(src), "--version", "1").returncode == 0
    return "echo:1"


def test_stdout_is_for_scripts_and_the_metadata_file_for_ci(echo_bento, python_base, plain_registry, tmp_path):
    ref = f"{plain_registry.host}/meta/echo:1"
    record_file = tmp_path / "meta.json"
    result = run_process("containerize", echo_bento, "--base", python_base, "-o", str(tmp_path / "out.tar"),
                         "--push", ref, "--metadata-file", str(record_file))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    record = json.loads(record_file.read_text())
    assert lines == [str(tmp_path / "out.tar"), f"{plain_registry.host}/meta/echo@{record['digest']}"]
    assert set(record) == {"bento", "digest", "mediaType", "size", "platforms", "references", "outputs", "layers",
                           "seconds"}
    assert record["bento"] == "echo:1" and record["platforms"] == ["linux/amd64"]
    assert record["references"] == [lines[-1]] and record["outputs"] == [lines[0]]
    assert record["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    layers = record["layers"]
    assert set(layers[0]) == {"digest", "diffId", "size", "mediaType", "createdBy", "source", "push"}
    assert {layer["push"] for layer in layers} == {"uploaded"}
    assert {layer["source"] for layer in layers} == {"built"}  # a fresh home: every layer written now
    assert layers[-1]["createdBy"] == "ocibuild: bento echo:1"
    again = run_process("containerize", echo_bento, "--base", python_base, "--push", ref,
                        "--metadata-file", str(record_file))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [lines[-1]]
    record = json.loads(record_file.read_text())
    assert {layer["source"] for layer in record["layers"]} == {"reused"}
    assert {layer["push"] for layer in record["layers"]} == {"skipped"}
    assert "nothing to do" not in again.stderr and "layers reused" in again.stderr.splitlines()[-1]


def test_a_metadata_file_that_cannot_be_written_fails_before_any_output(echo_bento, python_base, tmp_path):
    (tmp_path / "afile").write_text("a file, not a directory")
    out = tmp_path / "out.tar"
    result = run_process("containerize", echo_bento, "--base", python_base, "-o", str(out),
                         "--metadata-file", str(tmp_path / "afile" / "meta.json"))
    assert result.returncode == 1 and result.stderr.splitlines()[-1].startswith("error: ")
    assert "Traceback" not in result.stderr and not out.exists() and result.stdout == ""
    (tmp_path / "adir").mkdir()
    result = run_process("containerize", echo_bento, "--base", python_base, "-o", str(out),
                         "--metadata-file", str(tmp_path / "adir"))
    assert result.returncode == 2 and "is a directory" in result.stderr and not out.exists()
