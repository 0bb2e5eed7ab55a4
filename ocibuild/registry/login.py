"""Checking credentials before saving them: `GET /v2/` with the challenge answered."""

from __future__ import annotations

from ocibuild.registry.auth import Credential
from ocibuild.registry.config import RegistryConfig
from ocibuild.registry.reference import DOCKER_HUB, DOCKER_HUB_API
from ocibuild.registry.transport import Transport


def check_login(registry: str, credential: Credential, config: RegistryConfig) -> None:
    host = DOCKER_HUB_API if registry in (DOCKER_HUB, "index.docker.io") else registry
    transport = Transport(config.endpoint(host), credential)
    transport.request("GET", "/v2/", (), expected=(200,), what="log in").close()
