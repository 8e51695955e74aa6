# Stream framing for SIP over TCP/TLS (RFC 3261 §18.3): bytes in, whole messages out.
# A message ends after its header section (up to CRLF CRLF) plus Content-Length body bytes;
# Content-Length is mandatory on a stream (§20.14). CRLF keep-alives between messages are
# recognised (RFC 5626 §3.5.1, §4.4.1): a double CRLF "ping" is reported so the transport can
# answer with a single CRLF "pong"; a lone CRLF (a pong) is swallowed.
# Invariants: the output does not depend on how the stream was split; memory is bounded by
# max_size; each byte is scanned for the end of the header section once (no quadratic re-scans
# when a peer drips bytes). After an error the framer stays failed: close the connection.
from __future__ import annotations

from typing import Final

from ._errors import SipParseError

__all__ = ["KEEPALIVE_PING", "StreamFramer"]

KEEPALIVE_PING: Final = b"\r\n\r\n"
"""Returned by StreamFramer.feed in place of a message: the peer sent a ping; answer b"\\r\\n"."""


class StreamFramer:
    """Split a byte stream into SIP messages (each ``bytes`` ready for
    ``parse_message(data, stream=True)``) and keep-alive pings."""

    __slots__ = ("_buf", "_failed", "_max_size", "_scanned", "_total")

    def __init__(self, max_size: int = 65535) -> None:
        self._buf = bytearray()
        self._max_size = max_size
        self._failed = False
        self._scanned = 0  # bytes of _buf already searched for CRLF CRLF
        self._total: int | None = None  # length of the message at the head of _buf, once known

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every message (or KEEPALIVE_PING) now complete, in order.

        Raises SipParseError when the stream cannot be framed (no valid Content-Length, or a
        message over the size limit: status 513); the framer stays failed afterwards.
        """
        if self._failed:
            raise SipParseError("stream framing failed earlier")
        try:
            return self._feed(data)
        except SipParseError:
            self._failed = True
            raise

    def _feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            total = self._total
            if total is None:
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
                end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
                if end < 0:
                    self._scanned = len(buf)
                    if len(buf) > self._max_size:
                        raise SipParseError("header section too large", 513)
                    break
                total = end + 4 + _content_length(bytes(buf[:end]))
                if total > self._max_size:
                    raise SipParseError("message too large", 513)
                self._total = total
            if len(buf) < total:
                break
            out.append(bytes(buf[:total]))
            del buf[:total]
            self._total = None
            self._scanned = 0
        return out


def _content_length(head: bytes) -> int:
    value: int | None = None
    if b"\r\n " in head or b"\r\n\t" in head:  # unfold continuation lines (§7.3.1)
        head = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b" ")
    for line in head.split(b"\r\n")[1:]:
        name, colon, rest = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            text = rest.strip()
            if not text.isdigit() or len(text.lstrip(b"0")) > 10:
                raise SipParseError("bad Content-Length on a stream")
            if value is not None and value != int(text):
                raise SipParseError("conflicting Content-Length headers")
            value = int(text)
    if value is None:
        raise SipParseError("Content-Length missing on a stream transport")
    return value
