"""Work started beside the main line of a command, which a failure never waits for."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor


class Background(ThreadPoolExecutor):
    """A thread pool whose `with` block, when an exception leaves it, cancels the work not yet
    started and does not wait for the work running: the error reaches the user at once, not
    after a download or an install nobody needs any more (running threads still finish before
    the process exits)."""

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.shutdown(wait=exc_type is None, cancel_futures=exc_type is not None)
        return False
