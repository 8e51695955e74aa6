# SIP messages (RFC 3261 §7): parse a datagram into Request | Response, serialize back, edit.
#
# Strategy (h11-style, lossless): parsing splits the start line and the header lines and nothing
# more; each header is kept as (canonical key, unfolded value, raw line). Typed values (Via, From,
# To, CSeq, Contact ...) are parsed on first access and cached, so a message that is only relayed
# costs a split. Serialization re-emits every raw line we did not edit byte for byte; edits return
# a new message and touch only the lines they change. Content-Length is made right on output.
#
# Errors: anything malformed raises SipParseError -- at parse time for the framing (start line,
# header syntax, Content-Length, size limits), at first access for a typed value. Messages are
# immutable by convention (slots, no setters); their caches are private.
from __future__ import annotations

import re
from typing import Final, Self

from ._errors import SipParseError
from ._grammar import DISPLAY_NAMES, canonical_name, split_commas
from ._uri import Uri
from ._values import ContactList, CSeq, NameAddr, Via

__all__ = ["Header", "Message", "Request", "Response", "parse_message", "reason_phrase"]

Header = tuple[str, str, str]
"""(canonical lower-case name, unfolded value, raw line as on the wire)."""

_LINE_SPLIT: Final = re.compile(r"\r?\n")
_TOKEN: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_NAMES: dict[str, str] = {}
"""Header names as written on the wire -> canonical key; a bounded memo of _header_key."""


def _header_key(name: str) -> str:
    """Validate a header name (with any whitespace before the colon) and canonicalise it."""
    stripped = name.rstrip(" \t")
    if not _TOKEN.match(stripped):
        raise SipParseError(f"bad header name {stripped[:30]!r}")
    key = canonical_name(stripped)
    if len(_NAMES) < 4096:
        _NAMES[name] = key
    return key
_DEFAULT_REASONS: Final = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    407: "Proxy Authentication Required", 408: "Request Timeout", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type", 416: "Unsupported URI Scheme",
    420: "Bad Extension", 421: "Extension Required", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist", 482: "Loop Detected",
    483: "Too Many Hops", 484: "Address Incomplete", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 491: "Request Pending", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 §21 reason phrase of a status code (a generic one for unknown codes)."""
    return _DEFAULT_REASONS.get(status) or _DEFAULT_REASONS.get(status // 100 * 100, "Unknown")


def _display_name(key: str) -> str:
    return DISPLAY_NAMES.get(key) or "-".join(p.capitalize() for p in key.split("-"))


class Message:
    """Common part of Request and Response: headers, body, typed accessors, edits."""

    __slots__ = ("headers", "body", "_cache", "_raw")

    headers: tuple[Header, ...]
    body: bytes

    def __init__(self, headers: tuple[Header, ...], body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self._cache: dict[str, object] = {}
        self._raw: bytes | None = None

    # -- start line (subclasses) ---------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def _copy(self, headers: tuple[Header, ...], body: bytes | None = None) -> Self:
        raise NotImplementedError

    # -- raw header access ---------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The value of the first header line called ``name`` (any case, compact form ok)."""
        key = canonical_name(name)
        for k, value, _ in self.headers:
            if k == key:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        """The values of every header line called ``name``, in order."""
        key = canonical_name(name)
        return [value for k, value, _ in self.headers if k == key]

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of every line called ``name`` (list headers, §7.3.1)."""
        out: list[str] = []
        for line in self.get_all(name):
            out.extend(split_commas(line))
        return out

    def has(self, name: str) -> bool:
        key = canonical_name(name)
        return any(k == key for k, _, _ in self.headers)

    # -- typed, cached accessors (raise SipParseError when missing or malformed) ---------------
    def _first(self, key: str) -> str | None:
        for k, value, _ in self.headers:
            if k == key:
                return value
        return None

    def _required(self, key: str, label: str) -> str:
        value = self._first(key)
        if value is None:
            raise SipParseError(f"missing {label} header")
        return value

    @property
    def vias(self) -> tuple[Via, ...]:
        cached = self._cache.get("vias")
        if cached is None:
            cached = tuple(Via.parse(v) for v in self.values("via"))
            self._cache["vias"] = cached
        return cached  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        cached = self._cache.get("top_via")
        if cached is None:
            first = self._required("via", "Via")
            cached = Via.parse(split_commas(first)[0] if "," in first else first)
            self._cache["top_via"] = cached
        return cached  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        cached = self._cache.get("from")
        if cached is None:
            cached = NameAddr.parse(self._required("from", "From"))
            self._cache["from"] = cached
        return cached  # type: ignore[return-value]

    @property
    def to(self) -> NameAddr:
        cached = self._cache.get("to")
        if cached is None:
            cached = NameAddr.parse(self._required("to", "To"))
            self._cache["to"] = cached
        return cached  # type: ignore[return-value]

    @property
    def call_id(self) -> str:
        value = self._required("call-id", "Call-ID")
        if not value or " " in value or "\t" in value:
            raise SipParseError("bad Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        cached = self._cache.get("cseq")
        if cached is None:
            cached = CSeq.parse(self._required("cseq", "CSeq"))
            self._cache["cseq"] = cached
        return cached  # type: ignore[return-value]

    @property
    def contacts(self) -> ContactList:
        cached = self._cache.get("contacts")
        if cached is None:
            cached = ContactList.parse_values([v for k, v, _ in self.headers if k == "contact"])
            self._cache["contacts"] = cached
        return cached  # type: ignore[return-value]

    def _int_header(self, key: str, label: str, limit: int) -> int | None:
        value = self._first(key)
        if value is None:
            return None
        if not value.isdigit() or not value.isascii():
            raise SipParseError(f"bad {label} value {value[:20]!r}")
        return min(int(value), limit)

    @property
    def expires(self) -> int | None:
        """The Expires header (delta-seconds; huge values saturate at 2**32-1, §20.19)."""
        return self._int_header("expires", "Expires", 2**32 - 1)

    @property
    def min_expires(self) -> int | None:
        return self._int_header("min-expires", "Min-Expires", 2**32 - 1)

    @property
    def max_forwards(self) -> int | None:
        value = self._int_header("max-forwards", "Max-Forwards", 2**31)
        if value is not None and value > 255:
            raise SipParseError("Max-Forwards above 255")
        return value

    def _addresses(self, key: str) -> tuple[NameAddr, ...]:
        cached = self._cache.get(key)
        if cached is None:
            cached = tuple(NameAddr.parse(v) for v in self.values(key))
            self._cache[key] = cached
        return cached  # type: ignore[return-value]

    @property
    def path(self) -> tuple[NameAddr, ...]:
        return self._addresses("path")

    @property
    def route(self) -> tuple[NameAddr, ...]:
        return self._addresses("route")

    @property
    def record_route(self) -> tuple[NameAddr, ...]:
        return self._addresses("record-route")

    def option_tags(self, name: str) -> frozenset[str]:
        """Supported / Require / Proxy-Require / Unsupported as a set of lower-case tags."""
        return frozenset(v.lower() for v in self.values(name))

    @property
    def content_length(self) -> int | None:
        return self._int_header("content-length", "Content-Length", 2**31)

    # -- serialization -------------------------------------------------------------------------
    def serialize(self) -> bytes:
        """Wire bytes: start line, every header line, a Content-Length equal to the body length."""
        if self._raw is not None:
            return self._raw
        length = str(len(self.body))
        lines = [self.start_line()]
        seen = False
        for key, value, raw in self.headers:
            if key == "content-length":
                if seen:
                    continue
                seen = True
                if value != length:
                    raw = raw[:raw.index(":") + 1] + " " + length
            lines.append(raw)
        if not seen:
            lines.append("Content-Length: " + length)
        lines.append("")
        lines.append("")
        data = "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body
        self._raw = data
        return data

    __bytes__ = serialize

    # -- edits (each returns a new message) ------------------------------------------------------
    def replace_headers(self, name: str, values: list[str], *, display: str | None = None) -> Self:
        """Replace every line called ``name`` by one line per value, where the first one stood
        (appended at the end when there was none). An empty list removes the header."""
        key = canonical_name(name)
        label = display or _display_name(key)
        new = [(key, v, f"{label}: {v}") for v in values]
        out: list[Header] = []
        placed = False
        for header in self.headers:
            if header[0] == key:
                if not placed:
                    out.extend(new)
                    placed = True
            else:
                out.append(header)
        if not placed:
            out.extend(new)
        return self._copy(tuple(out))

    def remove_headers(self, *names: str) -> Self:
        keys = {canonical_name(n) for n in names}
        if not any(h[0] in keys for h in self.headers):
            return self
        return self._copy(tuple(h for h in self.headers if h[0] not in keys))

    def add_header(self, name: str, value: str, *, first: bool = False) -> Self:
        """Add one header line at the end (or before every other line with ``first``)."""
        key = canonical_name(name)
        header = (key, value, f"{_display_name(key) if name.islower() else name}: {value}")
        if first:
            return self._copy((header, *self.headers))
        return self._copy((*self.headers, header))

    def insert_before(self, name: str, value: str, *, before: str) -> Self:
        """Add ``name: value`` just before the first ``before`` header (else at the end)."""
        key = canonical_name(name)
        target = canonical_name(before)
        header = (key, value, f"{_display_name(key) if name.islower() else name}: {value}")
        for i, h in enumerate(self.headers):
            if h[0] == target:
                return self._copy((*self.headers[:i], header, *self.headers[i:]))
        return self._copy((*self.headers, header))

    def push_via(self, via: Via | str) -> Self:
        """Add a Via line on top of the Via stack (RFC 3261 §16.6 step 8)."""
        text = str(via)
        header = ("via", text, f"Via: {text}")
        for i, h in enumerate(self.headers):
            if h[0] == "via":
                return self._copy((*self.headers[:i], header, *self.headers[i:]))
        return self._copy((header, *self.headers))

    def pop_via(self) -> Self:
        """Remove the topmost Via value (RFC 3261 §16.7 step 3), keeping the rest of its line."""
        for i, (key, value, raw) in enumerate(self.headers):
            if key == "via":
                rest = split_commas(value)[1:] if "," in value else []
                if rest:
                    joined = ", ".join(rest)
                    header: tuple[Header, ...] = (("via", joined, f"{raw[:raw.index(':')]}: {joined}"),)
                else:
                    header = ()
                return self._copy((*self.headers[:i], *header, *self.headers[i + 1:]))
        raise SipParseError("no Via to remove")

    def replace_top_via(self, via: Via) -> Self:
        """Rewrite the topmost Via value (e.g. to add received/rport, RFC 3261 §18.2.1)."""
        text = str(via)
        for i, (key, value, raw) in enumerate(self.headers):
            if key == "via":
                rest = split_commas(value)[1:] if "," in value else []
                joined = ", ".join([text, *rest])
                header = ("via", joined, f"{raw[:raw.index(':')]}: {joined}")
                return self._copy((*self.headers[:i], header, *self.headers[i + 1:]))
        raise SipParseError("no Via to replace")

    def with_body(self, body: bytes) -> Self:
        return self._copy(self.headers, body)

    # -- comparison ------------------------------------------------------------------------------
    def _key(self) -> tuple[object, ...]:
        return (self.start_line(), tuple((k, v) for k, v, _ in self.headers if k != "content-length"),
                self.body)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or type(other) is not type(self):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.start_line()!r} ({len(self.headers)} headers)>"


class Request(Message):
    """A SIP request. ``uri_text`` is the Request-URI as written; ``uri`` parses it."""

    __slots__ = ("method", "uri_text", "version")

    def __init__(self, method: str, uri_text: str, headers: tuple[Header, ...],
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri_text = uri_text
        self.version = version

    def start_line(self) -> str:
        return f"{self.method} {self.uri_text} {self.version}"

    def _copy(self, headers: tuple[Header, ...], body: bytes | None = None) -> Self:
        return type(self)(self.method, self.uri_text, headers,
                          self.body if body is None else body, self.version)

    @property
    def uri(self) -> Uri:
        """The Request-URI (SipParseError 416 for a scheme that is not an absolute URI)."""
        cached = self._cache.get("uri")
        if cached is None:
            cached = Uri.parse(self.uri_text)
            self._cache["uri"] = cached
        return cached  # type: ignore[return-value]

    def with_uri(self, uri: Uri | str) -> Self:
        return type(self)(self.method, str(uri), self.headers, self.body, self.version)

    def with_method(self, method: str) -> Self:
        return type(self)(method, self.uri_text, self.headers, self.body, self.version)


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason", "version")

    def __init__(self, status: int, reason: str, headers: tuple[Header, ...],
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def _copy(self, headers: tuple[Header, ...], body: bytes | None = None) -> Self:
        return type(self)(self.status, self.reason, headers,
                          self.body if body is None else body, self.version)

    def with_status(self, status: int, reason: str | None = None) -> Self:
        return type(self)(status, reason or reason_phrase(status), self.headers, self.body,
                          self.version)


def parse_message(data: bytes, *, max_size: int = 65535, max_headers: int = 256,
                  stream: bool = False) -> Request | Response:
    """Parse one SIP message.

    For a datagram (``stream=False``) a Content-Length shorter than the remaining bytes truncates
    the body and a larger one is an error (RFC 3261 §18.3); a missing one means "the rest".
    With ``stream=True`` (bytes framed by StreamFramer) Content-Length is required.
    Raises SipParseError with the status a server should answer.
    """
    if len(data) > max_size:
        raise SipParseError("message too large", 513)
    start = 0
    while data.startswith(b"\r\n", start) or data.startswith(b"\n", start):
        start += 2 if data[start] == 13 else 1  # RFC 3261 §7.5: skip CRLFs before the start line
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        head_bytes, body = data[start:end], data[end + 4:]
    else:
        end = data.find(b"\n\n", start)
        if end >= 0:
            head_bytes, body = data[start:end], data[end + 2:]
        else:
            head_bytes, body = data[start:].rstrip(b"\r\n"), b""
    if not head_bytes:
        raise SipParseError("empty message")
    if b"\x00" in head_bytes:
        raise SipParseError("NUL byte in the header section")
    text = head_bytes.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    crlf_only = text.count("\n") == len(lines) - 1
    if not crlf_only:  # bare LF line ends somewhere: be liberal in what we accept
        lines = _LINE_SPLIT.split(text)
    if len(lines) - 1 > max_headers:
        raise SipParseError("too many header lines", 513)
    first = lines[0]
    headers: list[Header] = []
    names = _NAMES
    for line in lines[1:]:
        if not line:
            raise SipParseError("empty line inside the header section")
        if line[0] in " \t":  # continuation of a folded line (§7.3.1)
            if not headers:
                raise SipParseError("folded line before the first header")
            key, value, raw = headers[-1]
            headers[-1] = (key, f"{value} {line.strip()}".strip(), raw + "\r\n" + line)
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise SipParseError(f"header line without ':' ({line[:30]!r})")
        key = names.get(name)
        if key is None:
            key = _header_key(name)
        headers.append((key, value.strip(" \t"), line))
    header_tuple = tuple(headers)

    cl_value: int | None = None
    for key, value, _ in header_tuple:
        if key == "content-length":
            if not value.isdigit() or not value.isascii():
                raise SipParseError(f"bad Content-Length {value[:20]!r}")
            n = int(value)
            if cl_value is not None and cl_value != n:
                raise SipParseError("conflicting Content-Length headers")
            cl_value = n
    if cl_value is None:
        if stream and body:
            raise SipParseError("Content-Length required on a stream transport")
    elif cl_value > len(body):
        raise SipParseError("Content-Length larger than the message body")
    elif cl_value < len(body):
        body = body[:cl_value]

    msg: Request | Response
    if first.startswith("SIP/"):
        version, _, rest = first.partition(" ")
        code, _, reason = rest.partition(" ")
        if version != "SIP/2.0":
            raise SipParseError(f"unsupported SIP version {version[:20]!r}", 505)
        if len(code) != 3 or not code.isdigit() or not code.isascii() or code[0] == "0":
            raise SipParseError(f"bad status code {code[:10]!r}")
        msg = Response(int(code), reason, header_tuple, body, version)
    else:
        parts = first.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SipParseError("bad request line")
        method, uri_text, version = parts
        if not _TOKEN.match(method):
            raise SipParseError(f"bad method {method[:20]!r}")
        if version.upper() != "SIP/2.0":
            if version.upper().startswith("SIP/"):
                raise SipParseError(f"unsupported SIP version {version[:20]!r}", 505)
            raise SipParseError("bad request line")
        msg = Request(method, uri_text, header_tuple, body, version)
    if (crlf_only and start == 0 and cl_value == len(body)
            and len(data) == len(head_bytes) + 4 + len(body)):
        msg._raw = data  # nothing to fix: re-emit exactly the bytes that arrived
    return msg
