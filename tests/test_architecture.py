"""The layout tells the story spec -> bento -> plan -> layers -> image -> publisher: each part
imports only the parts before it, and what runs inside images imports nothing from the builder.
Read from the source (imports inside functions included), so a violation fails here first."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ocibuild"

# What each part of ocibuild may import from ocibuild (besides itself).
BASE = {"errors", "contract", "progress", "background"}
ALLOWED = {
    "progress": set(),
    "background": set(),
    "sdk": BASE,
    "runtime": BASE | {"sdk"},
    "oci": BASE,
    "store": BASE | {"oci", "sdk"},
    "layers": BASE | {"oci", "store", "__init__"},
    "python": BASE | {"oci", "store", "layers", "sdk"},
    "debian": BASE | {"oci", "store", "layers"},
    "formats": BASE | {"oci", "store", "layers"},
    "registry": BASE | {"oci", "store"},
    "models": BASE | {"oci", "store", "sdk"},
    "engine": BASE,
    "__init__": BASE | {"sdk", "models"},
    "base": BASE | {"oci", "store", "layers", "formats", "registry", "debian"},
    "bento": BASE | {"oci", "store", "sdk", "models", "python", "debian", "registry", "base", "runtime",
                     "__init__"},
    "containerize": BASE | {"oci", "store", "layers", "python", "debian", "base", "bento", "models"},
    "publish": BASE | {"oci", "store", "formats", "registry", "engine"},
    "artifacts": BASE | {"oci", "store", "layers", "registry", "bento", "models", "containerize"},
    "watch": BASE | {"store", "bento"},
    "supplychain": BASE | {"oci", "store", "bento", "debian", "python", "__init__"},
}
# Shipped into images by the runtime layer: must not reach the builder.
RUNTIME = {"__init__", "errors", "contract", "sdk", "runtime", "models"}


def part(module: str) -> str:
    """`ocibuild.sdk.model` -> `models.reference`; `ocibuild.oci.image` -> `oci`."""
    rest = module.removeprefix("ocibuild").lstrip(".") or "__init__"
    return "models.reference" if rest == "models.reference" else rest.split(".")[0]


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "ocibuild":  # `from ocibuild import models`: the names are parts
                found |= {part(f"ocibuild.{a.name}") for a in node.names}
            elif node.module.startswith("ocibuild."):
                found.add(part(node.module))
        elif isinstance(node, ast.Import):
            found |= {part(a.name) for a in node.names if a.name == "ocibuild" or a.name.startswith("ocibuild.")}
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "ocibuild." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        yield part(module.removesuffix(".__init__")), path


@pytest.mark.parametrize("name, path", [(n, p) for n, p in modules() if n in ALLOWED],
                         ids=lambda v: str(v.relative_to(PACKAGE)) if isinstance(v, Path) else v)
def test_each_part_imports_only_what_comes_before_it(name, path):
    stray = imports(path) - ALLOWED[name] - {name}
    assert not stray, f"{path.relative_to(PACKAGE)} ({name}) imports {sorted(stray)}"


def test_what_runs_in_images_imports_nothing_from_the_builder():
    from ocibuild.layers.app import RUNTIME_MODULES

    shipped = [p for m in RUNTIME_MODULES for p in ([PACKAGE / m] if m.endswith(".py") else (PACKAGE / m).rglob("*.py"))]
    assert len(shipped) > 10
    for path in shipped:
        stray = imports(path) - RUNTIME
        assert not stray, f"{path.relative_to(PACKAGE)} runs in images but imports {sorted(stray)}"


def test_the_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ocibuild.registry.push import push\n    import ocibuild.cli\n")
    assert imports(module) == {"registry", "cli"}
