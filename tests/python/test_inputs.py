"""Inputs users already have: pyproject + uv.lock, pylock.toml, hash-pinned requirements, build envs."""

import re
import textwrap

import pytest
import yaml

from ocibuild.bento.build import build_bento
from ocibuild.python.inputs import requirement_entries
from ocibuild.bento.store import BentoStore
from ocibuild.errors import LockError, SpecError
from ocibuild.sdk.images import PythonImage
from tests.conftest import FIXTURES, copy_service
from tests.python.conftest import locked_service

SERVICES = FIXTURES / "services"
LOCK = "env/python/requirements.lock.txt"


def lock_of(bento) -> str:
    return (bento.path / LOCK).read_text()


def pins(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==([^ ;\\\n]+)", text, re.M))


@pytest.mark.parametrize("fixture", ["uvlock", "pylock"])
def test_locked_numpy_is_used_exactly_with_its_hashes(home, tmp_path, fixture):
    root = locked_service(fixture, tmp_path / fixture)
    bento = build_bento(root, BentoStore(home))
    lock = lock_of(bento)
    assert pins(lock)["numpy"] == "1.26.4"  # the newest numpy is 2.x: nothing was re-resolved
    numpy_line = next(line for line in lock.splitlines() if line.startswith("numpy=="))
    # the cp311 manylinux x86_64 wheel's hash, as the lock gives it
    assert "--hash=sha256:666dbfb6ec68962c033a450943ded891bed2d54e6755e35e5835d63f4f6931d5" in numpy_line
    assert "uvicorn" in pins(lock)  # the runtime is resolved around the pins
    assert all("--hash=sha256:" in entry for _, entry in requirement_entries(lock, LOCK))


@pytest.mark.parametrize("line", ["numpy>=1.26 --hash=sha256:" + "d" * 64, "numpy --hash=sha256:" + "d" * 64,
                                  "numpy==1.26.* --hash=sha256:" + "d" * 64,
                                  "numpy @ file:///tmp/numpy.whl --hash=sha256:" + "d" * 64])
def test_a_hashed_requirement_that_pins_no_version_is_refused_as_it_is_read(line):
    """The build would otherwise pass, and only containerize refuse the lock it wrote."""
    with pytest.raises(LockError, match=r"^requirements.txt: numpy is not pinned to one version or to an http\(s\) URL"):
        requirement_entries(f"six==1.16.0 --hash=sha256:{'e' * 64}\n{line}\n", "requirements.txt")


def test_uv_lock_that_does_not_match_the_pyproject_is_one_line(home, tmp_path):
    root = locked_service("uvlock", tmp_path / "uvlock")
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["numpy>=1.26"]', '["numpy>=1.26", "six"]'))
    with pytest.raises(LockError, match=r"^uvlock/uv.lock does not match pyproject.toml: run `uv lock`$"):
        build_bento(root, BentoStore(home))
    assert BentoStore(home).list() == []


def test_pyproject_extras_come_from_the_uv_lock(home, tmp_path):
    root = locked_service("uvlock", tmp_path / "uvlock")
    service = root / "service.py"
    service.write_text(service.read_text().replace('pyproject_toml("pyproject.toml")',
                                                   'pyproject_toml("pyproject.toml", extras=["extra-six"])'))
    lock = lock_of(build_bento(root, BentoStore(home)))
    assert pins(lock)["numpy"] == "1.26.4" and "six" in pins(lock)


def test_pyproject_without_uv_lock_is_resolved(home, tmp_path):
    root = locked_service("uvlock", tmp_path / "uvlock")
    (root / "uv.lock").unlink()
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["numpy>=1.26"]', '["six==1.16.0"]'))
    bento = build_bento(root, BentoStore(home))
    assert pins(lock_of(bento))["six"] == "1.16.0"
    assert "# from pyproject.toml" in (bento.path / "env/python/requirements.txt").read_text()


SIX_HASHED = """\
six==1.16.0 \\
    --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254
"""


def test_hash_pinned_requirements_are_taken_as_they_are(home, tmp_path):
    root = tmp_path / "svc"
    root.mkdir()
    (root / "requirements.txt").write_text(SIX_HASHED)
    (root / "service.py").write_text(textwrap.dedent("""
        import ocibuild
        import six

        @ocibuild.service(image=ocibuild.images.PythonImage(python_version="3.11").requirements_file("requirements.txt"))
        class Pinned:
            pass
    """))
    lock = lock_of(build_bento(root, BentoStore(home)))
    six = [line for line in lock.splitlines() if line.startswith("six==")]
    # exactly the user's single hash (uv would have generated both the wheel's and the sdist's)
    assert six == ["six==1.16.0 --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"]


def test_build_stage_envs_stay_out_of_the_bento_and_runtime_requirements(home):
    bento = build_bento(SERVICES / "numpy_top", BentoStore(home))
    info = yaml.safe_load((bento.path / "bento.yaml").read_text())
    assert info["envs"] == [{"name": "VEC_SCALE", "value": "2"}, {"name": "VEC_RUNTIME", "value": "r"}]
    from ocibuild.bento.loader import load_service

    assert load_service(SERVICES / "numpy_top").spec.required_envs() == ()


def test_required_build_env_must_be_set(home, tmp_path, monkeypatch):
    root = tmp_path / "svc"
    root.mkdir()
    (root / "service.py").write_text(textwrap.dedent("""
        import ocibuild

        @ocibuild.service(envs=[{"name": "OCIBUILD_TEST_BUILD_TOKEN", "stage": "build"}])
        class NeedsToken:
            pass
    """))
    monkeypatch.delenv("OCIBUILD_TEST_BUILD_TOKEN", raising=False)
    with pytest.raises(SpecError, match="^the build env OCIBUILD_TEST_BUILD_TOKEN of service needstoken is not set$"):
        build_bento(root, BentoStore(home))


def test_sdk_methods_and_their_record():
    image = (PythonImage(python_version="3.11").pyproject_toml("pyproject.toml", extras=["gpu"])
             .lock_file("pylock.toml").index_url("https://${IDX_USER}:${IDX_TOKEN}@pkgs.example/simple")
             .extra_index_url("https://alice:s3cret@more.example/simple"))
    record = image.to_dict()
    assert record["index_url"] == "https://${IDX_USER}:${IDX_TOKEN}@pkgs.example/simple"  # stored unexpanded
    assert record["extra_index_urls"] == ["https://more.example/simple"]  # literal credentials stripped
    assert record["pyproject"] == "pyproject.toml" and record["pyproject_extras"] == ["gpu"]
    assert record["lock_files"] == ["pylock.toml"]
    with pytest.raises(SpecError, match="PEP 751"):
        PythonImage().lock_file("requirements.lock")
    with pytest.raises(SpecError, match="invalid index URL 'ftp://x'"):
        PythonImage().index_url("ftp://x")


def test_installed_metadata_keeps_the_headers_and_reads_no_more_than_64_kib(tmp_path, monkeypatch):
    import builtins

    from ocibuild.python.deps import installed_metadata

    (tmp_path / "a-1.dist-info").mkdir()
    (tmp_path / "a-1.dist-info" / "METADATA").write_text("Name: a\nLicense: MIT\n\n" + "long description\n" * 600_000)
    (tmp_path / "b-1.dist-info").mkdir()
    (tmp_path / "b-1.dist-info" / "METADATA").write_text("Name: b\nClassifier: " + "x" * (100 << 10))
    reads = []
    real_open = builtins.open

    def counting_open(*args, **kwargs):
        f = real_open(*args, **kwargs)
        read = f.read
        f.read = lambda n=-1: reads.append(n) or read(n)
        return f

    monkeypatch.setattr(builtins, "open", counting_open)
    found = installed_metadata(tmp_path)
    assert found["a-1.dist-info"] == "Name: a\nLicense: MIT"
    assert len(found["b-1.dist-info"]) == 64 << 10 and found["b-1.dist-info"].startswith("Name: b\n")
    assert reads == [64 << 10, 64 << 10]


def test_the_install_environment_takes_only_what_says_where_the_wheels_are(tmp_path):
    """A bento's recorded build-env defaults reach uv at containerize time only if its indexes
    need them: a `${VAR}` in an index URL, uv's index variables, per-index credentials."""
    import json

    from ocibuild.python.inputs import install_environment

    recorded = tmp_path / "indexes.json"
    recorded.write_text(json.dumps({
        "indexes": [{"url": "http://${HOST}/simple/", "name": "private", "default": False, "from_pyproject": False}],
        "build_envs": {"HOST": "index.example", "UV_INDEX_PRIVATE_USERNAME": "builder", "UV_EXTRA_INDEX_URL": "http://x/",
                       "LD_PRELOAD": "/bento/src/evil.so", "PYTHONPATH": "/bento/src", "UV_CONFIG_FILE": "/bento/uv.toml",
                       "SUMMARY_SENTENCES": "2"}}))
    indexes, env = install_environment(recorded, {"PATH": "/usr/bin", "HOST": "mine.example"})
    assert [i.name for i in indexes] == ["private"]
    assert env == {"PATH": "/usr/bin", "HOST": "mine.example", "UV_INDEX_PRIVATE_USERNAME": "builder",
                   "UV_EXTRA_INDEX_URL": "http://x/", "UV_INDEX": "private=http://mine.example/simple/"}
    assert install_environment(tmp_path / "absent.json", {"PATH": "/usr/bin"}) == ([], {"PATH": "/usr/bin"})


@pytest.mark.parametrize("content, message", [
    ("[" * 100_000 + "]" * 100_000, "unreadable"),
    ("not json", "unreadable"),
    ('["x"]', "`indexes` must be"),
    ('{"indexes": [{"url": "http://x/", "command": "rm"}]}', "`indexes` must be"),
    ('{"indexes": [{"url": 1}]}', "`indexes` must be"),
    ('{"indexes": [{"url": "http://x/", "default": "yes"}]}', "`indexes` must be"),
    ('{"build_envs": {"A=B": "c"}}', "`build_envs` must"),
    ('{"build_envs": {"A": 1}}', "`build_envs` must"),
    ('{"build_envs": []}', "`build_envs` must"),
])
def test_a_malformed_indexes_record_is_one_line(tmp_path, content, message):
    from ocibuild.errors import RecordError
    from ocibuild.python.inputs import read_indexes

    recorded = tmp_path / "indexes.json"
    recorded.write_text(content)
    with pytest.raises(RecordError, match=message) as refused:
        read_indexes(recorded)
    assert "\n" not in str(refused.value)
