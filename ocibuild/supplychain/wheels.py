"""Which wheel of each locked distribution a platform gets, with its sha256: the lock accepts every
file of a version (one hash per wheel tag); uv, asked for a PEP 751 lock of the same pins for the
target platform, names the one wheel it installs. Remembered per lock and platform, so a bento's
SBOM keeps its bytes; nothing is written into the bento (its digest stays what it was)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ocibuild.errors import OcibuildError
from ocibuild.oci.platform import Platform
from ocibuild.store.atomic import write_atomic

log = logging.getLogger(__name__)
FORMAT = "3"


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def license_metadata(metadata: str) -> dict:
    """What a distribution's METADATA says of its license: a PEP 639 `License-Expression`, the
    `License` field's first line, the `License ::` classifiers."""
    from email.parser import HeaderParser

    message = HeaderParser().parsestr(metadata)
    free = (message.get("License") or "").strip().splitlines()
    out = {"expression": (message.get("License-Expression") or "").strip() or None,
           "license": free[0].strip()[:200] if free else None,
           "classifiers": sorted(c.split("::")[-1].strip() for c in message.get_all("Classifier") or []
                                 if c.startswith("License ::"))}
    return {k: v for k, v in out.items() if v}


def installed_licenses(lock: Path, python_version: str, platform: Platform, cache: Path) -> dict[str, dict]:
    """License metadata of each distribution, from the METADATA of the wheels uv installs for the
    platform: as the dependency layers' install recorded it, else from an install of its own
    (into a temporary directory, from uv's cache when warm)."""
    from ocibuild.python.deps import METADATA, install, installed_metadata, metadata_key
    from ocibuild.store.blobs import BlobStore

    recorded = BlobStore(cache).recall(METADATA, metadata_key(lock, python_version, platform))
    if not isinstance(recorded, dict):
        with tempfile.TemporaryDirectory(prefix="ocibuild-metadata-") as tmp:
            install(lock, Path(tmp), python_version, platform)
            recorded = installed_metadata(Path(tmp))
    return {_normalize(str(name).removesuffix(".dist-info").rsplit("-", 1)[0]): license_metadata(text)
            for name, text in recorded.items() if isinstance(text, str)}


def wheels_record(lock: Path, python_version: str, platform: Platform, cache: Path) -> Path:
    """Where what `selected_wheels` found for this lock and platform is remembered."""
    key = hashlib.sha256(b"\0".join([FORMAT.encode(), lock.read_bytes(), python_version.encode(),
                                      str(platform).encode()])).hexdigest()
    return cache / "python-wheels" / f"{key}.json"


def selected_wheels(lock: Path, python_version: str, platform: Platform, cache: Path) -> dict[str, dict]:
    """`{normalized name: {"file": wheel file name, "sha256": hex, "license": {...}}}`; empty when
    uv cannot say (no index reachable): the SBOM then lists every hash the lock accepts instead."""
    remembered = wheels_record(lock, python_version, platform, cache)
    if remembered.is_file():
        return json.loads(remembered.read_text())
    asked = ask(remembered, lock, python_version, platform).with_licenses(cache)
    asked.keep()
    return asked.facts or {}


@dataclass(frozen=True)
class Wheels:
    """What uv says of one lock for one platform, asked in two steps so that the first (index
    metadata) can run beside the layers and the second (licenses) after them."""

    record: Path  # where the facts are remembered
    lock: Path
    python_version: str
    platform: Platform
    packages: list[dict] | None  # the pylock packages, one wheel each; None: uv could not say
    facts: dict[str, dict] | None = None  # what `selected_wheels` returns, once `with_licenses`

    def with_licenses(self, cache: Path) -> Wheels:
        if self.packages is None:
            return self
        return dataclasses.replace(self, facts=wheel_facts(self.lock, self.python_version, self.platform,
                                                           self.packages, cache))

    def keep(self) -> None:
        """Remember the facts (nothing when uv could not say: it is asked again next time)."""
        if self.facts is None:
            return
        write_atomic(self.record, json.dumps(self.facts, sort_keys=True).encode(), 0o644)


def ask(record: Path, lock: Path, python_version: str, platform: Platform) -> Wheels:
    """The first step: which wheel uv resolves each pin to (`record`: `wheels_record`'s answer);
    nothing is written."""
    return Wheels(record, lock, python_version, platform, wheel_files(lock, python_version, platform))


def wheel_files(lock: Path, python_version: str, platform: Platform) -> list[dict] | None:
    """The PEP 751 packages uv resolves the lock's pins to for `platform`, one wheel each (index
    metadata only: nothing is downloaded); None when uv cannot say."""
    import tomllib

    from plumbum import ProcessExecutionError

    from ocibuild.python.lock import uv_command

    with tempfile.TemporaryDirectory(prefix="ocibuild-wheels-") as tmp:
        out = Path(tmp) / "pylock.toml"
        try:
            uv_command()("pip", "compile", str(lock), "--format", "pylock.toml", "--python-platform",
                         platform.uv_platform, "--python-version", python_version, "--only-binary", ":all:",
                         "--no-deps", "--quiet", "--no-header", "-o", str(out), env=_uv_env(lock))
            return tomllib.loads(out.read_text()).get("packages", [])
        except (ProcessExecutionError, OSError, tomllib.TOMLDecodeError, OcibuildError) as exc:
            _cannot_tell(platform, exc)
            return None


def wheel_facts(lock: Path, python_version: str, platform: Platform, packages: list[dict],
                cache: Path) -> dict[str, dict] | None:
    """`selected_wheels`' answer from `wheel_files`' packages and the license metadata of the
    wheels uv installs (see `installed_licenses`); None when uv cannot say."""
    try:
        licenses = installed_licenses(lock, python_version, platform, cache)
    except (OcibuildError, OSError) as exc:
        _cannot_tell(platform, exc)
        return None
    found = {}
    for package in packages:
        wheels = package.get("wheels") or []
        if len(wheels) == 1 and isinstance(wheels[0].get("hashes"), dict) and wheels[0]["hashes"].get("sha256"):
            url = str(wheels[0].get("url") or wheels[0].get("name") or "")
            name = _normalize(package["name"])
            stated = licenses.get(name, {})
            if stated.get("expression"):  # checked once here, remembered with the rest
                from ocibuild.supplychain.spdx import valid_spdx_expression

                stated["spdx"] = valid_spdx_expression(stated["expression"])
            found[name] = {"file": wheel_file(url), "sha256": wheels[0]["hashes"]["sha256"], "license": stated}
    return found


def wheel_file(url: str) -> str:
    """A wheel's file name from its URL: no query (a signed URL's) and no percent-escapes (an
    index's `%2B` for a local version's `+`)."""
    from urllib.parse import unquote, urlsplit

    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])


def _uv_env(lock: Path) -> dict:
    from ocibuild.python.inputs import install_environment

    return install_environment(lock.parent / "indexes.json")[1]


def _cannot_tell(platform: Platform, exc: Exception) -> None:
    log.warning("cannot tell which wheels uv installs for %s (%s): the SBOM lists every locked hash",
                platform, type(exc).__name__)
