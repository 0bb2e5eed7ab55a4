"""Bases made of Debian packages: the default Python base, and `system_packages` layers.

At build time the packages are resolved and written to the bento's lock; at containerize time
the lock alone decides the layers (same lock, same digest), so the archive's index is not read
again. What maintainer scripts would have done and an image needs is written here instead: users
and groups, `/tmp`, the CA bundle, the `python3` link. Nothing is unpacked onto the host.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterator
from pathlib import Path

from ocibuild.debian.archive import DebianArchive
from ocibuild.debian.index import DebPackage
from ocibuild.debian.installed import BaseSystem
from ocibuild.debian.resolve import installed_names, resolve
from ocibuild.debian.settings import DebianSettings
from ocibuild.layers.bytecode import Bytecode, bytecode_for
from ocibuild.layers.compression import Compression
from ocibuild.layers.tarwriter import Member, write_member_layer
from ocibuild.store.atomic import temp_dir
from ocibuild.store.blobs import BlobStore, LayerBlob, cache_key
from ocibuild.debian.lock import EXCLUDED, DebianLock, base_packages, release_for

SKELETON_VERSION = "2"  # bump when the skeleton changes
LAYER_FORMAT = "deb-stream-1"  # bump when the way packages become members changes
USER, UID = "ocibuild", 1000
DOWNLOADS = 8  # .debs downloaded at once


def lock_packages(python_version: str, system: list[str], architecture: str, settings: DebianSettings,
                  cache: Path, base_system: BaseSystem | None = None) -> DebianLock:
    """Resolve the default base and the system packages on top; or, on another Debian-based base
    (`base_system`), only the system packages it lacks, from its release."""
    default_base = base_system is None
    release = release_for(python_version) if default_base else base_system.release
    installed_base = base_system.installed if base_system else {}
    archive = DebianArchive(settings, release, architecture, cache)
    # the same signed index and request always resolve the same way: remember the answer
    request = [archive.index_digest(), architecture, python_version, str(default_base), *sorted(system), *EXCLUDED,
               *(f"{k}={v}" for k, v in sorted(installed_base.items()))]
    remembered = cache / "resolutions" / hashlib.sha256("\n".join(request).encode()).hexdigest()
    if remembered.is_file():
        return DebianLock.parse(remembered.read_text())
    index = archive.index()
    base = resolve(index, base_packages(python_version), excluded=EXCLUDED) if default_base else []
    installed = installed_names(base) if default_base else installed_base
    extra = resolve(index, system, installed=installed, excluded=EXCLUDED) if system else []
    lock = DebianLock(release, architecture, tuple(base), tuple(extra))
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(lock.text())
    return lock


def skeleton(layer: DebLayer, python_version: str) -> Iterator[Member]:
    """What dpkg's maintainer scripts and debootstrap would have made, for a distroless base, as
    members written after the packages (so they win over what a package shipped at those paths)."""
    from ocibuild.debian.unpack import memory_member

    passwd = f"root:x:0:0:root:/root:/usr/sbin/nologin\n{USER}:x:{UID}:{UID}:{USER}:/home/{USER}:/usr/sbin/nologin\n"
    members = [memory_member("etc/passwd", "file", 0o644, passwd.encode()),
               memory_member("etc/group", "file", 0o644, f"root:x:0:\n{USER}:x:{UID}:\n".encode()),
               memory_member("tmp", "dir", 0o1777), memory_member("root", "dir", 0o700),
               memory_member(f"home/{USER}", "dir", 0o755, uid=UID, gid=UID)]
    bundle = layer.ca_bundle()
    if bundle is not None:
        members.append(memory_member("etc/ssl/certs/ca-certificates.crt", "file", 0o644, bundle))
    if "usr/bin/python3" not in layer.paths():
        members.append(memory_member("usr/bin/python3", "symlink", 0o777, linkname=f"python{python_version}"))
    for member in members:
        yield from layer.add(member, override=True)


def debian_layer(packages: tuple[DebPackage, ...], archive: DebianArchive, cache: BlobStore,
                 compression: Compression, epoch: int, skeleton_for: str | None = None) -> LayerBlob:
    """One layer of the packages' files (plus the skeleton for a base), cached by the locked hashes.

    Written straight from each `.deb` to the layer, never unpacked on the host: a builder that is
    not root gets the owners and modes the packages define, not its own. A base also gets the
    hash-based `.pyc` of its Python's standard library, which Debian makes in a maintainer script
    (`py3compile`) that never runs here: only the `.py` files are copied aside to compile them."""
    bytecode = bytecode_for(skeleton_for) if skeleton_for else None
    key = cache_key("debian", LAYER_FORMAT, SKELETON_VERSION if skeleton_for else "", skeleton_for or "",
                    compression.key, str(epoch), *(p.lock_line() for p in packages),
                    *((bytecode.key,) if bytecode else ()))
    cached = cache.lookup(key)
    if cached is not None:
        return cached
    # the .deb reader (tarfile, every decompressor: 6 ms of imports) only when a layer is written;
    # an edit reuses every Debian layer
    from ocibuild.debian.unpack import DebLayer, memory_member

    with ThreadPoolExecutor(DOWNLOADS) as pool:  # every download done, concurrently, before the layer is begun
        debs = list(zip((p.name for p in packages), pool.map(archive.deb, packages)))

    def members(scratch) -> Iterator[Member]:
        layer = DebLayer()
        copies: dict[str, Path] = {}  # every .py file of the layer, copied aside
        links: list[tuple[str, str]] = []  # modules that are symlinks (sitecustomize.py -> /etc/...)
        for name, path in debs:
            for info, fileobj in layer.package(path, name):
                if bytecode is not None and info.name.endswith(".py"):
                    if info.isreg() and fileobj is not None:
                        data = fileobj.read()
                        copy = scratch / "src" / info.name
                        copy.parent.mkdir(parents=True, exist_ok=True)
                        copy.write_bytes(data)
                        copies[info.name] = copy
                        fileobj = io.BytesIO(data)
                    elif info.issym() and _compiled(info.name, bytecode):
                        target = posixpath.normpath(posixpath.join(posixpath.dirname(info.name), info.linkname))
                        links.append((info.name, target.lstrip("/")))
                yield info, fileobj
        sources = [(copy, name) for name, copy in copies.items() if _compiled(name, bytecode)]
        sources += [(copies[target], name) for name, target in links if target in copies]
        if sources:
            for path, pyc in sorted(bytecode.compile(sources, scratch / "pyc").items()):
                yield from layer.add(memory_member(path, "file", 0o644, pyc.read()))
        yield from layer.status_records()
        if skeleton_for:
            yield from skeleton(layer, skeleton_for)

    with temp_dir(cache.tmp) as scratch:
        return cache.layer(key, lambda out: write_member_layer(members(scratch), out, compression, epoch))


def _compiled(path: str, bytecode: Bytecode) -> bool:
    """The Python modules Debian byte-compiles on install: the standard library and dist-packages."""
    return path.endswith(".py") and path.startswith((f"usr/lib/python{bytecode.python_version}/",
                                                     "usr/lib/python3/dist-packages/"))
