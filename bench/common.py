"""Helpers shared by the benchmarks."""

from __future__ import annotations

import socket
import statistics
from collections.abc import Sequence


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentiles(samples_ms: Sequence[float], digits: int = 3) -> dict[str, float]:
    """p50, p99 and the sample count."""
    ordered = sorted(samples_ms)
    return {
        "p50": round(statistics.median(ordered), digits),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], digits),
        "n": len(ordered),
    }
