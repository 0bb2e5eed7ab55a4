"""Every CLI error path: one line on stderr naming the problem, a non-zero exit, no traceback."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ECHO, copy_service, run_process


@pytest.fixture
def echo(tmp_path):
    return copy_service(ECHO, tmp_path / "echo")


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_version_and_help():
    assert run_process("--version").stdout.startswith("ocibuild, version ")
    for command in ["build", "list", "get", "delete", "export", "import", "containerize", "serve"]:
        result = run_process(command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout


@pytest.mark.parametrize(("args", "fragments"), [
    (["build", "/nonexistent/svc"], ["Directory '/nonexistent/svc' does not exist", "(see `ocibuild build --help`)"]),
    (["--bogus"], ["No such option '--bogus'", "(see `ocibuild --help`)"]),
    (["biuld"], ["No such command 'biuld'. Did you mean 'build'?"]),
    (["containerize"], ["Missing argument 'TAG'", "(see `ocibuild containerize --help`)"]),
    (["models", "import", "/nonexistent/model", "--name", "m"], ["'/nonexistent/model' does not exist"]),
    (["build", ".", "--push", "x"], ["--push only applies with --containerize"]),
    (["build", ".", "-q", "--output", "json"], ["-q and --output json each say what stdout gets"]),
    (["models", "import", "."], [". is a directory: give the model's name, `--name NAME`"]),
    (["models", "import", "oci://127.0.0.1:1/m:1", "--label", "a=b"], ["--label only applies with --name"]),
    (["build", ".", "--platform", ""], ["Invalid value for '--platform': no platform given"]),
])
def test_a_usage_error_is_one_line_naming_where_the_usage_is(home, args, fragments):
    result = run_process(*args)
    assert result.returncode == 2 and result.stdout == ""
    assert_one_line_error(result, *fragments)


def test_an_empty_version_is_refused_not_replaced(home, echo):
    assert_one_line_error(run_process("build", str(echo), "--version", ""), "invalid version ''")
    assert not (home / "bentos").exists()


def test_a_bare_group_shows_its_help():
    for args in ([], ["models"]):
        result = run_process(*args)
        assert "Usage: ocibuild" in result.stdout + result.stderr and "error:" not in result.stderr


def test_build_list_get_delete(home, echo):
    result = run_process("build", str(echo), "--version", "1")
    assert result.returncode == 0 and "echo:1" in result.stdout
    run_process("build", str(echo), "--version", "2")
    listed = json.loads(run_process("list", "-o", "json").stdout)
    assert [r["tag"] for r in listed] == ["echo:2", "echo:1"]
    assert all(r["size"] > 0 for r in listed)
    table = run_process("list").stdout.splitlines()
    assert table[0].split() == ["TAG", "SIZE", "CREATED"] and table[1].startswith("echo:2")
    got = run_process("get", "echo", "-o", "json").stdout
    assert json.loads(got)["version"] == "2" and got.endswith("}\n")
    assert "service: service:Echo" in run_process("get", "echo:1").stdout
    both = run_process("delete", "echo:2", "echo", "echo:latest", "-y")  # one bento, named three ways
    assert (both.returncode, both.stdout, both.stderr) == (0, "Deleted bento echo:2\n", "")
    assert [r["tag"] for r in json.loads(run_process("list", "-o", "json").stdout)] == ["echo:1"]


def test_syntax_error_names_file_and_line(home, echo):
    (echo / "service.py").write_text("import ocibuild\n\ndef broken(:\n    pass\n")
    assert_one_line_error(run_process("build", str(echo)), "service.py:3", "syntax error")


def test_what_the_service_prints_as_it_is_imported_stays_off_stdout(home, echo):
    """stdout is what scripts read: `TAG=$(ocibuild build -q)`, `--output json`."""
    (echo / "service.py").write_text("import os\nprint('hello from service.py')\nos.write(1, b'to descriptor 1\\n')\n"
                                     "os.system('echo from a subprocess')\n" + (echo / "service.py").read_text())
    quiet = run_process("build", str(echo), "-q", "--version", "p1")
    assert (quiet.returncode, quiet.stdout) == (0, "echo:p1\n")
    assert all(line in quiet.stderr for line in ("hello from service.py", "to descriptor 1", "from a subprocess"))
    record = run_process("build", str(echo), "--output", "json", "--version", "p2")
    assert json.loads(record.stdout)["tag"] == "echo:p2"
    closed = subprocess.run(f"{sys.executable} -m ocibuild build {echo} -q --version p3 >&-", shell=True,
                            capture_output=True, text=True, timeout=120)  # started with stdout closed
    assert closed.returncode == 0 and "Traceback" not in closed.stderr, closed.stderr


def test_a_bentoignore_that_drops_the_service_module_is_refused(home, echo):
    (echo / ".bentoignore").write_text("*.py\n")
    assert_one_line_error(run_process("build", str(echo)), "service.py, the service's module, is excluded by .bentoignore")
    assert not (home / "bentos").exists() or not any((home / "bentos").rglob("bento.yaml"))


def test_an_interrupt_while_the_service_is_imported_stays_an_interrupt(home, echo):
    """Ctrl-C during a slow import is the user's stop, not an error in their code."""
    (echo / "service.py").write_text("import ocibuild\nraise KeyboardInterrupt\n")
    result = run_process("build", str(echo))
    assert (result.returncode, result.stderr) == (130, "error: interrupted\n")


def test_verbose_after_the_command_shows_the_traceback_too(home, echo):
    """Where people type it after an error that says tracebacks come with --verbose."""
    (echo / "service.py").write_text("import ocibuild\nx = nmupy\n")
    for args in (["--verbose", "build", str(echo)], ["build", str(echo), "--verbose"], ["build", "-v", str(echo)]):
        result = run_process(*args)
        assert result.returncode == 1 and "Traceback" in result.stderr and "NameError" in result.stderr, args
    assert run_process("models", "list", "-v").returncode == 0


def test_import_error_names_file_and_line(home, echo):
    (echo / "helpers.py").write_text("x = 1\nimport does_not_exist_zz\n")
    (echo / "service.py").write_text("import ocibuild\nimport helpers\n")
    assert_one_line_error(run_process("build", str(echo)), "helpers.py:2", "does_not_exist_zz")


def test_no_service_class(home, echo):
    (echo / "service.py").write_text("import ocibuild\n")
    assert_one_line_error(run_process("build", str(echo)), "defines no @ocibuild.service class")


def test_missing_service_file(home, tmp_path):
    assert_one_line_error(run_process("build", str(tmp_path)), "no service.py")


def test_spec_error_at_definition(home, echo):
    (echo / "service.py").write_text(
        "import ocibuild\n\nimage = ocibuild.images.PythonImage(python_version='banana')\n")
    assert_one_line_error(run_process("build", str(echo)), "service.py:3", "invalid python_version 'banana'")


def test_unknown_package(home, echo):
    (echo / "service.py").write_text((echo / "service.py").read_text().replace(
        "@ocibuild.service(", "@ocibuild.service(image=ocibuild.images.PythonImage().python_packages('zz-no-such-pkg-ocibuild'), "))
    result = run_process("build", str(echo))
    assert_one_line_error(result, "cannot lock", "zz-no-such-pkg-ocibuild")
    assert json.loads(run_process("list", "-o", "json").stdout) == []


def test_bad_tags_and_versions(home, echo):
    assert_one_line_error(run_process("build", str(echo), "--version", "bad/version"), "invalid version")
    assert_one_line_error(run_process("get", "Bad:Tag"), "invalid tag 'Bad:Tag'")
    assert_one_line_error(run_process("get", "nothing:1"), "no bento nothing:1")
    assert_one_line_error(run_process("delete", "nothing", "-y"), "no bento named 'nothing'")


def test_delete_resolves_all_before_deleting(home, echo):
    run_process("build", str(echo), "--version", "1")
    assert_one_line_error(run_process("delete", "echo:1", "missing:1", "-y"), "no bento missing:1")
    assert run_process("get", "echo:1").returncode == 0


def test_corrupt_import(home, tmp_path):
    bad = tmp_path / "bad.bento"
    bad.write_bytes(b"not an archive at all")
    assert_one_line_error(run_process("import", str(bad)), "cannot read")


def test_export_import_via_cli(home, echo, tmp_path):
    run_process("build", str(echo), "--version", "1")
    assert run_process("export", "echo:1", str(tmp_path / "e.bento")).returncode == 0
    assert_one_line_error(run_process("import", str(tmp_path / "e.bento")), "already exists")
    result = run_process("import", str(tmp_path / "e.bento"), env={"OCIBUILD_HOME": str(tmp_path / "h2")})
    assert result.returncode == 0 and "Imported echo:1" in result.stdout


def test_verbose_shows_traceback(home, echo):
    result = run_process("--verbose", "get", "nothing:1")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_build_quiet_and_json(home, tmp_path):
    root = copy_service(ECHO, tmp_path / "echo")
    quiet = run_process("build", str(root), "--version", "q1", "-q")
    assert quiet.returncode == 0 and quiet.stdout == "echo:q1\n"
    record = json.loads(run_process("build", str(root), "--version", "j1", "--output", "json").stdout)
    assert record["tag"] == "echo:j1" and record["name"] == "echo" and record["path"].endswith("bentos/echo/j1")
