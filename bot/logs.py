"""structlog set-up: one JSON object per line (or console), UTC timestamps, numbers as strings, no secrets.

Event names are stable and listed in the README.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, MutableMapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

import structlog

REDACTED = "***"
_SECRET_KEYS = re.compile(r"(secret|api_?key|password|signature|listen_?key)", re.IGNORECASE)


class SecretRedactor:
    """Replaces known secret values anywhere in an event, and values under secret-looking keys."""

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
        return {k: self._clean(k, v) for k, v in event.items()}


def _utc_timestamp(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["ts"] = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return event


def _numbers_as_strings(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in event.items():
        if isinstance(value, Decimal | float) or (isinstance(value, int) and not isinstance(value, bool)):
            event[key] = f"{value:f}" if isinstance(value, Decimal) else str(value)
    return event


def configure(log_format: str = "json", stream: TextIO | None = None, redactor: SecretRedactor | None = None) -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _utc_timestamp,
            structlog.processors.format_exc_info,
            _numbers_as_strings,
            redactor or SecretRedactor(),
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get(**bound: Any) -> Any:
    return structlog.get_logger().bind(**bound)
