"""Helpers shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


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


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": platform.platform(),
    }


def write_results(name: str, results: dict[str, Any]) -> Path:
    """Writes bench/results/<name>.json with the machine it ran on, and returns the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
    return path
