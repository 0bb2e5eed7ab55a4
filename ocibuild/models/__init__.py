"""Model artifacts: `Model` references for services, and the local model store.

`Model` ships in images; `create`, `get` and `list` use the store and load it only when called.
"""

from __future__ import annotations

from contextlib import contextmanager

from ocibuild.sdk.model import Model

__all__ = ["Model", "create", "get", "list_models"]


@contextmanager
def create(name: str, *, labels: dict | None = None, metadata: dict | None = None):
    """Write files under `model.path` inside the block; on success the model is stored atomically
    with a new version, on an exception nothing is stored."""
    from ocibuild.models.store import ModelStore

    with ModelStore.default().create(name, labels=labels, metadata=metadata) as draft:
        yield draft


def get(tag: str):
    from ocibuild.models.store import ModelStore

    return ModelStore.default().get(tag)


def list_models():
    from ocibuild.models.store import ModelStore

    return ModelStore.default().list()
