"""Default-base benchmark: the example on ocibuild's Debian base against the same service on the
mmdebstrap-made `python:3.11-slim`-like fixture base: image size (compressed blobs and
uncompressed layers), and base build time cold (empty Debian cache: index, .debs, unpack) and warm.

usage: .venv/bin/python bench/debian_bench.py
"""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ocibuild(*args: str, env: dict) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ocibuild", *args], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def sizes(layout: Path) -> tuple[float, float]:
    """(compressed MiB of all blobs, uncompressed MiB of all layers)."""
    import json

    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs/sha256" / d.removeprefix("sha256:")  # noqa: E731
    manifest = json.loads(blob(index["manifests"][0]["digest"]).read_text())
    compressed = sum(blob(l["digest"]).stat().st_size for l in manifest["layers"])
    uncompressed = 0
    for layer in manifest["layers"]:
        with gzip.open(blob(layer["digest"])) as f:
            while chunk := f.read(1 << 20):
                uncompressed += len(chunk)
    return compressed / 2**20, uncompressed / 2**20


def main() -> None:
    base_dir = subprocess.run([str(ROOT / "fixtures/base/make-python-base.sh")], capture_output=True, text=True,
                              check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "OCIBUILD_HOME": str(work / "home"), "OCIBUILD_DEBIAN_CACHE": str(work / "debian")}
        ocibuild("models", "import", str(ROOT / "examples/summarization/model"), "--name", "summarization-weights", env=env)
        build = ocibuild("build", str(ROOT / "examples/summarization"), "--version", "1", env=env)
        out = ["containerize", "summarization:1", "--format", "oci-dir"]
        cold = ocibuild(*out, "-o", str(work / "debian-1"), env=env)
        warm = ocibuild(*out, "-o", str(work / "debian-2"), env=env)
        ocibuild(*out, "--base", f"oci-layout:{base_dir}:3.11-slim", "-o", str(work / "slim"), env=env)
        ours, slim = sizes(work / "debian-1"), sizes(work / "slim")
        print(f"build (resolving the Debian lock with an empty cache): {build:.2f} s")
        print(f"containerize on the default base: cold {cold:.2f} s (downloads and unpacks the .debs), warm {warm:.2f} s")
        print(f"image on the default Debian base: {ours[0]:.1f} MiB compressed, {ours[1]:.1f} MiB uncompressed")
        print(f"image on the python:3.11-slim-like fixture base: {slim[0]:.1f} MiB compressed, {slim[1]:.1f} MiB uncompressed")


if __name__ == "__main__":
    main()
