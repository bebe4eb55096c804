"""Crash points: `COPYBOT_CRASH_AT=<point>` in the daemon's environment kills it (SIGKILL, as a power cut or
the OOM killer would) the first time it passes that point, so that a test can crash it exactly there and prove
what a restart does. Unset (always, outside the tests) a point costs one dictionary lookup."""

from __future__ import annotations

import os
import signal

FAN_OUT_CHUNK = "fan_out_chunk"  # a fan-out's first chunk journaled and its orders on their way, the rest not


def crash_point(point: str) -> None:
    if os.environ.get("COPYBOT_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
