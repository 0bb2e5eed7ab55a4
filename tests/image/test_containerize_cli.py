"""`ocibuild containerize` from the command line: outputs, --load, and failures that change nothing."""

import json
import subprocess
import sys

import pytest
import requests

from tests.conftest import ECHO, copy_service, run_process
from tests.registry.conftest import plain_registry, registry_bin  # noqa: F401 - fixtures: a registry to push to


@pytest.fixture
def echo_bento(home, tmp_path):
    src = copy_service(ECHO, tmp_path / "echo")
    assert run_process("build", str(src), "--version", "1").returncode == 0
    return "echo:1"


def test_default_output_name_and_digest_line(echo_bento, python_base, tmp_path):
    result = run_process("containerize", echo_bento, "--base", python_base, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "echo-1.tar").is_file()
    assert "Image echo:1 sha256:" in result.stderr
    assert result.stdout.splitlines() == ["echo-1.tar"]
    assert "layers built" in result.stderr.splitlines()[-1]


def test_oci_dir_output_replaces_a_layout_atomically(echo_bento, python_base, tmp_path):
    out = tmp_path / "layout"
    for _ in range(2):
        result = run_process("containerize", echo_bento, "--base", python_base, "--format", "oci-dir",
                             "-o", str(out), "--image-tag", "registry.local:5000/team/echo:v1")
        assert result.returncode == 0, result.stderr
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "registry.local:5000/team/echo:v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echo", "home", "layout"]  # no staging left behind


def assert_fails_cleanly(result, fragment):
    assert result.returncode != 0
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_failures_leave_the_output_as_it_was(echo_bento, python_base, tmp_path):
    out = tmp_path / "img.tar"
    out.write_bytes(b"previous content")
    assert_fails_cleanly(run_process("containerize", echo_bento, "--base", "oci-layout:/nope", "-o", str(out)),
                         "does not exist")
    assert_fails_cleanly(run_process("containerize", echo_bento, "--base", python_base, "-o", str(out),
                                     "--image-tag", "Bad Name"), "invalid reference 'Bad Name'")
    assert_fails_cleanly(run_process("containerize", echo_bento, "-o", str(out), "--platform", "linux/arm64"),
                         "was locked for linux/amd64")
    assert_fails_cleanly(run_process("containerize", "missing:1", "-o", str(out)), "no bento missing:1")
    assert out.read_bytes() == b"previous content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["echo", "home", "img.tar"]


def test_load_without_an_engine_keeps_the_tarball(echo_bento, python_base, tmp_path):
    out = tmp_path / "img.tar"
    result = run_process("containerize", echo_bento, "--base", python_base, "-o", str(out), "--load",
                         env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode != 0
    assert "no Docker engine is reachable" in result.stderr and str(out) in result.stderr
    assert out.is_file()


def test_load_into_the_engine(echo_bento, python_base, docker_engine, tmp_path):
    result = run_process("containerize", echo_bento, "--base", python_base, "-o", str(tmp_path / "i.tar"),
                         "--load", "--image-tag", "ocibuild-test/echo:cli")
    assert result.returncode == 0, result.stderr
    assert "Loaded image: ocibuild-test/echo:cli" in result.stderr and result.stdout == "ocibuild-test/echo:cli\n"
    out = subprocess.run(["docker", "run", "--rm", "--network", "host", "-e", "ECHO_TOKEN=t", "ocibuild-test/echo:cli",
                          "python3", "-c", "import os; print(os.environ['ECHO_PREFIX'])"], capture_output=True, text=True)
    assert out.stdout.strip() == ">", out.stderr
    subprocess.run(["docker", "rmi", "ocibuild-test/echo:cli"], capture_output=True)


def test_a_push_that_fails_leaves_no_local_output_written(echo_bento, python_base, tmp_path):
    """The push runs before the archive is written: a refused push leaves the output as it was."""
    out = tmp_path / "both.tar"
    result = run_process("containerize", echo_bento, "--base", python_base, "-o", str(out),
                         "--push", "127.0.0.1:1/echo:1")  # nothing listens there
    assert result.returncode == 1 and "refused the connection" in result.stderr and result.stdout == ""
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".ocibuild")] == []


def test_an_output_that_cannot_be_written_is_refused_before_the_push(echo_bento, python_base, plain_registry,
                                                                     tmp_path):
    (tmp_path / "afile").write_text("a file, not a directory")
    ref = f"{plain_registry.host}/ocibuild/never:1"
    result = run_process("containerize", echo_bento, "--base", python_base, "-o", str(tmp_path / "afile" / "x.tar"),
                         "--push", ref)
    assert result.returncode == 1 and "is not a directory this user may write" in result.stderr
    assert "pushing" not in result.stderr
    assert requests.get(f"http://{plain_registry.host}/v2/ocibuild/never/tags/list").status_code == 404


def test_a_local_output_that_fails_after_the_push_says_what_was_pushed(echo_bento, python_base, plain_registry,
                                                                      tmp_path):
    """The archive runs out of room (a file size limit, as a full disk would) once the push is done."""
    import resource
    import signal

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))

    warm = run_process("containerize", echo_bento, "--base", python_base, "-o", str(tmp_path / "warm.tar"))
    assert warm.returncode == 0, warm.stderr  # every layer cached: only the archive is large
    out = tmp_path / "big.tar"
    result = subprocess.run([sys.executable, "-m", "ocibuild", "containerize", echo_bento, "--base", python_base,
                             "-o", str(out), "--push", f"{plain_registry.host}/ocibuild/half:1"],
                            capture_output=True, text=True, timeout=300, preexec_fn=small_files)
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: pushed {plain_registry.host}/ocibuild/half@sha256:") and f"cannot write {out}" in last
    assert not out.exists()


def test_load_without_an_output_leaves_no_archive_behind(echo_bento, python_base, docker_engine, tmp_path):
    """The image goes into the engine; its archive was a means, not an output (stdout names the image)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = run_process("containerize", echo_bento, "--base", python_base, "--load", "--image-tag",
                         "ocibuild-test/echo:no-archive", cwd=cwd)
    try:
        assert result.returncode == 0, result.stderr
        assert result.stdout == "ocibuild-test/echo:no-archive\n" and "loading into the Docker engine" in result.stderr
        assert list(cwd.iterdir()) == []
        assert subprocess.run(["docker", "image", "inspect", "ocibuild-test/echo:no-archive"],
                              capture_output=True).returncode == 0
    finally:
        subprocess.run(["docker", "rmi", "ocibuild-test/echo:no-archive"], capture_output=True)
