"""One place that turns (host, repository) into a Repository with the right endpoint and credential."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ocibuild.oci.reference import DOCKER_HUB, DOCKER_HUB_API
from ocibuild.registry.config import RegistryConfig, load_config

if TYPE_CHECKING:  # the HTTP stack is imported when a registry is first used, not by every command
    from ocibuild.registry.auth import Keychain
    from ocibuild.registry.client import Repository
    from ocibuild.registry.transport import RetryPolicy, Transport


class Registries:
    """Transports per host, shared so that tokens and connections are reused."""

    def __init__(self, config: RegistryConfig, keychain: Keychain | None, retry: RetryPolicy | None = None,
                 chunk_size: int | None = None, retry_from_env: bool = False):
        """`keychain` None: the usual credential stores, read when a registry is first used (a
        command on local bases and outputs never imports them); `retry` None: the default policy
        (from the environment with `retry_from_env`); `chunk_size` None: the client's default."""
        self.config = config
        self._keychain = keychain
        self._retry = retry
        self._retry_from_env = retry_from_env
        self._chunk_size = chunk_size
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_home(cls, home: Path) -> Registries:
        """The configuration is read now, so that a broken one fails a command before its work."""
        return cls(load_config(home), None, retry_from_env=True)

    @property
    def keychain(self) -> Keychain:
        if self._keychain is None:
            from ocibuild.registry.auth import Keychain

            self._keychain = Keychain()
        return self._keychain

    @property
    def retry(self) -> RetryPolicy:
        if self._retry is None:
            from ocibuild.registry.transport import RetryPolicy

            self._retry = RetryPolicy.from_env() if self._retry_from_env else RetryPolicy()
        return self._retry

    @property
    def chunk_size(self) -> int:
        from ocibuild.registry.client import CHUNK_SIZE

        return CHUNK_SIZE if self._chunk_size is None else self._chunk_size

    def transport(self, host: str) -> Transport:
        from ocibuild.registry.transport import Transport

        with self._lock:
            if host not in self._transports:
                name = DOCKER_HUB if host == DOCKER_HUB_API else host
                self._transports[host] = Transport(self.config.endpoint(host), self.keychain.resolve(name), self.retry)
            return self._transports[host]

    def repository(self, host: str, name: str) -> Repository:
        from ocibuild.registry.client import Repository

        return Repository(self.transport(host), name, self.chunk_size)

    def origin(self, origin: str) -> Repository:
        host, _, name = origin.partition("/")
        return self.repository(host, name)
