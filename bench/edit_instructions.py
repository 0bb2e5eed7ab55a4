"""Instructions, not seconds, of an edit's build: `valgrind --tool=callgrind` counts what the
ocibuild process itself executes, the same count whatever else the machine is doing (wall times
here drift twofold within minutes, so an A/B of a few percent drowns in them). It prints its
figures; it is not a test.

Counted, each in the process alone (the bytecode compiler it starts is not followed):
- `python -c pass` and `ocibuild --help`: the floor, and what start-up adds to it;
- the example service's edit -> OCI layout (`build --containerize`), after one untimed build
  that leaves every lock and layer cached: the edit loop, minus the disk.

usage: python bench/edit_instructions.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "summarization"


def instructions(args: list[str], env: dict) -> int:
    """Instructions the command executed (callgrind's total for the process it started)."""
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *args],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{out.stderr[-2000:]}")
    found = re.search(r"Collected : (\d+)", out.stderr)
    if not found:
        raise SystemExit(f"callgrind printed no total for {' '.join(args)}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian's valgrind package)")
    # ocibuild's own bytecode, as an installed copy has it: under PYTHONDONTWRITEBYTECODE an
    # editable checkout would count the compiling of every changed module at every start
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "ocibuild")], check=True)
    layout = subprocess.run([str(ROOT / "fixtures/base/make-python-base.sh")], capture_output=True, text=True,
                            check=True).stdout.strip()
    ocibuild = [sys.executable, "-m", "ocibuild"]
    with tempfile.TemporaryDirectory(prefix="edit-instructions-") as tmp:
        work = Path(tmp)
        src = work / "summarization"
        shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("__pycache__"))
        env = {**os.environ, "OCIBUILD_HOME": str(work / "home")}
        subprocess.run([*ocibuild, "models", "import", str(src / "model"), "--name", "summarization-weights"],
                       env=env, check=True, capture_output=True)
        build = [*ocibuild, "build", str(src), "--containerize", "--base", f"oci-layout:{layout}:3.11-slim",
                 "--format", "oci-layout"]
        subprocess.run([*build, "--version", "0", "--image-output", str(work / "out-0")], env=env, check=True,
                       capture_output=True)
        rows = [("python -c pass", [instructions([sys.executable, "-c", "pass"], env) for _ in range(runs)]),
                ("ocibuild --help", [instructions([*ocibuild, "--help"], env) for _ in range(runs)])]
        edits = []
        for i in range(1, runs + 1):
            (src / "service.py").write_text((src / "service.py").read_text() + f"\n# edit {i}\n")
            edits.append(instructions([*build, "--version", str(i), "--image-output", str(work / f"out-{i}")], env))
        rows.append(("edit -> OCI layout", edits))
    print(f"| command | instructions (median of {runs}) | each |\n| --- | --- | --- |")
    for name, counts in rows:
        each = ", ".join(f"{c / 1e6:.1f} M" for c in counts)
        print(f"| {name} | {statistics.median(counts) / 1e6:.1f} M | {each} |")


if __name__ == "__main__":
    main()
