"""ocibuild: package AI/ML services into bentos and OCI images without a Docker daemon.

Importing `ocibuild` loads only the SDK: the same package is imported by `service.py` inside
images, where the builder's dependencies are absent.
"""

from ocibuild import models
from ocibuild.sdk import images
from ocibuild.sdk.service import api, service

__version__ = "0.1.0"
__all__ = ["api", "images", "models", "service", "__version__"]
