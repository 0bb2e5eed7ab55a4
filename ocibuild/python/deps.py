"""Python dependency layers: the bento's lock installed by uv for the target, split and cached.

A warm build looks the whole lock up in the cache and touches nothing else. On a miss, uv
installs the lock into a staging directory (wheels only, hashes required, no bytecode from uv: each
layer gets checked-hash `.pyc` from `ocibuild.layers.bytecode`), console
scripts get a shebang for the image, and each planned group becomes a layer, itself cached by the
RECORDs of its distributions, so only changed groups are written.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ocibuild.contract import SITE_PACKAGES
from ocibuild.errors import LockError
from ocibuild.layers.bytecode import bytecode_for
from ocibuild.layers.tarwriter import Entry, with_parents
from ocibuild.layers.writer import LayerWriter
from ocibuild.oci.platform import Platform
from ocibuild.python.inputs import install_environment, scrub
from ocibuild.python.lock import uv_command, uv_reason
from ocibuild.python.plan import (
    DependencyGroup,
    Distribution,
    group_distributions,
    record_files,
)
from ocibuild.store.atomic import temp_dir
from ocibuild.store.blobs import LayerBlob, cache_key
SHEBANG = b"#!/usr/bin/env python3"
METADATA = "python-metadata"  # blob store records: the METADATA headers of each installed lock


def metadata_key(lock: Path, python_version: str, platform: Platform) -> str:
    return cache_key(METADATA, requirement_lines(lock), python_version, str(platform))


def installed_metadata(target: Path) -> dict[str, str]:
    """`{dist-info directory: the header part of its METADATA}` (licenses and classifiers live
    there; the long description after it is left out)."""
    found = {}
    for metadata in sorted(target.glob("*.dist-info/METADATA")):
        with open(metadata, encoding="utf-8", errors="replace") as f:  # never a whole file a wheel ships
            found[metadata.parent.name] = f.read(64 << 10).split("\n\n", 1)[0]
    return found


def install(lock: Path, target: Path, python_version: str, platform: Platform) -> None:
    from plumbum import ProcessExecutionError

    args = ["pip", "install", "--target", str(target), "--python-platform", platform.uv_platform,
            "--python-version", python_version, "--only-binary", ":all:", "--no-deps",
            "--no-installer-metadata", "--no-compile-bytecode", "--require-hashes", "--quiet", "-r", str(lock)]
    # The bento's indexes (no credentials in it): credentials come from this environment only.
    indexes, env = install_environment(lock.parent / "indexes.json")
    try:
        uv_command()(*args, env=env)
    except ProcessExecutionError as exc:
        reason = scrub(uv_reason(exc.stderr), env, indexes)
        raise LockError(f"cannot install the locked Python packages for {platform}: {reason}") from None


def rewrite_shebangs(bin_dir: Path) -> None:
    """Console scripts name the installing interpreter; inside the image it is `python3`."""
    if not bin_dir.is_dir():
        return
    for script in bin_dir.iterdir():
        if not script.is_file() or script.is_symlink():
            continue
        data = script.read_bytes()
        first, sep, rest = data.partition(b"\n")
        if first.startswith(b"#!") and b"python" in first:
            script.write_bytes(SHEBANG + sep + rest)


def read_distributions(target: Path) -> tuple[list[Distribution], tuple[str, ...]]:
    dists, claimed = [], set()
    for record in sorted(target.glob("*.dist-info/RECORD")):
        data = record.read_bytes()
        files = tuple(f for f in record_files(data) if (target / f).is_file())
        claimed.update(files)
        dists.append(Distribution(record.parent.name, files, sum((target / f).stat().st_size for f in files), data))
    unclaimed = tuple(sorted(p.relative_to(target).as_posix() for p in target.rglob("*")
                             if p.is_file() and p.relative_to(target).as_posix() not in claimed))
    return dists, unclaimed


def group_entries(group: DependencyGroup, target: Path) -> list[Entry]:
    entries = []
    for rel in group.files:
        path = target / rel
        st = path.stat()
        entries.append(Entry(f"{SITE_PACKAGES}/{rel}", "file", st.st_mode, source=path, size=st.st_size))
    return with_parents(entries)


def requirement_lines(lock: Path) -> str:
    """The lock without its comment lines (uv's `# via` notes): what decides the installed content."""
    lines = (line.strip() for line in lock.read_text().splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("#"))


def dependency_layers(lock: Path, python_version: str, platform: Platform,
                      writer: LayerWriter, split_native: bool = False) -> list[tuple[LayerBlob, str]]:
    """(blob, description) per dependency layer, from the cache when the lock is unchanged.
    `split_native`: pure-Python distributions apart from compiled ones (see `group_distributions`)."""
    bytecode = bytecode_for(python_version)  # a .pyc per .py, by the image's Python minor version
    set_key = writer.key("python-deps", requirement_lines(lock), python_version, str(platform), bytecode.key,
                         *(["split-native"] if split_native else []))
    cached = writer.blobs.lookup_set(set_key)
    if cached is not None:
        return cached
    with temp_dir(writer.blobs.tmp) as target, temp_dir(writer.blobs.tmp) as scratch:
        install(lock, target, python_version, platform)
        # what the SBOM says of each distribution's license, kept now rather than installed again
        writer.blobs.remember(METADATA, metadata_key(lock, python_version, platform), installed_metadata(target))
        rewrite_shebangs(target / "bin")
        dists, unclaimed = read_distributions(target)
        groups = group_distributions(dists, unclaimed, split_native=split_native)

        def write(group: DependencyGroup) -> tuple[LayerBlob, str]:
            key = writer.key("python-group", python_version, str(platform), SHEBANG, bytecode.key,
                             *(d.record for d in group.distributions))
            return writer.write(key, lambda: bytecode.add_to(group_entries(group, target), scratch)), group.description

        # groups are independent layers: written and compressed at once (zlib, zstd, hashing and
        # the bytecode compilers run outside the GIL), the largest first so that it does not
        # start last and run alone; listed in the planned order
        with ThreadPoolExecutor(max(1, min(len(groups), os.cpu_count() or 1))) as pool:
            started = {i: pool.submit(write, groups[i]) for i in sorted(range(len(groups)), key=lambda i: -groups[i].size)}
            try:
                layers = [started[i].result() for i in range(len(groups))]
            except BaseException:  # the groups not started yet are not written; the running ones end
                for future in started.values():  # before the directories they read are removed
                    future.cancel()
                raise
    writer.blobs.store_set(set_key, layers)
    return layers
