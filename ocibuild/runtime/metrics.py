"""Request counts and latency histograms per endpoint, rendered in Prometheus text format."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, int], int] = defaultdict(int)
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sums: dict[str, float] = defaultdict(float)
        self._totals: dict[str, int] = defaultdict(int)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._counts[(endpoint, status)] += 1
            self._sums[endpoint] += seconds
            self._totals[endpoint] += 1
            buckets = self._buckets[endpoint]
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1

    def render(self) -> str:
        lines = ["# HELP ocibuild_requests_total Requests handled, by endpoint and status.",
                 "# TYPE ocibuild_requests_total counter"]
        with self._lock:
            for (endpoint, status), n in sorted(self._counts.items()):
                lines.append(f'ocibuild_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
            lines += ["# HELP ocibuild_request_duration_seconds Request latency, by endpoint.",
                      "# TYPE ocibuild_request_duration_seconds histogram"]
            for endpoint in sorted(self._totals):
                for bound, n in zip(BUCKETS, self._buckets[endpoint]):
                    lines.append(f'ocibuild_request_duration_seconds_bucket{{endpoint="{endpoint}",le="{bound}"}} {n}')
                lines.append(f'ocibuild_request_duration_seconds_bucket{{endpoint="{endpoint}",le="+Inf"}} {self._totals[endpoint]}')
                lines.append(f'ocibuild_request_duration_seconds_sum{{endpoint="{endpoint}"}} {self._sums[endpoint]:.6f}')
                lines.append(f'ocibuild_request_duration_seconds_count{{endpoint="{endpoint}"}} {self._totals[endpoint]}')
        return "\n".join(lines) + "\n"
