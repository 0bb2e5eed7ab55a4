"""Importing a user's `service.py` to find its `@ocibuild.service` class.

The import happens in this process with the service directory first on `sys.path`; both
`sys.path` and `sys.modules` are restored afterwards so several builds can run in one process.
The service's dependencies need not be installed here: a top-level import that nothing can satisfy
gets a stand-in module (`standins.py`), since only the spec is read; the image has the real ones.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from contextlib import contextmanager, nullcontext, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

from ocibuild.bento.standins import stand_ins
from ocibuild.errors import ServiceLoadError
from ocibuild.runtime.usercode import failure, shown
from ocibuild.sdk.service import ServiceSpec, service_spec

DEFAULT_MODULE = "service"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedService:
    """A service imported from its source directory: where it is, what it declares, its class."""

    entry_point: str  # "module:Class", importable from the bento's src/
    spec: ServiceSpec
    cls: type


@contextmanager
def importable_from(root: Path):
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        for name in set(sys.modules) - saved_modules:
            del sys.modules[name]


@contextmanager
def stdout_to_stderr():
    """What the service prints as it is imported is no output of ocibuild's: stdout carries only
    what scripts read (`TAG=$(ocibuild build -q)`, `--output json`). Descriptor 1 is pointed at
    stderr too, for what bypasses `sys.stdout` (`os.write(1, ...)`, a subprocess, C code)."""
    if sys.stdout is not None:  # None: started with stdout closed
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # closed: it is closed again afterwards
        saved = None
    try:
        os.dup2(2, 1)
        pointed = True
    except OSError:  # no stderr either: Python's own stream is all there is to move
        pointed = False
    try:
        with redirect_stdout(sys.stderr) if sys.stderr is not None else nullcontext():
            yield
    finally:
        if sys.stderr is not None:
            sys.stderr.flush()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)
        elif pointed:
            os.close(1)


def load_service(root: Path, entry_point: str | None = None) -> LoadedService:
    root = root.resolve()
    module_name, _, class_name = (entry_point or DEFAULT_MODULE).partition(":")
    if not (root / (module_name.replace(".", "/") + ".py")).is_file() and \
            not (root / module_name.replace(".", "/") / "__init__.py").is_file():
        raise ServiceLoadError(f"no {module_name.replace('.', '/')}.py in {root}")
    with importable_from(root), stand_ins(root) as finder, stdout_to_stderr():
        module = _import(root, module_name)
        try:
            loaded = _find_service(module, module_name, class_name)
        except ServiceLoadError:
            if not finder.stood_in:
                raise
            # No service came out: a missing import is the likelier cause than the code itself.
            top = next(iter(finder.origins))
            filename, line = finder.origins[top]
            raise ServiceLoadError(f"{shown(root, filename)}:{line}: ModuleNotFoundError: No module named "
                                   f"'{top}' (and {module_name}.py defines no usable @ocibuild.service class)") from None
    if finder.stood_in:
        log.info("read %s with stand-ins for modules not installed here: %s", module_name,
                 ", ".join(sorted(finder.stood_in)))
    return loaded


def _import(root: Path, module_name: str):
    try:
        return importlib.import_module(module_name)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything, even SystemExit
        raise ServiceLoadError(failure(root, exc, f"importing {module_name}")) from exc


def _find_service(module, module_name: str, class_name: str) -> LoadedService:
    if class_name:
        cls = getattr(module, class_name, None)
        if cls is None or not inspect.isclass(cls) or service_spec(cls) is None:
            raise ServiceLoadError(f"{module_name}:{class_name} is not an @ocibuild.service class")
        return LoadedService(f"{module_name}:{class_name}", service_spec(cls), cls)
    found = [c for _, c in inspect.getmembers(module, inspect.isclass)
             if service_spec(c) is not None and c.__module__ == module.__name__]
    if not found:
        raise ServiceLoadError(f"{module_name}.py defines no @ocibuild.service class")
    if len(found) > 1:
        names = ", ".join(c.__name__ for c in found)
        raise ServiceLoadError(f"{module_name}.py defines several services ({names}): choose one with --service {module_name}:CLASS")
    return LoadedService(f"{module_name}:{found[0].__name__}", service_spec(found[0]), found[0])
