"""Multi-platform benchmark: the example on the default Debian base, built and containerized for
linux/amd64 alone and for linux/amd64,linux/arm64, next to each other.

For each: `build` time, then containerize cold (a fresh $OCIBUILD_HOME: no layer cache; the
.debs and uv's wheel cache stay warm, as on a developer's machine), warm (nothing changed) and
after editing service.py (rebuild, then containerize), with peak RSS. Every containerize attaches
the SPDX SBOM and the provenance, as it does by default.

usage: .venv/bin/python bench/multiplatform_bench.py

Measured (2 cores, Debian 12, warm .deb and uv caches; every containerize attaches SBOM +
provenance, and a cold one also asks uv which wheels the platform gets and reads their license
metadata), 2026-11-25, gzip level 1, bytecode shared across the platforms of one build:

    single  linux/amd64             build 1.31 s   cold  7.61 s   warm 0.23 s   rebuild 0.15 s   edit 0.25 s
    multi   linux/amd64,linux/arm64 build 3.00 s   cold 12.39 s   warm 0.31 s   rebuild 0.21 s   edit 0.39 s
    peak RSS: build 152 MB (single) / 166 MB (multi; 235 MB before the Debian index was freed
    when dropped); containerize 27 MB warm, 84-99 MB cold
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from containerize_bench import ROOT, run  # noqa: E402


def bench(label: str, platforms: str, work: Path) -> None:
    env = {**os.environ, "OCIBUILD_HOME": str(work / f"home-{label}")}
    src = work / label
    shutil.copytree(ROOT / "examples/summarization", src, ignore=shutil.ignore_patterns("__pycache__"))
    run(["models", "import", str(src / "model"), "--name", "summarization-weights"], env)
    build = run(["build", str(src), "--version", "1", "--platform", platforms], env)
    rows = [("build", *build),
            ("cold", *run(["containerize", "summarization:1", "-o", str(work / f"{label}-cold.tar")], env)),
            ("warm", *run(["containerize", "summarization:1", "-o", str(work / f"{label}-warm.tar")], env))]
    (src / "service.py").write_text((src / "service.py").read_text() + "\n# edited\n")
    rebuild = run(["build", str(src), "--version", "2", "--platform", platforms], env)
    edit = run(["containerize", "summarization:2", "-o", str(work / f"{label}-edit.tar")], env)
    rows += [("rebuild", *rebuild), ("edit", *edit)]
    size = (work / f"{label}-edit.tar").stat().st_size / 2**20
    for name, seconds, rss in rows:
        print(f"{label:7} {platforms:23} {name:8} {seconds:7.2f} s  peak RSS {rss:6.1f} MB  (archive {size:.0f} MB)")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bench("single", "linux/amd64", work)
        bench("multi", "linux/amd64,linux/arm64", work)


if __name__ == "__main__":
    main()
