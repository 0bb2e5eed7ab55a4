"""Shared fixtures: an isolated store, the CLI, real services (engine, base image) or a skip.

Tests that need the Docker engine or the mmdebstrap base skip with a reason on a machine without
them, unless OCIBUILD_REQUIRE_SERVICES=1 (CI), where their absence is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ocibuild.cli import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "summarization"
FIXTURES = ROOT / "fixtures"
ECHO = FIXTURES / "services" / "echo"
REQUIRE_SERVICES = os.environ.get("OCIBUILD_REQUIRE_SERVICES") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip for lack of a service, or fail when the services are required."""
    if not condition:
        if REQUIRE_SERVICES:
            pytest.fail(f"required service unavailable: {reason}")
        pytest.skip(reason)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("OCIBUILD_HOME", str(path))
    return path


class Cli:
    """Runs `ocibuild` in-process; `run_process` runs the installed command for exit-code checks."""

    def __init__(self):
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True, input: str | None = None):
        result = self.runner.invoke(cli, list(args), input=input, catch_exceptions=False)
        if ok and result.exit_code != 0:
            raise AssertionError(f"ocibuild {' '.join(args)} failed ({result.exit_code}):\n{result.output}")
        return result


@pytest.fixture
def ocibuild(home) -> Cli:
    return Cli()


def run_process(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300,
                input: str | None = None):
    return subprocess.run([sys.executable, "-m", "ocibuild", *args], capture_output=True, text=True, input=input,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def import_example_model(home: Path) -> None:
    """The example's word-frequency table, as `ocibuild models import` stores it."""
    from ocibuild.models.store import ModelStore

    ModelStore(home).import_path(EXAMPLE / "model", "summarization-weights")


def copy_service(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="session")
def python_base() -> str:
    """The mmdebstrap-made Python base as an `oci-layout:` reference (cached between runs)."""
    need(shutil.which("mmdebstrap") is not None, "mmdebstrap is not installed (run scripts/setup.sh)")
    out = subprocess.run([str(FIXTURES / "base" / "make-python-base.sh")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return f"oci-layout:{out.stdout.strip()}:3.11-slim"


@pytest.fixture(scope="session")
def containerd() -> str:
    """The socket of the engine's containerd, for `ctr` (root's alone unless shared)."""
    sock = "/var/run/docker/containerd/containerd.sock"
    need(shutil.which("ctr") is not None, "ctr is not installed")
    need(os.access(sock, os.R_OK | os.W_OK), f"ctr needs access to {sock} (root's socket)")
    return sock


@pytest.fixture(scope="session")
def docker_engine() -> None:
    from ocibuild.engine import engine_available

    need(engine_available(), "no Docker engine is reachable (run scripts/setup.sh)")


# The reaper image cannot be pulled here: containers are stopped by the tests themselves.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
# Every test gets a fresh $OCIBUILD_HOME, but they share the Debian indexes and .debs.
os.environ.setdefault("OCIBUILD_DEBIAN_CACHE", str(Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                                    / "ocibuild-tests" / "debian"))

from tests.builds import example, oci_schema, session_home  # noqa: E402,F401  (session fixtures)
