# Lexical layer shared by the value parsers: RFC 3261 §25.1 character classes transcribed as named
# regex fragments (the ABNF rule beside each), header-name canonicalisation (compact forms, §7.3.3
# and §20), comma splitting outside quoted strings and angle brackets (§7.3.1), generic-param lists
# (§25.1 `generic-param`), quoted strings (§25.1 `quoted-string`, `quoted-pair`) and %-escapes
# (§19.1.2). Every function here raises SipParseError, and nothing else, on bad input.
from __future__ import annotations

import re
from typing import Final

from ._errors import SipParseError

__all__ = [
    "set_param",
    "CANONICAL",
    "DISPLAY_NAMES",
    "MULTI_VALUED",
    "Params",
    "canonical_name",
    "format_params",
    "get_param",
    "is_quoted",
    "is_token",
    "parse_params",
    "quote",
    "split_commas",
    "split_list",
    "unescape",
    "unquote",
]

Params = tuple[tuple[str, str | None], ...]
"""Parameters in wire order: (lower-case name, value as written or None for a flag)."""

# -- RFC 3261 §25.1 character classes (regex fragments) ------------------------------------------
# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHAR: Final = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN: Final = f"[{TOKEN_CHAR}]+"
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
# qdtext = LWS / %x21 / %x23-5B / %x5D-7E / UTF8-NONASCII ; quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
QUOTED: Final = r'"(?:[^"\\\r\n]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*"'
# gen-value = token / host / quoted-string (host adds ':' '[' ']' for IPv6)
GEN_VALUE: Final = f"[{TOKEN_CHAR}:\\[\\]]+|{QUOTED}"
# mark = "-" / "_" / "." / "!" / "~" / "*" / "'" / "(" / ")" ; unreserved = alphanum / mark
UNRESERVED: Final = r"A-Za-z0-9\-_.!~*'()"
# escaped = "%" HEXDIG HEXDIG
ESCAPED: Final = r"%[0-9A-Fa-f]{2}"
# paramchar = param-unreserved / unreserved / escaped ; param-unreserved = "[" / "]" / "/" / ":" / "&" / "+" / "$"
PARAMCHAR: Final = f"(?:[{UNRESERVED}\\[\\]/:&+$]|{ESCAPED})"
# user = 1*( unreserved / escaped / user-unreserved ) ; user-unreserved = "&" / "=" / "+" / "$" / "," / ";" / "?" / "/"
USER: Final = f"(?:[{UNRESERVED}&=+$,;?/]|{ESCAPED})+"
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
PASSWORD: Final = f"(?:[{UNRESERVED}&=+$,]|{ESCAPED})*"
# hname = 1*( hnv-unreserved / unreserved / escaped ) ; hnv-unreserved = "[" / "]" / "/" / "?" / ":" / "+" / "$"
HCHAR: Final = f"(?:[{UNRESERVED}\\[\\]/?:+$]|{ESCAPED})"
# hostname = *( domainlabel "." ) toplabel [ "." ] (we also accept '_', common in the wild)
HOSTNAME: Final = r"[A-Za-z0-9_](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_.])?"

_TOKEN_RE: Final = re.compile(f"{TOKEN}\\Z")
_GEN_VALUE_RE: Final = re.compile(f"(?:{GEN_VALUE})\\Z")
_QUOTED_RE: Final = re.compile(f"{QUOTED}\\Z")

TOKEN_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)

# Compact forms: RFC 3261 §7.3.3 and the header definitions in §20; RFC 3515 (r), RFC 3892 (b),
# RFC 3265 (o, u), RFC 3841 (j, d, a), RFC 4474 (y, n), RFC 4028 (x).
_COMPACT: Final = {
    "i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
    "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to", "v": "via",
    "o": "event", "u": "allow-events", "r": "refer-to", "b": "referred-by", "x": "session-expires",
    "j": "reject-contact", "d": "request-disposition", "a": "accept-contact", "y": "identity",
    "n": "identity-info",
}
CANONICAL: Final[dict[str, str]] = dict(_COMPACT)

# How a header name is written when we create the header ourselves.
DISPLAY_NAMES: Final = {
    "call-id": "Call-ID", "cseq": "CSeq", "www-authenticate": "WWW-Authenticate",
    "max-forwards": "Max-Forwards", "content-length": "Content-Length", "min-expires": "Min-Expires",
    "record-route": "Record-Route", "retry-after": "Retry-After", "user-agent": "User-Agent",
    "proxy-authenticate": "Proxy-Authenticate", "content-type": "Content-Type",
}

# Headers whose value is a comma-separated list (RFC 3261 §7.3.1): one line may hold several.
MULTI_VALUED: Final = frozenset({
    "via", "contact", "route", "record-route", "path", "supported", "require", "unsupported",
    "proxy-require", "allow", "accept", "accept-encoding", "accept-language", "allow-events",
    "content-encoding", "in-reply-to", "service-route",
})


def canonical_name(name: str) -> str:
    """Lower-case full header name for ``name`` as written on the wire (compact forms expanded)."""
    low = name.lower()
    return CANONICAL.get(low, low)


def is_token(text: str) -> bool:
    """Is ``text`` an RFC 3261 §25.1 token?"""
    return _TOKEN_RE.match(text) is not None


def _split_outside(value: str, sep: str) -> list[str]:
    """Split at ``sep`` outside quoted strings and <...>; raises on an unterminated quote."""
    parts: list[str] = []
    start = 0
    quoted = False
    angle = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angle = True
        elif c == ">":
            angle = False
        elif c == sep and not angle:
            parts.append(value[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise SipParseError("unterminated quoted string")
    parts.append(value[start:])
    return parts


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quoted strings and <...> (§7.3.1), stripping each
    element and dropping empty ones (lenient: for option tags and headers we only forward)."""
    if "," not in value:
        value = value.strip()
        return [value] if value else []
    if '"' in value or "<" in value:
        parts = _split_outside(value, ",")
    else:
        parts = value.split(",")
    out = [p.strip() for p in parts]
    return [p for p in out if p]


def split_list(value: str) -> list[str]:
    """Like split_commas, but an empty element (``a,,b``, a trailing comma, an empty value) is
    an error, as the grammar of Via, Contact, Route, Record-Route and Path says (§25.1)."""
    if "," not in value:
        value = value.strip()
        if not value:
            raise SipParseError("empty header value")
        return [value]
    if '"' in value or "<" in value:
        parts = _split_outside(value, ",")
    else:
        parts = value.split(",")
    out = [p.strip() for p in parts]
    if not all(out):
        raise SipParseError("empty element in a comma-separated list")
    return out


def parse_params(text: str) -> Params:
    """``;a=1;b;c="x;y"`` (one leading ';' optional) -> (("a","1"),("b",None),("c",'"x;y"')).

    Header parameters (§25.1 ``generic-param``): LWS allowed around ';' and '='; names are
    tokens, lower-cased (parameter names are case-insensitive, §7.3.1); values are a token, a host
    or a quoted string, kept as written (quotes included) so that re-emission is exact. An empty
    parameter (``;;``, a trailing ';') is an error (RFC 4475 §3.1.2.1).
    """
    text = text.strip()
    if not text:
        return ()
    if text[0] == ";":
        text = text[1:]
    pieces = _split_outside(text, ";") if '"' in text else text.split(";")
    out: list[tuple[str, str | None]] = []
    for piece in pieces:
        name, eq, val = piece.partition("=")
        name = name.strip()
        if not _TOKEN_RE.match(name):
            raise SipParseError(f"bad parameter name {name[:30]!r}" if name else "empty parameter")
        if eq:
            val = val.strip()
            if not _GEN_VALUE_RE.match(val):
                raise SipParseError(f"bad value for parameter {name[:30]!r}")
            out.append((name.lower(), val))
        else:
            out.append((name.lower(), None))
    return tuple(out)


def format_params(params: Params) -> str:
    """``;name=value;flag`` for every parameter, in order."""
    if len(params) == 1:
        k, v = params[0]
        return ";" + k if v is None else f";{k}={v}"
    return "".join([";" + k if v is None else f";{k}={v}" for k, v in params])


def get_param(params: Params, name: str) -> str | None:
    """The value of parameter ``name`` (lower-case); '' for a flag without value; None if absent."""
    for k, v in params:
        if k == name:
            return "" if v is None else v
    return None


def unquote(text: str) -> str:
    """Remove the quotes of a quoted-string and resolve its quoted-pairs (§25.1); text that is
    not a quoted string is returned unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out = []
        i = 0
        while i < len(inner):
            c = inner[i]
            if c == "\\" and i + 1 < len(inner):
                i += 1
                c = inner[i]
            out.append(c)
            i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """A quoted-string for ``text`` (backslash and double quote escaped, §25.1)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def is_quoted(text: str) -> bool:
    """Is ``text`` exactly one well-formed quoted-string?"""
    return _QUOTED_RE.match(text) is not None


_HEX: Final = "0123456789abcdefABCDEF"


def unescape(text: str) -> str:
    """Resolve %HH escapes (§19.1.2, §19.1.4) once; a malformed escape is an error."""
    if "%" not in text:
        return text
    out = bytearray()
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raise SipParseError("unencodable character") from None
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25:
            if i + 3 > n:
                raise SipParseError("truncated %-escape")
            h = raw[i + 1:i + 3].decode("latin-1")
            if h[0] not in _HEX or h[1] not in _HEX:
                raise SipParseError("bad %-escape")
            out.append(int(h, 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "surrogateescape")


def set_param(params: Params, name: str, value: str | None) -> Params:
    """``params`` with ``name`` set to ``value``: replaced where it stood, else appended."""
    out = []
    done = False
    for k, v in params:
        if k == name:
            if not done:
                out.append((name, value))
                done = True
        else:
            out.append((k, v))
    if not done:
        out.append((name, value))
    return tuple(out)
