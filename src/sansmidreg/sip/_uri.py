# URIs: SIP/SIPS URIs parsed into their parts (RFC 3261 §19.1.1), compared as §19.1.4 says, and
# any other scheme (tel:, http:, urn:, unknown ones) kept as an opaque absolute URI (§19.1, RFC 4475
# §3.1.1.8 "unknown scheme"). Values stay escaped as written; comparison unescapes.
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Self

from ._errors import SipParseError
from ._grammar import Params, format_params, get_param, parse_params, unescape

__all__ = ["Uri", "parse_host_port"]

# URI parameters that, when present in either URI, must match in both (§19.1.4).
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")

_BAD_HOST = re.compile(r"[ \t<>\"'@;?,\[\]\\/]")
_BAD_USER = re.compile(r"[ \t<>\"]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*\Z")
_IPV6 = re.compile(r"[0-9a-fA-F:.]+\Z")
_BAD_OPAQUE = re.compile(r"[ \t<>]")


def parse_host_port(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 references in brackets -> (host without brackets, port)."""
    if not text:
        raise SipParseError("empty host")
    if text[0] == "[":
        end = text.find("]")
        if end < 0:
            raise SipParseError("unterminated IPv6 reference")
        host = text[1:end]
        if not _IPV6.match(host):
            raise SipParseError("bad IPv6 reference")
        rest = text[end + 1:]
        if not rest:
            return host, None
        if rest[0] != ":":
            raise SipParseError("junk after IPv6 reference")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.partition(":")
        if not host or _BAD_HOST.search(host):
            raise SipParseError(f"bad host {host!r}")
        if not sep:
            return host, None
    if not port_text.isdigit() or not port_text.isascii() or int(port_text) > 65535:
        raise SipParseError(f"bad port {port_text!r}")
    return host, int(port_text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Uri:
    """A URI. For ``sip``/``sips`` every part is parsed; any other scheme keeps ``opaque`` (the
    text after the colon) and leaves the other fields empty.
    """

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
        """Parse a URI; raises SipParseError (status 416 for a scheme we cannot route)."""
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        low = scheme.lower()
        if not colon or not _SCHEME.match(scheme):
            raise SipParseError(f"bad URI {text[:60]!r}")
        if low not in ("sip", "sips"):
            if not rest or _BAD_OPAQUE.search(rest):
                raise SipParseError(f"bad URI {text[:60]!r}")
            return cls(scheme=low, opaque=rest)
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1:]
            user, pcolon, pw = userinfo.partition(":")
            password = pw if pcolon else None
            if _BAD_USER.search(userinfo):
                raise SipParseError("bad characters in URI user part")
        headers: tuple[tuple[str, str], ...] = ()
        q = rest.find("?")
        if q >= 0:
            rest, head_text = rest[:q], rest[q + 1:]
            pairs = []
            for item in head_text.split("&"):
                if item:
                    hname, _, hval = item.partition("=")
                    pairs.append((hname, hval))
            headers = tuple(pairs)
        semi = rest.find(";")
        if semi >= 0:
            hostport, params = rest[:semi], parse_params(rest[semi + 1:])
        else:
            hostport, params = rest, ()
        if " " in hostport or "\t" in hostport:
            raise SipParseError("whitespace inside URI")
        host, port = parse_host_port(hostport)
        return cls(scheme=low, user=user, password=password, host=host, port=port,
                   params=params, headers=headers)

    @property
    def is_sip(self) -> bool:
        return self.opaque is None

    def param(self, name: str) -> str | None:
        """The value of URI parameter ``name``: '' for a flag, None when absent."""
        return get_param(self.params, name)

    def with_params(self, params: Params) -> Uri:
        return replace(self, params=params)

    def without_param(self, name: str) -> Uri:
        return replace(self, params=tuple(p for p in self.params if p[0] != name))

    @property
    def host_port(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host_port)
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(parts)

    def equivalent(self, other: Uri) -> bool:
        """RFC 3261 §19.1.4 URI comparison."""
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque is not None and other.opaque is not None and (
                unescape(self.opaque).lower() == unescape(other.opaque).lower())
        if (self.user is None) != (other.user is None):
            return False
        if self.user is not None and other.user is not None and (
                unescape(self.user) != unescape(other.user)):
            return False
        if (self.password or None) != (other.password or None):
            if unescape(self.password or "") != unescape(other.password or ""):
                return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {k: _norm(v) for k, v in self.params}
        theirs = {k: _norm(v) for k, v in other.params}
        for name in _MUST_MATCH:
            if mine.get(name) != theirs.get(name):
                return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        hmine = {unescape(k).lower(): unescape(v) for k, v in self.headers}
        htheirs = {unescape(k).lower(): unescape(v) for k, v in other.headers}
        return hmine == htheirs

    def key(self) -> str:
        """A string equal for URIs that are equivalent when neither carries parameters or headers
        that §19.1.4 would ignore; used to index bindings (exact matches confirmed by equivalent)."""
        if self.opaque is not None:
            return f"{self.scheme}:{unescape(self.opaque).lower()}"
        user = unescape(self.user) if self.user is not None else ""
        return f"{self.scheme}:{user}@{self.host.lower()}:{self.port or ''}"


def _norm(value: str | None) -> str:
    return "" if value is None else unescape(value).lower()
