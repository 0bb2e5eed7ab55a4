"""Push benchmark: bytes and requests of a first push and of a push after editing service.py,
and the push time of an image with a 300 MB+ dependency set against `skopeo copy` of the same
OCI layout, each into a fresh loopback registry, in one run. Target: no slower than skopeo.

usage: .venv/bin/python bench/push_bench.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ocibuild.formats.layout import read_image  # noqa: E402
from ocibuild.oci.reference import Reference  # noqa: E402
from ocibuild.registry.auth import Keychain  # noqa: E402
from ocibuild.registry.config import RegistryConfig  # noqa: E402
from ocibuild.registry.push import push  # noqa: E402
from ocibuild.registry.session import Registries  # noqa: E402
from ocibuild.store.blobs import BlobStore  # noqa: E402
from tests.registry.fixtures import start_registry  # noqa: E402

SERVICE = '''
import ocibuild

image = ocibuild.images.PythonImage(python_version="3.11").python_packages(
    "numpy", "pandas", "scipy", "scikit-learn", "pyarrow")

@ocibuild.service(image=image)
class Heavy:
    @ocibuild.api
    def predict(self, x: list[float]) -> float:
        return sum(x)
'''


def ocibuild(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "-m", "ocibuild", *args], env=env, check=True, stdout=subprocess.DEVNULL)


def push_layout(layout: Path, ref: str, cache: BlobStore) -> tuple[float, int, int]:
    """(seconds, requests, bytes sent) of one ocibuild push of an OCI layout."""
    registries = Registries(RegistryConfig(), Keychain([]))
    source = read_image(layout, "oci-layout", None, None, cache)
    target = Reference.parse(ref)
    started = time.perf_counter()
    push(source, target, registries, cache)
    elapsed = time.perf_counter() - started
    stats = registries.transport(target.api_host).stats
    return elapsed, stats.requests, stats.bytes_sent


def main() -> None:
    base_dir = subprocess.run([str(ROOT / "fixtures/base/make-python-base.sh")], capture_output=True, text=True,
                              check=True).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "OCIBUILD_HOME": str(work / "home")}
        src = work / "heavy"
        src.mkdir()
        (src / "service.py").write_text(SERVICE)
        base = f"oci-layout:{base_dir}:3.11-slim"
        ocibuild("build", str(src), "--version", "1", env=env)
        ocibuild("containerize", "heavy:1", "--base", base, "--format", "oci-dir", "-o", str(work / "v1"), env=env)
        (src / "service.py").write_text(SERVICE + "\n# edited\n")
        ocibuild("build", str(src), "--version", "2", env=env)
        ocibuild("containerize", "heavy:2", "--base", base, "--format", "oci-dir", "-o", str(work / "v2"), env=env)
        cache = BlobStore(work / "home" / "cache")
        size = sum(p.stat().st_size for p in (work / "v1" / "blobs" / "sha256").iterdir()) / 2**20

        ours = start_registry(work / "registry-ocibuild")
        theirs = start_registry(work / "registry-skopeo")
        try:
            first = push_layout(work / "v1", f"{ours.host}/bench/heavy:1", cache)
            edit = push_layout(work / "v2", f"{ours.host}/bench/heavy:2", cache)
            started = time.perf_counter()
            subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{work / 'v1'}",
                            f"docker://{theirs.host}/bench/heavy:1"], check=True, stdout=subprocess.DEVNULL)
            skopeo = time.perf_counter() - started
        finally:
            ours.stop()
            theirs.stop()
        print(f"image: {size:.0f} MiB of blobs (compressed)")
        print(f"ocibuild first push:     {first[0]:6.2f} s, {first[1]:4d} requests, {first[2] / 2**20:8.1f} MiB sent")
        print(f"ocibuild push after edit:{edit[0]:6.2f} s, {edit[1]:4d} requests, {edit[2] / 2**20:8.3f} MiB sent")
        print(f"skopeo copy (same layout, fresh registry): {skopeo:6.2f} s  -> ocibuild/skopeo = {first[0] / skopeo:.2f}")


if __name__ == "__main__":
    main()
