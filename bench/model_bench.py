"""Model layer benchmark: containerize a service with a large random model (default 2 GiB).

For each compression, prints the wall time and peak RSS of `ocibuild containerize` (cold, then
warm) next to the physical limit measured in the same run on the same file: reading and hashing
it once (`sha256sum`), and compressing it once (`gzip -6` / `zstd -3 -T0`) piped into `sha256sum`.
Targets: within 1.3x of the limit, peak RSS < 200 MB, warm < 0.1 s for the model layer.

usage: .venv/bin/python bench/model_bench.py [--size-mb 2048] [--compression gzip zstd none]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVICE = '''
import ocibuild

@ocibuild.service(name="big")
class Big:
    weights = ocibuild.models.Model("big-model")

    @ocibuild.api
    def ping(self) -> str:
        return "pong"
'''
LIMITS = {
    "none": "sha256sum {f}",
    "gzip": "gzip -6 -c {f} | sha256sum",
    "zstd": "zstd -3 -T0 -q -c {f} | sha256sum",
}


def timed_shell(command: str) -> float:
    started = time.perf_counter()
    subprocess.run(["bash", "-c", command], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def timed_ocibuild(args: list[str], env: dict) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", *args], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ocibuild {' '.join(args)} failed")
    return time.perf_counter() - started, usage.ru_maxrss / 1024


def warm_model_layer(home: Path, compression: str) -> float:
    """Seconds for the model layer step on a warm cache, in this process (no start-up cost)."""
    from ocibuild.bento.store import BentoStore
    from ocibuild.containerize import model_layer
    from ocibuild.layers.compression import Compression
    from ocibuild.layers.writer import LayerWriter
    from ocibuild.store.blobs import BlobStore

    bento = BentoStore(home).get("big:1")
    writer = LayerWriter(BlobStore(home / "cache"), Compression(compression), 0)
    started = time.perf_counter()
    model = bento.info.models[0]
    model_layer(bento.path / "models" / model.name / model.version, model.name, model.version, model.digest, writer)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--compression", nargs="+", default=["gzip", "zstd", "none"])
    args = parser.parse_args()
    base_dir = subprocess.run([str(ROOT / "fixtures/base/make-python-base.sh")], capture_output=True,
                              text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        work = Path(tmp)
        env = {**os.environ, "OCIBUILD_HOME": str(work / "home")}
        model = work / "model.bin"
        with open(model, "wb") as f:
            for _ in range(args.size_mb):
                f.write(os.urandom(1 << 20))
        seconds, _ = timed_ocibuild(["models", "import", str(model), "--name", "big-model"], env)
        print(f"model import (copy + digest) of {args.size_mb} MiB: {seconds:.2f} s")
        src = work / "svc"
        src.mkdir()
        (src / "service.py").write_text(SERVICE)
        subprocess.run([sys.executable, "-m", "ocibuild", "build", str(src), "--version", "1"], env=env,
                       check=True, stdout=subprocess.DEVNULL)
        base = f"oci-layout:{base_dir}:3.11-slim"
        # warm the base and dependency layers so the figures are the model's alone
        subprocess.run([sys.executable, "-m", "ocibuild", "containerize", "big:1", "--base", base, "--format",
                        "oci-dir", "-o", str(work / "warmup"), "--compression", "none"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", str(work / "home" / "cache" / "layers")])  # forget the model layer
        for compression in args.compression:
            limit = timed_shell(LIMITS[compression].format(f=model))
            out = ["containerize", "big:1", "--base", base, "--format", "oci-dir", "--compression", compression]
            cold, rss = timed_ocibuild(out + ["-o", str(work / f"out-{compression}")], env)
            warm, warm_rss = timed_ocibuild(out + ["-o", str(work / f"out2-{compression}")], env)
            print(f"{compression:5} limit {limit:7.2f} s | containerize cold {cold:7.2f} s ({cold / limit:.2f}x), "
                  f"peak RSS {rss:5.1f} MB | warm {warm:5.2f} s, peak RSS {warm_rss:5.1f} MB"
                  f" | warm model layer alone {warm_model_layer(work / 'home', compression) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
