"""Extracting an untrusted tar archive without trusting `tarfile`'s own extraction.

`TarFile.extractall(filter="data")` is not enough: Python 3.11.7 lacks the fix for CVE-2025-4517
(a chain of directory symlinks whose resolved path exceeds PATH_MAX hides an escaping link from
the filter, because the filter asks the host's `realpath`, which gives up on long paths), and
Debian 12's python3 (3.11.2) has no `filter=` at all. So every decision here is taken in a model
of the tree built only from the members seen so far, never by asking the host file system:

- names are relative, without `..`, NUL or empty parts; only files, dirs, symlinks, hard links;
- nothing is ever written beneath a symlink, so every write path is plain directories;
- a symlink's target is resolved through the archive's earlier symlinks and must stay inside;
  a path such a resolution walked through as a directory can never later become a symlink
  (which would re-route the earlier, already accepted link);
- a hard link names an earlier regular file of the same archive;
- files are created with O_EXCL|O_NOFOLLOW (no overwrite, no following), modes keep only
  rwxr-xr-x bits, owners and mtimes are not restored;
- member count, per-file and total bytes are limited, counting bytes actually written.

`dest` must be an empty directory that only this process writes to (a fresh staging dir); on
any error the caller removes it. Errors reading the archive itself (`tarfile.TarError`) pass
through; every refusal is an `ArchiveError` naming the member.

`under` takes one subtree of the archive (an OCI layer's `app/` or `opt/ocibuild/models/N/V/`)
straight into `dest`: its ancestors must be directories, anything beside it is refused. Taking
the subtree as it is extracted, rather than moving it out of a full extraction afterwards,
matters: a relative symlink checked where it was extracted means something else once moved to
another depth, and a moved symlink would be followed by whatever moves or lists it next.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from collections import deque
from pathlib import Path

from ocibuild.errors import ArchiveError
from ocibuild.store.limits import ExtractLimits, GiB

CHUNK = 1 << 20
MAX_SYMLINK_HOPS = 40  # what Linux allows before ELOOP
# Resolving a link walks its target's parts and those of every link it goes through: 40 hops of
# 4 KB targets are 80,000 parts for one member of a few bytes. A link may take this many steps,
# and all the links of one import (one Tree) ten million (seconds, not hours).
MAX_LINK_STEPS = 4096
MAX_LINK_PARTS = 256  # in one target: no real link has more; 4 KB of "./" would have 2048
MAX_TREE_STEPS = 10_000_000


_FILE, _DIR, _SYMLINK = "file", "dir", "symlink"


def _refuse(message: str) -> ArchiveError:
    return ArchiveError("refusing archive: " + message)


def _human(n: int) -> str:
    """`1 GiB`, `2.5 MiB`, `100 bytes`: a limit as the person who set it would write it."""
    for unit, size in (("GiB", GiB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


def normalize(raw: str) -> str:
    """The member's path relative to the destination ("" is the destination itself).

    A leading `./` (what `tar -C DIR .` writes) and a trailing `/` are dropped; anything that
    could name a place outside, or that two spellings could name the same place, is refused.
    """
    if raw == "":
        raise _refuse("a member has an empty name")
    if "\0" in raw:
        raise _refuse(f"path {raw!r} contains a NUL byte")
    if raw.startswith("/"):
        raise _refuse(f"absolute path {raw!r}")
    name = raw
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if name in ("", "."):
        return ""
    parts = name.split("/")
    if ".." in parts:
        raise _refuse(f"path {raw!r} contains '..'")
    if any(p in ("", ".") for p in parts):
        raise _refuse(f"path {raw!r} has an empty or '.' component")
    return name


class Tree:
    """What the archive (or the earlier layers of one import) put in the destination so far:
    relative path -> kind (and link target). Layers share one, so that a later layer can never
    re-route a link an earlier one made (nor make one it walked through a link)."""

    def __init__(self) -> None:
        self.kinds: dict[str, str] = {"": _DIR}
        self.targets: dict[str, list[str]] = {}  # a link's target, as its parts (split once)
        self.walked_as_dir: set[str] = set()  # paths a symlink resolution stepped through
        self.steps = 0  # parts every resolution walked, for MAX_TREE_STEPS

    def resolve(self, name: str, target: str) -> list[str]:
        """Where symlink `name` -> `target` leads, as parts under the destination; refuse if outside."""
        if target == "" or "\0" in target:
            raise _refuse(f"link {name!r} has an empty or NUL target")
        if target.count("/") >= MAX_LINK_PARTS:
            raise _refuse(f"link {name!r} has a target of more than {MAX_LINK_PARTS} parts")
        if target.startswith("/"):
            raise _refuse(f"link {name!r} points outside it ({target!r})")
        parts = name.split("/")[:-1]
        pending = deque(_parts(target))
        hops = steps = 0
        while pending:
            part = pending.popleft()
            steps += 1
            if steps > MAX_LINK_STEPS or self.steps + steps > MAX_TREE_STEPS:
                raise _refuse(f"link {name!r} takes too many steps to resolve")
            if part == "..":
                if not parts:
                    raise _refuse(f"link {name!r} points outside it ({target!r})")
                parts.pop()
                continue
            parts.append(part)
            here = "/".join(parts)
            if self.kinds.get(here) == _SYMLINK:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise _refuse(f"link {name!r} is part of a symlink loop ({target!r})")
                parts.pop()
                pending.extendleft(reversed(self.targets[here]))
            elif pending:
                self.walked_as_dir.add(here)
        self.steps += steps
        return parts

    def check_parents(self, name: str) -> list[str]:
        """The parent dirs `name` needs that do not exist yet; refuse a parent that is not a dir."""
        missing = []
        parts = name.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            kind = self.kinds.get(parent)
            if kind == _SYMLINK:
                raise _refuse(f"{name!r} would be written beneath the symlink {parent!r}")
            if kind == _FILE:
                raise _refuse(f"{name!r} would be written beneath the file {parent!r}")
            if kind is None:
                missing.append(parent)
        return missing


def _parts(target: str) -> list[str]:
    """A link target's parts that move somewhere (not the empty ones of `a//b` nor `.`)."""
    return [p for p in target.split("/") if p not in ("", ".")]


def _mode(member: tarfile.TarInfo, base: int) -> int:
    """Permission bits only, never setuid/setgid/sticky or group/other write; owner always rw."""
    return (member.mode & 0o755) | base


def extract(tar: tarfile.TarFile, dest: Path, limits: ExtractLimits = ExtractLimits(), under: str = "",
            at: str = "", tree: Tree | None = None, spent: tuple[int, int] = (0, 0)) -> tuple[int, int]:
    """Write every member of `tar` (or of its subtree `under`, placed at `dest/at`) under the
    directory `dest`, refusing anything hostile. Several layers of one import share `tree` (what
    is in `dest`) and `limits`: `spent` is (members, bytes) the earlier layers used, and the
    totals with this one are returned."""
    tree = tree if tree is not None else Tree()
    members, total = spent
    for member in tar:
        members += 1
        if members > limits.max_members:
            raise _refuse(f"it has more than {limits.max_members} members "
                          f"(raise the limit with --max-archive-members)")
        relative = _within(normalize(member.name), under, member)
        if relative is None:
            continue
        if relative == "":
            if member.isdir():
                continue  # the destination itself ("./")
            raise _refuse(f"{member.name!r} names the archive root but is not a directory")
        name = f"{at}/{relative}" if at else relative
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise _refuse(f"{member.name!r} is a device, fifo or other special file")
        existing = tree.kinds.get(name)
        if existing is not None and not (existing == _DIR and member.isdir()):
            raise _refuse(f"{name!r} appears twice in the archive")
        missing = tree.check_parents(name)
        path = dest / name
        try:
            for parent in missing:
                os.mkdir(dest / parent, 0o755)
                tree.kinds[parent] = _DIR
            if member.isdir():
                if existing is None:
                    os.mkdir(path, 0o700)
                    tree.kinds[name] = _DIR
                os.chmod(path, _mode(member, 0o700))
            elif member.issym():
                if name in tree.walked_as_dir:
                    raise _refuse(f"symlink {name!r} would re-route a link extracted before it")
                tree.resolve(name, member.linkname)
                os.symlink(member.linkname, path)
                tree.kinds[name], tree.targets[name] = _SYMLINK, _parts(member.linkname)
            elif member.islnk():
                try:
                    target = _within(normalize(member.linkname), under, None)
                except ArchiveError:
                    target = None  # absolute, `..`, empty, beside `under`: not a member of this tree
                target = f"{at}/{target}" if at and target else target
                if target is None or tree.kinds.get(target) != _FILE:
                    raise _refuse(f"hard link {name!r} points outside it or to no earlier file "
                                  f"in the archive ({member.linkname!r})")
                os.link(dest / target, path, follow_symlinks=False)
                tree.kinds[name] = _FILE
            else:
                total = _write_file(tar, member, name, path, limits, total)
                tree.kinds[name] = _FILE
        except OSError as exc:
            raise _refuse(f"cannot write {name!r}: {exc.strerror or exc}") from None
    return members, total


def _within(name: str, under: str, member: tarfile.TarInfo | None) -> str | None:
    """`name` relative to `under` ("" is `under` itself); None for an ancestor directory of
    `under`, which is skipped; a refusal for anything else (or an ancestor that is not a directory)."""
    if not under or name == under:
        return "" if under else name
    if name.startswith(under + "/"):
        return name[len(under) + 1:]
    if member is not None and (name == "" or under.startswith(name + "/")):
        if member.isdir():
            return None
        raise _refuse(f"{member.name!r} is not a directory, where {under}/ is expected")
    raise _refuse(f"{member.name if member is not None else name!r} is outside {under}/")


def _read(source, name: str) -> bytes:
    """The next chunk of a member's data; a header that claims more than the archive holds fails here."""
    try:
        return source.read(CHUNK)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:  # OSError: BadGzipFile
        raise _refuse(f"the data of {name!r} is cut short or corrupt ({exc})") from None


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, path: Path,
                limits: ExtractLimits, total: int) -> int:
    """Copy one regular file's bytes, counting what is written (not what the header claims)."""
    source = tar.extractfile(member)
    if source is None:  # cannot happen for a regular member
        raise _refuse(f"{name!r} has no data")
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    written = 0
    with os.fdopen(fd, "wb") as out:
        os.fchmod(fd, _mode(member, 0o600))
        while chunk := _read(source, name):
            written += len(chunk)
            total += len(chunk)
            if written > limits.max_file_bytes:
                raise _refuse(f"{name!r} is larger than {_human(limits.max_file_bytes)} "
                              f"(raise the limit with --max-archive-file-size)")
            if total > limits.max_total_bytes:
                raise _refuse(f"its contents exceed {_human(limits.max_total_bytes)} at {name!r} "
                              f"(raise the limit with --max-archive-size)")
            out.write(chunk)
    return total
