# parse_message: one SIP message from bytes (RFC 3261 §7, §7.5, §18.3, §20.14; RFC 4475).
#
# Strategy: split the start line and the header lines and nothing more (typed values are parsed
# lazily by Message). The usual message -- CRLF line ends, no folding, header names seen before --
# goes through one list comprehension; anything else (folding, bare LF, new names, errors) through
# the general line loop. The first-value index the typed accessors use is built here too.
# Errors: SipParseError only; 505 for another SIP version, 513 over the size or header limits.
from __future__ import annotations

import re
from typing import Final

from ._errors import SipParseError
from ._grammar import canonical_name
from ._message import _TOKEN, Header, Request, Response
from ._values import parse_cseq_number

__all__ = ["parse_message"]

_LINE_SPLIT: Final = re.compile(r"\r?\n")
_EMPTY_LINE: Final = re.compile(rb"\r?\n\r?\n")
_NAMES: dict[str, str] = {}
"""Header names as written on the wire -> canonical key; a bounded memo of _header_key."""
_METHODS: Final = frozenset({"REGISTER", "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "PRACK",
                             "SUBSCRIBE", "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE",
                             "UPDATE"})


def _header_key(name: str) -> str:
    """Validate a header name (with any whitespace before the colon) and canonicalise it."""
    stripped = name.rstrip(" \t")
    if not _TOKEN.match(stripped):
        raise SipParseError(f"bad header name {stripped[:30]!r}")
    key = canonical_name(stripped)
    if len(_NAMES) < 4096:
        _NAMES[name] = key
    return key


def _split_head(data: bytes, start: int) -> tuple[bytes, bytes]:
    """(header section, rest) at the first empty line (CRLF CRLF, or bare LF LF)."""
    end = data.find(b"\r\n\r\n", start)
    if end >= 0 and data.find(b"\n\n", start, end) < 0:
        return data[start:end], data[end + 4:]
    # bare LF line ends somewhere (§7.5: be liberal): the first line end followed by a line end
    m = _EMPTY_LINE.search(data, start)
    if m is None:
        return data[start:].rstrip(b"\r\n"), b""  # no empty line: all headers (RFC 4475 baddn)
    return data[start:m.start()], data[m.end():]


def _check_nul(head: bytes) -> None:
    """A NUL octet is only allowed as a quoted-pair (``\\`` NUL, RFC 4475 §3.1.1.2)."""
    i = head.find(b"\x00")
    while i >= 0:
        if i == 0 or head[i - 1] != 0x5C:
            raise SipParseError("NUL byte in the header section")
        i = head.find(b"\x00", i + 1)


def _content_length(values: list[str]) -> int | None:
    value: int | None = None
    for text in values:
        if not text.isdigit() or not text.isascii():
            raise SipParseError(f"bad Content-Length {text[:20]!r}")  # RFC 4475 §3.1.2.3
        n = parse_cseq_number(text)
        if n is None:
            raise SipParseError("Content-Length too large")
        if value is not None and value != n:
            raise SipParseError("conflicting Content-Length headers")  # RFC 4475 §3.3.9
        value = n
    return value


def parse_message(data: bytes, *, max_size: int = 65535, max_headers: int = 256,
                  stream: bool = False) -> Request | Response:
    """Parse one SIP message.

    For a datagram (``stream=False``) a Content-Length shorter than the remaining bytes truncates
    the body (RFC 3261 §18.3, RFC 4475 §3.1.1.8) and a larger one is an error (§3.1.2.2); a
    missing one means "the rest". With ``stream=True`` (bytes framed by StreamFramer)
    Content-Length is required when there is a body.
    Returns Request | Response; raises SipParseError (and nothing else) with the status a server
    should answer: 505 for another SIP version, 513 over ``max_size`` / ``max_headers``, else 400.
    """
    if len(data) > max_size:
        raise SipParseError("message too large", 513)
    start = 0
    if not data or data[0] in (10, 13):
        if not data:
            raise SipParseError("empty message")
        while data.startswith(b"\r\n", start) or data.startswith(b"\n", start):
            start += 2 if data[start] == 13 else 1  # §7.5: skip CRLFs before the start line
    end = data.find(b"\r\n\r\n", start)
    if end > start:
        head_bytes, body = data[start:end], data[end + 4:]
    else:
        head_bytes, body = _split_head(data, start)
    text = head_bytes.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    n = len(lines) - 1
    crlf_only = text.count("\n") == n
    if not crlf_only:  # bare LF line ends (§7.5: be liberal); maybe an earlier empty line
        head_bytes, body = _split_head(data, start)
        text = head_bytes.decode("utf-8", "surrogateescape")
        lines = _LINE_SPLIT.split(text)
        n = len(lines) - 1
        if any("\r" in line for line in lines):
            raise SipParseError("bare CR in the header section")
    elif text.count("\r") != n:
        raise SipParseError("bare CR in the header section")
    if not text:
        raise SipParseError("empty message")
    if "\x00" in text:
        _check_nul(head_bytes)
    if n > max_headers:
        raise SipParseError("too many header lines", 513)
    first = lines[0]
    names = _NAMES
    headers: list[Header] | None
    try:  # the usual case: known header names, no folding, every line has a colon
        headers = [(names[name], value.strip(" \t"), line) for line in lines[1:]
                   for name, colon, value in (line.partition(":"),) if colon]
        if len(headers) != n:
            headers = None
    except KeyError:
        headers = None
    if headers is None:
        headers = _split_headers(lines)
    idx = {k: v for k, v, _ in reversed(headers)}  # what the typed accessors look up
    rep = len(idx) != len(headers)
    cl_text = idx.get("content-length")
    cl_value: int | None
    if cl_text is None:
        cl_lines = None
        cl_value = None
    elif not rep and len(cl_text) < 10 and cl_text.isdigit() and cl_text.isascii():
        cl_lines = [cl_text]
        cl_value = int(cl_text)
    else:
        cl_lines = [v for k, v, _ in headers if k == "content-length"]
        cl_value = _content_length(cl_lines)
    if cl_value is None:
        if stream and body:
            raise SipParseError("Content-Length required on a stream transport")
    elif cl_value > len(body):
        raise SipParseError("Content-Length larger than the message body")
    elif cl_value < len(body):
        body = body[:cl_value]

    msg: Request | Response
    if first.startswith("SIP/2.0 ") and first[11:12] == " " and "1" <= first[8] <= "6" and (
            first[9:11].isdigit() and first[9:11].isascii()):
        msg = Response(int(first[8:11]), first[12:], tuple(headers), body)  # the usual case
    elif first[:1] in "Ss" and first[:4].upper() == "SIP/":
        version, _, rest = first.partition(" ")
        code, _, reason = rest.partition(" ")
        if version.upper() != "SIP/2.0":
            raise SipParseError(f"unsupported SIP version {version[:20]!r}", 505)
        if len(code) != 3 or not code.isdigit() or not code.isascii() or not "1" <= code[0] <= "6":
            raise SipParseError(f"bad status code {code[:10]!r}")  # RFC 4475 §3.1.2.19
        msg = Response(int(code), reason, tuple(headers), body, version)
    else:
        parts = first.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SipParseError("bad request line")  # RFC 4475 §3.1.2.8-10
        method, uri_text, version = parts
        if method not in _METHODS and not _TOKEN.match(method):
            raise SipParseError(f"bad method {method[:20]!r}")
        if version != "SIP/2.0" and version.upper() != "SIP/2.0":
            if version[:4].upper() == "SIP/":
                raise SipParseError(f"unsupported SIP version {version[:20]!r}", 505)
            raise SipParseError("bad request line")
        msg = Request(method, uri_text, tuple(headers), body, version)
    msg._idx = idx
    msg._rep = rep
    if (crlf_only and start == 0 and cl_value == len(body) and len(cl_lines or ()) == 1
            and len(data) == len(head_bytes) + 4 + len(body)):
        msg._raw = data  # nothing to fix: re-emit exactly the bytes that arrived
    return msg


def _split_headers(lines: list[str]) -> list[Header]:
    """The general header-line splitter: folding (§7.3.1), LWS before the colon, new names."""
    headers: list[Header] = []
    for line in lines[1:]:
        if not line:
            raise SipParseError("empty line inside the header section")
        if line[0] in " \t":  # continuation of a folded line (§7.3.1)
            if not headers:
                raise SipParseError("folded line before the first header")
            prev, value, raw = headers[-1]
            more = line.strip(" \t")
            headers[-1] = (prev, f"{value} {more}" if value and more else value or more,
                           raw + "\r\n" + line)
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"header line without ':' ({line[:30]!r})")
        key = _NAMES.get(name)
        if key is None:
            key = _header_key(name)
        headers.append((key, value.strip(" \t"), line))
    return headers
