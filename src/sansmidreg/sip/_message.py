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
from collections.abc import Mapping
from operator import itemgetter
from typing import Final, Self

from ._errors import SipParseError
from ._grammar import DISPLAY_NAMES, canonical_name, split_commas, split_list
from ._uri import Uri
from ._values import (
    _ADDR_SPEC_FAST,
    _NAME_ADDR_FAST,
    ContactList,
    CSeq,
    NameAddr,
    Via,
    parse_cseq_number,
)

__all__ = ["Header", "Message", "Request", "Response", "reason_phrase"]

Header = tuple[str, str, str]
"""(canonical lower-case name, unfolded value, raw line as on the wire)."""

_TOKEN: Final = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# callid = word [ "@" word ] (§25.1)
_WORD: Final = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID: Final = re.compile(f"{_WORD}(?:@{_WORD})?\\Z")
_MAX_U32: Final = 2**32 - 1
_KEY: Final = itemgetter(0)
_RAW: Final = itemgetter(2)


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

    __slots__ = (
        "_cache",
        "_contacts",
        "_cseq",
        "_dups",
        "_from",
        "_idx",
        "_raw",
        "_rep",
        "_to",
        "_via",
        "body",
        "headers",
    )

    headers: tuple[Header, ...]
    body: bytes

    def __init__(self, headers: tuple[Header, ...], body: bytes = b"") -> None:
        self.headers = headers
        self.body = body
        self._raw: bytes | None = None
        self._idx: dict[str, str] | None = None  # first value of each header key
        self._rep = False  # some header key has more than one line
        self._dups: frozenset[str] | None = None  # keys whose lines disagree (computed lazily)
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
        return (self._idx or self._index()).get(canonical_name(name))

    def first(self, key: str) -> str | None:
        """``get`` for a name already in canonical form (lower case, long form): no
        normalisation, for hot paths that know the key."""
        return (self._idx or self._index()).get(key)

    def get_all(self, name: str) -> list[str]:
        """The values of every header line called ``name``, in order."""
        return self.lines(canonical_name(name))

    def lines(self, key: str) -> list[str]:
        """``get_all`` for a name already in canonical form (lower case, long form)."""
        value = (self._idx or self._index()).get(key)
        if not self._rep:
            return [] if value is None else [value]
        return [v for k, v, _ in self.headers if k == key]

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of every line called ``name`` (list headers, §7.3.1);
        empty elements are skipped."""
        out: list[str] = []
        for line in self.get_all(name):
            out.extend(split_commas(line))
        return out

    def has(self, name: str) -> bool:
        return canonical_name(name) in (self._idx or self._index())

    def single_values(self) -> Mapping[str, str] | None:
        """Every header key (canonical form) -> its value, when no key has more than one line;
        else None. (One lookup per header for hot paths; do not modify it.)"""
        idx = self._idx or self._index()
        return None if self._rep else idx

    # -- typed, cached accessors (raise SipParseError when missing or malformed) ---------------
    def _index(self) -> dict[str, str]:
        """First value of every header key (parse_message builds it; edited messages here)."""
        idx = self._idx
        if idx is None:
            headers = self.headers
            idx = self._idx = {k: v for k, v, _ in reversed(headers)}
            self._rep = len(idx) != len(headers)
        return idx

    def _dupset(self) -> frozenset[str]:
        """The header keys whose lines disagree."""
        dups = self._dups
        if dups is None:
            idx = self._idx or self._index()
            dups = self._dups = frozenset(
                k for k, v, _ in self.headers if idx[k] != v) if self._rep else frozenset()
        return dups

    def _single(self, key: str, label: str) -> str | None:
        """The value of a header that may appear once (identical repeats tolerated)."""
        value = (self._idx or self._index()).get(key)
        if value is not None and self._rep and key in self._dupset():
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
            for line in self.lines("via"):
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
            if text is None or self._rep:
                text = self._required("from", "From")
            self._from = value = NameAddr.parse(text)
        return value

    @property
    def to(self) -> NameAddr:
        value = self._to
        if value is None:
            text = (self._idx or self._index()).get("to")
            if text is None or self._rep:
                text = self._required("to", "To")
            self._to = value = NameAddr.parse(text)
        return value

    def check_address(self, key: str) -> None:
        """What ``from_`` (key ``"from"``) or ``to`` (``"to"``) checks -- there, once, well
        formed -- without building the value when the fast grammar matches it; SipParseError
        otherwise."""
        if key == "from":
            cached: NameAddr | None = self._from
        elif key == "to":
            cached = self._to
        else:
            raise ValueError(f"check_address: not an address header: {key!r}")
        if cached is not None:
            return
        text = (self._idx or self._index()).get(key)
        if text is None or self._rep:
            text = self._required(key, "From" if key == "from" else "To")
        m = _NAME_ADDR_FAST.match(text)
        params = m.group(8) if m is not None else None
        if m is None:
            m = _ADDR_SPEC_FAST.match(text)
            params = m.group(5) if m is not None else None
        if m is None or (params is not None and '"' in params):
            NameAddr.parse(text)  # the general grammar decides (and raises)

    @property
    def call_id(self) -> str:
        """The Call-ID (§20.8: ``word ["@" word]``, compared case-sensitively)."""
        value = (self._idx or self._index()).get("call-id")
        if value is None or self._rep:
            value = self._required("call-id", "Call-ID")
        if not _CALL_ID.match(value):
            raise SipParseError("bad Call-ID")
        return value

    @property
    def cseq(self) -> CSeq:
        value = self._cseq
        if value is None:
            text = (self._idx or self._index()).get("cseq")
            if text is None or self._rep:
                text = self._required("cseq", "CSeq")
            self._cseq = value = CSeq.parse(text)
        return value

    @property
    def contacts(self) -> ContactList:
        """Every Contact value (``*`` rules of §10.2.2 enforced); empty when there is none."""
        value = self._contacts
        if value is None:
            line = (self._idx or self._index()).get("contact")
            if line and not self._rep and line != "*" and "," not in line:
                value = object.__new__(ContactList)  # the usual case: one address
                value._star = False
                value._items = (NameAddr.parse(line),)
            else:
                value = ContactList.parse_values(self.lines("contact"))
            self._contacts = value
        return value

    @property
    def expires(self) -> int | None:
        """The Expires header (delta-seconds; huge values saturate at 2**32-1, §20.19)."""
        value = (self._idx or self._index()).get("expires")
        if value is None:
            return None
        if self._rep:
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
            for line in self.lines(key):
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
        value = (self._idx or self._index()).get("content-length")
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

    def serialize_without_top_via(self) -> bytes:
        """``pop_via().serialize()`` for a relayed response (RFC 3261 §16.7 step 3), written
        straight from the bytes received when the message is unedited: the first Via line loses
        its first value (or goes), every other byte is kept as it came."""
        raw = self._raw
        if raw is not None:
            for key, value, line in self.headers:
                if key == "via":
                    break
            else:
                raise SipParseError("no Via to remove")
            encoded = line.encode("utf-8", "surrogateescape")
            at = raw.find(b"\r\n" + encoded + b"\r\n")
            if at >= 0:
                at += 2
                end = at + len(encoded) + 2
                if "," not in value:
                    return raw[:at] + raw[end:]
                if '"' not in value:  # no quoted string: the first comma ends the first value
                    rest = value[value.index(",") + 1:].lstrip(" \t")
                    if rest:
                        kept = f"{line[:line.index(':')]}: {rest}\r\n"
                        return raw[:at] + kept.encode("utf-8", "surrogateescape") + raw[end:]
        return self.pop_via().serialize()

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
        self._rep = False
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

    __slots__ = ("reason", "status", "version")

    def __init__(self, status: int, reason: str, headers: tuple[Header, ...],
                 body: bytes = b"", version: str = "SIP/2.0") -> None:
        self.headers = headers
        self.body = body
        self._raw = None
        self._idx = None
        self._rep = False
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
