# Stream framing for SIP over TCP/TLS (RFC 3261 §18.3): bytes in, whole messages out.
# A message ends after its header section plus Content-Length body bytes. CRLF keep-alives between
# messages are recognised (RFC 5626 §3.5.1): a double CRLF "ping" is reported so the transport can
# answer with a single CRLF "pong"; a lone CRLF (a pong) is swallowed. Robust to any split of the
# byte stream; bounded memory (a header section or message larger than the limit is an error,
# after which the connection should be closed).
from __future__ import annotations

from typing import Final

from ._errors import SipParseError

__all__ = ["KEEPALIVE_PING", "StreamFramer"]

KEEPALIVE_PING: Final = b"\r\n\r\n"
"""Returned by StreamFramer.feed in place of a message: the peer sent a ping; answer b"\\r\\n"."""


class StreamFramer:
    """Split a byte stream into SIP messages."""

    __slots__ = ("_buf", "_max_size", "_failed")

    def __init__(self, max_size: int = 65535) -> None:
        self._buf = bytearray()
        self._max_size = max_size
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every message (or KEEPALIVE_PING) now complete, in order.

        Raises SipParseError when the stream cannot be framed (no valid Content-Length, or a
        message over the size limit); the framer stays failed afterwards.
        """
        if self._failed:
            raise SipParseError("stream framing failed earlier")
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            # keep-alives between messages (RFC 5626 §3.5.1)
            if buf[0] in (13, 10):
                if buf.startswith(KEEPALIVE_PING):
                    del buf[:4]
                    out.append(KEEPALIVE_PING)
                    continue
                if len(buf) < 4 and KEEPALIVE_PING.startswith(bytes(buf)):
                    break  # maybe a ping still arriving
                del buf[:2 if buf.startswith(b"\r\n") else 1]  # a pong, or a stray line end
                continue
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > self._max_size:
                    self._failed = True
                    raise SipParseError("header section too large", 513)
                break
            head = bytes(buf[:end])
            length = _content_length(head)
            total = end + 4 + length
            if total > self._max_size:
                self._failed = True
                raise SipParseError("message too large", 513)
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
        return out


def _content_length(head: bytes) -> int:
    value: int | None = None
    for line in head.split(b"\r\n")[1:]:
        name, colon, rest = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = rest.strip()
            if not text.isdigit():
                raise SipParseError("bad Content-Length on a stream")
            if value is not None and value != int(text):
                raise SipParseError("conflicting Content-Length headers")
            value = int(text)
    if value is None:
        raise SipParseError("Content-Length missing on a stream transport")
    return value
