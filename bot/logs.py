"""structlog set-up: one JSON object per line (or console), UTC timestamps, numbers as strings, no secrets.

Event names are stable and listed in the README.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, TextIO

import orjson
import structlog

REDACTED = "***"
_SECRET_KEYS = re.compile(r"(secret|api_?key|password|signature|listen_?key)", re.IGNORECASE)


# Fields the bot fills with its own typed values (names, ids, quantities, states), never with text from outside
# (an exchange's answer, an exception, a configuration): the redactor does not look at them. Every other field is
# scrubbed, so a new field is covered until it is listed here.
OWN_FIELDS = frozenset(
    {
        "event", "level", "ts", "follower", "symbol", "side", "qty", "price", "status", "order_id",
        "client_order_id", "lead_change", "episode", "plan_clock_ms", "kind", "leg", "reduce_only", "filled",
        "plans", "commits", "followers", "orders", "plan_commits", "disk_syncs", "fan_out_ms",
    }
)  # fmt: skip


class SecretRedactor:
    """Replaces known secret values in the fields that can hold text from outside, and values under
    secret-looking keys."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = {s for s in secrets if len(s) >= 4}
        self._pattern: re.Pattern[str] | None = None
        self._compile()

    def _compile(self) -> None:
        # one alternation, longest first, scanned in C: the cost of a line no longer grows with the followers
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def add(self, secret: str) -> None:
        if len(secret) >= 4:
            self._secrets.add(secret)
            self._compile()

    def scrub(self, text: str) -> str:
        return self._pattern.sub(REDACTED, text) if self._pattern is not None else text

    def _clean(self, key: str, value: Any) -> Any:
        if _SECRET_KEYS.search(key) and not key.endswith("_env"):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(key, v) for v in value]
        return value

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return {k: v if k in OWN_FIELDS else self._clean(k, v) for k, v in event.items()}


def _utc_timestamp(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event


def _numbers_as_strings(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, Decimal | float) or (isinstance(value, int) and not isinstance(value, bool)):
            event[key] = f"{value:f}" if isinstance(value, Decimal) else str(value)
    return event


def _json(event: Any, **_: Any) -> str:
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class LineWriter:
    """The log's lines to a stream: those of one event-loop turn in one write (a fan-out logs a line per order,
    and a write and a flush each cost more than the line); warnings and errors at once, and whatever is left
    when the process exits. Outside an event loop every line is written at once."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: list[str] = []
        self._flush_on: asyncio.AbstractEventLoop | None = None
        atexit.register(self.flush)

    def msg(self, message: str) -> None:
        self._lines.append(message)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._flush_on is not loop:  # (a loop that closed before its flush ran leaves the lines to the next)
            self._flush_on = loop
            loop.call_soon(self.flush)

    def now(self, message: str) -> None:
        self._lines.append(message)
        self.flush()

    def flush(self) -> None:
        self._flush_on = None
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            self._stream.write(text)
            self._stream.flush()

    debug = info = msg
    warning = error = critical = exception = now


LogLevel = Literal["debug", "info", "warning", "error"]


def configure(
    log_format: str = "json",
    stream: TextIO | None = None,
    redactor: SecretRedactor | None = None,
    level: LogLevel = "info",
) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_json)
        if log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    writer = LineWriter(stream or sys.stdout)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _utc_timestamp,
            structlog.processors.format_exc_info,
            redactor or SecretRedactor(),  # before numbers become strings: it looks at text only
            _numbers_as_strings,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=lambda *_: writer,
        cache_logger_on_first_use=False,
    )


def get(**bound: Any) -> Any:
    return structlog.get_logger().bind(**bound)
