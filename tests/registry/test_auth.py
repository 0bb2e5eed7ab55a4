"""Credentials from docker config files and credential helpers (real helper executables)."""

import base64
import json
import os
import stat

import pytest

from ocibuild.registry.auth import Credential, CredentialError, Keychain, auth_files, remove_login, store_login


def write_config(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def b64(text):
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def helper_bin(tmp_path, monkeypatch):
    """A real `docker-credential-test` helper on PATH, answering for one server."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-test"
    script.write_text("#!/bin/sh\nread server\n"
                      'if [ "$1" = get ] && [ "$server" = "helped.example:5000" ]; then\n'
                      '  echo \'{"ServerURL":"helped.example:5000","Username":"helper-user","Secret":"helper-secret"}\'\n'
                      "else echo 'credentials not found in native keychain'; exit 1; fi\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_auths_entries_in_every_spelling(tmp_path):
    config = write_config(tmp_path / "config.json", {"auths": {
        "https://index.docker.io/v1/": {"auth": b64("hub:pw")},
        "http://reg.example:5000": {"username": "u", "password": "p"},
        "tok.example": {"identitytoken": "refresh-me"},
    }})
    keychain = Keychain([config])
    assert keychain.resolve("docker.io") == Credential("hub", "pw")
    assert keychain.resolve("registry-1.docker.io") == Credential("hub", "pw")
    assert keychain.resolve("reg.example:5000") == Credential("u", "p")
    assert keychain.resolve("tok.example").identity_token == "refresh-me"
    assert keychain.resolve("other.example") is None


def test_secrets_never_in_repr():
    text = repr(Credential("user", "hunter2", "tok3n"))
    assert "hunter2" not in text and "tok3n" not in text and "user" in text


def test_cred_helpers_and_creds_store(tmp_path, helper_bin):
    config = write_config(tmp_path / "config.json", {"credHelpers": {"helped.example:5000": "test"}})
    assert Keychain([config]).resolve("helped.example:5000") == Credential("helper-user", "helper-secret")
    store = write_config(tmp_path / "store.json", {"credsStore": "test"})
    assert Keychain([store]).resolve("helped.example:5000") == Credential("helper-user", "helper-secret")
    assert Keychain([store]).resolve("unknown.example") is None


def test_missing_helper_is_a_clear_error(tmp_path):
    config = write_config(tmp_path / "config.json", {"credHelpers": {"x.example": "nonexistent-zz"}})
    with pytest.raises(CredentialError, match="docker-credential-nonexistent-zz is not installed"):
        Keychain([config]).resolve("x.example")


def test_auth_file_order_follows_the_environment(tmp_path):
    files = auth_files({"REGISTRY_AUTH_FILE": str(tmp_path / "auth.json"), "DOCKER_CONFIG": str(tmp_path / "docker")})
    assert files == [tmp_path / "auth.json", tmp_path / "docker" / "config.json"]
    first = write_config(files[0], {"auths": {"r.example": {"auth": b64("a:1")}}})
    write_config(files[1], {"auths": {"r.example": {"auth": b64("b:2")}}})
    assert Keychain(files).resolve("r.example") == Credential("a", "1")
    assert first.exists()


def test_login_and_logout_write_the_docker_format(tmp_path):
    path = write_config(tmp_path / "config.json", {"auths": {"keep.example": {"auth": b64("k:k")}}, "other": 1})
    store_login("docker.io", Credential("me", "pw"), path)
    store_login("reg.example:5000", Credential("you", "pw2"), path)
    data = json.loads(path.read_text())
    assert data["auths"]["https://index.docker.io/v1/"] == {"auth": b64("me:pw")}
    assert data["auths"]["reg.example:5000"] == {"auth": b64("you:pw2")}
    assert data["other"] == 1 and "keep.example" in data["auths"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert remove_login("reg.example:5000", path) and not remove_login("reg.example:5000", path)
    assert "reg.example:5000" not in json.loads(path.read_text())["auths"]


@pytest.mark.parametrize("data, problem", [
    ([1], "not a JSON object"),
    ({"auths": []}, "`auths` is not an object of objects"),
    ({"auths": {"example.com": "x"}}, "`auths` is not an object of objects"),
    ({"auths": {"example.com": {"auth": 5}}}, "the `auths` entry of 'example.com' has a field that is not a string"),
    ({"credHelpers": {"example.com": ["x"]}}, "`credHelpers` is not an object of strings"),
    ({"credsStore": 1}, "`credsStore` is not a string"),
])
def test_a_config_of_another_shape_is_one_error_for_every_command(tmp_path, data, problem):
    config = write_config(tmp_path / "config.json", data)
    before = config.read_text()
    for command in (lambda: Keychain([config]).resolve("example.com"),
                    lambda: store_login("example.com", Credential("u", "p"), config),
                    lambda: remove_login("example.com", config)):
        with pytest.raises(CredentialError, match=f"cannot read credentials from {config}: {problem}"):
            command()
    assert config.read_text() == before


@pytest.mark.parametrize("data", [
    {"auths": None}, {"credHelpers": None, "credsStore": None}, {"auths": {"example.com": None}},
    {"auths": {"example.com": {"auth": None, "email": 5}}},
])
def test_nulls_mean_nothing_as_go_writes_them(tmp_path, data):
    """Go's encoder writes an empty map or string field as null: docker reads such a file."""
    config = write_config(tmp_path / "config.json", data)
    assert Keychain([config]).resolve("example.com") is None
    store_login("example.com", Credential("u", "p"), config)
    assert Keychain([config]).resolve("example.com") == Credential("u", "p")


def test_login_writes_through_a_symlinked_config(tmp_path):
    """Dotfile setups link config.json elsewhere: docker writes the file the link names."""
    real = write_config(tmp_path / "dotfiles" / "docker.json", {"auths": {}, "detachKeys": "ctrl-x"})
    link = tmp_path / ".docker" / "config.json"
    link.parent.mkdir()
    link.symlink_to(real)
    store_login("example.com", Credential("u", "p"), link)
    assert link.is_symlink() and stat.S_IMODE(real.stat().st_mode) == 0o600
    assert json.loads(real.read_text()) == {"auths": {"example.com": {"auth": b64("u:p")}}, "detachKeys": "ctrl-x"}
