"""Stand-in modules for imports the build host cannot satisfy (the way documentation builders mock).

`service.py` may import its heavy dependencies at module top (`import torch`, `import numpy as
np` used in annotations or at class level). The build host only needs the service's *spec*, so
while the service is imported, a finder placed LAST on `sys.meta_path` answers for any top-level
module no real finder knows: every real package is still the real one. A stand-in module returns a
stand-in for every attribute; a stand-in is a class (so it can be subclassed, used in a type hint,
`isinstance`, `|`), and calling it, indexing it, doing arithmetic with it or entering it as a
context manager gives another stand-in. Called with just a function or a class it returns that
argument, so decorators from a missing package (`@torch.no_grad()`) leave methods untouched.

Errors of the service's own code are not hidden: a name it never defined is still a `NameError`,
and a submodule missing from a real package is still an `ImportError`.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import inspect
import sys
import types
from contextlib import contextmanager
from pathlib import Path

STAND_IN = "__ocibuild_stand_in__"


def is_stand_in(value) -> bool:
    return isinstance(value, StandInMeta) and STAND_IN in vars(value)


def _operator(name: str):
    def method(cls, *args):
        return stand_in(f"({cls.__qualname__} {name})", cls.__module__)

    method.__name__ = name
    return method


class StandInMeta(type):
    """The metaclass of stand-ins; user classes deriving from a stand-in behave normally."""

    def __getattr__(cls, attr: str):
        if attr.startswith("__") and attr.endswith("__") or STAND_IN not in vars(cls):
            raise AttributeError(attr)
        return stand_in(f"{cls.__qualname__}.{attr}", cls.__module__)

    def __call__(cls, *args, **kwargs):
        if STAND_IN not in vars(cls):
            return super().__call__(*args, **kwargs)
        if len(args) == 1 and not kwargs and (inspect.isfunction(args[0]) or inspect.isclass(args[0])
                                               or inspect.ismethod(args[0])):
            return args[0]  # a decorator
        return stand_in(f"{cls.__qualname__}()", cls.__module__)

    def __getitem__(cls, item):
        return cls

    def __iter__(cls):
        return iter(())

    def __len__(cls):
        return 0

    def __contains__(cls, item):
        return False

    def __enter__(cls):
        return stand_in(f"{cls.__qualname__}.__enter__()", cls.__module__)

    def __exit__(cls, *exc):
        return False

    def __repr__(cls):
        return f"<stand-in {cls.__module__}.{cls.__qualname__}>"

    def __int__(cls):
        return 0

    def __float__(cls):
        return 0.0

    def __index__(cls):
        return 0

    for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
                  "__rtruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__",
                  "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__pos__", "__abs__", "__invert__",
                  "__lt__", "__le__", "__gt__", "__ge__", "__and__", "__rand__", "__xor__", "__rxor__",
                  "__lshift__", "__rshift__"):
        locals()[_name] = _operator(_name)
    del _name


def stand_in(qualname: str, module: str) -> type:
    name = qualname.rsplit(".", 1)[-1]
    return StandInMeta(name, (), {STAND_IN: True, "__module__": module, "__qualname__": qualname,
                                  "__doc__": f"stand-in for {module}.{qualname} (not installed on the build host)"})


class StandInModule(types.ModuleType):
    def __getattr__(self, attr: str):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        value = stand_in(attr, self.__name__)
        setattr(self, attr, value)  # the same object on every access: `np.ndarray is np.ndarray`
        return value


class _Loader(importlib.abc.Loader):
    def create_module(self, spec):
        module = StandInModule(spec.name)
        module.__path__ = []  # a package: `import torch.nn.functional` works too
        module.__all__ = []
        setattr(module, STAND_IN, True)
        return module

    def exec_module(self, module):
        pass


class StandInFinder(importlib.abc.MetaPathFinder):
    """Answers only for modules nothing else found whose top-level package is missing too, and
    only for imports written in the service directory: an installed package probing for an
    optional dependency (`try: import simplejson`) still sees it missing."""

    def __init__(self, root: Path):
        self.root = root
        self.stood_in: set[str] = set()
        self.origins: dict[str, tuple[str, int]] = {}  # top-level name -> (file, line) importing it first

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.partition(".")[0]
        if top in self.stood_in:
            return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)
        origin = None if "." in fullname else self._service_frame()
        if origin is None:
            return None  # a real package lacks this submodule, or a library probes: genuine ImportError
        self.stood_in.add(top)
        self.origins[top] = origin
        return importlib.machinery.ModuleSpec(fullname, _Loader(), is_package=True)

    def _service_frame(self) -> tuple[str, int] | None:
        """(file, line) of the import statement when it is in the service directory, else None."""
        frame = sys._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if not (filename.startswith("<frozen importlib") or filename in _IMPORT_MACHINERY):
                try:
                    inside = Path(filename).resolve().is_relative_to(self.root)
                except (OSError, ValueError):
                    return None
                return (filename, frame.f_lineno) if inside else None
            frame = frame.f_back
        return None


_IMPORT_MACHINERY = {__file__, importlib.__file__}


@contextmanager
def stand_ins(root: Path):
    """While active, missing top-level imports give stand-in modules; yields the finder."""
    finder = StandInFinder(root)
    sys.meta_path.append(finder)
    try:
        yield finder
    finally:
        sys.meta_path.remove(finder)
