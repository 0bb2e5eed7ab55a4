"""`ocibuild serve` on this machine: a service directory as it is, or a bento with its pinned models."""

from __future__ import annotations

from pathlib import Path

from ocibuild.bento.info import MODEL_COPIES, SRC_DIR
from ocibuild.bento.loader import load_service
from ocibuild.bento.store import BentoStore


def serve_local(target: str, store: BentoStore, host: str, port: int | None) -> None:
    from ocibuild.runtime.server import serve

    if Path(target).is_dir():
        serve(Path(target).resolve(), load_service(Path(target)).entry_point, host=host, port=port)
        return
    bento = store.get(target)
    serve(bento.path / SRC_DIR, bento.info.service, host=host, port=port, models_dir=bento.path / MODEL_COPIES)
