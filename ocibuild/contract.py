"""The contract between the builder and the runtime: every path, environment variable, port and
user id that the builder writes into an image and the runtime reads there.

Shipped in images with the runtime, so it imports only the standard library.
"""

import os
from pathlib import Path

# Paths inside the image (relative to `/`, as layer entries are written).
RUNTIME_DIR = "opt/ocibuild/runtime"  # the ocibuild modules the runtime needs, on PYTHONPATH
SITE_PACKAGES = "opt/ocibuild/python"  # the service's Python dependencies, on PYTHONPATH
MODELS_DIR = "opt/ocibuild/models"  # MODELS_DIR/NAME/VERSION/{model.yaml,files/}
APP_DIR = "app"  # the bento; its source in APP_DIR/src
HOME_DIR = "home/ocibuild"

# The user the image runs as, and the port it serves on.
USER_ID = 1000
USER_NAME = "ocibuild"
PORT = 3000

# Environment variables the image config sets and the runtime reads.
SERVICE_ENV = "OCIBUILD_SERVICE"  # "module:Class"
SRC_ENV = "OCIBUILD_SRC"  # where the service source is
MODELS_DIR_ENV = "OCIBUILD_MODELS_DIR"  # where models are: NAME/VERSION/files
PORT_ENV = "PORT"
HOME_ENV = "OCIBUILD_HOME"  # the builder's store, also where models resolve on a host

# A model version directory's files live under this name, in the store, bentos and images.
MODEL_FILES = "files"


def ocibuild_home(environ=os.environ) -> Path:
    """Where the builder keeps its state: `$OCIBUILD_HOME`, by default `~/.ocibuild`."""
    return Path(environ.get(HOME_ENV) or Path.home() / ".ocibuild")
