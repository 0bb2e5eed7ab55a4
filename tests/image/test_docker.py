"""The example image under a real Docker engine: loaded, run with --network host, called."""

import subprocess
import time

import pytest
import requests

from ocibuild.layers.compression import Compression
from tests.conftest import free_port
from tests.builds import containerize, write

TEXT = ("ocibuild builds container images. It needs no Docker daemon at all. "
        "Cats sleep most of the day. Images built by ocibuild need no daemon and no root.")


@pytest.fixture(scope="module")
def loaded(example, docker_engine, tmp_path_factory):
    """name -> image, for gzip and zstd builds of the example, loaded with `docker load`."""
    names = {}
    for compression in (Compression.GZIP, Compression.ZSTD):
        name = f"ocibuild-test/summarization:{compression.value}"
        image = containerize(example, compression=compression)
        archive = write(image, tmp_path_factory.mktemp(compression.value) / "img.tar", tag=name)
        out = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert f"Loaded image: {name}" in out.stdout
        names[compression] = name
    yield names
    subprocess.run(["docker", "rmi", "-f", *names.values()], capture_output=True)


def start(image: str, env: dict, command: str | None = "serve"):
    from testcontainers.core.container import DockerContainer

    container = DockerContainer(image).with_kwargs(network_mode="host")
    for key, value in env.items():
        container = container.with_env(key, value)
    if command:
        container = container.with_command(command)
    return container.start()


def wait_ready(port: int, container, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.3)
    logs = container.get_wrapped_container().logs().decode()
    raise AssertionError(f"the service never became ready:\n{logs}")


@pytest.mark.parametrize("compression", [Compression.GZIP, Compression.ZSTD])
def test_image_serves_a_real_summary(loaded, compression):
    port = free_port()
    container = start(loaded[compression], {"SUMMARY_API_KEY": "k", "PORT": str(port)})
    try:
        wait_ready(port, container)
        response = requests.post(f"http://127.0.0.1:{port}/summarize", json={"text": TEXT}, timeout=30)
        assert response.status_code == 200, response.text
        summary = response.json()
        assert "Cats sleep" not in summary and "ocibuild" in summary
        bad = requests.post(f"http://127.0.0.1:{port}/summarize", json={"text": 5}, timeout=10)
        assert bad.status_code == 400 and "text" in bad.json()["error"]
        metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert 'ocibuild_requests_total{endpoint="/summarize",status="200"} 1' in metrics
        docs = requests.get(f"http://127.0.0.1:{port}/docs.json", timeout=10).json()
        assert "/summarize" in docs["paths"]
        wrapped = container.get_wrapped_container()
        wrapped.stop(timeout=20)  # SIGTERM: drain and exit 0
        wrapped.reload()
        assert wrapped.attrs["State"]["ExitCode"] == 0
    finally:
        container.stop()


def test_no_command_also_serves(loaded):
    port = free_port()
    container = start(loaded[Compression.GZIP], {"SUMMARY_API_KEY": "k", "PORT": str(port)}, command=None)
    try:
        wait_ready(port, container)
    finally:
        container.stop()


def test_missing_required_env_stops_the_container_with_its_name(loaded):
    out = subprocess.run(["docker", "run", "--rm", "--network", "host", loaded[Compression.GZIP], "serve"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "required environment variable(s) not set: SUMMARY_API_KEY" in out.stderr


def test_other_commands_run_as_given(loaded):
    out = subprocess.run(["docker", "run", "--rm", "--network", "host", loaded[Compression.GZIP],
                          "python3", "-c", "import numpy, os; print(numpy.__name__, os.getuid(), os.environ['HOME'])"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["numpy", "1000", "/home/ocibuild"]
