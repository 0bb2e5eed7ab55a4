"""Starting a service: check its environment, import it, instantiate it, serve it."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
from pathlib import Path

from ocibuild.contract import MODELS_DIR_ENV, PORT, PORT_ENV
from ocibuild.errors import MissingEnvError, ServeError, ServiceLoadError
from ocibuild.runtime.usercode import failure
from ocibuild.sdk.service import service_spec

def missing_envs(required: tuple[str, ...], environ=os.environ) -> list[str]:
    return [name for name in required if not environ.get(name)]


def load(src: Path, entry_point: str):
    """Import `module:Class` from `src` and return (spec, class)."""
    module_name, _, class_name = entry_point.partition(":")
    src = src.resolve()
    sys.path.insert(0, str(src))
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # the user's code may raise anything; an interrupt stays one
        raise ServiceLoadError(failure(src, exc, f"importing {module_name} from {src}")) from exc
    cls = getattr(module, class_name, None)
    spec = service_spec(cls) if cls is not None else None
    if spec is None:
        raise ServiceLoadError(f"{entry_point} is not an @ocibuild.service class")
    return spec, cls


def start(src: Path, cls: type):
    """The service's instance: its `__init__` (loading weights, opening clients) is the user's
    code. A `sys.exit()` there is a failure too: a supervisor would read exit 0 as a clean stop."""
    try:
        return cls()
    except (Exception, SystemExit) as exc:
        raise ServiceLoadError(failure(src, exc, f"starting {cls.__name__}")) from exc


def serve(src: Path, entry_point: str, host: str = "0.0.0.0", port: int | None = None,
          models_dir: Path | None = None) -> None:
    """Serve until SIGTERM. `models_dir` holds the models the service resolves (a bento's pinned
    copies); images name theirs in the environment already."""
    import uvicorn

    from ocibuild.runtime.app import ServiceApp

    port = listen_port(port)  # a bad number is refused before the service's code runs
    if models_dir is not None:
        os.environ[MODELS_DIR_ENV] = str(models_dir)
    src = src.resolve()  # now: the service's code may change the working directory
    spec, cls = load(src, entry_point)
    for env in spec.envs:  # images bake defaults into their config; on a host, apply them here
        if env.value is not None:
            os.environ.setdefault(env.name, env.value)
    missing = missing_envs(spec.required_envs())
    if missing:
        raise MissingEnvError(f"required environment variable(s) not set: {', '.join(missing)}")
    app = ServiceApp(spec, start(src, cls))
    # bound here, once the service has started (until then a connection is refused, not left
    # waiting), so that a port in use is one error, not the server's log and traceback
    sock = bind(host, port)
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", timeout_graceful_shutdown=30, log_level="info")
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to the handler
    # installed before it started; a no-op handler there makes a drained shutdown exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])


def listen_port(port: int | None, environ=os.environ) -> int:
    """The port asked for, else `$PORT`, else 3000."""
    text = str(port) if port is not None else environ.get(PORT_ENV, str(PORT))
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise ServeError(f"port {text!r} is not a TCP port (0-65535)")
    return int(text)


def bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                              flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart rebinds at once, as uvicorn does
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock
