"""Starting a service: check its environment, import it, instantiate it, serve it."""

from __future__ import annotations

import errno
import importlib
import logging
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
    sockets = bind(host, port)
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", timeout_graceful_shutdown=30, log_level="info")
    # uvicorn says where it listens only when it binds the sockets itself
    logging.getLogger("uvicorn.error").info("Listening on %s (SIGTERM or Ctrl+C to stop)", listening(sockets))
    # uvicorn drains in-flight requests on SIGTERM, then re-raises the signal to the handler
    # installed before it started; a no-op handler there makes a drained shutdown exit 0.
    signal.signal(signal.SIGTERM, lambda *_: None)
    uvicorn.Server(config).run(sockets=sockets)


def listen_port(port: int | None, environ=os.environ) -> int:
    """The port asked for, else `$PORT`, else 3000."""
    text = str(port) if port is not None else environ.get(PORT_ENV, str(PORT))
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise ServeError(f"port {text!r} is not a TCP port (0-65535)")
    return int(text)


def bind(host: str, port: int) -> list[socket.socket]:
    """A socket bound on each address `host` names (all interfaces for "", as for "0.0.0.0" and
    "::"), as asyncio's server binds them: `localhost` is both 127.0.0.1 and ::1 where the hosts
    file says so."""
    try:
        found = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {getattr(exc, 'strerror', None) or exc}") from None
    addresses = list(dict.fromkeys((family, kind, proto, address) for family, kind, proto, _, address in found))
    sockets, unusable = [], None
    try:
        for family, kind, proto, address in addresses:
            if port == 0 and sockets:  # any free port: the one the first address got, on every address
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:
                if exc.errno != errno.EAFNOSUPPORT:
                    raise ServeError(f"cannot listen on {_shown(family, address)}: {exc.strerror or exc}") from None
                unusable = unusable or (address, exc)  # a family this kernel lacks: serve on the others
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart rebinds at once, as uvicorn does
            if family == socket.AF_INET6 and len(addresses) > 1:  # its IPv4 twin is bound on its own
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL or len(addresses) == 1:  # in use, denied: never skipped
                    raise ServeError(f"cannot listen on {_shown(family, address)}: {exc.strerror or exc}") from None
                sockets.pop().close()  # ::1 named by `localhost` on a machine without IPv6
                unusable = unusable or (address, exc)
        if not sockets:
            address, exc = unusable
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    except ServeError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _shown(family: int, address: tuple) -> str:
    return f"[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"{address[0]}:{address[1]}"


def listening(sockets: list[socket.socket]) -> str:
    """Where the service answers, as people type it (port 0 asks for any free port)."""
    return ", ".join(f"http://{_shown(s.family, s.getsockname())}" for s in sockets)
