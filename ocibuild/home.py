"""Where ocibuild keeps its state: `$OCIBUILD_HOME`, by default `~/.ocibuild`."""

from __future__ import annotations

import os
from pathlib import Path


def ocibuild_home() -> Path:
    return Path(os.environ.get("OCIBUILD_HOME") or Path.home() / ".ocibuild")
