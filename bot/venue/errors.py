"""The bot's own small hierarchy of exchange failures (ccxt's are translated into it at the edge)."""

from __future__ import annotations


class VenueError(Exception):
    """The bot's own small hierarchy of exchange failures."""


class Temporary(VenueError):
    """Worth retrying: the network, a timeout, the exchange busy."""


class RateLimited(Temporary):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Rejected(VenueError):
    """The exchange answered no (insufficient margin, invalid order): never retried blindly.

    `code` is the exchange's error code when it gave one; `retryable` marks a refusal that may pass later
    without anyone changing anything (a balance that is short now), as opposed to one that cannot.
    """

    def __init__(self, message: str, code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


class UnknownOutcome(VenueError):
    """A write whose result is unknown (timeout, dropped connection, 5xx): resolved by lookup.

    `retry_after` is the exchange's Retry-After (a 429/418): no request goes to it before then.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Fatal(VenueError):
    """This account cannot be used (bad or revoked key, no permission)."""


class NotFound(VenueError):
    pass
