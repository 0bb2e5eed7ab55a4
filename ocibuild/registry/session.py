"""One place that turns (host, repository) into a Repository with the right endpoint and credential."""

from __future__ import annotations

import threading
from pathlib import Path

from ocibuild.registry.auth import Keychain
from ocibuild.registry.client import CHUNK_SIZE, Repository
from ocibuild.registry.config import RegistryConfig, load_config
from ocibuild.oci.reference import DOCKER_HUB, DOCKER_HUB_API
from ocibuild.registry.transport import RetryPolicy, Transport


class Registries:
    """Transports per host, shared so that tokens and connections are reused."""

    def __init__(self, config: RegistryConfig, keychain: Keychain, retry: RetryPolicy = RetryPolicy(),
                 chunk_size: int = CHUNK_SIZE):
        self.config = config
        self.keychain = keychain
        self.retry = retry
        self.chunk_size = chunk_size
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_home(cls, home: Path) -> Registries:
        return cls(load_config(home), Keychain(), RetryPolicy.from_env())

    def transport(self, host: str) -> Transport:
        with self._lock:
            if host not in self._transports:
                name = DOCKER_HUB if host == DOCKER_HUB_API else host
                self._transports[host] = Transport(self.config.endpoint(host), self.keychain.resolve(name), self.retry)
            return self._transports[host]

    def repository(self, host: str, name: str) -> Repository:
        return Repository(self.transport(host), name, self.chunk_size)

    def origin(self, origin: str) -> Repository:
        host, _, name = origin.partition("/")
        return self.repository(host, name)
