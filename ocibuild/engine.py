"""The local Docker engine: is one reachable, and `docker load` of an image archive."""

from __future__ import annotations

from pathlib import Path

from plumbum import CommandNotFound, ProcessExecutionError, local

from ocibuild.errors import EngineError


def _docker():
    try:
        return local["docker"]
    except CommandNotFound:
        raise EngineError("no `docker` command on this machine") from None


def engine_available() -> bool:
    try:
        _docker()("version", "--format", "{{.Server.Version}}", timeout=15)
        return True
    except (EngineError, ProcessExecutionError, OSError, TimeoutError):
        return False


def require_engine(detail: str = "") -> None:
    if not engine_available():
        raise EngineError(f"no Docker engine is reachable (is dockerd running? see `docker info`){detail}")


def docker_load(archive: Path) -> str:
    """`docker load` the archive; returns what the engine said (`Loaded image: ...`)."""
    try:
        return _docker()("load", "-i", str(archive)).strip()
    except ProcessExecutionError as exc:
        raise EngineError(f"docker load refused {archive}: {exc.stderr.strip() or exc.stdout.strip()}") from None
