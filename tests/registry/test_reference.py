import pytest

from ocibuild.errors import TagError
from ocibuild.registry.config import RegistryConfig, is_loopback, load_config
from ocibuild.oci.reference import Reference

D = "sha256:" + "a" * 64


@pytest.mark.parametrize("text, expected", [
    ("python", ("docker.io", "library/python", "latest", None)),
    ("python:3.11-slim", ("docker.io", "library/python", "3.11-slim", None)),
    ("user/app", ("docker.io", "user/app", "latest", None)),
    ("localhost/app:1", ("localhost", "app", "1", None)),
    ("localhost:5000/team/app", ("localhost:5000", "team/app", "latest", None)),
    ("127.0.0.1:5000/app:v1", ("127.0.0.1:5000", "app", "v1", None)),
    ("ghcr.io/org/app@" + D, ("ghcr.io", "org/app", None, D)),
    ("ghcr.io/org/app:v1@" + D, ("ghcr.io", "org/app", "v1", D)),
    ("registry.example.com:443/a/b/c:x_y.z", ("registry.example.com:443", "a/b/c", "x_y.z", None)),
])
def test_parse_like_docker(text, expected):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == expected


@pytest.mark.parametrize("text, rule", [
    ("Python", "must be lower-case"),
    ("app:", "the tag must be"),
    ("app:-x", "the tag must be"),
    ("app@sha256:123", "invalid digest"),
    ("app@md5:" + "a" * 32, "invalid digest"),
    ("a//b", "not a valid path component"),
    ("-app", "not a valid path component"),
    ("", "no repository name"),
    ("bad_host:5000/app", "not a valid registry host"),
])
def test_malformed_references_name_the_rule(text, rule):
    with pytest.raises(TagError, match=rule):
        Reference.parse(text)


def test_reference_helpers():
    ref = Reference.parse("python:3.11")
    assert ref.api_host == "registry-1.docker.io" and ref.reference == "3.11"
    assert str(ref.with_digest(D)) == f"docker.io/library/python:3.11@{D}"
    assert ref.with_digest(D).reference == D


def test_loopback_is_plain_http():
    assert all(is_loopback(h) for h in ["localhost:5000", "127.0.0.1:5000", "127.3.4.5", "[::1]:5000"])
    assert not any(is_loopback(h) for h in ["10.0.0.1:5000", "registry.local:5000", "ghcr.io"])
    config = RegistryConfig(insecure=frozenset({"reg.internal:5000"}))
    assert config.scheme("127.0.0.1:5000") == "http" and config.scheme("reg.internal:5000") == "http"
    assert config.scheme("ghcr.io") == "https"


def test_config_file_and_environment(tmp_path):
    (tmp_path / "registries.yaml").write_text("mirrors:\n  docker.io: [mirror.local:5000]\ninsecure: [a.local:1]\n")
    config = load_config(tmp_path, {"OCIBUILD_REGISTRY_MIRRORS": "docker.io=127.0.0.1:5000,quay.io=127.0.0.1:6000",
                                    "OCIBUILD_INSECURE_REGISTRIES": "b.local:2"})
    assert config.mirrors == {"docker.io": ("127.0.0.1:5000", "mirror.local:5000"), "quay.io": ("127.0.0.1:6000",)}
    assert config.insecure == {"a.local:1", "b.local:2"}
    endpoints = config.pull_endpoints("docker.io", "registry-1.docker.io")
    assert [(e.host, e.scheme) for e in endpoints] == [
        ("127.0.0.1:5000", "http"), ("mirror.local:5000", "https"), ("registry-1.docker.io", "https")]


def test_a_broken_configuration_fails_a_build_before_its_work(home, tmp_path, python_base):
    """registries.yaml is read as a command starts, not at its first push: nothing is built."""
    from tests.bento.test_build import tiny_service
    from tests.conftest import run_process

    home.mkdir(parents=True)
    (home / "registries.yaml").write_text("mirrors: [unclosed\n")
    out = tmp_path / "layout"
    result = run_process("build", str(tiny_service(tmp_path)), "--version", "1", "--containerize", "--base",
                         python_base, "--format", "oci-layout", "--image-output", str(out), "--push", "127.0.0.1:9/x:1")
    assert result.returncode == 1 and "registries.yaml is not valid YAML" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (home / "bentos" / "tiny").exists() and not out.exists()
