"""Bytecode for images: checked hash-based `.pyc` by the image's Python minor version, deterministic,
named for the image's paths, and accepted by that interpreter without rewriting."""

from __future__ import annotations

import importlib.util
import marshal
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ocibuild.layers import bytecode as bc
from ocibuild.layers.tarwriter import Entry

SOURCE = 'KINDS = {"a", "b", "c", "d"}\n\ndef f(x):\n    return x in {"x", "y", "z"}\n'


def compile_one(tmp_path: Path, name: str, seed: str | None = None) -> bytes:
    src = tmp_path / "mod.py"
    src.write_text(SOURCE)
    out = bc.bytecode_for("3.11").compile([(src, "opt/app/mod.py")], tmp_path / name)
    assert list(out) == ["opt/app/__pycache__/mod.cpython-311.pyc"]
    return out["opt/app/__pycache__/mod.cpython-311.pyc"].read()


def test_pyc_is_checked_hash_named_for_the_image_and_deterministic(tmp_path):
    data = compile_one(tmp_path, "one")
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b11  # hash-based, checked
    assert data[8:16] == importlib.util.source_hash(SOURCE.encode())
    assert marshal.loads(data[16:]).co_filename == "/opt/app/mod.py"  # never the host's path
    assert compile_one(tmp_path, "two") == data


def test_pyc_bytes_are_what_py_compile_writes(tmp_path):
    """The compiler writes `.pyc` into a pack rather than through py_compile; the bytes are the
    same, for sources with a coding cookie, frozenset constants, a module docstring; one that does
    not compile gets none, and the others in its pack keep theirs."""
    sources = {"a.py": SOURCE.encode(), "b.py": b"# -*- coding: latin-1 -*-\ns = '\xe9t\xe9'\n",
               "bad.py": b"def (:\n", "c.py": b'"""Doc."""\nimport os\nX = frozenset({1, 2, 3})\n'}
    for name, data in sources.items():
        (tmp_path / name).write_bytes(data)
    compiler = bc.bytecode_for("3.11")
    out = compiler.compile([(tmp_path / n, f"opt/{n}") for n in sources], tmp_path / "packs")
    assert sorted(out) == [f"opt/__pycache__/{n}.cpython-311.pyc" for n in ("a", "b", "c")]
    assert len({c.pack for c in out.values()}) == 1 and len(os.listdir(tmp_path / "packs")) == 1  # one file
    for name in ("a", "b", "c"):
        expected = tmp_path / f"{name}.pyc"
        subprocess.run([compiler.interpreter, "-S", "-c", "import py_compile, sys; py_compile.compile(sys.argv[1], "
                        "cfile=sys.argv[2], dfile=sys.argv[3], doraise=True, "
                        "invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)",
                        str(tmp_path / f"{name}.py"), str(expected), f"/opt/{name}.py"],
                       env={**os.environ, "PYTHONHASHSEED": "0"}, check=True)
        assert out[f"opt/__pycache__/{name}.cpython-311.pyc"].read() == expected.read_bytes()


# Found in pandas' tests: compiled while an earlier module's code with the same constants is still
# alive, this module marshals differently (marshal marks objects by their reference counts).
HISTORY = '''from base import (
    methods,
)
def test_a(data):
    expected = {
    }
    if names:
        msg = f"""
        """
        exclude = {"inplace", "axis", "limit_area"}
def test_b(request, func):
    if func in ("any", "all"):
        exclude = {"kwargs", "bool_only", "axis"}
        exclude = {"inplace", "axis", "limit_area"}
    if func not in [
    ]:
        exclude |= {"axis"}
'''


def test_a_module_compiles_to_the_same_bytes_whatever_was_compiled_before_it(tmp_path):
    """A pack holds many modules compiled by one process: each one's bytes must not depend on
    the others (else a layer's digest would depend on how sources fall into packs)."""
    (tmp_path / "m.py").write_text(HISTORY)
    compiler = bc.bytecode_for("3.11")
    after = compiler.compile([(tmp_path / "m.py", "a/m.py"), (tmp_path / "m.py", "b/m.py")], tmp_path / "one")
    alone = compiler.compile([(tmp_path / "m.py", "b/m.py")], tmp_path / "two")
    assert after["b/__pycache__/m.cpython-311.pyc"].read() == alone["b/__pycache__/m.cpython-311.pyc"].read()


def test_a_prestarted_compiler_is_taken_once_and_gives_the_same_bytes(tmp_path):
    fresh = compile_one(tmp_path, "fresh")
    compiler = bc.bytecode_for("3.11")
    compiler.prestart()
    spare = bc._SPARE[compiler.interpreter]
    compiler.prestart()  # one spare per interpreter
    assert bc._SPARE[compiler.interpreter] is spare
    assert compile_one(tmp_path, "prestarted") == fresh
    assert compiler.interpreter not in bc._SPARE and spare.returncode == 0  # it was the one that compiled


def test_shared_bytecode_compiles_each_source_once(tmp_path, monkeypatch):
    """What every platform of one build ships is compiled for the first only: same bytes, same
    image path, same compiler; another path or other bytes are compiled again."""
    fresh = compile_one(tmp_path, "fresh")
    bc._stop_spares()  # every compile below starts its own compiler: counted
    started = []
    start = bc._start_compiler
    monkeypatch.setattr(bc, "_start_compiler", lambda interpreter: started.append(1) or start(interpreter))
    (tmp_path / "bad.py").write_text("def (:\n")
    (tmp_path / "tmp").mkdir()
    with bc.shared_bytecode(tmp_path / "tmp"):
        assert compile_one(tmp_path, "amd64") == fresh and len(started) == 1
        assert compile_one(tmp_path, "arm64") == fresh and len(started) == 1  # not compiled again
        compiler = bc.bytecode_for("3.11")
        assert compiler.compile([(tmp_path / "bad.py", "opt/app/bad.py")], tmp_path / "x") == {}
        assert compiler.compile([(tmp_path / "bad.py", "opt/app/bad.py")], tmp_path / "y") == {}
        assert len(started) == 2  # a source that does not compile is not tried twice
        other = compiler.compile([(tmp_path / "mod.py", "opt/other/mod.py")], tmp_path / "z")
        assert marshal.loads(other["opt/other/__pycache__/mod.cpython-311.pyc"].read()[16:]).co_filename \
            == "/opt/other/mod.py" and len(started) == 3
    assert os.listdir(tmp_path / "tmp") == []  # the block's directory is gone with it
    assert bc._MEMO is None


def test_uncompilable_sources_are_skipped_and_select_limits_what_is_compiled(tmp_path):
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "bad.py").write_text("print 'python 2'\n")
    (tmp_path / "data.txt").write_text("not python\n")
    entries = [Entry(f"app/src/{n}", "file", 0o644, source=tmp_path / n, size=(tmp_path / n).stat().st_size)
               for n in ("bad.py", "data.txt", "good.py")]
    entries.append(Entry("app/other.py", "file", 0o644, source=tmp_path / "good.py", size=6))
    out = bc.bytecode_for("3.11").add_to(entries, tmp_path / "scratch", lambda p: p.startswith("app/src/"))
    paths = [e.path for e in out]
    assert "app/src/__pycache__/good.cpython-311.pyc" in paths
    assert "app/src/__pycache__" in paths and paths == sorted(paths)
    assert not any("bad.cpython" in p or "other.cpython" in p for p in paths)


def test_the_interpreter_loads_the_pyc_without_rewriting_it(tmp_path):
    """As an image's non-root user would: a read-only tree, the `.pyc` used as it is."""
    tree = tmp_path / "tree"
    (tree / "opt/app").mkdir(parents=True)
    (tree / "opt/app/mod.py").write_text(SOURCE)
    compiled = bc.bytecode_for("3.11").compile([(tree / "opt/app/mod.py", "opt/app/mod.py")], tmp_path / "packs")
    pyc = tree / "opt/app/__pycache__/mod.cpython-311.pyc"
    pyc.parent.mkdir()
    pyc.write_bytes(compiled["opt/app/__pycache__/mod.cpython-311.pyc"].read())  # as a layer places it
    before = pyc.read_bytes(), pyc.stat().st_mtime_ns
    out = subprocess.run([sys.executable, "-v", "-c", "import mod; print(mod.f('x'))"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(tree / "opt/app")}, capture_output=True, text=True)
    assert out.stdout.strip() == "True"
    assert f"code object from '{pyc}'" in out.stderr  # loaded from the .pyc, source hash matched
    assert (pyc.read_bytes(), pyc.stat().st_mtime_ns) == before


def test_another_minor_version_is_compiled_by_that_version(tmp_path, monkeypatch):
    """The image's Python differs from the host's: uv finds (or installs) a matching interpreter."""
    try:  # a pyenv interpreter where this machine has one (unreadable to other users)
        found = sorted(Path.home().joinpath(".pyenv/versions").glob("3.12.*/bin"))
    except OSError:
        found = []
    if not found and not shutil.which("python3.12"):
        pytest.skip("no Python 3.12 on this machine and no way to download one")
    if found:
        monkeypatch.setenv("PATH", f"{found[-1]}:{os.environ['PATH']}")
    bc.bytecode_for.cache_clear()
    try:
        code = bc.bytecode_for("3.12")
    finally:
        bc.bytecode_for.cache_clear()
    assert code.compiler_version.startswith("3.12.") and code.key.endswith(code.compiler_version)
    src = tmp_path / "m.py"
    src.write_text("y = 2\n")
    out = code.compile([(src, "m.py")], tmp_path / "out")
    data = out["__pycache__/m.cpython-312.pyc"].read()
    magic = subprocess.run([code.interpreter, "-c", "import importlib.util,sys; sys.stdout.buffer.write(importlib.util.MAGIC_NUMBER)"],
                           capture_output=True, check=True).stdout
    assert data[:4] == magic != importlib.util.MAGIC_NUMBER


def fake_python(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def fresh_choice(monkeypatch, home):
    """`bytecode_for` chooses again, with the probes it runs counted."""
    probes = []
    probe = bc._probe
    monkeypatch.setattr(bc, "_probe", lambda interpreter: probes.append(interpreter) or probe(interpreter))
    bc.bytecode_for.cache_clear()
    yield probes
    bc.bytecode_for.cache_clear()


def test_the_distributions_interpreter_compiles_when_the_host_has_one(fresh_choice):
    system = Path("/usr/bin/python3.11")
    if not system.exists() or os.path.realpath(system) == os.path.realpath(sys.executable):
        pytest.skip("no Python 3.11 of the distribution here besides the one running the tests")
    code = bc.bytecode_for("3.11")
    version = subprocess.run([str(system), "-c", "import platform; print(platform.python_version())"],
                             capture_output=True, text=True, check=True).stdout.strip()
    assert (code.interpreter, code.compiler_version) == (str(system), version)
    assert code.key.endswith(f"cpython-{version}") and fresh_choice == [str(system)]


def test_an_interpreters_version_is_asked_once_per_file(fresh_choice, monkeypatch, tmp_path):
    """Not an interpreter start per command: the answer is kept by the file's identity, and a
    file replaced (an upgrade) is asked again."""
    monkeypatch.setattr(bc, "SYSTEM_BIN", tmp_path)
    python = fake_python(tmp_path / "python3.11", f'exec "{sys.executable}" "$@"')
    assert bc.bytecode_for("3.11").interpreter == str(python) and len(fresh_choice) == 1
    bc.bytecode_for.cache_clear()
    assert bc.bytecode_for("3.11").interpreter == str(python) and len(fresh_choice) == 1  # remembered
    os.utime(python, ns=(1, 1))
    bc.bytecode_for.cache_clear()
    assert bc.bytecode_for("3.11").interpreter == str(python) and len(fresh_choice) == 2


def test_a_distribution_python_that_cannot_compile_is_passed_over(fresh_choice, monkeypatch, tmp_path):
    """One without the compiler's modules (a minimal install), or of another minor version. A
    failure is not remembered: the standard library may be installed next."""
    monkeypatch.setattr(bc, "SYSTEM_BIN", tmp_path)
    fake_python(tmp_path / "python3.11", "exit 1")
    code = bc.bytecode_for("3.11")
    assert code.interpreter == sys.executable and len(fresh_choice) == 1
    bc.bytecode_for.cache_clear()
    assert bc.bytecode_for("3.11").interpreter == sys.executable and len(fresh_choice) == 2  # asked again: not kept
    fake_python(tmp_path / "python3.11", 'echo 3.12.1')
    bc.bytecode_for.cache_clear()
    assert bc.bytecode_for("3.11").interpreter == sys.executable and len(fresh_choice) == 3


def test_a_project_module_in_the_working_directory_does_not_change_the_compiler(fresh_choice, monkeypatch, tmp_path):
    """`-c` puts the working directory first on sys.path: a project's platform.py or json.py must
    neither make the probe fail (and the choice fall back) nor break the compiler."""
    for name in ("platform.py", "json.py"):
        (tmp_path / name).write_text("raise SystemExit(3)\n")
    system = Path("/usr/bin/python3.11")
    if not system.exists() or os.path.realpath(system) == os.path.realpath(sys.executable):
        pytest.skip("no Python 3.11 of the distribution here besides the one running the tests")
    monkeypatch.chdir(tmp_path)
    chosen = bc.bytecode_for("3.11")
    assert chosen.interpreter == str(system)
    (tmp_path / "m.py").write_text("x = 1\n")
    assert list(chosen.compile([(tmp_path / "m.py", "m.py")], tmp_path / "packs")) == ["__pycache__/m.cpython-311.pyc"]


def test_one_image_path_given_twice_compiles_the_last_source_only(tmp_path):
    """Two packages can ship one path (a file and a link): the layer keeps the last, and so does
    its bytecode, with or without the multi-platform memo."""
    (tmp_path / "good.py").write_text("x = 1\n")
    (tmp_path / "bad.py").write_text("def (:\n")
    compiler = bc.bytecode_for("3.11")
    twice = [(tmp_path / "good.py", "m.py"), (tmp_path / "bad.py", "m.py")]
    assert compiler.compile(twice, tmp_path / "plain") == {}
    (tmp_path / "tmp").mkdir()
    with bc.shared_bytecode(tmp_path / "tmp"):
        assert compiler.compile(twice, tmp_path / "a") == {}
        assert compiler.compile([(tmp_path / "bad.py", "m.py")], tmp_path / "b") == {}


@pytest.mark.parametrize("record", [b"\xff\xfe3.11.2", b"3.11.99; rm -rf /", b"", b"3.12"])
def test_an_unreadable_or_odd_version_record_is_asked_again(fresh_choice, monkeypatch, tmp_path, record):
    """The record is read back as a version X.Y.Z or not at all: anything else is probed again
    and rewritten, never used in a cache key."""
    monkeypatch.setattr(bc, "SYSTEM_BIN", tmp_path)
    fake_python(tmp_path / "python3.11", f'exec "{sys.executable}" "$@"')
    assert bc.bytecode_for("3.11").interpreter == str(tmp_path / "python3.11") and len(fresh_choice) == 1
    [saved] = (Path(os.environ["OCIBUILD_HOME"]) / "cache" / "interpreters").iterdir()
    version = saved.read_text()
    saved.write_bytes(record)
    bc.bytecode_for.cache_clear()
    code = bc.bytecode_for("3.11")
    assert (code.compiler_version, len(fresh_choice), saved.read_text()) == (version, 2, version)
