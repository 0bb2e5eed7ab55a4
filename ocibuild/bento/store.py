"""The local bento store: `$OCIBUILD_HOME/bentos/NAME/VERSION/`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ocibuild.bento.info import BENTO_FILE, BentoInfo
from ocibuild.sdk.names import Tag
from ocibuild.store.versioned import VersionedStore


@dataclass(frozen=True)
class Bento:
    """A bento in the store: its directory and its record."""

    path: Path
    info: BentoInfo

    @property
    def tag(self) -> Tag:
        return self.info.tag

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file() and not p.is_symlink())


class BentoStore(VersionedStore):
    kind = "bento"
    record = BENTO_FILE
    list_command = "ocibuild list"

    def __init__(self, home: Path):
        super().__init__(home, "bentos")

    def load(self, path: Path) -> Bento:
        return Bento(path, BentoInfo.load(path / BENTO_FILE))
