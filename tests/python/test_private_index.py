"""A private index with basic auth: credentials from the environment, never written anywhere."""

import gzip
import io
import subprocess
import tarfile

import pytest
import pyzstd

from ocibuild.bento.archive import export_bento
from ocibuild.bento.build import build_bento
from ocibuild.bento.store import BentoStore
from ocibuild.errors import LockError, SpecError
from ocibuild.store.blobs import BlobStore
from tests.python.conftest import MODULE, PACKAGE, VERSION

SDK_SERVICE = '''
import ocibuild
import {module}

image = (ocibuild.images.PythonImage(python_version="3.11")
         .extra_index_url("http://${{PRIV_USER}}:${{PRIV_TOKEN}}@{host}/simple/")
         .python_packages("{package}=={version}"))


@ocibuild.service(image=image, envs=[{{"name": "PRIV_USER", "value": "builder", "stage": "build"}}])
class Private:
    @ocibuild.api
    def value(self) -> str:
        return {module}.VALUE
'''

PYPROJECT = '''
[project]
name = "private-service"
version = "0.1.0"
requires-python = ">=3.11"
dependencies = ["{package}=={version}"]

[[tool.uv.index]]
name = "private"
url = "http://{host}/simple/"
explicit = true

[tool.uv.sources]
{package} = {{ index = "private" }}
'''

PYPROJECT_SERVICE = '''
import ocibuild
import {module}


@ocibuild.service(image=ocibuild.images.PythonImage(python_version="3.11").pyproject_toml(), name="private")
class Private:
    @ocibuild.api
    def value(self) -> str:
        return {module}.VALUE
'''


def sdk_service(tmp_path, index):
    root = tmp_path / "sdk"
    root.mkdir()
    (root / "service.py").write_text(SDK_SERVICE.format(module=MODULE, package=PACKAGE, version=VERSION, host=index.host))
    return root


def pyproject_service(tmp_path, index):
    root = tmp_path / "pyproject"
    root.mkdir()
    fields = dict(module=MODULE, package=PACKAGE, version=VERSION, host=index.host)
    (root / "service.py").write_text(PYPROJECT_SERVICE.format(**fields))
    (root / "pyproject.toml").write_text(PYPROJECT.format(**fields))
    return root


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("PRIV_USER", "PRIV_TOKEN", "UV_INDEX_PRIVATE_USERNAME", "UV_INDEX_PRIVATE_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_sdk_index_with_env_references(home, tmp_path, private_index, clean_env):
    clean_env.setenv("PRIV_TOKEN", private_index.password)  # PRIV_USER: the build env's default
    bento = build_bento(sdk_service(tmp_path, private_index), BentoStore(home))
    lock = (bento.path / "env/python/requirements.lock.txt").read_text()
    assert f"{PACKAGE}=={VERSION}" in lock and "--hash=sha256:" in lock
    assert "${PRIV_TOKEN}" in (bento.path / "bento.yaml").read_text()  # stored unexpanded
    assert_nowhere(private_index.password, home)


def test_pyproject_index_with_uv_index_credentials(home, tmp_path, private_index, clean_env):
    clean_env.setenv("UV_INDEX_PRIVATE_USERNAME", private_index.user)
    clean_env.setenv("UV_INDEX_PRIVATE_PASSWORD", private_index.password)
    bento = build_bento(pyproject_service(tmp_path, private_index), BentoStore(home))
    assert f"{PACKAGE}=={VERSION}" in (bento.path / "env/python/requirements.lock.txt").read_text()
    assert_nowhere(private_index.password, home)


def test_per_package_index_pins_are_followed(home, tmp_path, private_index, clean_env):
    clean_env.setenv("UV_INDEX_PRIVATE_USERNAME", private_index.user)
    clean_env.setenv("UV_INDEX_PRIVATE_PASSWORD", private_index.password)
    root = pyproject_service(tmp_path, private_index)
    pyproject = root / "pyproject.toml"
    # six exists on PyPI but is pinned to the private index, which does not have it
    pyproject.write_text(pyproject.read_text().replace('"]\n', '", "six"]\n', 1) + 'six = { index = "private" }\n')
    with pytest.raises(LockError, match="six"):
        build_bento(root, BentoStore(home))
    pyproject.write_text(pyproject.read_text().replace('six = { index = "private" }\n', ""))
    lock = (build_bento(root, BentoStore(home)).path / "env/python/requirements.lock.txt").read_text()
    assert "six==" in lock and f"{PACKAGE}=={VERSION}" in lock


def test_without_credentials_one_line_naming_the_host(home, tmp_path, private_index, clean_env):
    with pytest.raises(LockError) as failure:
        build_bento(pyproject_service(tmp_path, private_index), BentoStore(home))
    message = str(failure.value)
    assert "\n" not in message and private_index.host in message
    assert BentoStore(home).list() == []


def test_missing_env_reference_is_one_line(home, tmp_path, private_index, clean_env):
    with pytest.raises(SpecError, match=rf"^index {private_index.host} needs the environment variable PRIV_TOKEN, which is not set$"):
        build_bento(sdk_service(tmp_path, private_index), BentoStore(home))


def test_wrong_password_is_one_line_without_the_secret(home, tmp_path, private_index, clean_env):
    wrong = "wrong-secret-91c4e2"
    clean_env.setenv("PRIV_TOKEN", wrong)
    with pytest.raises(LockError) as failure:
        build_bento(sdk_service(tmp_path, private_index), BentoStore(home))
    message = str(failure.value)
    assert "\n" not in message and private_index.host in message and wrong not in message
    assert BentoStore(home).list() == []


@pytest.mark.slow
def test_private_package_in_a_working_image_and_no_secret_anywhere(home, tmp_path, private_index, clean_env,
                                                                    python_base, docker_engine):
    from tests.builds import local_sources, write
    from ocibuild.containerize import ContainerizeOptions, containerize

    clean_env.setenv("PRIV_TOKEN", private_index.password)
    bento = build_bento(sdk_service(tmp_path, private_index), BentoStore(home))
    exported = tmp_path / "bento.tar.gz"
    export_bento(bento, exported)
    image = containerize(bento, ContainerizeOptions(base=python_base), local_sources(BlobStore(home / "cache")))
    archive = write(image, tmp_path / "image.tar", tag="ocibuild-test/private:1")
    secret = private_index.password.encode()
    assert_nowhere(private_index.password, home)
    assert secret not in gzip.decompress(exported.read_bytes())
    for name, data in tar_members(archive):
        assert secret not in data, name
        for layer_name, layer_data in layer_files(data):
            assert secret not in layer_data, f"{name}:{layer_name}"
    out = subprocess.run(["docker", "load", "-i", str(archive)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    try:
        run = subprocess.run(["docker", "run", "--rm", "--network", "host", "ocibuild-test/private:1", "python3", "-c",
                              f"import {MODULE}, os; print({MODULE}.VALUE, 'PRIV_USER' in os.environ)"],
                             capture_output=True, text=True, timeout=120)
        assert run.stdout.strip() == "from the private index False", run.stderr
    finally:
        subprocess.run(["docker", "rmi", "-f", "ocibuild-test/private:1"], capture_output=True)


def test_an_imported_bento_cannot_run_its_own_code_in_uv(home, tmp_path, private_index, clean_env):
    """indexes.json carries build-env defaults to the install at containerize time. A bento from
    elsewhere that recorded LD_PRELOAD, naming a library it ships itself, ran that library in
    every uv process; now only what says where the wheels are reaches uv (PRIV_USER here)."""
    import json
    import shutil

    from ocibuild.oci.platform import host_platform
    from ocibuild.python.deps import install
    from tests.conftest import need

    need(shutil.which("gcc") is not None, "gcc is not installed")
    marker = tmp_path / "ran"
    source = tmp_path / "preload.c"
    source.write_text('#include <stdio.h>\n__attribute__((constructor)) static void ran(void) '
                      f'{{ FILE *f = fopen("{marker}", "a"); if (f) fclose(f); }}\n')
    library = tmp_path / "preload.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    subprocess.run(["true"], env={"LD_PRELOAD": str(library)}, check=True)
    assert marker.exists()  # the library does run wherever LD_PRELOAD reaches
    marker.unlink()

    clean_env.setenv("PRIV_TOKEN", private_index.password)
    bento = build_bento(sdk_service(tmp_path, private_index), BentoStore(home))
    recorded = bento.path / "env/python/indexes.json"
    data = json.loads(recorded.read_text())
    data["build_envs"]["LD_PRELOAD"] = str(library)
    recorded.write_text(json.dumps(data))
    clean_env.delenv("LD_PRELOAD", raising=False)
    install(bento.path / "env/python/requirements.lock.txt", tmp_path / "target", "3.11", host_platform())
    assert (tmp_path / "target" / MODULE / "__init__.py").is_file()
    assert not marker.exists()


def assert_nowhere(secret: str, directory) -> None:
    data = secret.encode()
    for path in directory.rglob("*"):
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            assert data not in content, path
            if content[:2] == b"\x1f\x8b":
                assert data not in gzip.decompress(content), path


def tar_members(archive):
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile():
                yield member.name, tar.extractfile(member).read()


def layer_files(blob: bytes):
    """The files inside a layer blob (gzip, zstd or plain tar); nothing for non-tar blobs."""
    if blob[:2] == b"\x1f\x8b":
        blob = gzip.decompress(blob)
    elif blob[:4] == b"\x28\xb5\x2f\xfd":
        blob = pyzstd.decompress(blob)
    try:
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    yield member.name, tar.extractfile(member).read()
    except tarfile.TarError:
        return


def test_credentials_from_netrc(home, tmp_path, private_index, clean_env):
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {private_index.user} password {private_index.password}\n")
    netrc.chmod(0o600)
    clean_env.setenv("NETRC", str(netrc))
    bento = build_bento(pyproject_service(tmp_path, private_index), BentoStore(home))
    assert f"{PACKAGE}=={VERSION}" in (bento.path / "env/python/requirements.lock.txt").read_text()
    assert_nowhere(private_index.password, home)
