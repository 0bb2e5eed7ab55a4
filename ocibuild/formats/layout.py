"""OCI image layouts: reading one (from a directory or a tar) into images, indexes and artifacts,
and writing one as a directory.

A layout is hostile input: `index.json` and every manifest are parsed into checked descriptors,
blobs are reached only through validated digests (never a path from the input), never through a
symlink, and are read no further than the size their descriptor declares.
"""

from __future__ import annotations

import itertools
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from ocibuild.errors import ImageError, OcibuildError
from ocibuild.oci import mediatypes
from ocibuild.oci.descriptor import Descriptor, canonical_json, parse_json
from ocibuild.oci.digest import Digest
from ocibuild.oci.image import config_descriptor_of, parse_image
from ocibuild.oci.index import Artifact, Index, Manifest, for_platform, walk
from ocibuild.oci.layer import FileBlob, FileLayer
from ocibuild.oci.platform import Platform
from ocibuild.oci.reference import Reference
from ocibuild.store.atomic import sibling_prefix, temp_dir, umask
from ocibuild.store.blobs import BlobStore
from ocibuild.store.tarread import open_tar

OCI_LAYOUT = canonical_json({"imageLayoutVersion": "1.0.0"})
REF_NAME = "org.opencontainers.image.ref.name"
IMAGE_NAME = "io.containerd.image.name"
MAX_JSON = 4 * 1024 * 1024  # index.json, manifests and configs are small; refuse a huge one unread
MAX_DEPTH = 4  # indexes of indexes
# manifests one load walks, a child listed twice counted twice: four levels of an index listing
# one child F times are F**4 manifests (24: 331,776 loads, 42 s and 1 GB), whose bytes are tiny
MAX_MANIFESTS = 1000


class Reader(Protocol):
    where: str

    def open(self, name: str, limit: int) -> BinaryIO: ...


class DirReader:
    """Files of a layout directory; nothing outside it, no symlinks, no devices or fifos."""

    def __init__(self, root: Path):
        self.root = root
        self.where = str(root)

    def open(self, name: str, limit: int) -> BinaryIO:
        path = self.root
        for part in name.split("/"):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                raise ImageError(f"{self.where}: {name} is missing") from None
            if stat.S_ISLNK(mode):
                raise ImageError(f"{self.where}: {name} goes through a symlink: refusing it")
        if not stat.S_ISREG(mode):
            raise ImageError(f"{self.where}: {name} is not a regular file")
        return open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb")


class TarReader:
    """Regular-file members of a tar (an OCI archive), by normalized name."""

    def __init__(self, tar: tarfile.TarFile, where: str):
        self.tar = tar
        self.where = where
        self.members = {}
        self.others: set[str] = set()  # links, fifos, dirs: named in the refusal, never opened
        for m in tar.getmembers():
            name = m.name.removeprefix("./").rstrip("/")
            if m.isfile():
                self.members.setdefault(name, m)
            else:
                self.others.add(name)

    def open(self, name: str, limit: int) -> BinaryIO:
        member = self.members.get(name)
        if member is None:
            problem = "is not a regular file" if name in self.others else "is missing"
            raise ImageError(f"{self.where}: {name} {problem}")
        return self.tar.extractfile(member)


def read_small(reader: Reader, name: str, limit: int = MAX_JSON) -> bytes:
    with reader.open(name, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ImageError(f"{reader.where}: {name} is larger than {limit} bytes: refusing it")
    return data


def read_blob(reader: Reader, descriptor: Descriptor) -> bytes:
    """A small blob (manifest, config), checked against its descriptor's size and digest."""
    if descriptor.size > MAX_JSON:
        raise ImageError(f"{reader.where}: {descriptor.digest} declares {descriptor.size} bytes: too large for JSON")
    data = read_small(reader, descriptor.digest.blob_name, descriptor.size)
    if len(data) != descriptor.size or Digest.of(data, descriptor.digest.algorithm) != descriptor.digest:
        raise ImageError(f"{reader.where}: blob {descriptor.digest} is corrupt: its content does not match its digest")
    return data


def index_descriptors(reader: Reader) -> list[Descriptor]:
    """The manifests `index.json` lists, each a checked descriptor."""
    index = parse_json(read_small(reader, "index.json"), f"{reader.where}: index.json")
    return manifest_list(index, f"{reader.where}: index.json")


def manifest_list(index: dict, where: str) -> list[Descriptor]:
    manifests = index.get("manifests")
    if not isinstance(manifests, list):
        raise ImageError(f"{where} has no list of manifests")
    return [Descriptor.from_json(m, f"{where}, manifest {i}") for i, m in enumerate(manifests)]


def select(reader: Reader, descriptors: list[Descriptor], ref: str | None, platform: Platform | None,
           depth: int = 0) -> Descriptor:
    """Follow the index (and nested indexes) to the manifest for `ref` and `platform`."""
    if ref is not None:
        descriptors = [d for d in descriptors if (d.annotations or {}).get(REF_NAME) == ref]
        if not descriptors:
            raise ImageError(f"{reader.where}: no image tagged {ref!r}")
    elif depth == 0 and len(descriptors) > 1:  # referrers listed after the image are not candidates
        descriptors = [d for d in descriptors if not d.artifact_type] or descriptors
    if len(descriptors) > 1 and ref is None and platform is None:
        raise ImageError(f"{reader.where} holds several manifests: name one as PATH:REF")
    for d in descriptors:
        if d.media_type in mediatypes.INDEXES:
            if depth >= MAX_DEPTH:
                raise ImageError(f"{reader.where}: indexes nested too deep")
            if platform is None:
                return d
            nested = manifest_list(parse_json(read_blob(reader, d), f"index {d.digest}"), f"index {d.digest}")
            return select(reader, nested, None, platform, depth + 1)
    if platform is None:
        return descriptors[0]
    matching = for_platform(descriptors, platform, reader.where)
    if len(matching) > 1 and ref is None:
        raise ImageError(f"{reader.where} holds several images: name one as PATH:REF")
    return matching[0]


def _count(walked: Iterator[int], reader: Reader) -> None:
    """One more manifest read from `reader`, refused past MAX_MANIFESTS."""
    if next(walked) > MAX_MANIFESTS:
        raise ImageError(f"{reader.where} lists more than {MAX_MANIFESTS} manifests under one: refusing it")


def load(reader: Reader, descriptor: Descriptor, blobs: BlobStore, depth: int = 0,
         walked: Iterator[int] | None = None) -> Manifest:
    """The image, index or artifact `descriptor` names, its blobs copied (verified) into `blobs`."""
    walked = walked if walked is not None else itertools.count(1)
    _count(walked, reader)
    data = read_blob(reader, descriptor)
    where = f"{reader.where}@{descriptor.digest}"
    document = parse_json(data, where)
    media_type = document.get("mediaType") if isinstance(document.get("mediaType"), str) else descriptor.media_type
    if media_type in mediatypes.INDEXES or "manifests" in document:
        if depth >= MAX_DEPTH:
            raise ImageError(f"{where}: indexes nested too deep")
        children = tuple(load(reader, d, blobs, depth + 1, walked) for d in manifest_list(document, where))
        return Index(children, raw=(data, media_type))
    config = config_descriptor_of(data, where)
    if config.media_type in mediatypes.IMAGE_CONFIGS and not document.get("artifactType"):
        config_bytes = read_blob(reader, config)
        return parse_image(data, media_type, config_bytes,
                           lambda d, diff_id: FileLayer(d, diff_id, copy_blob(reader, d, blobs)), where)
    layers = [Descriptor.from_json(d, f"layer {i} of {where}") for i, d in enumerate(document.get("layers") or [])]
    return Artifact(str(document.get("artifactType") or config.media_type),
                    tuple(FileBlob(d, copy_blob(reader, d, blobs)) for d in layers),
                    config=FileBlob(config, copy_blob(reader, config, blobs)), raw=(data, media_type))


def copy_blob(reader: Reader, descriptor: Descriptor, blobs: BlobStore) -> Path:
    if blobs.has_blob(descriptor.digest):
        return blobs.blob_path(descriptor.digest)
    with reader.open(descriptor.digest.blob_name, descriptor.size) as f:
        try:
            return blobs.add_blob(f, descriptor.digest, descriptor.size)
        except ImageError as exc:  # the store's refusal does not know which input sent the blob
            raise ImageError(f"{reader.where}: {exc}") from None


@contextmanager
def open_layout(path: Path, transport: str) -> Iterator[Reader]:
    """A reader over a layout directory (`oci-layout`) or an OCI archive (`oci-archive`)."""
    if transport == "oci-layout":
        if not path.is_dir():
            raise ImageError(f"{path} is not an OCI layout directory")
        yield DirReader(path)
        return
    if not path.is_file():
        raise ImageError(f"{path} is not a file")
    try:
        with open_tar(path, "r:") as tar:
            yield TarReader(tar, str(path))
    except (tarfile.TarError, EOFError) as exc:
        raise ImageError(f"{path} is not a readable tar archive: {exc}") from None


def read_image(path: Path, transport: str, ref: str | None, platform: Platform | None,
               blobs: BlobStore) -> Manifest:
    """What `transport:path[:ref]` names: for a platform, the one image; else the whole manifest."""
    try:
        with open_layout(path, transport) as reader:
            return load(reader, select(reader, index_descriptors(reader), ref, platform), blobs)
    except (OSError, tarfile.TarError, EOFError) as exc:
        if isinstance(exc, OcibuildError):
            raise
        raise ImageError(f"cannot read {path}: {exc}") from None


def read_with_referrers(path: Path, transport: str, blobs: BlobStore) -> tuple[Manifest, tuple[Manifest, ...]]:
    """The layout's root (its one named, or one non-artifact, manifest) and the artifacts
    `index.json` lists beside it whose subject is the root or one of its manifests."""
    try:
        with open_layout(path, transport) as reader:
            descriptors = index_descriptors(reader)
            walked = itertools.count(1)  # one count for the root and every referrer
            root = load(reader, select(reader, descriptors, None, None), blobs, walked=walked)
            inside = {m.digest for m in walk(root)}
            found = []
            for d in descriptors:  # an artifact's blobs are copied only once its subject says it belongs
                if d.digest in inside or not d.artifact_type:
                    continue
                _count(walked, reader)
                subject = parse_json(read_blob(reader, d), f"{reader.where}@{d.digest}").get("subject")
                if isinstance(subject, dict) and Descriptor.from_json(subject, f"subject of {d.digest}").digest in inside:
                    found.append(load(reader, d, blobs, walked=walked))
            return root, tuple(found)
    except (OSError, tarfile.TarError, EOFError) as exc:
        if isinstance(exc, OcibuildError):
            raise
        raise ImageError(f"cannot read {path}: {exc}") from None


# --- writing ----------------------------------------------------------------------------------


def index_json(root: Manifest, name: Reference, referrers: tuple[Manifest, ...] = ()) -> bytes:
    """The layout's index: the root manifest, named for containerd and for OCI tools, then the
    manifests that refer to it or its images (SBOMs, provenance), unnamed, for discovery."""
    annotations = {IMAGE_NAME: str(name), REF_NAME: name.tag}
    return canonical_json({"schemaVersion": 2, "mediaType": mediatypes.INDEX,
                           "manifests": [root.descriptor(annotations).to_json()]
                           + [r.descriptor().to_json() for r in referrers]})


def contents(root: Manifest, referrers: tuple[Manifest, ...] = ()) -> Iterator[tuple[Digest, bytes | Path]]:
    """Every blob of `root` (and of `referrers`) once: manifests and configs as bytes, layers as files."""
    seen: set[Digest] = set()
    for manifest in [m for r in (root, *referrers) for m in walk(r)]:
        items: list[tuple[Digest, bytes | Path]] = [(manifest.digest, manifest.manifest_bytes())]
        items += list(manifest.inline_blobs().items())
        items += [(b.descriptor.digest, b) for b in manifest.blobs()]
        for digest, source in items:
            if digest not in seen:
                seen.add(digest)
                yield digest, source if isinstance(source, bytes) else source.path()


def write_layout(root: Manifest, name: Reference, dest: Path, referrers: tuple[Manifest, ...] = ()) -> None:
    """Write a layout directory next to `dest`, then swap it in; modes as the umask gives. `dest`
    is taken as given (not resolved): a symlink there is refused, never followed."""
    dest = dest.absolute()
    with temp_dir(dest.parent, prefix=sibling_prefix(dest)) as staged:
        for digest, source in contents(root, referrers):
            target = staged / digest.blob_name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(source, bytes):
                target.write_bytes(source)
            else:
                _link_or_copy(source, target)
        (staged / "oci-layout").write_bytes(OCI_LAYOUT)
        (staged / "index.json").write_bytes(index_json(root, name, referrers))
        for directory in (staged, *[p for p in staged.rglob("*") if p.is_dir()]):
            os.chmod(directory, 0o777 & ~umask())
        _swap_in(staged, dest)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link stored blobs (immutable, named by digest, readable as the umask allows); copy
    across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


LAYOUT_ENTRIES = {"oci-layout", "index.json", "blobs"}


def _swap_in(staged: Path, dest: Path) -> None:
    """Replace `dest` only if it is an empty directory or an OCI layout and nothing else: a
    directory that merely holds an `oci-layout` file among other things is somebody's data."""
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise ImageError(f"{dest} exists and is not an OCI layout: refusing to replace it")
    if dest.exists():
        names = set(os.listdir(dest))
        if names and not (names <= LAYOUT_ENTRIES and "oci-layout" in names and not (dest / "oci-layout").is_symlink()):
            raise ImageError(f"{dest} exists and is not an OCI layout: refusing to replace it")
        with temp_dir(dest.parent, prefix=sibling_prefix(dest, "old")) as old:
            os.rename(dest, old / "layout")
            os.rename(staged, dest)
    else:
        os.rename(staged, dest)
