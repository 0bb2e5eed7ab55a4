"""The line that names a failure in the user's code: theirs, not a library's or importlib's."""

import os
import subprocess
import sys

import pytest

from ocibuild.errors import ServiceLoadError
from ocibuild.runtime.server import load, start
from tests.conftest import free_port


@pytest.fixture
def isolated(monkeypatch):
    """`load` puts the service first on sys.path and imports it: both undone after each test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        del sys.modules[name]


def service(root, body: str):
    root.mkdir(parents=True, exist_ok=True)
    (root / "service.py").write_text(body)
    return root


def failure_of(root, entry_point="service:Svc") -> str:
    with pytest.raises(ServiceLoadError) as raised:
        spec, cls = load(root, entry_point)
        start(root, cls)
    return str(raised.value)


SVC = """
import ocibuild

@ocibuild.service()
class Svc:
    @ocibuild.api
    def ping(self) -> str:
        return "pong"
"""


def test_a_library_in_the_projects_own_venv_is_not_blamed(tmp_path, isolated):
    """A project-local `.venv` is inside the service directory: its packages are not the user's code."""
    root = service(tmp_path / "svc", "import dbclient\n\nDB = dbclient.connect('db:5432')\n")
    library = root / ".venv" / "lib" / "python3.11" / "site-packages"
    (library / "dbclient").mkdir(parents=True)
    (library / "dbclient" / "__init__.py").write_text(
        "def connect(where):\n    raise ConnectionError(f'no database at {where}')\n")
    sys.path.append(str(library))
    assert failure_of(root) == "service.py:3: ConnectionError: no database at db:5432"


def test_a_syntax_error_from_parsing_at_run_time_names_the_line_that_parsed(tmp_path, isolated):
    root = service(tmp_path / "svc", "import ast\n\nCONFIG = ast.parse('x = ')\n")
    assert failure_of(root).startswith("service.py:3: SyntaxError: invalid syntax")


def test_an_exception_whose_message_fails_is_still_one_line(tmp_path, isolated):
    root = service(tmp_path / "svc", "class Odd(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\n\n"
                                     "raise Odd()\n")
    assert failure_of(root) == "service.py:5: Odd: (its message cannot be shown)"


def test_a_multi_line_message_is_one_line(tmp_path, isolated):
    root = service(tmp_path / "svc", "raise ValueError('2 validation errors\\ndb_url\\n  Field required')\n")
    assert failure_of(root) == "service.py:1: ValueError: 2 validation errors db_url Field required"


def test_sys_exit_in_init_is_a_failure_not_a_clean_stop(tmp_path, isolated):
    """A supervisor reads exit 0 as a clean stop: the service never served."""
    root = service(tmp_path / "svc", SVC.replace("class Svc:\n", "class Svc:\n    def __init__(self):\n"
                                                 "        raise SystemExit(0)\n\n"))
    assert failure_of(root) == "service.py:7: SystemExit: 0"


def test_the_image_entrypoint(tmp_path):
    """One line (collapsed), the error's own exit code with or without --verbose, usage for a bad port."""
    root = service(tmp_path / "svc", SVC.replace("@ocibuild.service()", "@ocibuild.service(envs=[{'name': 'DB_URL_ZZ'}])"))
    env = {k: v for k, v in os.environ.items() if k != "DB_URL_ZZ"}
    env.update(OCIBUILD_SERVICE="service:Svc", OCIBUILD_SRC=str(root))

    def entrypoint(*args):
        return subprocess.run([sys.executable, "-m", "ocibuild.runtime.entrypoint", "serve", *args], env=env,
                              capture_output=True, text=True, timeout=60)

    plain = entrypoint("--port", str(free_port()))
    assert (plain.returncode, plain.stderr) == (78, "error: required environment variable(s) not set: DB_URL_ZZ\n")
    verbose = entrypoint("--verbose", "--port", str(free_port()))
    assert verbose.returncode == 78 and "Traceback" in verbose.stderr
    for port in ("²", "x", "-1"):
        bad = entrypoint("--port", port)
        assert (bad.returncode, bad.stderr) == (2, "usage: serve [--port PORT] [--verbose]\n")


def test_a_service_that_changes_directory_is_still_named_from_its_own(tmp_path, isolated):
    """`OCIBUILD_SRC=.` on a host: resolved before the service's code runs, not after its `chdir`."""
    root = service(tmp_path / "svc", SVC.replace("class Svc:\n", "class Svc:\n    def __init__(self):\n"
                                                 "        raise KeyError('MODEL')\n\n")
                   .replace("import ocibuild\n", f"import os\nimport ocibuild\nos.chdir({str(tmp_path)!r})\n"))
    env = {**os.environ, "OCIBUILD_SERVICE": "service:Svc", "OCIBUILD_SRC": "."}
    out = subprocess.run([sys.executable, "-m", "ocibuild.runtime.entrypoint", "serve"], env=env, cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stderr) == (1, "error: service.py:9: KeyError: 'MODEL'\n")
