"""The facts an SBOM is made from that are not in the bento (which wheel uv installs for each
platform, with its license; the licenses each Debian package's copyright file names), carried in
a registry cache so that a fresh runner writes the same SBOM without installing wheels or
downloading `.deb`s.

A cache is read as hostile input: a record is found by a key this bento's locks give (never a
path the cache names), must be JSON of the expected shape, and a wheel it names must be one the
lock accepts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

from ocibuild.bento.store import Bento
from ocibuild.store.atomic import write_atomic
from ocibuild.supplychain.licenses import license_record
from ocibuild.supplychain.locks import read_locks
from ocibuild.supplychain.wheels import wheels_record

log = logging.getLogger(__name__)
WHEELS, LICENSES = "sbom-wheels", "deb-licenses"


def record_key(kind: str, path: Path) -> str:
    """A cache key (64 hex, like every key of a cache artifact) naming one record."""
    return hashlib.sha256(f"{kind}\0{path.name}".encode()).hexdigest()


def _paths(bento: Bento, home: Path) -> list[tuple[str, Path, str]]:
    """(kind, record file, lock text) for every record this bento's SBOMs use."""
    from ocibuild.debian.settings import DebianSettings

    found = []
    for target in bento.info.targets:
        from ocibuild.oci.platform import Platform

        locks = read_locks(bento, Platform.target(target))
        python = locks.python_path.read_text()
        found.append((WHEELS, wheels_record(locks.python_path, bento.info.python_version, locks.platform,
                                            home / "cache"), python))
        if locks.debian is not None:
            debian_cache = DebianSettings.cache_dir(home)
            found += [(LICENSES, license_record(debian_cache, p), "") for p in locks.debian.base + locks.debian.system]
    return found


def sbom_records(bento: Bento, home: Path) -> dict[str, dict]:
    """What `containerize --cache-to` records: {file name: {kind, text}} for the records present."""
    return {record_key(kind, path): {"kind": kind, "text": path.read_text()} for kind, path, _ in _paths(bento, home)
            if path.is_file()}


def restore_sbom_records(bento: Bento, home: Path, records: dict[str, dict]) -> None:
    """Write the records a cache holds for this bento where none is remembered yet; one that does
    not hold (malformed, or naming a wheel the lock does not accept) is skipped with a warning."""
    for kind, path, lock_text in _paths(bento, home):
        entry = records.get(record_key(kind, path))
        if path.is_file() or not isinstance(entry, dict) or entry.get("kind") != kind:
            continue
        try:
            value = json.loads(str(entry.get("text")))
            if kind == WHEELS:
                if not isinstance(value, dict) or not all(map(_wheel_fact, value.values())):
                    raise ValueError("not a record of wheels")
                if not all(f"sha256:{w['sha256']}" in lock_text for w in value.values()):
                    raise ValueError("a wheel the lock does not accept")
            elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("not a list of license names")
        except (ValueError, RecursionError) as exc:  # a registry's answer: `[[[[...` deep is not JSON either
            log.warning("the cached SBOM record %s is not used (%s)", path.name, exc)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(value, sort_keys=True).encode(), 0o644)


def _wheel_fact(fact: object) -> bool:
    """The shape `wheels.wheel_facts` writes, which the SBOM writers read without checking:
    {"file": "NAME.whl", "sha256": HEX, "license": {"expression"|"license": str,
    "classifiers": [str], "spdx": bool}}. A record of another shape, once written, would break
    every later SBOM of the bento, with or without a cache."""
    if not isinstance(fact, dict) or not set(fact) <= {"file", "sha256", "license"}:
        return False
    stated = fact.get("license", {})
    return (isinstance(fact.get("file"), str) and re.fullmatch(r"[A-Za-z0-9._+!-]{1,255}\.whl", fact["file"]) is not None
            and isinstance(fact.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", fact["sha256"]) is not None
            and isinstance(stated, dict) and all(_license_field(k, v) for k, v in stated.items()))


def _license_field(key: str, value: object) -> bool:
    if key in ("expression", "license"):
        return isinstance(value, str)
    if key == "classifiers":
        return isinstance(value, list) and all(isinstance(c, str) for c in value)
    return key == "spdx" and isinstance(value, bool)
