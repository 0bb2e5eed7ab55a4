"""Registry cache benchmark: a fresh runner with `--cache-from` after an edit, next to the warm edit
loop and the cold build, each pushing to a loopback registry (`containerize --push`).

- cold:   an empty `$OCIBUILD_HOME` and an empty uv cache, no registry cache: builds every layer
- warm:   runner A after an edit to service.py (its home has every layer): the edit loop
- fresh:  runner B, an empty home and an empty uv cache, the same edit, `--cache-from` runner A's cache

`build` is timed apart from `containerize` (the fresh runner's with `--cache-from`: its lock is
reused); the target is fresh <= 2x warm for
containerize + push. For the example and for a service with numpy, pandas, scipy, scikit-learn.

usage: .venv/bin/python bench/cache_bench.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ROUNDS = int(os.environ.get("ROUNDS", "3"))

from bench.containerize_bench import HEAVY  # noqa: E402
from tests.registry.fixtures import start_registry  # noqa: E402


def ocibuild(args: list[str], env: dict) -> tuple[float, str]:
    """(seconds, the line reporting the image push) of one ocibuild process."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ocibuild", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ocibuild {' '.join(args)} failed: {done.stderr}{done.stdout}")
    pushed = [line for line in done.stdout.splitlines() if line.startswith("Pushed")]
    return elapsed, pushed[0].split(" (")[-1].rstrip(")") if pushed else ""


def runner(work: Path, name: str) -> dict:
    (work / f"uv-{name}").mkdir()
    return {**os.environ, "OCIBUILD_HOME": str(work / f"home-{name}"), "UV_CACHE_DIR": str(work / f"uv-{name}")}


def bench(label: str, service_dir: Path, base: str, registry: str, work: Path, model: Path | None,
          rounds: int) -> None:
    cache = f"{registry}/cache/{label}:main"
    app = f"{registry}/apps/{label}"
    src = work / f"{label}-src"
    shutil.copytree(service_dir, src, ignore=shutil.ignore_patterns("__pycache__", "model"))
    containerize = ["containerize", "--base", base]

    a = runner(work, f"{label}-a")
    if model:
        ocibuild(["models", "import", str(model), "--name", "summarization-weights"], a)
        ocibuild(["models", "export", "summarization-weights", f"oci://{registry}/models/{label}:1"], a)
    build_cold, _ = ocibuild(["build", str(src), "--version", "0"], a)
    cold, cold_out = ocibuild(containerize + [f"{label}:0", "--push", f"{app}:0", "--cache-to", cache], a)
    warm, fresh, build_fresh, wheels = [], [], [], 0
    for k in range(1, rounds + 1):
        (src / "service.py").write_text((src / "service.py").read_text() + f"\n# edit {k}\n")
        ocibuild(["build", str(src), "--version", f"{k}"], a)
        seconds, warm_out = ocibuild(containerize + [f"{label}:{k}", "--push", f"{app}:a{k}"], a)
        warm.append(seconds)
        b = runner(work, f"{label}-b{k}")  # a new runner each round: empty home, empty uv cache
        if model:
            ocibuild(["models", "import", f"oci://{registry}/models/{label}:1"], b)
        build_fresh.append(ocibuild(["build", str(src), "--version", f"{k}", "--cache-from", cache], b)[0])
        seconds, fresh_out = ocibuild(containerize + [f"{label}:{k}", "--cache-from", cache, "--push", f"{app}:b{k}"], b)
        fresh.append(seconds)
        wheels += sum(1 for p in Path(b["UV_CACHE_DIR"]).rglob("*") if p.name.endswith((".whl", ".dist-info")))

    med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    print(f"{label}: build cold {build_cold:.2f} s (uv resolves), fresh runner with --cache-from median "
          f"{med(build_fresh):.2f} s (lock reused)")
    print(f"  cold  containerize+push {cold:6.2f} s   ({cold_out})")
    print(f"  warm  containerize+push {med(warm):6.2f} s   median of {warm_runs(warm)}   ({warm_out})")
    print(f"  fresh containerize+push {med(fresh):6.2f} s   median of {warm_runs(fresh)}   ({fresh_out})")
    print(f"  fresh / warm = {med(fresh) / med(warm):.2f} (target <= 2); wheels in the fresh runners' uv caches: {wheels}")


def warm_runs(xs: list[float]) -> str:
    return "[" + ", ".join(f"{x:.2f}" for x in xs) + "]"


def main() -> None:
    base_dir = subprocess.run([str(ROOT / "fixtures/base/make-python-base.sh")], capture_output=True,
                              text=True, check=True).stdout.strip()
    base = f"oci-layout:{base_dir}:3.11-slim"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            bench("summarization", ROOT / "examples/summarization", base, registry.host, work,
                  ROOT / "examples/summarization/model", ROUNDS)
            heavy = work / "heavy"
            heavy.mkdir()
            (heavy / "service.py").write_text(HEAVY)
            bench("heavy", heavy, base, registry.host, work, None, ROUNDS)
        finally:
            registry.stop()


if __name__ == "__main__":
    main()
