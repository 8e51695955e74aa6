# Typed header values a registrar and proxy interpret (RFC 3261 §20, §25.1): name-addr/addr-spec
# with header params (From, To, Contact, Route, Record-Route, Path; §20.10, §20.20, §20.39), Via
# (§20.42, §18.2.1, RFC 3581 rport), CSeq (§20.16), the Contact list (`*` or addresses, §10.2.2)
# and the RFC 5626 contact parameters (+sip.instance, reg-id).
#
# Strategy: NameAddr, Via and CSeq are immutable NamedTuples with `parse` and `__str__`. Each
# `parse` first tries one regex for the shape nearly every message uses (`"Name" <sip:u@h:p;x>;t=1`,
# `SIP/2.0/UDP h:p;branch=...`, `1 REGISTER`) and falls back to a general parser that accepts all
# the grammar allows (LWS, quoted-pairs, escapes, IPv6, URI headers) and rejects what it does not
# (RFC 4475 §3.1.2). Parameters keep their values as written so re-emission changes nothing else.
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple, Self

from ._errors import SipParseError
from ._grammar import (
    set_param as _set_param,
    TOKEN,
    TOKEN_CHAR,
    Params,
    format_params,
    get_param,
    is_quoted,
    parse_params,
    split_list,
    unquote,
)
from ._uri import F_HOST, F_PORT, SIP_URI_FAST, Uri, parse_host_port, simple_params

__all__ = ["CSeq", "ContactList", "NameAddr", "Via", "parse_cseq_number"]

_new = tuple.__new__

# -- fast-path regexes (a subset of the grammar: plain tokens, no LWS, no quoted-pairs) ----------
# Possessive quantifiers throughout (nothing here needs backtracking). The header parameters are
# captured as (all, first name, first value, rest) so that the usual single parameter (`;tag=x`,
# `;branch=z9hG4bK...`) needs no splitting.
_F_TOKEN: Final = f"[{TOKEN_CHAR}]++"
_F_QUOTED: Final = r'"[^"\\\r\n]*+"'
_F_VALUE: Final = f"[{TOKEN_CHAR}:\\[\\]]++|{_F_QUOTED}"
_F_HPARAMS: Final = (f"(;({_F_TOKEN})(?:=({_F_VALUE}))?"
                     f"((?:;{_F_TOKEN}(?:=(?:{_F_VALUE}))?)*+))?")
_NAME_ADDR_FAST: Final = re.compile(
    f"(?:({_F_QUOTED})|({_F_TOKEN}(?: {_F_TOKEN})*+))?[ \\t]*+<{SIP_URI_FAST}>{_F_HPARAMS}\\Z")
_ADDR_SPEC_FAST: Final = re.compile(
    f"(sips?):(?:([A-Za-z0-9\\-_.!~*'()&=+$,]++)@)?({F_HOST}){F_PORT}{_F_HPARAMS}\\Z")
_VIA_FAST: Final = re.compile(f"SIP/2\\.0/([A-Z]++) ({F_HOST}){F_PORT}{_F_HPARAMS}\\Z")
_CSEQ_FAST: Final = re.compile(f"([0-9]{{1,9}}) ({_F_TOKEN})\\Z")

# -- general grammar -----------------------------------------------------------------------------
# display-name = *(token LWS) / quoted-string (UTF-8 letters tolerated in unquoted words)
_DISPLAY_WORDS: Final = re.compile(f"[{TOKEN_CHAR}\\x80-\\U0010ffff]+(?:[ \\t]+[{TOKEN_CHAR}\\x80-\\U0010ffff]+)*\\Z")
_TOKEN_RE: Final = re.compile(f"{TOKEN}\\Z")
_CSEQ: Final = re.compile(f"([0-9]+)[ \\t]+({TOKEN})\\Z")
_QVALUE: Final = re.compile(r"(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\Z")
_SENT_BY_COLON: Final = re.compile(r"[ \t]*:[ \t]*")
_MAX_U32: Final = 2**32 - 1


def parse_cseq_number(text: str, limit: int = _MAX_U32) -> int | None:
    """ASCII digits -> int, None when above ``limit`` (never converts a huge digit string)."""
    digits = text.lstrip("0")
    if len(digits) > 10:
        return None
    value = int(digits) if digits else 0
    return value if value <= limit else None


def _find_laquot(text: str) -> int:
    """Index of the '<' opening a name-addr, skipping a quoted display name; -1 if none."""
    if '"' not in text:
        return text.find("<")
    i = 0
    n = len(text)
    quoted = False
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            return i
        i += 1
    if quoted:
        raise SipParseError("unterminated quoted display name")
    return -1


def _header_params(whole: str | None, name: str, value: str | None, rest: str) -> Params:
    """Header params from the _F_HPARAMS groups."""
    if whole is None:
        return ()
    if not rest:
        return ((name.lower(), value),)
    return parse_params(whole) if '"' in whole else simple_params(whole)


class NameAddr(NamedTuple):
    """``["display"] <uri>;params`` or ``uri;params`` (RFC 3261 §20.10, §25.1).

    ``display`` is kept as written (quotes included); ``display_name`` gives it unquoted.
    ``angle`` records whether the URI was in angle brackets (it always is when re-emitted with
    a display name or URI parameters). In the addr-spec form every ``;param`` is a header
    parameter (§20.10; RFC 4475 §3.3.12).
    """

    uri: Uri
    display: str | None = None
    params: Params = ()
    angle: bool = True

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse one address; raises SipParseError (400) when malformed."""
        m = _NAME_ADDR_FAST.match(text)
        if m is not None:
            quoted, words, scheme, user, host, port, up, hp, hname, hvalue, hrest = m.groups()
            uri = _new(Uri, (scheme, user, None, host, int(port) if port else None,
                             simple_params(up) if up else (), (), None))
            if hp is None:
                params: Params = ()
            elif not hrest:
                params = ((hname.lower(), hvalue),)
            else:
                params = _header_params(hp, hname, hvalue, hrest)
            return _new(cls, (uri, quoted or words, params, True))
        m = _ADDR_SPEC_FAST.match(text)
        if m is not None:
            scheme, user, host, port, hp, hname, hvalue, hrest = m.groups()
            uri = _new(Uri, (scheme, user, None, host, int(port) if port else None, (), (), None))
            return _new(cls, (uri, None, _header_params(hp, hname, hvalue, hrest), False))
        return cls.parse_general(text)

    @classmethod
    def parse_general(cls, text: str) -> Self:
        """The general parser (what ``parse`` falls back to); exposed for tests."""
        text = text.strip()
        if not text:
            raise SipParseError("empty address")
        lt = _find_laquot(text)
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError("'<' without '>' in address")
            display = text[:lt].strip() or None
            if display is not None and not (
                    is_quoted(display) if display[0] == '"' else _DISPLAY_WORDS.match(display)):
                raise SipParseError("bad display name")  # RFC 4475 §3.1.2.6, §3.1.2.15
            inner = text[lt + 1:gt]
            if inner != inner.strip():
                raise SipParseError("whitespace inside <...>")  # RFC 4475 §3.1.2.14
            uri = Uri.parse(inner)
            rest = text[gt + 1:].strip()
            if rest and rest[0] != ";":
                raise SipParseError("junk after '>' in address")
            return _new(cls, (uri, display, parse_params(rest) if rest else (), True))
        # addr-spec: parameters after the first ';' belong to the header, not the URI (§20.10)
        uri_text, semi, ptext = text.partition(";")
        uri_text = uri_text.strip()
        if not uri_text or any(c in uri_text for c in " \t\"<>"):
            raise SipParseError("address with spaces or quotes needs <...>")
        if "?" in uri_text and uri_text.lower().startswith(("sip:", "sips:")):
            # §20.10: a URI with headers must be enclosed in <> (RFC 4475 §3.1.2.13)
            raise SipParseError("URI with headers needs <...>")
        params = parse_params(";" + ptext) if semi else ()
        return _new(cls, (Uri.parse(uri_text), None, params, False))

    @property
    def display_name(self) -> str | None:
        """The display name without quotes and quoted-pairs (None when there is none)."""
        return None if self.display is None else unquote(self.display)

    def param(self, name: str) -> str | None:
        """Header parameter ``name`` (lower-case): '' for a flag, None when absent."""
        return get_param(self.params, name)

    @property
    def tag(self) -> str | None:
        return get_param(self.params, "tag")

    @property
    def expires(self) -> str | None:
        """The raw ``expires`` parameter (Contact), None when absent."""
        return get_param(self.params, "expires")

    @property
    def expires_seconds(self) -> int | None:
        """The ``expires`` parameter as delta-seconds (§20.10), saturated at 2**32-1; None when
        absent; SipParseError when it is not a number."""
        raw = get_param(self.params, "expires")
        if raw is None:
            return None
        if not raw.isdigit() or not raw.isascii():
            raise SipParseError(f"bad expires parameter {raw[:20]!r}")
        value = parse_cseq_number(raw)
        return _MAX_U32 if value is None else value

    @property
    def q(self) -> float | None:
        """The ``q`` parameter as a float in [0, 1] (§20.10 qvalue); SipParseError when malformed."""
        text = get_param(self.params, "q")
        if text is None:
            return None
        if not _QVALUE.match(text):
            raise SipParseError(f"bad q value {text[:20]!r}")
        return float(text)

    @property
    def instance(self) -> str | None:
        """RFC 5626 ``+sip.instance`` (unquoted)."""
        raw = get_param(self.params, "+sip.instance")
        return None if raw is None else unquote(raw)

    @property
    def reg_id(self) -> int | None:
        """RFC 5626 ``reg-id`` (1..2**31-1); None when absent or not a number."""
        raw = get_param(self.params, "reg-id")
        if raw is None or not raw.isdigit() or not raw.isascii() or len(raw) > 10:
            return None
        value = int(raw)
        return value if 0 < value < 2**31 else None

    def with_params(self, params: Params) -> NameAddr:
        return self._replace(params=params)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        """Set (or add) a header parameter, keeping the others in order."""
        return self._replace(params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> NameAddr:
        return self._replace(params=tuple(p for p in self.params if p[0] != name))

    def with_uri(self, uri: Uri) -> NameAddr:
        return self._replace(uri=uri)

    def __str__(self) -> str:
        uri_value, display, params, angle = self
        uri = str(uri_value)
        if display is not None:
            head = f"{display} <{uri}>"
        elif angle or uri_value.params or uri_value.headers or (
                "," in uri or ";" in uri or "?" in uri):
            head = "<" + uri + ">"
        else:
            head = uri
        return head + format_params(params) if params else head

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class Via(NamedTuple):
    """One Via value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport). ``transport`` is upper-case,
    ``host`` has no IPv6 brackets, ``protocol`` is e.g. ``SIP/2.0``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse one via-parm; raises SipParseError (400) when malformed."""
        m = _VIA_FAST.match(text)
        if m is not None:
            transport, host, port, hp, hname, hvalue, hrest = m.groups()
            if hp is None:
                params: Params = ()
            elif not hrest:
                params = ((hname.lower(), hvalue),)
            else:
                params = _header_params(hp, hname, hvalue, hrest)
            return _new(cls, (transport, host, int(port) if port else None, params, "SIP/2.0"))
        return cls.parse_general(text)

    @classmethod
    def parse_general(cls, text: str) -> Self:
        """The general parser (what ``parse`` falls back to); exposed for tests."""
        text = text.strip()
        # sent-protocol = protocol-name SLASH protocol-version SLASH transport (LWS around '/')
        parts = text.split("/", 2)
        if len(parts) != 3:
            raise SipParseError("bad Via sent-protocol")
        name, version = parts[0].strip(), parts[1].strip()
        rest = parts[2].lstrip()
        sp = 0
        while sp < len(rest) and rest[sp] not in " \t":
            sp += 1
        transport = rest[:sp]
        rest = rest[sp:].strip()
        if not (_TOKEN_RE.match(name) and _TOKEN_RE.match(version)
                and _TOKEN_RE.match(transport) and rest):
            raise SipParseError("bad Via")
        sent_by, semi, ptext = rest.partition(";")
        # sent-by = host [ COLON port ]: LWS allowed around the colon only (§25.1)
        sent_by = _SENT_BY_COLON.sub(":", sent_by.strip())
        if " " in sent_by or "\t" in sent_by:
            raise SipParseError("bad Via sent-by")
        host, port = parse_host_port(sent_by)
        params = parse_params(";" + ptext) if semi else ()
        return _new(cls, (transport.upper(), host, port, params,
                          f"{name.upper()}/{version}"))

    def param(self, name: str) -> str | None:
        return get_param(self.params, name)

    @property
    def branch(self) -> str | None:
        return get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return get_param(self.params, "received")

    @property
    def rport(self) -> str | None:
        """'' when the client asked for rport (RFC 3581), the port when filled in, else None."""
        return get_param(self.params, "rport")

    @property
    def sent_by(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def with_param(self, name: str, value: str | None) -> Via:
        """Set a parameter where it was (first occurrence; duplicates dropped), else append."""
        return self._replace(params=_set_param(self.params, name, value))

    def without_param(self, name: str) -> Via:
        return self._replace(params=tuple(p for p in self.params if p[0] != name))

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class CSeq(NamedTuple):
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16): a 32-bit unsigned number and a method token."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> Self:
        """Parse a CSeq value; SipParseError (400) when malformed or above 2**32-1 (RFC 4475
        §3.1.2.4). Leading zeros and LWS between the parts are allowed (§3.1.1.1)."""
        m = _CSEQ_FAST.match(text)
        if m is not None:
            seq, method = m.groups()
            return _new(cls, (int(seq), method))
        m = _CSEQ.match(text.strip())
        if m is None:
            raise SipParseError(f"bad CSeq {text[:40]!r}")
        seq = parse_cseq_number(m.group(1))
        if seq is None:
            raise SipParseError("CSeq number above 2**32-1")
        return _new(cls, (seq, m.group(2)))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return tuple.__hash__(self)


class ContactList:
    """The Contact header field(s) of a message: ``*`` or a list of addresses (§20.10).
    Immutable (read-only ``star`` and ``items``). Iterating (and ``len``) goes over ``items``;
    it is true when there is ``*`` or an address."""

    __slots__ = ("_items", "_star")

    def __init__(self, *, star: bool = False, items: tuple[NameAddr, ...] = ()) -> None:
        self._star = star
        self._items = items

    @property
    def star(self) -> bool:
        return self._star

    @property
    def items(self) -> tuple[NameAddr, ...]:
        return self._items

    @classmethod
    def parse_values(cls, lines: list[str]) -> Self:
        """Parse the values of every Contact line of a message. ``*`` must stand alone (one
        line, one value, no parameters: §10.2.2, §20.10); an empty line or element is an error."""
        if len(lines) == 1:
            line = lines[0]
            if "," not in line and line != "*" and line:
                new = object.__new__(cls)
                new._star = False
                new._items = (NameAddr.parse(line),)
                return new
        items: list[NameAddr] = []
        star = False
        for line in lines:
            for value in split_list(line):
                if value == "*":
                    star = True
                else:
                    items.append(NameAddr.parse(value))
        if star and (items or len(lines) > 1):
            raise SipParseError("Contact: * must stand alone")
        return cls(star=star, items=tuple(items))

    def __bool__(self) -> bool:
        return self._star or bool(self._items)

    def __iter__(self) -> Iterator[NameAddr]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, ContactList)
        return self._star == other._star and self._items == other._items

    def __hash__(self) -> int:
        return hash((self._star, self._items))

    def __repr__(self) -> str:
        return f"ContactList(star={self._star!r}, items={self._items!r})"

    def __str__(self) -> str:
        return "*" if self._star else ", ".join(str(c) for c in self._items)
