"""A SLSA provenance v1 in-toto statement per image: the image digest as subject, the bento (tag
and content digest), its locks, the base and the platform as the build definition, ocibuild and
its version as the builder. No clock unless asked (`started`), so the same inputs give the same
bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ocibuild
from ocibuild.bento.info import MODEL_COPIES
from ocibuild.bento.store import Bento
from ocibuild.oci.digest import Digest
from ocibuild.oci.platform import Platform
from ocibuild.supplychain.locks import Locks, read_locks
from ocibuild.supplychain.spdx import BaseRef

MEDIA_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://ocibuild.invalid/buildtypes/containerize/v1"  # an identifier, never fetched
BUILDER_ID = "https://ocibuild.invalid/builder/ocibuild"


def bento_digest(root: Path) -> str:
    """sha256 over every file of the bento but its models (pinned by their own digests): path,
    executable bit, and content, in path order."""
    sha = hashlib.sha256()
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts[:1] == (MODEL_COPIES,):
            dirnames[:] = []
            continue
        entries += [Path(dirpath) / n for n in filenames]
    for path in sorted(entries, key=lambda p: p.relative_to(root).as_posix()):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            sha.update(f"link {rel} {os.readlink(path)}\n".encode())
        else:
            executable = "x" if os.access(path, os.X_OK) else "-"
            sha.update(f"file {rel} {executable} {hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return "sha256:" + sha.hexdigest()


def _digest_set(digest: str) -> dict:
    algorithm, _, hexdigest = str(digest).partition(":")
    return {algorithm: hexdigest}


def provenance_statement(bento: Bento, platform: Platform, image_name: str, image_digest: Digest, *,
                         base: BaseRef | None = None, locks: Locks | None = None,
                         parameters: dict | None = None, started: str | None = None) -> dict:
    info = bento.info
    locks = locks or read_locks(bento, platform)
    bento_ref = f"{info.name}:{info.version}"
    dependencies = [{"uri": f"ocibuild-bento:{bento_ref}", "name": bento_ref,
                     "digest": _digest_set(bento_digest(bento.path))}]
    dependencies += [{"name": path, "digest": {"sha256": sha}} for path, sha in sorted(locks.digests().items())]
    dependencies += [{"uri": f"ocibuild-model:{m.name}:{m.version}", "name": f"{m.name}:{m.version}",
                      "digest": _digest_set(m.digest)} for m in info.models]
    if base is not None:
        dependencies.append({"name": base.name, "digest": _digest_set(base.digest),
                             "annotations": {"role": "base image"}})
    external = {"bento": bento_ref, "platform": str(platform), **(parameters or {})}
    if base is not None:
        external["base"] = base.name
    run_details = {"builder": {"id": BUILDER_ID, "version": {"ocibuild": ocibuild.__version__}},
                   "metadata": {"invocationId": f"{bento_ref}/{platform}"}}
    if started:
        run_details["metadata"].update(startedOn=started, finishedOn=started)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": image_name, "digest": _digest_set(image_digest)}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {"buildType": BUILD_TYPE, "externalParameters": external,
                                "internalParameters": {"ocibuildVersion": info.ocibuild_version,
                                                       "pythonVersion": info.python_version},
                                "resolvedDependencies": dependencies},
            "runDetails": run_details,
        },
    }


def statement_bytes(statement: dict) -> bytes:
    return json.dumps(statement, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
