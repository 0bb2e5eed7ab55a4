"""Containerize benchmark: cold, warm (nothing changed) and after editing service.py.

Prints wall time and peak RSS of each `ocibuild containerize` run (a separate process, measured
with wait4), for the example and for a service depending on numpy, pandas, scipy and
scikit-learn. Targets: edit < 1 s, warm < 0.5 s, peak RSS < 200 MB.

usage: .venv/bin/python bench/containerize_bench.py [--compression gzip|zstd|none]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = '''
import ocibuild

image = ocibuild.images.PythonImage(python_version="3.11").python_packages("numpy", "pandas", "scipy", "scikit-learn")

@ocibuild.service(image=image)
class Heavy:
    @ocibuild.api
    def predict(self, x: list[float]) -> float:
        return sum(x)
'''


def run(args: list[str], env: dict) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one ocibuild process."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "ocibuild", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"ocibuild {' '.join(args)} failed: {proc.stderr.read().decode()}")
    return elapsed, usage.ru_maxrss / 1024


def bench(label: str, service_dir: Path, base: str, compression: str, work: Path) -> None:
    env = {**os.environ, "OCIBUILD_HOME": str(work / f"home-{label}")}
    src = work / label
    shutil.copytree(service_dir, src)
    subprocess.run([sys.executable, "-m", "ocibuild", "build", str(src), "--version", "1"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    args = ["containerize", "--base", base, "--compression", compression]
    rows = [("cold", *run(args + [f"{label}:1", "-o", str(work / f"{label}-cold.tar")], env)),
            ("warm", *run(args + [f"{label}:1", "-o", str(work / f"{label}-warm.tar")], env))]
    (src / "service.py").write_text((src / "service.py").read_text() + "\n# edited\n")
    subprocess.run([sys.executable, "-m", "ocibuild", "build", str(src), "--version", "2"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    rows.append(("edit", *run(args + [f"{label}:2", "-o", str(work / f"{label}-edit.tar")], env)))
    size = (work / f"{label}-edit.tar").stat().st_size / 2**20
    for name, seconds, rss in rows:
        print(f"{label:14} {compression:5} {name:5} {seconds:7.2f} s  peak RSS {rss:6.1f} MB  (image {size:.0f} MB)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--compression", default="gzip")
    args = parser.parse_args()
    base_dir = subprocess.run([str(ROOT / "fixtures/base/make-python-base.sh")], capture_output=True,
                              text=True, check=True).stdout.strip()
    base = f"oci-layout:{base_dir}:3.11-slim"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        heavy = work / "heavy-src"
        heavy.mkdir()
        (heavy / "service.py").write_text(HEAVY)
        bench("summarization", ROOT / "examples/summarization", base, args.compression, work)
        bench("heavy", heavy, base, args.compression, work)


if __name__ == "__main__":
    main()
