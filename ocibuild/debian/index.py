"""A `Packages` index as data: package versions by name, and the virtual names they provide."""

from __future__ import annotations

import bisect
import re
import weakref
from collections import defaultdict
from dataclasses import dataclass
from functools import cmp_to_key


def version_compare(a: str, b: str) -> int:
    from debian.debian_support import version_compare

    return version_compare(a, b)


def _parse_relations(text: str) -> list[list[dict]]:
    from debian.deb822 import PkgRelation

    return PkgRelation.parse_relations(text)


PRIORITY = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}
STATUS_FIELDS = ("Package", "Version", "Architecture", "Maintainer", "Installed-Size", "Depends", "Pre-Depends",
                 "Provides", "Section", "Priority", "Multi-Arch", "Source", "Homepage", "Description")


@dataclass(frozen=True)
class DebPackage:
    """A package of a Debian `Packages` index: what a lock pins and a layer unpacks."""

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
        return _parse_relations(text) if text else []

    def provided(self) -> list[tuple[str, str | None]]:
        return [(alt["name"], alt["version"][1] if alt["version"] else None)
                for group in (_parse_relations(self.provides) if self.provides else []) for alt in group]

    def lock_line(self) -> str:
        return f"{self.name} {self.version} {self.architecture} {self.sha256} {self.size} {self.filename}"


def parse_packages(text: str) -> list[DebPackage]:
    from debian.deb822 import Packages

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


# A line's start as a literal "\n" rather than `^` under re.M: the literal lets `re` skip ahead
# to candidates, four times faster over a 50 MB index (the first line is matched on its own).
_PACKAGE = re.compile(rb"\nPackage: *(\S+)[ \t]*$", re.M)
_FIRST_PACKAGE = re.compile(rb"Package: *(\S+)[ \t]*$", re.M)
_PROVIDES = re.compile(rb"\nProvides:(.*(?:\n[ \t].*)*)")
_FIELD = re.compile(r"^([^\s:][^:]*):[ \t]*(.*(?:\n[ \t].*)*)", re.M)


def parse_stanza(stanza: str) -> DebPackage:
    """One `Packages` paragraph, the way `parse_packages` reads it (values stripped, continuation
    lines kept as they are), without python-debian: the lazy index parses only what it reads."""
    fields = {}
    for match in _FIELD.finditer(stanza):
        fields.setdefault(match.group(1), match.group(2).strip())
    control = "".join(f"{k}: {fields[k]}\n" for k in STATUS_FIELDS if k in fields)
    return DebPackage(fields["Package"], fields["Version"], fields.get("Architecture", "all"), fields.get("Filename", ""),
                      fields.get("SHA256", ""), int(fields.get("Size", 0)), fields.get("Depends", ""),
                      fields.get("Pre-Depends", ""), fields.get("Provides", ""), fields.get("Priority", "optional"),
                      control)


def scan(text: bytes) -> dict:
    """Where each package's paragraphs are (byte offsets), by name, and which paragraphs provide
    each virtual name. Bytes, never one 50 MB `str`: decoding the whole index costs 8x its size
    in memory when one paragraph holds a character beyond U+FFFF."""
    first = _FIRST_PACKAGE.match(text)
    found = [(0, first.group(1).decode())] if first else []
    found += [(m.start() + 1, m.group(1).decode()) for m in _PACKAGE.finditer(text)]
    starts = [start for start, _ in found]
    ends = starts[1:] + [len(text)]
    packages: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (start, name), end in zip(found, ends):
        packages[name].append((start, end))
    provides: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for match in _PROVIDES.finditer(text):
        at = bisect.bisect_right(starts, match.start() + 1) - 1
        if at < 0:  # before any paragraph: belongs to none
            continue
        for item in match.group(1).decode().replace("\n", " ").split(","):
            virtual = item.strip().split(" ", 1)[0].split("(", 1)[0]
            if virtual:
                provides[virtual].append((starts[at], ends[at]))
    return {"packages": dict(packages), "provides": dict(provides)}


class LazyPackageIndex:
    """A `PackageIndex` over the text of a `Packages` file that parses only the paragraphs a
    resolution reads: one scan finds where each package's paragraphs start and which paragraphs
    provide which virtual names; a paragraph is parsed when its name (or a name it provides) is
    asked for. Resolving a Python base reads a few hundred of the ~60,000 paragraphs."""

    def __init__(self, text: bytes | str, architecture: str, spans: dict | None = None):
        """`spans`: what `spans()` returned for the same text (a cached scan), else it is scanned."""
        self.architecture = architecture
        text = text.encode() if isinstance(text, str) else text
        self._text = text
        scanned = spans or scan(text)
        self._spans, self._virtual = scanned["packages"], scanned["provides"]
        self._versions: dict[str, list[DebPackage]] = {}
        self._parsed: dict[int, DebPackage] = {}
        self.providers = _LazyProviders(self)

    def spans(self) -> dict:
        return {"packages": self._spans, "provides": self._virtual}

    def _parse(self, span: tuple[int, int]) -> DebPackage:
        if span[0] not in self._parsed:
            self._parsed[span[0]] = parse_stanza(self._text[span[0]:span[1]].decode())  # noqa: E203
        return self._parsed[span[0]]

    def _ours(self, package: DebPackage) -> bool:
        return package.architecture in (self.architecture, "all")

    def versions(self, name: str) -> list[DebPackage]:
        if name not in self._versions:
            found = [p for p in map(self._parse, self._spans.get(name, ())) if self._ours(p)]
            self._versions[name] = sorted(found, key=cmp_to_key(lambda a, b: version_compare(b.version, a.version)))
        return self._versions[name]

    def knows(self, name: str) -> bool:
        return bool(self.versions(name)) or bool(self.providers.get(name))


class _LazyProviders:
    """`PackageIndex.providers`, computed per virtual name on first use."""

    def __init__(self, index: LazyPackageIndex):
        # a weak reference: a cycle would keep the index's 50 MB text alive until a full garbage
        # collection, so a multi-platform build held one index per architecture at once
        self.index = weakref.proxy(index)
        self.cache: dict[str, list[tuple[DebPackage, str | None]]] = {}

    def get(self, name: str, default=None):
        if name not in self.cache:
            found = []
            for package in map(self.index._parse, self.index._virtual.get(name, ())):
                if self.index._ours(package):
                    found += [(package, version) for virtual, version in package.provided() if virtual == name]
            self.cache[name] = sorted(found, key=lambda pv: (PRIORITY.get(pv[0].priority, 9), pv[0].name))
        return self.cache[name] or default
