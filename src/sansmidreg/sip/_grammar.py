# Lexical helpers shared by the value parsers: RFC 3261 §25.1 character classes, header-name
# canonicalisation (compact forms, §7.3.3 and §20), comma splitting outside quotes and angle
# brackets (§7.3.1), generic-param lists (§25.1 `generic-param`), quoted strings and escapes.
from __future__ import annotations

from typing import Final

from ._errors import SipParseError

__all__ = [
    "CANONICAL",
    "DISPLAY_NAMES",
    "MULTI_VALUED",
    "Params",
    "canonical_name",
    "format_params",
    "get_param",
    "is_token",
    "parse_params",
    "split_commas",
    "unescape",
    "unquote",
]

Params = tuple[tuple[str, str | None], ...]

# RFC 3261 §25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)

# Compact forms: RFC 3261 §7.3.3 and the header definitions in §20; RFC 3515 (r), RFC 3892 (b),
# RFC 3265 (o, u), RFC 3841 (j, d), RFC 4474 (y, n), RFC 4028 (x), RFC 3329 (none).
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
    return bool(text) and all(c in TOKEN_CHARS for c in text)


def split_commas(value: str) -> list[str]:
    """Split a header value at commas that are outside quoted strings and <...> (§7.3.1)."""
    if "," not in value:
        value = value.strip()
        return [value] if value else []
    if '"' not in value and "<" not in value:
        parts = value.split(",")
    else:
        parts = []
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
            elif c == "," and not angle:
                parts.append(value[start:i])
                start = i + 1
            i += 1
        if quoted:
            raise SipParseError("unterminated quoted string")
        parts.append(value[start:])
    out = [p.strip() for p in parts]
    return [p for p in out if p]


def _find_unquoted(text: str, char: str, start: int = 0) -> int:
    """Index of ``char`` outside quoted strings, or -1."""
    if '"' not in text:
        return text.find(char, start)
    quoted = False
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == char:
            return i
        i += 1
    return -1


def parse_params(text: str) -> Params:
    """``;a=1;b;c="x;y"`` (leading ';' optional) -> (("a","1"),("b",None),("c",'"x;y"')).

    Names are lower-cased (parameter names are case-insensitive, §7.3.1); values are kept as
    written, quotes included, so that re-emission is exact.
    """
    out: list[tuple[str, str | None]] = []
    if '"' in text:
        pieces = []
        start = 0
        while True:
            j = _find_unquoted(text, ";", start)
            if j < 0:
                pieces.append(text[start:])
                break
            pieces.append(text[start:j])
            start = j + 1
    else:
        pieces = text.split(";")
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        name, eq, val = piece.partition("=")
        name = name.strip()
        if not name:
            raise SipParseError("empty parameter name")
        out.append((name.lower(), val.strip() if eq else None))
    return tuple(out)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def get_param(params: Params, name: str) -> str | None:
    """The value of parameter ``name`` (lower-case); '' for a flag without value; None if absent."""
    for k, v in params:
        if k == name:
            return "" if v is None else v
    return None


def unquote(text: str) -> str:
    """Remove the quotes of a quoted-string and resolve its quoted-pairs (§25.1)."""
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


_HEX: Final = "0123456789abcdefABCDEF"


def unescape(text: str) -> str:
    """Resolve %HH escapes (§19.1.2, §19.1.4); a malformed escape is an error."""
    if "%" not in text:
        return text
    out = bytearray()
    raw = text.encode("utf-8", "surrogateescape")
    i = 0
    n = len(raw)
    while i < n:
        b = raw[i]
        if b == 0x25:
            if i + 3 > n:
                raise SipParseError("truncated %-escape")
            h = raw[i + 1:i + 3].decode("latin-1")
            if len(h) != 2 or h[0] not in _HEX or h[1] not in _HEX:
                raise SipParseError("bad %-escape")
            out.append(int(h, 16))
            i += 3
        else:
            out.append(b)
            i += 1
    return out.decode("utf-8", "surrogateescape")
