# SipParseError: the one exception the message layer raises on bad input (a ValueError). It
# carries the status a server should answer with (400 by default; 413 too large, 416 bad URI
# scheme, 505 bad version, 513 message too large) and a short reason for the reply's phrase.
from __future__ import annotations

__all__ = ["SipParseError"]


class SipParseError(ValueError):
    """Bad SIP syntax. ``status`` is the response a server should send; ``reason`` says why."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
