"""Nothing re-resolved that did not change: `build` reuses the Python and Debian locks of a previous
build with the same inputs, without the network; `--refresh` and changed inputs resolve again."""

import json

import pytest

import ocibuild.bento.build as build_module
from ocibuild.bento.build import build_bento
from ocibuild.bento.info import DEBIAN_LOCK, LOCK
from ocibuild.bento.store import BentoStore
from tests.bento.test_build import tiny_service
from tests.conftest import run_process


class Offline(Exception):
    pass


def offline(*args, **kwargs):
    raise Offline("the network was used")


@pytest.fixture
def no_network(monkeypatch):
    def cut():
        monkeypatch.setattr(build_module, "lock_requirements", offline)
        monkeypatch.setattr("requests.Session.request", offline)
    return cut


def test_unchanged_inputs_reuse_both_locks_with_no_network(home, tmp_path, no_network):
    root = tiny_service(tmp_path)
    store = BentoStore(home)
    first = build_bento(root, store, version="1")
    no_network()
    (root / "service.py").write_text((root / "service.py").read_text() + "\n# edited\n")
    second = build_bento(root, store, version="2")
    for name in (LOCK, DEBIAN_LOCK):
        assert (second.path / name).read_text() == (first.path / name).read_text()
    with pytest.raises(Offline):  # --refresh resolves again
        build_bento(root, store, version="3", refresh=True)


def test_changed_requirements_are_resolved_again(home, tmp_path, monkeypatch):
    calls = []
    real = build_module.lock_requirements
    monkeypatch.setattr(build_module, "lock_requirements", lambda *a, **k: (calls.append(a), real(*a, **k)))
    store = BentoStore(home)
    build_bento(tiny_service(tmp_path), store, version="1")
    (tmp_path / "same").mkdir()
    (tmp_path / "other").mkdir()
    build_bento(tiny_service(tmp_path / "same"), store, version="2")
    assert len(calls) == 1
    changed = build_bento(tiny_service(tmp_path / "other", '"six==1.15.0"'), store, version="3")
    assert len(calls) == 2
    assert "six==1.15.0" in (changed.path / LOCK).read_text()


def test_build_containerize_in_one_process(home, tmp_path, python_base):
    root = tiny_service(tmp_path)
    out = tmp_path / "tiny.tar"
    result = run_process("build", str(root), "--version", "1", "--containerize", "--base", python_base,
                         "--image-output", str(out))
    assert result.returncode == 0, result.stderr
    assert "Built bento tiny:1" in result.stderr and "Image tiny:1 sha256:" in result.stderr
    assert result.stdout == f"{out}\n"  # what a script reads: the image written
    assert out.is_file()
    usage = run_process("build", str(root), "--version", "2", "--image-output", str(out))
    assert usage.returncode == 2 and "--image-output only applies with --containerize" in usage.stderr
    # flags whose value is a boolean, or the default typed out, are refused too, by the name typed
    usage = run_process("build", str(root), "--version", "2", "--load", "--no-provenance", "--format", "oci-archive",
                        "--push", "localhost:5000/x:1")
    assert usage.returncode == 2, usage.stderr
    assert "--format, --load, --push, --no-provenance only apply with --containerize" in usage.stderr
    assert [p.name for p in (home / "bentos" / "tiny").iterdir() if p.is_dir()] == ["1"]  # no bento 2


def test_build_containerize_refuses_bad_image_options_before_the_bento(home, tmp_path, python_base):
    """A bad image option is refused before the bento is built. A failure while the image is made
    keeps the bento, whole and named on stderr, for `containerize` to try again; stdout, which
    scripts read, stays empty."""
    root = tiny_service(tmp_path)
    build = ["build", str(root), "--containerize", "--base", python_base]
    for option, message in ((["--push", "127.0.0.1:1/x:bad!tag"], "invalid"),
                            (["--image-tag", "BAD TAG"], "invalid"),
                            (["--base", "oci-archive:/nonexistent/base.tar"], "does not exist"),
                            (["--load-platform", "linux/arm64", "--platform", "linux/amd64"], "not one of the platforms"),
                            (["--format", "oci-layout", "--load"], "--load needs --format oci-archive")):
        refused = run_process(*build[:-2], *option, *(build[-2:] if "--base" not in option else []))
        assert refused.returncode != 0 and message in refused.stderr, (option, refused.stderr)
        assert "Built bento" not in refused.stderr and refused.stdout == ""
        assert not (home / "bentos").exists(), option
    failed = run_process(*build, "--push", "127.0.0.1:1/tiny:1", "--output", "json")  # no registry listens there
    assert failed.returncode == 1 and "refused the connection" in failed.stderr and "Built bento tiny:" in failed.stderr
    assert failed.stdout == ""
    [kept] = json.loads(run_process("list", "-o", "json").stdout)
    assert f"Built bento {kept['tag']}" in failed.stderr


def test_build_containerize_json_is_one_document_with_the_references(home, tmp_path, python_base):
    root = tiny_service(tmp_path)
    out = tmp_path / "image"
    result = run_process("build", str(root), "--version", "j", "--containerize", "--base", python_base,
                         "--format", "oci-layout", "--image-output", str(out), "--output", "json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["tag"] == "tiny:j" and record["image"] == {"references": [str(out)]}
