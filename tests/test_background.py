"""`Background`: a failure leaves at once; success waits for the work, as a thread pool does."""

from __future__ import annotations

import threading
import time

import pytest

from ocibuild.background import Background


def test_a_failure_neither_waits_for_running_work_nor_starts_queued_work():
    release, ran = threading.Event(), []
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="the build failed"):
        with Background(1) as pool:
            running = pool.submit(release.wait, 10)
            queued = pool.submit(ran.append, "queued")
            raise RuntimeError("the build failed")
    assert time.perf_counter() - started < 1
    assert queued.cancelled() and not running.done()
    release.set()
    assert running.result(timeout=5) is True and ran == []


def test_success_waits_for_the_work():
    with Background(1) as pool:
        done = pool.submit(time.sleep, 0.2)
    assert done.done()
