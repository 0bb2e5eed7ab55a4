"""Locks in the registry cache: `containerize --cache-to` records a bento's Python and Debian locks
under a key over their inputs; `build --cache-from` on a fresh runner reuses a lock whose inputs
are unchanged instead of resolving again (and downloading index metadata) with uv or the Debian
indexes.

The inputs are what the bento records of them, read the same way on both sides: the image spec
(`bento.yaml`'s `image`: Python version, packages, requirements and lock files, pyproject extras,
index URLs, system packages, base), the target platform, the requirements uv resolves
(`env/python/requirements.txt`), the pins and entries of locked inputs, the pyproject given to
uv, and for Debian the base's pinned digest. A lock read from a registry is checked: a Python
lock must hold nothing but hashed pins (`lock_problem`: no options for uv) and satisfy every
direct requirement's specifier; a Debian lock must be for the release and architecture asked and
hold every system package asked. A lock that fails is ignored with a warning and resolved as
usual. Whether a pin is the one a resolution would choose cannot be told without resolving (a
Debian lock's hashes would need the signed index): a cache is trusted like the build itself
(README, "A cache in the registry").
"""

from __future__ import annotations

import logging
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from ocibuild.bento.build import CONSTRAINTS, REQUIREMENTS_PYPROJECT
from ocibuild.bento.info import BENTO_FILE, DEBIAN_LOCK, LOCK, REQUIREMENTS, BentoInfo
from ocibuild.oci.descriptor import canonical_json
from ocibuild.store.blobs import cache_key

log = logging.getLogger(__name__)

RESOLVED = "# resolved by uv"


def _read(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


def locked_section(lock_text: str) -> str:
    """The entries of locked inputs at the head of a lock (`merge_lock`), as given: an input."""
    if not lock_text.startswith("# locked in"):
        return ""
    head, sep, _ = lock_text.partition(RESOLVED + "\n")
    return head + sep


def python_key(bento_dir: Path, image: dict, platform: str, locked: str) -> str:
    return cache_key("python-lock", canonical_json({k: v for k, v in image.items() if k != "base_image"}), platform,
                     _read(bento_dir / REQUIREMENTS), _read(bento_dir / CONSTRAINTS),
                     _read(bento_dir / REQUIREMENTS_PYPROJECT), locked)


def debian_key(image: dict, platform: str, base_digest: str | None) -> str:
    return cache_key("debian-lock", image["python_version"], canonical_json(image.get("system_packages") or []),
                     image.get("base_image") or "", base_digest or "", platform)


def lock_entries(bento_dir: Path) -> dict[str, dict]:
    """What `containerize --cache-to` records of a bento's locks: {key: {kind, text}}."""
    info = BentoInfo.load(bento_dir / BENTO_FILE)
    lock = _read(bento_dir / LOCK)
    entries = {python_key(bento_dir, info.image, info.platform, locked_section(lock)): {"kind": "python", "text": lock}}
    if (bento_dir / DEBIAN_LOCK).is_file():
        key = debian_key(info.image, info.platform, info.base.digest if info.base else None)
        entries[key] = {"kind": "debian", "text": _read(bento_dir / DEBIAN_LOCK)}
    return entries


class LockCache:
    """Locks read from `--cache-from` caches: {key: {kind, text}}."""

    def __init__(self, locks: dict[str, dict]):
        self.locks = locks

    def python(self, staged: Path, image: dict, platform: str, locked: str) -> str | None:
        entry = self.locks.get(python_key(staged, image, platform, locked))
        if not entry or entry.get("kind") != "python":
            return None
        text = str(entry.get("text", ""))
        problem = python_lock_problem(text, _read(staged / REQUIREMENTS), locked)
        if problem:
            log.warning("the cached Python lock is not used (%s): resolving", problem)
            return None
        return text

    def debian(self, image: dict, platform: str, base_digest: str | None, architecture: str):
        from ocibuild.debian.lock import DebianLock, release_for
        from ocibuild.errors import OcibuildError

        entry = self.locks.get(debian_key(image, platform, base_digest))
        if not entry or entry.get("kind") != "debian":
            return None
        try:
            lock = DebianLock.parse(str(entry.get("text", "")))
        except (OcibuildError, ValueError, KeyError) as exc:
            log.warning("the cached Debian lock is not used (%s): resolving", exc)
            return None
        wanted = set(image.get("system_packages") or [])
        problem = (f"release {lock.release}" if lock.release != release_for(image["python_version"]) else
                   f"architecture {lock.architecture}" if lock.architecture != architecture else
                   "no base packages" if not image.get("base_image") and not lock.base else
                   f"missing {sorted(wanted - {p.name for p in lock.system + lock.base})}"
                   if not wanted <= {p.name for p in lock.system + lock.base} else None)
        if problem:
            log.warning("the cached Debian lock is not used (%s): resolving", problem)
            return None
        return lock


def python_lock_problem(lock: str, requirements: str, locked: str) -> str | None:
    """Why a lock does not satisfy these inputs (None: it does, as far as can be told offline)."""
    from ocibuild.python.lock import lock_problem

    if problem := lock_problem(lock):
        return problem
    if locked and not lock.startswith(locked):
        return "its locked entries differ"
    pins, entry = {}, None
    for line in lock.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            req = Requirement(line.split(" --", 1)[0].rstrip(" \\").strip())  # pinned: lock_problem said
            entry = canonicalize_name(req.name)
            pin = next(iter(req.specifier), None)  # None: pinned to a URL
            pins[entry] = (pin.version if pin else None, "--hash=" in line)
        elif entry and "--hash=" in line:
            pins[entry] = (pins[entry][0], True)
    unhashed = sorted(name for name, (_, hashed) in pins.items() if not hashed)
    if unhashed:
        return f"no hash for {', '.join(unhashed[:3])}"
    for line in requirements.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue  # a URL or path requirement: uv would have locked it; nothing to compare offline
        if req.marker is not None:
            continue
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is None:
            return f"{req.name} is not in it"
        if pinned[0] is None:  # locked to a URL: no version to compare offline
            continue
        if not req.specifier.contains(pinned[0], prereleases=True):
            return f"{req.name}=={pinned[0]} does not satisfy {req.specifier}"
    return None
