"""Credentials for registries, found the way docker and podman find them.

Sources, first match wins: `REGISTRY_AUTH_FILE`, then `$DOCKER_CONFIG/config.json` (default
`~/.docker/config.json`). In each: `credHelpers[registry]`, then `auths` (by host, with or without
scheme; Docker Hub also as `https://index.docker.io/v1/`), then `credsStore`. Helpers speak the
`docker-credential-NAME get|store|erase` protocol. A `Credential` never shows its secret in repr.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ocibuild.errors import CredentialError
from ocibuild.oci.reference import DOCKER_HUB, DOCKER_HUB_API

HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", DOCKER_HUB, DOCKER_HUB_API)


@dataclass(frozen=True)
class Credential:
    """What a registry is answered with: user and password, or an OAuth2 refresh token (secrets never in its repr)."""

    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # an OAuth2 refresh token

    def basic(self) -> str:
        return base64.b64encode(f"{self.username}:{self.password}".encode()).decode()


def auth_files(environ=os.environ) -> list[Path]:
    files = []
    if environ.get("REGISTRY_AUTH_FILE"):
        files.append(Path(environ["REGISTRY_AUTH_FILE"]))
    docker_config = Path(environ["DOCKER_CONFIG"]) if environ.get("DOCKER_CONFIG") else Path.home() / ".docker"
    files.append(docker_config / "config.json")
    return files


def keys_for(registry: str) -> tuple[str, ...]:
    if registry in HUB_KEYS:
        return HUB_KEYS
    return (registry, f"https://{registry}", f"http://{registry}", f"https://{registry}/v1/", f"https://{registry}/v2/")


class Keychain:
    """Resolves a registry's credential from the auth files; `None` means anonymous."""

    def __init__(self, files: list[Path] | None = None):
        self.files = files if files is not None else auth_files()

    def resolve(self, registry: str) -> Credential | None:
        for path in self.files:
            config = _read(path)
            if config is None:
                continue
            for key in keys_for(registry):
                helper = (config.get("credHelpers") or {}).get(key)
                if helper:
                    return helper_get(helper, key)
            for key in keys_for(registry):
                entry = (config.get("auths") or {}).get(key)
                if entry:
                    credential = _from_entry(entry, path)
                    if credential:
                        return credential
            if config.get("credsStore"):
                found = helper_get(config["credsStore"], keys_for(registry)[0], missing_ok=True)
                if found:
                    return found
        return None


def _read(path: Path) -> dict | None:
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError) as exc:
        raise CredentialError(f"cannot read credentials from {path}: {' '.join(str(exc).split())[:200]}") from None
    if problem := _config_problem(config):
        raise CredentialError(f"cannot read credentials from {path}: {problem}")
    return config


def _config_problem(config: object) -> str | None:
    """What makes `config` not a docker config file (None: nothing). Only the fields read here
    are checked; docker's other settings are kept as they are."""
    if not isinstance(config, dict):
        return "not a JSON object"
    auths, helpers = _or_empty(config.get("auths"), {}), _or_empty(config.get("credHelpers"), {})
    if not isinstance(auths, dict) or not all(isinstance(v, dict | None) for v in auths.values()):
        return "`auths` is not an object of objects"
    for key, entry in auths.items():
        fields = [(entry or {}).get(f) for f in ("auth", "username", "password", "identitytoken")]
        if not all(isinstance(value, str | None) for value in fields):
            return f"the `auths` entry of {key[:80]!r} has a field that is not a string"
    if not isinstance(helpers, dict) or not all(isinstance(v, str) for v in helpers.values()):
        return "`credHelpers` is not an object of strings"
    if not isinstance(_or_empty(config.get("credsStore"), ""), str):
        return "`credsStore` is not a string"
    return None


def _or_empty(value: object, empty: object) -> object:
    """Go writes an empty map or string as `null` when its field has no `omitempty`."""
    return empty if value is None else value


def _from_entry(entry: dict, path: Path) -> Credential | None:
    if entry.get("identitytoken"):
        return Credential(username=entry.get("username") or "", identity_token=entry["identitytoken"])
    if entry.get("auth"):
        try:
            username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            raise CredentialError(f"{path}: an `auth` entry is not base64 of user:password") from None
        return Credential(username, password)
    if entry.get("username"):
        return Credential(entry["username"], entry.get("password") or "")
    return None


def helper_get(helper: str, server: str, missing_ok: bool = False) -> Credential | None:
    program = f"docker-credential-{helper}"
    try:
        out = subprocess.run([program, "get"], input=server, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise CredentialError(f"credential helper {program} is not installed") from None
    if out.returncode != 0:
        if missing_ok or "credentials not found" in (out.stdout + out.stderr).lower():
            return None
        raise CredentialError(f"credential helper {program} failed for {server}")  # its output may hold secrets
    try:
        data = json.loads(out.stdout)
        if not isinstance(data, dict):
            raise ValueError
    except ValueError:
        raise CredentialError(f"credential helper {program} answered something that is not a JSON object") from None
    if data.get("Username") == "<token>":
        return Credential(identity_token=data.get("Secret", ""))
    return Credential(data.get("Username", ""), data.get("Secret", ""))


def login_file(environ=os.environ) -> Path:
    """Where `ocibuild login` writes: REGISTRY_AUTH_FILE if set, else the docker config."""
    return auth_files(environ)[0]


def store_login(registry: str, credential: Credential, path: Path) -> None:
    config = _read(path) or {}
    key = HUB_KEYS[0] if registry in HUB_KEYS else registry
    auths = config["auths"] = config.get("auths") or {}
    for other in keys_for(registry):
        auths.pop(other, None)
    auths[key] = {"auth": credential.basic()}
    _write(path, config)


def remove_login(registry: str, path: Path) -> bool:
    config = _read(path) or {}
    auths = config.get("auths") or {}
    removed = [k for k in keys_for(registry) if auths.pop(k, None) is not None]
    if removed:
        _write(path, config)
    return bool(removed)


def _write(path: Path, config: dict) -> None:
    """Replace the file atomically, readable by its owner only (it holds secrets). A config that
    is a symlink (dotfiles) is written where it points, as docker does, not replaced by a file."""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(config, f, indent="\t")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
