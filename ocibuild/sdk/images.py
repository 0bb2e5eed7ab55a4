"""`PythonImage`: the runtime image a service asks for (Python version, packages, base)."""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass

from ocibuild.errors import SpecError
from ocibuild.sdk.pep508 import is_simple_requirement

_PYTHON_VERSION = re.compile(r"^3\.(\d{1,2})$")
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_MIN_MINOR = 8
_EXTRA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_INDEX_URL = re.compile(r"^(https?|file)://\S+$")
_USERINFO = re.compile(r"^([a-z+]+://)([^/@]*)@")
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}|\$[A-Za-z_][A-Za-z0-9_]*")


def default_python_version() -> str:
    """The building interpreter's `major.minor`: the natural default for a service tested here."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def validate_python_version(version: str) -> str:
    match = _PYTHON_VERSION.match(str(version))
    if not match or int(match.group(1)) < _MIN_MINOR:
        raise SpecError(
            f"invalid python_version {version!r}: expected 'major.minor' such as '3.11' "
            f"(Python 3.{_MIN_MINOR} or newer)"
        )
    return str(version)


def validate_requirement(requirement: str) -> str:
    """A PEP 508 requirement, checked as `service.py` is imported (`pep508`: most need no parser)."""
    if isinstance(requirement, str) and is_simple_requirement(requirement):
        return requirement.strip()
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        Requirement(requirement)
    except InvalidRequirement as exc:
        raise SpecError(f"invalid Python requirement {requirement!r}: {exc}") from None
    return requirement.strip()


def validate_debian_package(name: str) -> str:
    if not isinstance(name, str) or not _DEBIAN_PACKAGE.match(name):
        raise SpecError(
            f"invalid Debian package name {name!r}: lower-case letters, digits, '+', '-' and '.',"
            " at least two characters, starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class PythonImage:
    """An immutable description of the image; every chained call returns a new value."""

    python_version: str | None = None
    base_image: str | None = None
    packages: tuple[str, ...] = ()
    requirements_files: tuple[str, ...] = ()
    debian_packages: tuple[str, ...] = ()
    pyproject: str | None = None
    pyproject_extras: tuple[str, ...] = ()
    lock_files: tuple[str, ...] = ()
    index: str | None = None
    extra_indexes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        version = default_python_version() if self.python_version is None else self.python_version
        object.__setattr__(self, "python_version", validate_python_version(version))
        if self.base_image is not None and not (isinstance(self.base_image, str) and self.base_image.strip()):
            raise SpecError(f"invalid base_image {self.base_image!r}: expected an image reference")

    def python_packages(self, *requirements: str) -> PythonImage:
        """Add PEP 508 requirements such as `"numpy>=1.26"`."""
        checked = tuple(validate_requirement(r) for r in requirements)
        return dataclasses.replace(self, packages=self.packages + checked)

    def requirements_file(self, path: str) -> PythonImage:
        """Add a requirements file, relative to the service directory (read at build time)."""
        _relative(path, "requirements file")
        return dataclasses.replace(self, requirements_files=self.requirements_files + (path,))

    def pyproject_toml(self, path: str = "pyproject.toml", *, extras: tuple[str, ...] | list[str] = ()) -> PythonImage:
        """Use `[project].dependencies` (and the named optional-dependency groups) of a pyproject.

        With a `uv.lock` beside it, the lock's pins and hashes are used exactly (read at build time).
        """
        _relative(path, "pyproject file")
        names = tuple(extras)
        for extra in names:
            if not isinstance(extra, str) or not _EXTRA.match(extra):
                raise SpecError(f"invalid optional-dependency group {extra!r}")
        return dataclasses.replace(self, pyproject=path, pyproject_extras=names)

    def lock_file(self, path: str = "pylock.toml") -> PythonImage:
        """Use a PEP 751 lock (`pylock.toml`, `pylock.NAME.toml`): its pins and hashes, as they are."""
        _relative(path, "lock file")
        name = path.rsplit("/", 1)[-1]
        if not (name == "pylock.toml" or (name.startswith("pylock.") and name.endswith(".toml"))):
            raise SpecError(f"invalid lock file {path!r}: PEP 751 names it pylock.toml or pylock.NAME.toml")
        return dataclasses.replace(self, lock_files=self.lock_files + (path,))

    def index_url(self, url: str) -> PythonImage:
        """The default package index (instead of PyPI). `${VAR}` in it is expanded at build time."""
        return dataclasses.replace(self, index=validate_index_url(url))

    def extra_index_url(self, url: str) -> PythonImage:
        """An index searched besides the default one. `${VAR}` in it is expanded at build time."""
        return dataclasses.replace(self, extra_indexes=self.extra_indexes + (validate_index_url(url),))

    def system_packages(self, *names: str) -> PythonImage:
        """Add Debian packages to install into the image."""
        checked = tuple(validate_debian_package(n) for n in names)
        return dataclasses.replace(self, debian_packages=self.debian_packages + checked)

    def to_dict(self) -> dict:
        return {
            "python_version": self.python_version,
            "base_image": self.base_image,
            "python_packages": list(self.packages),
            "requirements_files": list(self.requirements_files),
            "system_packages": list(self.debian_packages),
            "pyproject": self.pyproject,
            "pyproject_extras": list(self.pyproject_extras),
            "lock_files": list(self.lock_files),
            "index_url": None if self.index is None else strip_credentials(self.index),
            "extra_index_urls": [strip_credentials(u) for u in self.extra_indexes],
        }


def _relative(path: str, what: str) -> None:
    """Inputs are read from the service directory and nowhere else: no absolute path, no `..`."""
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.replace("\\", "/").split("/"):
        raise SpecError(f"invalid {what} {path!r}: give a path inside the service directory")


def validate_index_url(url: str) -> str:
    if not isinstance(url, str) or not _INDEX_URL.match(url.strip()):
        raise SpecError(f"invalid index URL {strip_credentials(str(url))!r}: expected http(s)://HOST/PATH")
    return url.strip()


def strip_credentials(url: str) -> str:
    """`url` without a literal `user:password@`; `${VAR}` references are kept (they hold no secret)."""
    match = _USERINFO.match(url)
    if not match:
        return url
    userinfo = match.group(2)
    if all(_ENV_REF.fullmatch(part) for part in userinfo.split(":") if part):
        return url
    return match.group(1) + url[match.end():]
