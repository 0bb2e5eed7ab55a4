"""Dependency resolution over a PackageIndex: the closure of Pre-Depends and Depends.

Deterministic: the same index and request always give the same set. For each group of
alternatives, one already chosen or installed wins; otherwise the first alternative that a real
package (newest version satisfying the constraint) or a provider of the virtual name can satisfy.
Conflicts and Breaks are not considered (the bases are built from a consistent release).
"""

from __future__ import annotations

from collections import deque

from ocibuild.debian.index import DebPackage, PackageIndex, satisfies
from ocibuild.errors import ResolveError


def resolve(index: PackageIndex, requested: list[str], installed: dict[str, str | None] | None = None,
            excluded: frozenset[str] = frozenset()) -> list[DebPackage]:
    """The packages to add, sorted by name: `requested` and what they need, minus `installed`
    (name -> version, including the virtual names installed packages provide, with the provided
    version or None: see `installed_names`) and minus `excluded` (names deliberately left out,
    such as tools that only maintainer scripts use)."""
    installed = dict(installed or {})
    chosen: dict[str, DebPackage] = {}
    provided_by_chosen: dict[str, list[str | None]] = {}
    work: deque[tuple[list[dict], str]] = deque()
    for name in requested:
        if not index.knows(name) and name not in installed:
            raise ResolveError(f"Debian package {name!r} does not exist in the archive for {index.architecture}")
        work.append(([{"name": name, "version": None}], "requested"))
    while work:
        group, needed_by = work.popleft()
        if _already_satisfied(group, chosen, installed, provided_by_chosen, excluded):
            continue
        package = _pick(index, group)
        if package is None:
            wanted = " | ".join(_describe(alt) for alt in group)
            raise ResolveError(f"cannot satisfy {wanted} (needed by {needed_by}) from the archive")
        chosen[package.name] = package
        for virtual, version in package.provided():
            provided_by_chosen.setdefault(virtual, []).append(version)
        for dependency in package.relations():
            work.append((dependency, f"{package.name} {package.version}"))
    return sorted(chosen.values(), key=lambda p: p.name)


def _already_satisfied(group: list[dict], chosen: dict[str, DebPackage], installed: dict[str, str],
                       provided: dict[str, list[str | None]], excluded: frozenset[str]) -> bool:
    for alt in group:
        name, constraint = alt["name"], alt["version"]
        if name in excluded:
            return True
        if name in chosen and satisfies(chosen[name].version, constraint):
            return True
        if name in installed and satisfies(installed[name], constraint):
            return True
        if any(constraint is None or satisfies(v, constraint) for v in provided.get(name, [])):
            return True
    return False


def _pick(index: PackageIndex, group: list[dict]) -> DebPackage | None:
    for alt in group:
        for package in index.versions(alt["name"]):
            if satisfies(package.version, alt["version"]):
                return package
        for package, version in index.providers.get(alt["name"], []):
            if alt["version"] is None or satisfies(version, alt["version"]):
                return package
    return None


def _describe(alt: dict) -> str:
    return f"{alt['name']} ({alt['version'][0]} {alt['version'][1]})" if alt["version"] else alt["name"]


def installed_names(packages: list[DebPackage]) -> dict[str, str | None]:
    """What a set of installed packages satisfies: their names and the virtual names they provide."""
    names: dict[str, str | None] = {}
    for p in packages:
        for virtual, version in p.provided():
            names.setdefault(virtual, version)
    names.update({p.name: p.version for p in packages})
    return names
