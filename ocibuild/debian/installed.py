"""What a Debian-based image already has: its release (`/etc/os-release`) and its installed packages
(`/var/lib/dpkg/status`, and distroless-style `status.d/`), read from its layers in order."""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import DebianError
from ocibuild.debian.index import DebPackage
from ocibuild.debian.resolve import installed_names
from ocibuild.store.tarread import open_tar

OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
STATUS = "var/lib/dpkg/status"
STATUS_D = "var/lib/dpkg/status.d/"


@dataclass(frozen=True)
class BaseSystem:
    """A Debian-based base as its dpkg status says: its release and installed packages."""

    release: str
    installed: dict[str, str | None]


def read_base_system(layers: list[Path], name: str) -> BaseSystem:
    from debian.deb822 import Deb822  # python-debian is slow to import: only when a base is read

    files: dict[str, bytes] = {}
    for layer in layers:
        try:
            with open_tar(layer, "r|*") as tar:
                for member in tar:
                    path = member.name.removeprefix("./")
                    if member.isfile() and (path in OS_RELEASE or path == STATUS or path.startswith(STATUS_D)):
                        files[path] = tar.extractfile(member).read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise DebianError(f"cannot read the layers of {name}: {exc}") from None
    release_text = next((files[p] for p in OS_RELEASE if p in files), None)
    if release_text is None:
        raise DebianError(f"system_packages need a Debian-based base; {name} has no /etc/os-release")
    fields = dict(line.split("=", 1) for line in release_text.decode().splitlines() if "=" in line)
    fields = {k: v.strip('"') for k, v in fields.items()}
    if fields.get("ID") != "debian" or not fields.get("VERSION_CODENAME"):
        raise DebianError(f"system_packages need a Debian-based base; {name} is {fields.get('PRETTY_NAME', 'unknown')}")
    status = [files.get(STATUS, b"")] + [data for path, data in sorted(files.items()) if path.startswith(STATUS_D)]
    packages = [DebPackage(p["Package"], p["Version"], p.get("Architecture", "all"), "", "", 0,
                           provides=p.get("Provides", ""))
                for text in status for p in Deb822.iter_paragraphs(text.decode(errors="replace").splitlines(True))
                if "Package" in p and "Version" in p and p.get("Status", "install ok installed").endswith(" installed")]
    return BaseSystem(fields["VERSION_CODENAME"], installed_names(packages))
