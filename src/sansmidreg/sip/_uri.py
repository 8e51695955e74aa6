# URIs: SIP/SIPS URIs parsed into their parts (RFC 3261 §19.1.1, §25.1 `SIP-URI`), compared as
# §19.1.4 says, and any other scheme (tel:, http:, urn:, unknown ones) kept as an opaque absolute
# URI (§19.1, RFC 4475 §3.3.2-§3.3.4). Values stay escaped as written; comparison unescapes once.
#
# Strategy: a `Uri` is an immutable NamedTuple (cheap to build: the common case costs one regex
# match and one tuple). `Uri.parse` tries a fast regex for the usual `sip:user@host:port;params`
# shape (no escapes, no password, no IPv6, no headers) and otherwise falls back to the general
# parser, which validates every part against the grammar. Both give the same value for any text
# the fast path accepts (tested by hypothesis).
from __future__ import annotations

import ipaddress
import re
from typing import Final, NamedTuple, Self

from ._errors import SipParseError
from ._grammar import (
    set_param as _set_param,
    ESCAPED,
    HCHAR,
    HOSTNAME,
    PARAMCHAR,
    PASSWORD,
    USER,
    Params,
    format_params,
    get_param,
    unescape,
)

__all__ = ["Uri", "parse_host_port"]

# URI parameters that, when present in either URI, must match in both (§19.1.4).
_MUST_MATCH: Final = ("user", "ttl", "method", "maddr", "transport")

_new = tuple.__new__

# -- the fast path: sip(s):[user@]host[:port][;params] with plain characters only ----------------
# (possessive quantifiers: none of these classes can backtrack usefully; the port alternatives
# accept exactly 0..65535 without leading zeros, which the general parser handles)
_F_USER: Final = r"[A-Za-z0-9\-_.!~*'()&=+$,]++"
F_HOST: Final = r"[A-Za-z0-9][A-Za-z0-9\-.]*+(?<!-)"
F_PORT: Final = (r"(?::(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
                 r"|[0-9]{1,4}))?")
_F_PCHAR: Final = r"[A-Za-z0-9\-_.!~*'()\[\]/:&+$]++"
_F_PARAMS: Final = f"(?:;{_F_PCHAR}(?:={_F_PCHAR})?)*+"
SIP_URI_FAST: Final = f"(sips?):(?:({_F_USER})@)?({F_HOST}){F_PORT}({_F_PARAMS})"
"""Regex fragment with 5 groups: scheme, user, host, port, params text (leading ';')."""
_FAST: Final = re.compile(SIP_URI_FAST + r"\Z")

# -- the general grammar ---------------------------------------------------------------------------
_SCHEME: Final = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_USER: Final = re.compile(f"{USER}\\Z")
_PASSWORD: Final = re.compile(f"{PASSWORD}\\Z")
_HOSTNAME: Final = re.compile(f"{HOSTNAME}\\Z")
_URI_PARAM: Final = re.compile(f"({PARAMCHAR}+)(?:=({PARAMCHAR}+))?\\Z")
_URI_HEADER: Final = re.compile(f"({HCHAR}+)=({HCHAR}*)\\Z")
# absoluteURI (§25.1): scheme ":" ( hier-part / opaque-part ), printable ASCII without delimiters
_OPAQUE: Final = re.compile(f"(?:[A-Za-z0-9\\-_.!~*'();/?:@&=+$,#\\[\\]]|{ESCAPED})+\\Z")
_WS: Final = re.compile(r"\s")
_IPV6_CHARS: Final = re.compile(r"[0-9A-Fa-f:.]+\Z")


def simple_params(text: str) -> Params:
    """Split ``;a=b;c`` whose characters a regex already validated (no quotes, no spaces)."""
    if ";" not in text[1:]:
        name, eq, value = text[1:].partition("=")
        return ((name.lower(), value if eq else None),)
    out = []
    for piece in text[1:].split(";"):
        name, eq, value = piece.partition("=")
        out.append((name.lower(), value if eq else None))
    return tuple(out)


def _check_host(host: str) -> str:
    if host[:1] == "[":
        if host[-1] != "]":
            raise SipParseError("unterminated IPv6 reference")
        inner = host[1:-1]
        if not _IPV6_CHARS.match(inner):
            raise SipParseError(f"bad IPv6 reference {host[:50]!r}")
        try:
            ipaddress.IPv6Address(inner)
        except ValueError:
            raise SipParseError(f"bad IPv6 reference {host[:50]!r}") from None
        return inner
    if not _HOSTNAME.match(host):
        raise SipParseError(f"bad host {host[:50]!r}")
    return host


def _check_port(text: str) -> int:
    if not (0 < len(text) <= 5 and text.isdigit() and text.isascii()) or int(text) > 65535:
        raise SipParseError(f"bad port {text[:10]!r}")
    return int(text)


def parse_host_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 references in brackets -> (host without brackets, port)."""
    if not text:
        raise SipParseError("empty host")
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            raise SipParseError("unterminated IPv6 reference")
        host = _check_host(text[:end + 1])
        rest = text[end + 1:]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError("junk after IPv6 reference")
        return host, _check_port(rest[1:])
    host, sep, port_text = text.partition(":")
    host = _check_host(host)
    return host, _check_port(port_text) if sep else None


def _parse_sip(scheme: str, rest: str) -> tuple[object, ...]:
    """The general SIP-URI / SIPS-URI parser (§25.1); returns the 8 Uri fields."""
    user: str | None = None
    password: str | None = None
    at = rest.find("@")
    if at >= 0:
        userinfo, rest = rest[:at], rest[at + 1:]
        user, pcolon, pw = userinfo.partition(":")
        if not _USER.match(user):
            raise SipParseError("bad URI user part")
        if pcolon:
            if not _PASSWORD.match(pw):
                raise SipParseError("bad URI password")
            password = pw
    headers: tuple[tuple[str, str], ...] = ()
    q = rest.find("?")
    if q >= 0:
        rest, head_text = rest[:q], rest[q + 1:]
        pairs = []
        for item in head_text.split("&"):
            m = _URI_HEADER.match(item)
            if m is None:
                raise SipParseError(f"bad URI header {item[:30]!r}")
            pairs.append((m.group(1), m.group(2)))
        headers = tuple(pairs)
    params: Params = ()
    semi = rest.find(";")
    if semi >= 0:
        rest, ptext = rest[:semi], rest[semi + 1:]
        plist = []
        for piece in ptext.split(";"):
            m = _URI_PARAM.match(piece)
            if m is None:
                raise SipParseError(f"bad URI parameter {piece[:30]!r}")
            plist.append((m.group(1).lower(), m.group(2)))
        params = tuple(plist)
    host, port = parse_host_port(rest)
    return (scheme, user, password, host, port, params, headers, None)


class Uri(NamedTuple):
    """A URI. For ``sip``/``sips`` every part is parsed (``host`` without IPv6 brackets, ``params``
    with lower-case names, values as written); any other scheme keeps ``opaque`` (the text after
    the colon) and leaves the other fields empty. ``scheme`` is lower-case."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse a URI (surrounding whitespace ignored); raises SipParseError (400) when the text
        is not a URI. Unknown schemes parse into an opaque Uri (``is_sip`` False)."""
        m = _FAST.match(text)
        if m is not None:
            scheme, user, host, port, ptext = m.groups()
            return _new(cls, (scheme, user, None, host, int(port) if port else None,
                              simple_params(ptext) if ptext else (), (), None))
        return cls.parse_general(text)

    @classmethod
    def parse_general(cls, text: str) -> Self:
        """The general parser (what ``parse`` falls back to); exposed for tests."""
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if not colon or not _SCHEME.match(scheme) or not rest:
            raise SipParseError(f"bad URI {text[:60]!r}")
        if _WS.search(rest):
            raise SipParseError("whitespace inside URI")
        low = scheme.lower()
        if low in ("sip", "sips"):
            return _new(cls, _parse_sip(low, rest))
        if not _OPAQUE.match(rest):
            raise SipParseError(f"bad URI {text[:60]!r}")
        return _new(cls, (low, None, None, "", None, (), (), rest))

    @property
    def is_sip(self) -> bool:
        """True for sip: and sips: URIs (parsed into parts), False for opaque ones."""
        return self.opaque is None

    def param(self, name: str) -> str | None:
        """The value of URI parameter ``name`` (lower-case): '' for a flag, None when absent.
        A %-escaped parameter name matches its unescaped form (§19.1.4)."""
        found = get_param(self.params, name)
        if found is None:
            for k, v in self.params:
                if "%" in k and unescape(k).lower() == name:
                    return "" if v is None else v
        return found

    def with_params(self, params: Params) -> Uri:
        return self._replace(params=params)

    def with_param(self, name: str, value: str | None) -> Uri:
        """Set (or append) URI parameter ``name``, keeping the others in order."""
        return self._replace(params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> Uri:
        return self._replace(params=tuple(p for p in self.params if p[0] != name))

    def without_headers(self) -> Uri:
        """The URI without its ``?headers`` part (e.g. to forward a Request-URI, RFC 4475
        §3.1.2.11)."""
        return self._replace(headers=())

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        scheme, user, password, host, port, params, headers, opaque = self
        if opaque is not None:
            return scheme + ":" + opaque
        if ":" in host:
            host = "[" + host + "]"
        if port is not None:
            host = f"{host}:{port}"
        if user is not None:
            host = (user + "@" if password is None else f"{user}:{password}@") + host
        if params:
            host += format_params(params)
        if headers:
            host += "?" + "&".join(f"{k}={v}" for k, v in headers)
        return scheme + ":" + host

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)

    def equivalent(self, other: Uri) -> bool:
        """RFC 3261 §19.1.4 URI comparison: scheme and host case-insensitive, userinfo
        case-sensitive, %-escapes resolved, a default port never equal to an absent one, the user,
        ttl, method, maddr and transport parameters must match when either URI has them, other
        parameters only when both have them, headers always. Raises SipParseError only for
        malformed escapes in values built by hand."""
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque is not None and other.opaque is not None and (
                unescape(self.opaque) == unescape(other.opaque))
        if (self.user is None) != (other.user is None):
            return False
        if self.user is not None and other.user is not None and (
                unescape(self.user) != unescape(other.user)):
            return False
        if unescape(self.password or "") != unescape(other.password or ""):
            return False
        if self.port != other.port or not _same_host(self.host, other.host):
            return False
        mine = _norm_params(self.params)
        theirs = _norm_params(other.params)
        for name in _MUST_MATCH:
            if mine.get(name) != theirs.get(name):
                return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        return _norm_headers(self.headers) == _norm_headers(other.headers)

    def key(self) -> str:
        """A string equal for URIs that are equivalent when neither carries parameters or headers
        that §19.1.4 would ignore; used to index bindings (exact matches confirmed by equivalent)."""
        if self.opaque is not None:
            return f"{self.scheme}:{unescape(self.opaque)}"
        user = unescape(self.user) if self.user is not None else ""
        return f"{self.scheme}:{user}@{self.host.lower()}:{self.port or ''}"


def _same_host(a: str, b: str) -> bool:
    if a.lower() == b.lower():
        return True
    if ":" in a and ":" in b:  # IPv6 references compare as addresses
        try:
            return ipaddress.IPv6Address(a) == ipaddress.IPv6Address(b)
        except ValueError:
            return False
    return False


def _norm_params(params: Params) -> dict[str, str]:
    return {unescape(k).lower(): "" if v is None else unescape(v).lower() for k, v in params}


def _norm_headers(headers: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {unescape(k).lower(): unescape(v) for k, v in headers}
