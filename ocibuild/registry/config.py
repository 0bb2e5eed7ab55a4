"""Registry settings: pull mirrors per source registry, and registries reached over plain HTTP.

Read from `$OCIBUILD_HOME/registries.yaml`:

    mirrors:
      docker.io: ["127.0.0.1:5000"]
    insecure: ["registry.internal:5000"]

and from the environment, which adds to the file: `OCIBUILD_REGISTRY_MIRRORS="docker.io=HOST[:PORT],..."`
and `OCIBUILD_INSECURE_REGISTRIES="HOST[:PORT],..."`. Loopback registries (`localhost`,
127.0.0.0/8, `[::1]`) always use plain HTTP.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ocibuild.errors import OcibuildError

CONFIG_FILE = "registries.yaml"


@dataclass(frozen=True)
class Endpoint:
    """Where a registry answers: its host and the scheme it speaks (plain HTTP on loopback or when insecure)."""

    host: str
    scheme: str

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}"


@dataclass(frozen=True)
class RegistryConfig:
    """`registries.yaml` and its environment variables: mirrors per registry, registries without TLS."""

    mirrors: dict[str, tuple[str, ...]] = field(default_factory=dict)
    insecure: frozenset[str] = frozenset()

    def scheme(self, host: str) -> str:
        return "http" if host in self.insecure or is_loopback(host) else "https"

    def endpoint(self, host: str) -> Endpoint:
        return Endpoint(host, self.scheme(host))

    def pull_endpoints(self, registry: str, api_host: str) -> list[Endpoint]:
        """Mirrors first, in order, then the registry itself."""
        return [self.endpoint(m) for m in self.mirrors.get(registry, ())] + [self.endpoint(api_host)]


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def load_config(home: Path, environ=os.environ) -> RegistryConfig:
    data = {}
    path = home / CONFIG_FILE
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise OcibuildError(f"{path} is not valid YAML: {exc}") from None
    mirrors = {k: tuple(v) for k, v in (data.get("mirrors") or {}).items()}
    for item in _split(environ.get("OCIBUILD_REGISTRY_MIRRORS", "")):
        source, sep, mirror = item.partition("=")
        if not sep or not mirror:
            raise OcibuildError(f"OCIBUILD_REGISTRY_MIRRORS: {item!r} is not REGISTRY=MIRROR")
        mirrors[source] = (mirror, *mirrors.get(source, ()))
    insecure = frozenset(data.get("insecure") or ()) | frozenset(_split(environ.get("OCIBUILD_INSECURE_REGISTRIES", "")))
    return RegistryConfig(mirrors, insecure)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]
