"""ocibuild: package AI/ML services into bentos and OCI images without a Docker daemon.

Importing `ocibuild` loads only the SDK: the same package is imported by `service.py` inside
images, where the builder's dependencies are absent. The SDK is loaded on first use
(`ocibuild.service`, `ocibuild.images`, ...), so the command line starts without it.
"""

__version__ = "0.1.0"
__all__ = ["api", "images", "models", "service", "__version__"]


def __getattr__(name: str):
    if name in ("api", "service"):
        from ocibuild.sdk.service import api, service

        globals().update(api=api, service=service)
        return globals()[name]
    if name == "images":
        from ocibuild.sdk import images

        return images
    if name == "models":
        import importlib

        return importlib.import_module("ocibuild.models")
    raise AttributeError(f"module 'ocibuild' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
