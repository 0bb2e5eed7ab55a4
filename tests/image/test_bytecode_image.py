"""Bytecode in the image: every `.py` of the dependency, runtime and source layers has a checked
hash-based `.pyc` beside it, and the image's non-root user runs from them without compiling."""

import subprocess
import tarfile

from tests.builds import write


def layer_members(image, index) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(image.layers[index].path()) as tar:
        return {m.name: m for m in tar.getmembers()}


def pyc_for(path: str) -> str:
    directory, _, name = path.rpartition("/")
    return f"{directory}/__pycache__/{name[:-3]}.cpython-311.pyc"


def test_every_python_source_of_our_layers_has_hash_based_bytecode(example):
    for index in range(1, len(example.image.layers)):
        members = layer_members(example.image, index)
        sources = [n for n, m in members.items() if n.endswith(".py") and m.isreg()]
        missing = [s for s in sources if pyc_for(s) not in members]
        assert not missing, f"layer {index}: {missing[:5]}"
        for source in sources[:50]:
            pyc = members[pyc_for(source)]
            assert pyc.mode == 0o644 and (pyc.uid, pyc.gid) == (0, 0)
    source_layer = layer_members(example.image, -1)
    assert "app/src/__pycache__/service.cpython-311.pyc" in source_layer
    with tarfile.open(example.image.layers[-1].path()) as tar:
        header = tar.extractfile("app/src/__pycache__/service.cpython-311.pyc").read(16)
    assert int.from_bytes(header[4:8], "little") == 0b11  # PEP 552: hash-based, checked


def test_the_image_user_imports_from_the_bytecode(example, docker_engine, tmp_path):
    archive = write(example.image, tmp_path / "img.tar", tag="ocibuild-test/bytecode:1")
    assert subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True).returncode == 0
    try:
        out = subprocess.run(["docker", "run", "--rm", "--network", "host", "ocibuild-test/bytecode:1", "python3", "-v",
                              "-c", "import numpy, ocibuild.runtime.server, service"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        ours = [line for line in out.stderr.splitlines() if "/opt/ocibuild/" in line or "/app/src/" in line]
        assert any("code object from '/app/src/__pycache__/service.cpython-311.pyc'" in line for line in ours)
        assert any("/opt/ocibuild/python/numpy/__pycache__/__init__.cpython-311.pyc matches" in line for line in ours)
        assert any("/opt/ocibuild/runtime/ocibuild/runtime/__pycache__/server.cpython-311.pyc matches" in line
                   for line in ours)
        compiled = [line for line in ours if line.startswith("# could not create") or "# wrote" in line]
        assert not compiled, compiled[:5]  # nothing recompiled, nothing tried to write
    finally:
        subprocess.run(["docker", "rmi", "ocibuild-test/bytecode:1"], capture_output=True)
