"""A `Packages` index as data: package versions by name, and the virtual names they provide."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cmp_to_key

from debian.deb822 import Packages, PkgRelation
from debian.debian_support import version_compare

PRIORITY = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}
STATUS_FIELDS = ("Package", "Version", "Architecture", "Maintainer", "Installed-Size", "Depends", "Pre-Depends",
                 "Provides", "Section", "Priority", "Multi-Arch", "Source", "Homepage", "Description")


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str
    architecture: str
    filename: str
    sha256: str
    size: int
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    priority: str = "optional"
    control: str = ""  # the fields a dpkg status record keeps

    def relations(self) -> list[list[dict]]:
        """Pre-Depends then Depends, as groups of alternatives."""
        text = ", ".join(t for t in (self.pre_depends, self.depends) if t)
        return PkgRelation.parse_relations(text) if text else []

    def provided(self) -> list[tuple[str, str | None]]:
        return [(alt["name"], alt["version"][1] if alt["version"] else None)
                for group in (PkgRelation.parse_relations(self.provides) if self.provides else []) for alt in group]

    def lock_line(self) -> str:
        return f"{self.name} {self.version} {self.architecture} {self.sha256} {self.size} {self.filename}"


def parse_packages(text: str) -> list[DebPackage]:
    packages = []
    for p in Packages.iter_paragraphs(text.splitlines(keepends=True), use_apt_pkg=False):
        control = "".join(f"{k}: {p[k]}\n" for k in STATUS_FIELDS if k in p)
        packages.append(DebPackage(p["Package"], p["Version"], p.get("Architecture", "all"), p.get("Filename", ""),
                                   p.get("SHA256", ""), int(p.get("Size", 0)), p.get("Depends", ""),
                                   p.get("Pre-Depends", ""), p.get("Provides", ""), p.get("Priority", "optional"),
                                   control))
    return packages


def satisfies(version: str | None, constraint: tuple[str, str] | None) -> bool:
    if constraint is None:
        return True
    if version is None:
        return False
    op, wanted = constraint
    c = version_compare(version, wanted)
    return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0, "<": c <= 0, ">": c >= 0}[op]


class PackageIndex:
    def __init__(self, packages: list[DebPackage], architecture: str):
        self.architecture = architecture
        by_name: dict[str, list[DebPackage]] = defaultdict(list)
        providers: dict[str, list[tuple[DebPackage, str | None]]] = defaultdict(list)
        for p in packages:
            if p.architecture not in (architecture, "all"):
                continue
            by_name[p.name].append(p)
            for virtual, version in p.provided():
                providers[virtual].append((p, version))
        newest_first = cmp_to_key(lambda a, b: version_compare(b.version, a.version))
        self.by_name = {name: sorted(versions, key=newest_first) for name, versions in by_name.items()}
        # Debian's own choice first (mawk, Priority: required, provides awk before gawk), then by name
        self.providers = {name: sorted(found, key=lambda pv: (PRIORITY.get(pv[0].priority, 9), pv[0].name))
                          for name, found in providers.items()}

    def versions(self, name: str) -> list[DebPackage]:
        return self.by_name.get(name, [])

    def knows(self, name: str) -> bool:
        return name in self.by_name or name in self.providers
