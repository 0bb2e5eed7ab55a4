import shutil

import pytest

from tests.conftest import need
from tests.registry.fixtures import TokenServer, htpasswd_file, start_registry

USERS = {"alice": "wonderland"}


@pytest.fixture(scope="session")
def registry_bin():
    need(shutil.which("docker-registry") is not None, "docker-registry is not installed (run scripts/setup.sh)")


@pytest.fixture(scope="module")
def plain_registry(registry_bin, tmp_path_factory):
    registry = start_registry(tmp_path_factory.mktemp("registry-plain"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def basic_registry(registry_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("registry-basic")
    auth = {"htpasswd": {"realm": "ocibuild-tests", "path": str(htpasswd_file(root / "htpasswd", USERS))}}
    registry = start_registry(root, auth)
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def token_registry(registry_bin, tmp_path_factory):
    root = tmp_path_factory.mktemp("registry-token")
    tokens = TokenServer(root, USERS)
    registry = start_registry(root, tokens.auth_config())
    registry.tokens = tokens
    yield registry
    registry.stop()
    tokens.stop()
