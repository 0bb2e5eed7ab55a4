"""`build` reads a service whose dependencies are not installed here (numpy is not, on purpose)."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ocibuild.bento.loader import load_service
from ocibuild.python.lock import uv_command
from ocibuild.errors import ServiceLoadError
from ocibuild.sdk.openapi import openapi_document
from tests.conftest import FIXTURES, ROOT

NUMPY_TOP = FIXTURES / "services" / "numpy_top"

DUMP = """
import json, sys
from pathlib import Path
from ocibuild.bento.loader import load_service
from ocibuild.sdk.openapi import openapi_document
spec = load_service(Path(sys.argv[1])).spec
import numpy
print(json.dumps({"numpy": numpy.__file__, "spec": [spec.name, spec.class_name, spec.image.to_dict(),
                  [vars(e) for e in spec.declared_envs()], [m.tag for m in spec.models], openapi_document(spec)]}))
"""


def spec_record(spec):
    return [spec.name, spec.class_name, spec.image.to_dict(), [vars(e) for e in spec.declared_envs()],
            [m.tag for m in spec.models], openapi_document(spec)]


def test_numpy_is_not_installed_on_this_host():
    with pytest.raises(ImportError):
        __import__("numpy")


def test_spec_without_numpy_equals_the_spec_with_real_numpy(tmp_path):
    site = tmp_path / "site"
    uv_command()("pip", "install", "--quiet", "--target", str(site), "--only-binary", ":all:",
                 "--python", sys.executable, "numpy==2.1.3")
    real = subprocess.run([sys.executable, "-c", DUMP, str(NUMPY_TOP)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{site}"}, check=True)
    with_numpy = json.loads(real.stdout)
    assert with_numpy["numpy"].startswith(str(site))  # the real import really had numpy
    spec = load_service(NUMPY_TOP).spec
    assert json.loads(json.dumps(spec_record(spec))) == with_numpy["spec"]
    assert "numpy" not in sys.modules
    shift = openapi_document(spec)["paths"]["/shift"]["post"]["requestBody"]["content"]["application/json"]
    assert shift["schema"]["properties"] == {"values": {}, "by": {"anyOf": [{"type": "integer"}, {"type": "null"}]}}


def service(tmp_path, body: str):
    root = tmp_path / "svc"
    root.mkdir(exist_ok=True)
    (root / "service.py").write_text(textwrap.dedent(body))
    return root


HEAD = """\
import torch
from torch import nn
from transformers import pipeline
import ocibuild
"""


@pytest.mark.parametrize("body, message", [
    (HEAD + "x = (\n", r"service.py:\d+: syntax error"),
    (HEAD + "model = nmupy.zeros(3)\n", r"^service.py:5: NameError: name 'nmupy' is not defined$"),
    (HEAD + "def f():\n    raise KeyError('own')\nf()\n", r"^service.py:6: KeyError: 'own'$"),
    (HEAD + "import ocibuild.no_such_module\n", r"^service.py:5: ModuleNotFoundError: No module named 'ocibuild.no_such_module'"),
])
def test_genuine_errors_in_service_are_still_one_line(tmp_path, body, message):
    with pytest.raises(ServiceLoadError, match=message):
        load_service(service(tmp_path, body))


def test_an_error_raised_inside_importlib_names_the_service_line_from_inside_its_directory(tmp_path, monkeypatch):
    """importlib's frames are `<frozen importlib._bootstrap>`: relative, so from the service
    directory they resolved to paths inside it and the message named a frozen frame."""
    root = service(tmp_path, "import importlib\nimportlib.import_module('...helpers', 'a')\n")
    monkeypatch.chdir(root)
    with pytest.raises(ServiceLoadError, match=r"^service.py:2: ImportError: attempted relative import beyond"):
        load_service(root)


def test_stand_ins_subclass_decorate_and_compute(tmp_path):
    root = service(tmp_path, HEAD + """
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 1)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PIPE = pipeline("summarization", model="x")
SCALE = torch.ones(3) * 2 + 1

@ocibuild.service(name="tensors")
class Tensors:
    net = Net

    @ocibuild.api
    @torch.no_grad()
    def run(self, x: torch.Tensor, n: int = 1) -> list[float]:
        with torch.inference_mode():
            return []
""")
    spec = load_service(root).spec
    assert spec.name == "tensors" and [a.name for a in spec.apis] == ["run"]
    assert spec.apis[0].input_schema()["properties"] == {"x": {}, "n": {"type": "integer"}}
    assert "torch" not in sys.modules and "transformers" not in sys.modules


def test_installed_libraries_still_see_their_optional_imports_missing(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "probing.py").write_text("try:\n    import ocibuild_optional_zz9\n    HAVE = True\n"
                                    "except ImportError:\n    HAVE = False\n")
    monkeypatch.syspath_prepend(str(lib))
    root = service(tmp_path, """
import probing
import ocibuild
assert probing.HAVE is False, "a library's probe got a stand-in"

@ocibuild.service
class Probe:
    pass
""")
    assert load_service(root).spec.name == "probe"


def test_no_service_after_a_missing_import_names_the_import(tmp_path):
    root = service(tmp_path, "import ocibuild\nimport helpers\n")
    (root / "helpers.py").write_text("x = 1\nimport does_not_exist_zz\n")
    with pytest.raises(ServiceLoadError, match=r"^helpers.py:2: ModuleNotFoundError: No module named 'does_not_exist_zz'"):
        load_service(root)
