"""Start-up imports only what the command uses: `ocibuild --help` loads no HTTP stack, no YAML, no
Debian parser, no uv wrapper, not the SDK and no `tarfile`; an edit-loop build loads no HTTP stack
and no requirement parser either. The process ends without the interpreter's final collections."""

import subprocess
import sys

from tests.bento.test_build import tiny_service
from tests.conftest import run_process

HEAVY = ("requests", "urllib3", "yaml", "debian.deb822", "plumbum", "packaging.requirements", "ocibuild.sdk", "tarfile")


def imported_by(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_help_imports_nothing_heavy():
    modules = imported_by("from ocibuild.cli import cli\ntry:\n    cli(['--help'])\nexcept SystemExit:\n    pass")
    assert not [m for m in HEAVY if m in modules]


def test_building_and_containerizing_need_no_http_stack_until_a_registry_is_used():
    modules = imported_by("import ocibuild.bento.build, ocibuild.containerize, ocibuild.debian.archive, "
                          "ocibuild.debian.base, ocibuild.registry.session, ocibuild.publish")
    assert not [m for m in ("requests", "urllib3", "debian.deb822", "plumbum") if m in modules]
    # what only a cold path needs: reading a release's dates, unpacking .debs (an edit reuses every Debian layer)
    assert not [m for m in ("email.utils", "ocibuild.debian.unpack", "pyzstd") if m in modules]


def test_the_registry_client_loads_oras_only_when_a_registry_challenges():
    """oras is used to parse a Bearer challenge; importing it loads every auth backend it has, which
    a push to a registry that asks for no token never needs."""
    modules = imported_by("import ocibuild.registry.push, ocibuild.registry.transport, ocibuild.registry.referrers")
    assert "requests" in modules and not [m for m in modules if m == "oras" or m.startswith("oras.")]


def test_an_edit_loop_build_imports_no_parser_or_client_it_does_not_use(home, tmp_path, python_base):
    """`six==1.16.0` in service.py and uv's `name==version` lines are read by `sdk.pep508`'s
    patterns; `packaging`'s parser (a tenth of an edit's build) is not imported."""
    root = tiny_service(tmp_path)
    build = ["build", str(root), "--containerize", "--base", python_base, "--format", "oci-layout"]
    assert run_process(*build, "--version", "1", "--image-output", str(tmp_path / "1")).returncode == 0
    (root / "service.py").write_text((root / "service.py").read_text() + "\n# edited\n")
    edit = run_process(*build, "--version", "2", "--image-output", str(tmp_path / "2"),
                       env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert edit.returncode == 0, edit.stderr
    modules = {line.rpartition("|")[2].strip() for line in edit.stderr.splitlines() if line.startswith("import time:")}
    assert "ocibuild.sdk.pep508" in modules and "ocibuild.containerize" in modules
    assert not [m for m in ("packaging.requirements", "tomllib", "requests") if m in modules]
    # nor what only a registry, or a Debian package not read before, needs
    assert not [m for m in ("ocibuild.registry.auth", "ocibuild.debian.archive") if m in modules]


def test_the_process_ends_without_a_final_collection_but_with_its_exit_handlers():
    """`main` freezes the garbage collector's objects on the way out: the interpreter's exit then
    frees them by reference counts alone (40 ms less per command); atexit handlers still run."""
    code = ("import atexit, gc, sys\nfrom ocibuild.cli import main\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
            "sys.argv = ['ocibuild', '--version']\nmain()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "frozen True" and "ocibuild" in out.stdout
