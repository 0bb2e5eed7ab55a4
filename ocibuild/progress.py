"""Progress of long byte transfers (layer writing, downloads, uploads) for a person at a terminal.

Progress is cross-cutting, like logging: the code that moves bytes asks `progress()` for a task
and advances it; nothing is shown unless the CLI installed bars (`show_bars()`, on a terminal
only), so library use and CI logs stay quiet. Bars come from tqdm: bytes, rate, and a total
when it is known.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import BinaryIO


class Task:
    def advance(self, n: int) -> None:
        """`n` more bytes moved."""


class _Bar(Task):
    def __init__(self, label: str, total: int | None):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=label, unit="B", unit_scale=True, unit_divisor=1024, leave=False,
                        dynamic_ncols=True, mininterval=0.2)
        self.lock = threading.Lock()

    def advance(self, n: int) -> None:
        with self.lock:
            self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


_bars = False


def show_bars() -> None:
    global _bars
    _bars = True


@contextmanager
def task(label: str, total: int | None = None) -> Iterator[Task]:
    """A task for `label`: a bar when bars are shown, otherwise one that does nothing."""
    if not _bars:
        yield Task()
        return
    bar = _Bar(label, total)
    try:
        yield bar
    finally:
        bar.close()


class CountingReader:
    """Reads from `source`, advancing `task` by what was read."""

    def __init__(self, source: BinaryIO, task: Task):
        self.source = source
        self.task = task

    def read(self, n: int = -1) -> bytes:
        data = self.source.read(n)
        self.task.advance(len(data))
        return data


class CountingWriter:
    """Writes to `target`, advancing `task` by what was written."""

    def __init__(self, target: BinaryIO, task: Task):
        self.target = target
        self.task = task

    def write(self, data) -> int:
        written = self.target.write(data)
        self.task.advance(len(data))
        return written

    def flush(self) -> None:
        self.target.flush()
