"""An edit's store costs against the size of the store (prints two tables; not a test).

After an edit, containerize writes a handful of small files into `$OCIBUILD_HOME/cache`: the
config, the SBOM and the provenance as blobs, a layer record, and on a push one origin per new
blob. The store only grows (every edit leaves a layer, a config and records behind), so each of
those writes must cost the same in a store of a hundred blobs as in one of a hundred thousand.

The versioned stores grow the same way: every build is a new bento version, every re-trained
model a new model version. `containerize NAME` and a service naming `Model("NAME")` ask for the
newest version, which must cost the same with one version kept as with thousands.

usage: python bench/store_bench.py [--sizes 0,10000,100000] [--versions 1,1000,5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ocibuild.contract import MODEL_FILES  # noqa: E402
from ocibuild.models.store import MODEL_FILE, ModelInfo, ModelStore  # noqa: E402
from ocibuild.oci.digest import Digest  # noqa: E402
from ocibuild.sdk.names import Tag  # noqa: E402
from ocibuild.store.blobs import BlobStore  # noqa: E402


def fill(blobs: BlobStore, n: int) -> None:
    """`n` blobs and as many layer and origin records, as empty files (their content is not read)."""
    for kind in ("sha256", "layers", "origins"):
        directory = blobs.root / ("blobs/sha256" if kind == "sha256" else kind)
        directory.mkdir(parents=True, exist_ok=True)
        suffix = "" if kind == "sha256" else ".json"
        for i in range(n):
            fd = os.open(directory / f"{i:064x}{suffix}", os.O_CREAT | os.O_WRONLY, 0o644)
            os.close(fd)


def one_edit(blobs: BlobStore, round_: int) -> float:
    started = time.perf_counter()
    documents = [f"{kind} {round_}".encode() for kind in ("config", "sbom", "provenance", "manifest")]
    for data in documents:
        blobs.add_bytes(data)
    blobs.remember("layers", f"{round_:064x}", {"round": round_})
    for data in documents:
        blobs.add_origin(Digest.of(data), "registry.example/service")
    return time.perf_counter() - started


def model_version(store: ModelStore, i: int, commit: bool) -> None:
    """Version `i` of model "m", an empty model created `i` seconds into the day; written in place
    (fast, as a store written before `.latest` existed) or through `commit`."""
    info = ModelInfo("m", f"v{i:06d}", f"2026-01-01T00:00:00.{i:06d}+00:00", 0, str(Digest.of(b"")), 0)
    if not commit:
        (store.root / "m" / info.version / MODEL_FILES).mkdir(parents=True)
        info.dump(store.root / "m" / info.version / MODEL_FILE)
        return
    with store.staging() as staged:
        (staged / MODEL_FILES).mkdir()
        info.dump(staged / MODEL_FILE)
        store.commit(staged, Tag("m", info.version))


def newest_costs(versions: int, rounds: int) -> tuple[float, float]:
    """Median seconds of asking for the newest version and of committing one more."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ModelStore(Path(tmp))
        for i in range(versions - 1):
            model_version(store, i, commit=False)
        model_version(store, versions - 1, commit=True)
        gets, commits = [], []
        for r in range(rounds):
            started = time.perf_counter()
            store.get("m")
            gets.append(time.perf_counter() - started)
            started = time.perf_counter()
            model_version(store, versions + r, commit=True)
            commits.append(time.perf_counter() - started)
        return statistics.median(gets), statistics.median(commits)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,10000,100000")
    parser.add_argument("--versions", default="1,1000,5000")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print("| blobs in the store | an edit's store writes (median) |")
    print("| --- | --- |")
    for size in map(int, args.sizes.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            blobs = BlobStore(Path(tmp))
            blobs.add_bytes(b"seed")
            fill(blobs, size)
            times = [one_edit(blobs, r) for r in range(args.rounds)]
            print(f"| {size} | {statistics.median(times) * 1000:.1f} ms |")

    print()
    print("| versions of the name | newest (`get NAME`, median) | one more commit (median) |")
    print("| --- | --- | --- |")
    for versions in map(int, args.versions.split(",")):
        get, commit = newest_costs(versions, args.rounds)
        print(f"| {versions} | {get * 1000:.1f} ms | {commit * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
