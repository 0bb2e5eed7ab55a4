"""Checking credentials before saving them: `GET /v2/` with the challenge answered."""

from __future__ import annotations

from ocibuild.errors import TagError
from ocibuild.registry.auth import Credential
from ocibuild.registry.config import RegistryConfig
from ocibuild.oci.reference import DOCKER_HUB, DOCKER_HUB_API, valid_registry
from ocibuild.registry.transport import RetryPolicy, Transport


def check_login(registry: str, credential: Credential, config: RegistryConfig) -> None:
    if not valid_registry(registry):
        raise TagError(f"invalid registry {registry!r}: expected HOST[:PORT] with a port from 1 to 65535")
    host = DOCKER_HUB_API if registry in (DOCKER_HUB, "index.docker.io") else registry
    transport = Transport(config.endpoint(host), credential, RetryPolicy.from_env())  # OCIBUILD_REGISTRY_TIMEOUT
    transport.request("GET", "/v2/", (), expected=(200,), what="log in").close()
