"""An edit's writes into the blob store against the size of the store (prints a table; not a test).

After an edit, containerize writes a handful of small files into `$OCIBUILD_HOME/cache`: the
config, the SBOM and the provenance as blobs, a layer record, and on a push one origin per new
blob. The store only grows (every edit leaves a layer, a config and records behind), so each of
those writes must cost the same in a store of a hundred blobs as in one of a hundred thousand.

usage: python bench/store_bench.py [--sizes 0,10000,100000]
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

from ocibuild.oci.digest import Digest  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,10000,100000")
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


if __name__ == "__main__":
    main()
