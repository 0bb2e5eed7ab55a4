"""`PythonImage`: the runtime image a service asks for (Python version, packages, base)."""

from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement

from ocibuild.errors import SpecError

_PYTHON_VERSION = re.compile(r"^3\.(\d{1,2})$")
_DEBIAN_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_MIN_MINOR = 8


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
        if not path or path.startswith("/"):
            raise SpecError(f"invalid requirements file {path!r}: give a path relative to the service directory")
        return dataclasses.replace(self, requirements_files=self.requirements_files + (path,))

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
        }
