"""ocibuild against `docker build`, in one run on one machine: the edit loop, the cold build, and
the start of the image. Prints a table (not a test).

Both build the same service on the same base: the project's own Python base
(`fixtures/base/make-python-base.sh`), loaded into the Docker engine, plus pip (the host's pip
downloads its wheel; Debian's python3 has none), as `python:3.11-slim` would have it. The
Dockerfile `pip install`s the very pins and hashes ocibuild locked (`--require-hashes`), then
`COPY`s the source; `docker build` runs with `--network host` (PyPI from the container).

Paths, for the example service and for a numpy+pandas+scipy+scikit-learn one:
- cold, nothing cached -> tarball: ocibuild `build --containerize` with a fresh home and uv
  cache; docker `build --no-cache` + `save` (base present);
- edit `service.py` -> tarball: the same after appending a comment (docker: warm build + save);
- edit -> registry: ocibuild `build --containerize --push`; docker warm build + push, both to a
  loopback registry holding the previous image;
- edit -> OCI layout (ocibuild only);
  each edit path is the median of `--runs` edits, one process each;
- the same two with `build --containerize --watch`: from the write of `service.py` to the image's
  reference on the watch's stdout (docker's column repeats its warm build + push);
- in-image `import` time as a non-root user (every start after the first; one start of each image
  in turn, so both see the same drift of the machine's speed), and image sizes.
Each ocibuild figure is one process (wall time and peak RSS from wait4).

usage: python bench/vs_docker.py [--only small|ml] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))
from containerize_bench import HEAVY, run  # noqa: E402
from tests.registry.fixtures import start_registry  # noqa: E402

IMPORTS = {"small": "import numpy", "ml": "import pandas, scipy.stats, sklearn.linear_model"}
BASE_TAG = "ocibuild-bench/python:3.11-slim"
PIP_TAG = "ocibuild-bench/python-pip:3.11"
DOCKERFILE = """FROM {base}
COPY requirements.lock.txt /tmp/requirements.lock.txt
RUN pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock.txt
COPY src /app/src
WORKDIR /app/src
USER 1000:1000
CMD ["python3", "-c", "import service"]
"""
PEAK_RSS: dict[str, float] = {}


def ocibuild(args: list[str], env: dict) -> float:
    """Seconds of one `ocibuild` process; its peak RSS is recorded."""
    os.sync()  # the previous command's writes (docker's saves) are not timed here
    seconds, rss = run(args, env)
    PEAK_RSS[" ".join([args[0], Path(args[1]).name, *args[2:4]])] = rss
    return seconds


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr[-2000:]}")
    return out


def timed(*commands: list[str]) -> float:
    os.sync()
    started = time.perf_counter()
    for cmd in commands:
        sh(*cmd)
    return time.perf_counter() - started


def prepare_docker_base(layout: Path, work: Path) -> None:
    """The fixture base loaded into the engine, and the same plus pip (untimed: a base)."""
    sh("skopeo", "copy", "--quiet", f"oci:{layout}:3.11-slim", f"docker-archive:{work}/base.tar:{BASE_TAG}")
    sh("docker", "load", "-i", str(work / "base.tar"))
    ctx = work / "pip-base"
    ctx.mkdir()
    sh(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:", "-d", str(ctx), "pip")
    wheel = next(ctx.glob("pip-*.whl")).name
    # pip in the container trusts what the host trusts (an intercepting proxy's CA, if any)
    bundle = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or "/etc/ssl/certs/ca-certificates.crt"
    shutil.copyfile(bundle, ctx / "host-ca.crt")
    (ctx / "Dockerfile").write_text(f"FROM {BASE_TAG}\nENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore "
                                    f"PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ocibuild-bench/host-ca.crt\n"
                                    f"COPY host-ca.crt /etc/ocibuild-bench/\nCOPY {wheel} /tmp/\n"
                                    f"RUN python3 /tmp/{wheel}/pip install --no-cache-dir /tmp/{wheel} && rm /tmp/{wheel}\n")
    sh("docker", "build", "--network", "host", "-q", "-t", PIP_TAG, str(ctx))


def import_seconds(image: str, statement: str) -> tuple[float, float]:
    """(wall, CPU) seconds of `statement` in a fresh container, as uid 1000 (CPU time is what to
    compare on a busy machine: wall time there mostly measures the neighbours)."""
    code = (f"import time; t, c = time.perf_counter(), time.process_time(); {statement}; "
            "print(time.perf_counter() - t, time.process_time() - c)")
    out = sh("docker", "run", "--rm", "--network", "host", "--user", "1000:1000", "--entrypoint", "python3",
             image, "-c", code).stdout.split()
    return float(out[-2]), float(out[-1])


def watch_edits(src: Path, image_args: list[str], env: dict, runs: int) -> list[float]:
    """Seconds from each write of `service.py` to its image's reference on the stdout of one
    `build --containerize --watch` (which has built once before the first edit)."""
    args = ["build", str(src), "--containerize", *image_args, "--watch"]
    process = subprocess.Popen([sys.executable, "-m", "ocibuild", *args], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        if not process.stdout.readline():
            raise SystemExit(f"ocibuild {' '.join(args)} failed")
        seconds = []
        for _ in range(runs):
            time.sleep(0.5)  # a separate change, not the end of the last one
            text = (src / "service.py").read_text() + "\n# edited\n"
            os.sync()
            started = time.perf_counter()
            (src / "service.py").write_text(text)
            if not process.stdout.readline():
                raise SystemExit(f"ocibuild {' '.join(args)} failed")
            seconds.append(time.perf_counter() - started)
    finally:
        process.send_signal(signal.SIGINT)
        _, _, usage = os.wait4(process.pid, 0)
    PEAK_RSS[" ".join(["build", src.name, "--watch", *image_args[2:4]])] = usage.ru_maxrss / 1024
    return seconds


def image_size(image: str) -> float:
    return int(sh("docker", "image", "inspect", "-f", "{{.Size}}", image).stdout.strip()) / 2**20


def bench(label: str, service: Path, layout: Path, registry: str, work: Path, runs: int) -> list[tuple]:
    home, src, ctx = work / f"home-{label}", work / label, work / f"ctx-{label}"
    shutil.copytree(service, src)
    env = {**os.environ, "OCIBUILD_HOME": str(home), "UV_CACHE_DIR": str(work / f"uv-{label}")}
    if (src / "model").is_dir():
        sh(sys.executable, "-m", "ocibuild", "models", "import", str(src / "model"), "--name",
           "summarization-weights", env=env)
    base = ["--base", f"oci-layout:{layout}:3.11-slim"]
    rows = []

    def edit() -> None:
        (src / "service.py").write_text((src / "service.py").read_text() + "\n# edited\n")
        shutil.copyfile(src / "service.py", ctx / "src" / "service.py")

    mine_image = f"ocibuild-bench/{label}-ocibuild:1"
    cold = ocibuild(["build", str(src), "--version", "1", "--containerize", *base, "--image-output", str(work / f"{label}-1.tar"),
                     "--image-tag", mine_image], env)
    bento = next((home / "bentos").glob("*/1"))
    ctx.mkdir()
    shutil.copyfile(bento / "env/python/requirements.lock.txt", ctx / "requirements.lock.txt")
    shutil.copytree(src, ctx / "src")
    (ctx / "Dockerfile").write_text(DOCKERFILE.format(base=PIP_TAG))
    tag = f"ocibuild-bench/{label}-docker"
    docker_cold = timed(["docker", "build", "--no-cache", "--network", "host", "-q", "-t", f"{tag}:1", str(ctx)],
                        ["docker", "save", "-o", str(work / f"{label}-docker-1.tar"), f"{tag}:1"])
    rows.append((f"{label}: cold, nothing cached -> tarball", cold, docker_cold))

    # the registry holds the previous image of each, as in an edit loop
    ocibuild(["build", str(src), "--version", "1b", "--containerize", *base, "--push", f"{registry}/{label}:1"], env)
    sh("docker", "tag", f"{tag}:1", f"{registry}/{label}-docker:1")
    sh("docker", "push", "-q", f"{registry}/{label}-docker:1")

    def edit_tarball(i: int) -> tuple[float, float]:
        edit()
        mine = ocibuild(["build", str(src), "--version", f"2.{i}", "--containerize", *base,
                         "--image-output", str(work / f"{label}-2.tar")], env)
        theirs = timed(["docker", "build", "--network", "host", "-q", "-t", f"{tag}:2", str(ctx)],
                       ["docker", "save", "-o", str(work / f"{label}-docker-2.tar"), f"{tag}:2"])
        return mine, theirs

    def edit_registry(i: int) -> tuple[float, float]:
        edit()
        mine = ocibuild(["build", str(src), "--version", f"3.{i}", "--containerize", *base,
                         "--push", f"{registry}/{label}:3.{i}"], env)
        theirs = timed(["docker", "build", "--network", "host", "-q", "-t", f"{registry}/{label}-docker:3.{i}", str(ctx)],
                       ["docker", "push", "-q", f"{registry}/{label}-docker:3.{i}"])
        return mine, theirs

    def edit_layout(i: int) -> float:
        edit()
        out = work / f"{label}-4.{i}"
        seconds = ocibuild(["build", str(src), "--version", f"4.{i}", "--containerize", *base,
                            "--format", "oci-layout", "--image-output", str(out)], env)
        shutil.rmtree(out)
        return seconds

    docker_registry = None
    for name, edit_path in (("edit -> tarball", edit_tarball), ("edit -> registry", edit_registry)):
        pairs = [edit_path(i) for i in range(runs)]
        docker_registry = statistics.median(t for _, t in pairs)
        rows.append((f"{label}: {name} (median of {runs})", statistics.median(m for m, _ in pairs), docker_registry))
    rows.append((f"{label}: edit -> OCI layout (median of {runs})", statistics.median(edit_layout(i) for i in range(runs)),
                 None))
    watched = [*base, "--push", f"{registry}/{label}:5"]
    rows.append((f"{label}: `--watch`, edit -> registry (median of {runs})",
                 statistics.median(watch_edits(src, watched, env, runs)), docker_registry))
    watched = [*base, "--format", "oci-layout", "--image-output", str(work / f"{label}-5")]
    rows.append((f"{label}: `--watch`, edit -> OCI layout (median of {runs})",
                 statistics.median(watch_edits(src, watched, env, runs)), None))

    sh("docker", "load", "-i", str(work / f"{label}-1.tar"))
    walls, cpus = [], []
    images = ((mine_image, "ocibuild"), (f"{tag}:1", "docker"))
    # one start of each in turn: this machine's speed drifts within minutes, and both see the same drift
    starts = [[import_seconds(image, IMPORTS[label]) for image, _ in images] for _ in range(runs)]
    for (image, who), times in zip(images, zip(*starts)):
        print(f"  {label} {who:8} `{IMPORTS[label]}` as uid 1000, each start (wall/CPU): "
              + ", ".join(f"{w:.2f}/{c:.2f}" for w, c in times) + " s", file=sys.stderr)
        later = times[1:] or times
        walls.append(statistics.median(w for w, _ in later))
        cpus.append(statistics.median(c for _, c in later))
    rows.append((f"{label}: in-image `{IMPORTS[label]}`, CPU", *cpus))
    rows.append((f"{label}: in-image `{IMPORTS[label]}`, wall", *walls))
    rows.append((f"{label}: image size (MB, as loaded)", image_size(mine_image), image_size(f"{tag}:1")))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=["small", "ml"])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sh(str(ROOT / "scripts/start-docker.sh"))
    # ocibuild's own bytecode, as an installed copy has it (pip compiles on install; an editable
    # checkout under PYTHONDONTWRITEBYTECODE would otherwise compile every module at every start)
    sh(sys.executable, "-m", "compileall", "-q", str(ROOT / "ocibuild"))
    layout = Path(sh(str(ROOT / "fixtures/base/make-python-base.sh")).stdout.strip())
    with tempfile.TemporaryDirectory(prefix="vs-docker-") as tmp:
        work = Path(tmp)
        registry = start_registry(work / "registry")
        try:
            prepare_docker_base(layout, work)
            ml = work / "ml-src"
            ml.mkdir()
            (ml / "service.py").write_text(HEAVY)
            rows = []
            for label, service in (("small", ROOT / "examples/summarization"), ("ml", ml)):
                if args.only in (None, label):
                    rows += bench(label, service, layout, registry.host, work, args.runs)
        finally:
            registry.stop()
            made = sh("docker", "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
            gone = [t for t in made if t.startswith((f"{registry.host}/", "ocibuild-bench/small-", "ocibuild-bench/ml-"))]
            if gone:  # the images this run made (the bases stay, for the next run)
                subprocess.run(["docker", "rmi", *gone], capture_output=True)
    print("| path | ocibuild | docker | ratio |\n| --- | --- | --- | --- |")
    for name, mine, theirs in rows:
        unit = "" if "size" in name else " s"
        if theirs is None:
            print(f"| {name} | {mine:.2f}{unit} | - | - |")
        else:
            print(f"| {name} | {mine:.2f}{unit} | {theirs:.2f}{unit} | {mine / theirs:.2f}x |")
    print("\npeak RSS of each ocibuild process (itself or a subprocess it waited for, e.g. uv):")
    for args, rss in PEAK_RSS.items():
        print(f"  {rss:6.0f} MB  ocibuild {args}")


if __name__ == "__main__":
    main()
