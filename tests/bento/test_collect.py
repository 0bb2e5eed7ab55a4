import os

import pytest

from ocibuild.bento.collect import collect_files
from ocibuild.errors import SpecError


def make(root, files):
    for rel in files:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rel)


def names(root):
    return [f.relpath for f in collect_files(root)]


def test_builtin_ignores(tmp_path):
    make(tmp_path, ["service.py", ".git/config", "__pycache__/x.pyc", "pkg/__pycache__/y.pyc",
                    "pkg/mod.pyc", ".venv/bin/python", "pkg/mod.py"])
    assert names(tmp_path) == ["pkg/mod.py", "service.py"]


def test_negation_directories_and_anchoring(tmp_path):
    make(tmp_path, ["service.py", "a.log", "keep.log", "data/big.bin", "sub/data/inner.txt",
                    "build/out.txt", "sub/build/out.txt", "notes/todo.md"])
    (tmp_path / ".bentoignore").write_text("*.log\n!keep.log\n/build/\ndata/\nnotes/*.md\n")
    assert names(tmp_path) == [".bentoignore", "keep.log", "service.py", "sub/build/out.txt"]


def test_comments_and_blank_lines(tmp_path):
    make(tmp_path, ["service.py", "#literal", "x.tmp"])
    (tmp_path / ".bentoignore").write_text("# a comment\n\n*.tmp\n\\#literal\n")
    assert names(tmp_path) == [".bentoignore", "service.py"]


@pytest.mark.parametrize(("content", "message"), [
    (b"*.log\n!\n", r"\.bentoignore: Invalid git pattern: '!'"),
    (b"*.log\n\xff\n", r"\.bentoignore is not UTF-8 text \(byte 6\)"),
])
def test_a_bad_bentoignore_is_an_error_naming_it(tmp_path, content, message):
    make(tmp_path, ["service.py"])
    (tmp_path / ".bentoignore").write_bytes(content)
    with pytest.raises(SpecError, match=message):
        collect_files(tmp_path)


def test_symlink_inside_kept_outside_skipped(tmp_path, caplog):
    root = tmp_path / "svc"
    make(root, ["service.py", "data/real.txt"])
    outside = tmp_path / "secret.txt"
    outside.write_text("secret")
    os.symlink("data/real.txt", root / "inside.txt")
    os.symlink(outside, root / "escape.txt")
    os.symlink(tmp_path, root / "escape_dir")
    os.symlink("missing", root / "broken")
    files = {f.relpath: f for f in collect_files(root)}
    assert sorted(files) == ["data/real.txt", "inside.txt", "service.py"]
    assert files["inside.txt"].link == "data/real.txt"
    assert "escape.txt: symlink points outside" in caplog.text
    assert "escape_dir: symlink points outside" in caplog.text


def test_a_symlink_loop_is_skipped_not_a_crash(tmp_path, caplog):
    make(tmp_path, ["service.py"])
    os.symlink("loop", tmp_path / "loop")
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    assert names(tmp_path) == ["service.py"]
    assert "loop: symlink loop" in caplog.text and "a: symlink loop" in caplog.text
