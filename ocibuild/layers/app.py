"""What goes into the layers ocibuild adds above the dependencies: the serving runtime, each
model, and the bento itself, at the paths the runtime contract names.

The runtime layer holds only the parts of `ocibuild` that run in the image (the SDK, the
runtime, the contract, the errors) and the runtime user's home.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ocibuild
from ocibuild.contract import APP_DIR, HOME_DIR, MODELS_DIR, RUNTIME_DIR, USER_ID
from ocibuild.layers.tarwriter import Entry, tree_entries, with_parents

# The modules that run inside images: they import nothing from the builder.
RUNTIME_MODULES = ("__init__.py", "errors.py", "contract.py", "sdk", "runtime", "models/__init__.py")


def runtime_entries() -> list[Entry]:
    package = Path(ocibuild.__file__).parent
    entries = [Entry(HOME_DIR, "dir", 0o755, USER_ID, USER_ID)]
    for name in RUNTIME_MODULES:
        path = package / name
        if path.is_dir():
            entries += [e for e in tree_entries(path, f"{RUNTIME_DIR}/ocibuild/{name}")
                        if "__pycache__" not in e.path and not e.path.endswith(".pyc")]
            entries.append(Entry(f"{RUNTIME_DIR}/ocibuild/{name}", "dir", 0o755))
        else:
            entries.append(Entry(f"{RUNTIME_DIR}/ocibuild/{name}", "file", 0o644, source=path,
                                 size=path.stat().st_size))
    return with_parents([_normalized(e) for e in entries])


def _normalized(entry: Entry) -> Entry:
    """Files have whatever modes their installer or umask gave: keep only "executable or not".
    Their mtimes go too: every entry takes the layer's epoch."""
    mode = 0o755 if entry.kind == "dir" or entry.mode & 0o111 else 0o644
    return dataclasses.replace(entry, mode=mode, mtime=None)


def model_entries(model_dir: Path, name: str, version: str) -> list[Entry]:
    """A model at a fixed path per name and version, so its layer is the same in every image."""
    return with_parents([_normalized(e) for e in tree_entries(model_dir, f"{MODELS_DIR}/{name}/{version}")])


def source_entries(bento_dir: Path, exclude: tuple[str, ...] = ()) -> list[Entry]:
    """The bento under /app, without the top-level directories in `exclude` (models have their own layers)."""
    skipped = tuple(f"{APP_DIR}/{name}" for name in exclude)
    return with_parents([e for e in tree_entries(bento_dir, APP_DIR)
                         if not any(e.path == s or e.path.startswith(s + "/") for s in skipped)])
