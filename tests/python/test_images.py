"""Images of services built on this host without their dependencies: the real packages run inside."""

import subprocess

import pytest
import requests

from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.containerize import ContainerizeOptions, containerize
from ocibuild.store.blobs import BlobStore
from tests.builds import local_sources, write
from tests.conftest import FIXTURES, copy_service, free_port
from tests.python.conftest import locked_service

pytestmark = pytest.mark.slow
SERVICES = FIXTURES / "services"


def loaded_image(home, tmp_path, root, python_base, tag):
    bento = build_bento(root, BentoStore(home))
    image = containerize(bento, ContainerizeOptions(base=python_base), local_sources(BlobStore(home / "cache")))
    archive = write(image, tmp_path / "image.tar", tag=tag)
    out = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return tag


def docker_python(tag: str, code: str) -> str:
    run = subprocess.run(["docker", "run", "--rm", "--network", "host", tag, "python3", "-c", code],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


@pytest.mark.parametrize("fixture", ["uvlock", "pylock"])
def test_locked_numpy_is_the_numpy_in_the_image(home, tmp_path, python_base, docker_engine, fixture):
    tag = loaded_image(home, tmp_path, locked_service(fixture, tmp_path / fixture), python_base,
                       f"ocibuild-test/{fixture}:1")
    try:
        assert docker_python(tag, "import numpy; print(numpy.__version__)") == "1.26.4"
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)


def test_numpy_at_top_level_serves_in_the_image(home, tmp_path, python_base, docker_engine):
    from tests.image.test_docker import start, wait_ready

    tag = loaded_image(home, tmp_path, SERVICES / "numpy_top", python_base, "ocibuild-test/numpy-top:1")
    port = free_port()
    container = start(tag, {"PORT": str(port)})
    try:
        wait_ready(port, container)
        base = f"http://127.0.0.1:{port}"
        assert requests.post(f"{base}/length", json={"values": [3, 4]}, timeout=10).json() == 10.0
        assert requests.post(f"{base}/shift", json={"values": [1, 2], "by": 1}, timeout=10).json() == [2.0, 3.0]
        assert requests.post(f"{base}/version", json={}, timeout=10).json() == "2.1.3"
        env = container.get_wrapped_container().attrs["Config"]["Env"]
        assert "VEC_RUNTIME=r" in env and not any(e.startswith("VEC_BUILD_ONLY") for e in env)
    finally:
        container.stop()
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)
