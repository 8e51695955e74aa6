# SIP messages (RFC 3261 §7, §18.3, §20): parse a datagram into Request | Response, serialize
# back, edit.
#
# Strategy (h11-style, lossless): parsing splits the start line and the header lines and nothing
# more; each header is kept as (canonical key, unfolded value, raw line). Typed values (Via, From,
# To, CSeq, Contact ...) are parsed on first access and cached, so a message that is only relayed
# costs a split. Serialization re-emits every raw line we did not edit byte for byte; edits return
# a new message and touch only the lines they change. Content-Length is made right on output.
#
# Errors: anything malformed raises SipParseError, and nothing else does -- at parse time for the
# framing (start line, version, header-line syntax, Content-Length, size limits), at first access
# for a typed value (including a second, different line of a single-valued header: RFC 4475
# §3.3.8). Messages are immutable by convention (slots, no setters); their caches are private.
from __future__ import annotations

import re
from operator import itemgetter
from typing import Final, Self

from ._errors import SipParseError
from ._grammar import DISPLAY_NAMES, canonical_name, split_commas, split_list
from ._uri import Uri
from ._values import ContactList, CSeq, NameAddr, Via, parse_cseq_number

__all__ = ["Header", "Message", "Request", "Response", "parse_message", "reason_phrase"]

Header = tuple[str, str, str]
"""(canonical lower-case name, unfolded value, raw line as on the wire)."""

_LINE_SPLIT: Final = re.compile(r"\r?\n")
_EMPTY_LINE: Final = re.compile(rb"\r?\n\r?\n")
_TOKEN: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# callid = word [ "@" word ] (§25.1)
_WORD: Final = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID: Final = re.compile(f"{_WORD}(?:@{_WORD})?\\Z")
_NAMES: dict[str, str] = {}
"""Header names as written on the wire -> canonical key; a bounded memo of _header_key."""
_MAX_U32: Final = 2**32 - 1
_KEY: Final = itemgetter(0)
_RAW: Final = itemgetter(2)
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


def _label(name: str, key: str) -> str:
    """How to write a header we add: as given, unless given in lower case."""
    return _display_name(key) if name.islower() else name


def _check_value(value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"header value contains a line break: {value[:40]!r}")
    return value


def _delta_seconds(value: str, label: str) -> int:
    """delta-seconds = 1*DIGIT (§25.1), saturated at 2**32-1 (§20.19, RFC 4475 §3.1.2.4)."""
    if not value.isdigit() or not value.isascii():
        raise SipParseError(f"bad {label} value {value[:20]!r}")
    n = parse_cseq_number(value)
    return _MAX_U32 if n is None else n


class Message:
    """Common part of Request and Response: headers, body, typed accessors, edits."""

    __slots__ = ("headers", "body", "_raw", "_idx", "_dups", "_via", "_from", "_to", "_cseq",
                 "_contacts", "_cache")

    headers: tuple[Header, ...]
    body: bytes

    def __init__(self, headers: tuple[Header, ...], body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self._raw: bytes | None = None
        self._idx: dict[str, str] | None = None
        self._dups: frozenset[str] | None = None
        self._via: Via | None = None
        self._from: NameAddr | None = None
        self._to: NameAddr | None = None
        self._cseq: CSeq | None = None
        self._contacts: ContactList | None = None
        self._cache: dict[str, object] | None = None

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
        """Every comma-separated value of every line called ``name`` (list headers, §7.3.1);
        empty elements are skipped."""
        out: list[str] = []
        for line in self.get_all(name):
            out.extend(split_commas(line))
        return out

    def has(self, name: str) -> bool:
        key = canonical_name(name)
        return any(k == key for k, _, _ in self.headers)

    # -- typed, cached accessors (raise SipParseError when missing or malformed) ---------------
    def _index(self) -> dict[str, str]:
        """First value of every header key. ``_dups`` becomes None when no key repeats, else the
        keys whose lines disagree."""
        idx = self._idx
        if idx is None:
            headers = self.headers
            idx = {k: v for k, v, _ in reversed(headers)}
            if len(idx) != len(headers):
                self._dups = frozenset(k for k, v, _ in headers if idx[k] != v)
            self._idx = idx
        return idx

    def _lines(self, key: str) -> list[str]:
        """Every value of the lines called ``key`` (canonical), in order."""
        idx = self._idx or self._index()
        if self._dups is None:
            value = idx.get(key)
            return [] if value is None else [value]
        return [v for k, v, _ in self.headers if k == key]

    def _single(self, key: str, label: str) -> str | None:
        """The value of a header that may appear once (identical repeats tolerated)."""
        value = (self._idx or self._index()).get(key)
        if value is not None and self._dups is not None and key in self._dups:
            raise SipParseError(f"more than one {label} header")  # RFC 4475 §3.3.8
        return value

    def _required(self, key: str, label: str) -> str:
        value = self._single(key, label)
        if value is None:
            raise SipParseError(f"missing {label} header")
        return value

    def _cached(self) -> dict[str, object]:
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        return cache

    @property
    def vias(self) -> tuple[Via, ...]:
        """Every Via value, top first."""
        cache = self._cached()
        cached = cache.get("vias")
        if cached is None:
            out: list[Via] = []
            for line in self._lines("via"):
                out.extend(Via.parse(item) for item in split_list(line))
            cache["vias"] = cached = tuple(out)
        return cached  # type: ignore[return-value]

    @property
    def top_via(self) -> Via:
        via = self._via
        if via is None:
            first = (self._idx or self._index()).get("via")
            if first is None:
                raise SipParseError("missing Via header")
            self._via = via = Via.parse(split_list(first)[0] if "," in first else first)
        return via

    @property
    def from_(self) -> NameAddr:
        value = self._from
        if value is None:
            text = (self._idx or self._index()).get("from")
            if text is None or self._dups is not None:
                text = self._required("from", "From")
            self._from = value = NameAddr.parse(text)
        return value

    @property
    def to(self) -> NameAddr:
        value = self._to
        if value is None:
            text = (self._idx or self._index()).get("to")
            if text is None or self._dups is not None:
                text = self._required("to", "To")
            self._to = value = NameAddr.parse(text)
        return value

    @property
    def call_id(self) -> str:
        """The Call-ID (§20.8: ``word ["@" word]``, compared case-sensitively)."""
        value = (self._idx or self._index()).get("call-id")
        if value is None or self._dups is not None:
            value = self._required("call-id", "Call-ID")
        if not _CALL_ID.match(value):
            raise SipParseError("bad Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self._cseq
        if value is None:
            text = (self._idx or self._index()).get("cseq")
            if text is None or self._dups is not None:
                text = self._required("cseq", "CSeq")
            self._cseq = value = CSeq.parse(text)
        return value

    @property
    def contacts(self) -> ContactList:
        """Every Contact value (``*`` rules of §10.2.2 enforced); empty when there is none."""
        value = self._contacts
        if value is None:
            line = (self._idx or self._index()).get("contact")
            if self._dups is None:
                lines = [] if line is None else [line]
            else:
                lines = self._lines("contact")
            self._contacts = value = ContactList.parse_values(lines)
        return value

    @property
    def expires(self) -> int | None:
        """The Expires header (delta-seconds; huge values saturate at 2**32-1, §20.19)."""
        value = (self._idx or self._index()).get("expires")
        if value is None:
            return None
        if self._dups is not None:
            self._single("expires", "Expires")
        if len(value) < 10 and value.isdigit() and value.isascii():
            return int(value)
        return _delta_seconds(value, "Expires")

    @property
    def min_expires(self) -> int | None:
        value = self._single("min-expires", "Min-Expires")
        return None if value is None else _delta_seconds(value, "Min-Expires")

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (§20.22: 0..255); SipParseError when above 255 or not a number."""
        value = self._single("max-forwards", "Max-Forwards")
        if value is None:
            return None
        n = _delta_seconds(value, "Max-Forwards")
        if n > 255:
            raise SipParseError("Max-Forwards above 255")
        return n

    def _addresses(self, key: str) -> tuple[NameAddr, ...]:
        cache = self._cached()
        cached = cache.get(key)
        if cached is None:
            out: list[NameAddr] = []
            for line in self._lines(key):
                out.extend(NameAddr.parse(item) for item in split_list(line))
            cache[key] = cached = tuple(out)
        return cached  # type: ignore[return-value]

    @property
    def path(self) -> tuple[NameAddr, ...]:
        """RFC 3327 Path values, top first."""
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
        """The Content-Length header as received (checked at parse time), None when absent."""
        value = self._index().get("content-length")
        return None if value is None else _delta_seconds(value, "Content-Length")

    def defects(self) -> tuple[str, ...]:
        """Registrar/proxy sanity checks (RFC 3261 §8.2, §10.3, §16.3; RFC 4475 §3.3) as flags in
        a fixed order; () for a clean message. See ``sansmidreg.sip.DEFECTS`` for the list."""
        cache = self._cached()
        cached = cache.get("defects")
        if cached is None:
            from ._checks import message_defects
            cache["defects"] = cached = message_defects(self)
        return cached  # type: ignore[return-value]

    # -- serialization -------------------------------------------------------------------------
    def serialize(self) -> bytes:
        """Wire bytes: start line, every header line, a Content-Length equal to the body length."""
        if self._raw is not None:
            return self._raw
        length = str(len(self.body))
        headers = self.headers
        if headers and headers[-1][0] == "content-length" and headers[-1][1] == length and (
                "content-length" not in map(_KEY, headers[:-1])):
            lines = [self.start_line(), *map(_RAW, headers), "", ""]  # nothing to fix
        else:
            lines = [self.start_line()]
            seen = False
            for key, value, raw in headers:
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

    # -- edits (each returns a new message; values must not contain line breaks) ----------------
    def replace_headers(self, name: str, values: list[str], *, display: str | None = None) -> Self:
        """Replace every line called ``name`` by one line per value, where the first one stood
        (appended at the end when there was none). An empty list removes the header."""
        key = canonical_name(name)
        label = display or _label(name, key)
        new = [(key, _check_value(v), f"{label}: {v}") for v in values]
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
        header = (key, _check_value(value), f"{_label(name, key)}: {value}")
        if first:
            return self._copy((header, *self.headers))
        return self._copy((*self.headers, header))

    def insert_before(self, name: str, value: str, *, before: str) -> Self:
        """Add ``name: value`` just before the first ``before`` header (else at the end)."""
        key = canonical_name(name)
        target = canonical_name(before)
        header = (key, _check_value(value), f"{_label(name, key)}: {value}")
        for i, h in enumerate(self.headers):
            if h[0] == target:
                return self._copy((*self.headers[:i], header, *self.headers[i:]))
        return self._copy((*self.headers, header))

    def push_via(self, via: Via | str) -> Self:
        """Add a Via line on top of the Via stack (RFC 3261 §16.6 step 8)."""
        text = _check_value(str(via))
        header = ("via", text, f"Via: {text}")
        for i, h in enumerate(self.headers):
            if h[0] == "via":
                return self._copy((*self.headers[:i], header, *self.headers[i:]))
        return self._copy((header, *self.headers))

    def pop_via(self) -> Self:
        """Remove the topmost Via value (RFC 3261 §16.7 step 3), keeping the rest of its line."""
        for i, (key, value, raw) in enumerate(self.headers):
            if key == "via":
                rest = split_list(value)[1:] if "," in value else []
                if rest:
                    joined = ", ".join(rest)
                    header: tuple[Header, ...] = (
                        ("via", joined, f"{raw[:raw.index(':')]}: {joined}"),)
                else:
                    header = ()
                return self._copy((*self.headers[:i], *header, *self.headers[i + 1:]))
        raise SipParseError("no Via to remove")

    def replace_top_via(self, via: Via) -> Self:
        """Rewrite the topmost Via value (e.g. to add received/rport, RFC 3261 §18.2.1)."""
        text = _check_value(str(via))
        for i, (key, value, raw) in enumerate(self.headers):
            if key == "via":
                rest = split_list(value)[1:] if "," in value else []
                joined = ", ".join([text, *rest])
                header = ("via", joined, f"{raw[:raw.index(':')]}: {joined}")
                return self._copy((*self.headers[:i], header, *self.headers[i + 1:]))
        raise SipParseError("no Via to replace")

    def with_body(self, body: bytes) -> Self:
        return self._copy(self.headers, body)

    # -- comparison ------------------------------------------------------------------------------
    def _key(self) -> tuple[object, ...]:
        return (self.start_line(),
                tuple((k, v) for k, v, _ in self.headers if k != "content-length"), self.body)

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
        self.headers = headers
        self.body = body
        self._raw = None
        self._idx = None
        self._dups = None
        self._via = self._from = self._to = None
        self._cseq = None
        self._contacts = None
        self._cache = None
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
        """The Request-URI, a SIP or SIPS URI: SipParseError 416 for any other scheme (RFC 3261
        §8.2.2.1, RFC 4475 §3.3.2), 400 when malformed or carrying ``?headers`` (§19.1.1
        table 1, RFC 4475 §3.1.2.11)."""
        cache = self._cached()
        cached = cache.get("uri")
        if cached is None:
            uri = Uri.parse(self.uri_text)
            if uri.opaque is not None:
                raise SipParseError(f"unsupported URI scheme {uri.scheme[:20]!r}", 416)
            if uri.headers:
                raise SipParseError("headers are not allowed in the Request-URI")
            cache["uri"] = cached = uri
        return cached  # type: ignore[return-value]

    def with_uri(self, uri: Uri | str) -> Self:
        text = str(uri)
        if not text or any(c in text for c in " \t\r\n"):
            raise ValueError(f"bad Request-URI {text[:40]!r}")
        return type(self)(self.method, text, self.headers, self.body, self.version)

    def with_method(self, method: str) -> Self:
        if not _TOKEN.match(method):
            raise ValueError(f"bad method {method[:40]!r}")
        return type(self)(method, self.uri_text, self.headers, self.body, self.version)


class Response(Message):
    """A SIP response."""

    __slots__ = ("status", "reason", "version")

    def __init__(self, status: int, reason: str, headers: tuple[Header, ...],
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        self.headers = headers
        self.body = body
        self._raw = None
        self._idx = None
        self._dups = None
        self._via = self._from = self._to = None
        self._cseq = None
        self._contacts = None
        self._cache = None
        self.status = status
        self.reason = reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def _copy(self, headers: tuple[Header, ...], body: bytes | None = None) -> Self:
        return type(self)(self.status, self.reason, headers,
                          self.body if body is None else body, self.version)

    def with_status(self, status: int, reason: str | None = None) -> Self:
        return type(self)(status, _check_value(reason or reason_phrase(status)), self.headers,
                          self.body, self.version)


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
    if data[:1] in b"\r\n":
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
    cl_lines = ([v for k, v, _ in headers if k == "content-length"]
                if "content-length" in map(_KEY, headers) else None)
    cl_value = _content_length(cl_lines) if cl_lines else None
    if cl_value is None:
        if stream and body:
            raise SipParseError("Content-Length required on a stream transport")
    elif cl_value > len(body):
        raise SipParseError("Content-Length larger than the message body")
    elif cl_value < len(body):
        body = body[:cl_value]

    msg: Request | Response
    if first[:1] in "Ss" and first[:4].upper() == "SIP/":
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
