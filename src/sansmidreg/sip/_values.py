# Typed header values a registrar and proxy interpret (RFC 3261 §20, §25.1): name-addr/addr-spec
# with header params (From, To, Contact, Route, Record-Route, Path), Via, CSeq, the Contact list
# (`*` or addresses). Each is a frozen dataclass with `parse` and `__str__`; values keep their
# parameters as written so that re-emission changes nothing it was not asked to change.
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Self

from ._errors import SipParseError
from ._grammar import Params, format_params, get_param, parse_params, split_commas, unquote
from ._uri import Uri, parse_host_port

__all__ = ["CSeq", "ContactList", "NameAddr", "Via"]


def _find_laquot(text: str) -> int:
    """Index of the '<' opening a name-addr, skipping a quoted display name; -1 if none."""
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


@dataclass(frozen=True, slots=True, kw_only=True)
class NameAddr:
    """``["display"] <uri>;params`` or ``uri;params`` (RFC 3261 §20.10, §25.1).

    ``display`` is kept as written (quotes included); ``display_name`` gives it unquoted.
    ``angle`` records whether the URI was in angle brackets (it always is when re-emitted with
    a display name or URI parameters).
    """

    uri: Uri
    display: str | None = None
    params: Params = ()
    angle: bool = True

    @classmethod
    def parse(cls, text: str) -> Self:
        text = text.strip()
        if not text:
            raise SipParseError("empty address")
        lt = text.find("<") if '"' not in text else _find_laquot(text)
        if lt >= 0:
            gt = text.find(">", lt)
            if gt < 0:
                raise SipParseError("'<' without '>' in address")
            display = text[:lt].strip() or None
            if display is not None and display[0] != '"':
                # RFC 3261 §25.1: display-name = *(token LWS) / quoted-string
                for word in display.split():
                    if any(c in '<>@:;,"\\' for c in word):
                        raise SipParseError("bad display name")
            uri = Uri.parse(text[lt + 1:gt])
            rest = text[gt + 1:].strip()
            if rest and rest[0] != ";":
                raise SipParseError("junk after '>' in address")
            return cls(uri=uri, display=display, params=parse_params(rest) if rest else ())
        # addr-spec: parameters after the first ';' belong to the header, not the URI (§20.10)
        semi = text.find(";")
        if semi >= 0:
            uri_text, params = text[:semi], parse_params(text[semi + 1:])
        else:
            uri_text, params = text, ()
        uri_text = uri_text.strip()
        if " " in uri_text or "\t" in uri_text:
            raise SipParseError("address with spaces needs <...>")
        return cls(uri=Uri.parse(uri_text), params=params, angle=False)

    @property
    def display_name(self) -> str | None:
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
    def q(self) -> float | None:
        """The ``q`` parameter as a float in [0, 1]; raises SipParseError when malformed."""
        text = get_param(self.params, "q")
        if text is None:
            return None
        try:
            value = float(text)
        except ValueError:
            raise SipParseError(f"bad q value {text!r}") from None
        if not 0.0 <= value <= 1.0 or not text[0].isdigit():
            raise SipParseError(f"q value {text!r} out of range")
        return value

    @property
    def instance(self) -> str | None:
        """RFC 5626 ``+sip.instance`` (unquoted)."""
        raw = get_param(self.params, "+sip.instance")
        return None if raw is None else unquote(raw)

    @property
    def reg_id(self) -> int | None:
        raw = get_param(self.params, "reg-id")
        return int(raw) if raw is not None and raw.isdigit() else None

    def with_params(self, params: Params) -> NameAddr:
        return replace(self, params=params)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        """Set (or add) a header parameter, keeping the others in order."""
        out = []
        done = False
        for k, v in self.params:
            if k == name:
                if not done:
                    out.append((name, value))
                    done = True
            else:
                out.append((k, v))
        if not done:
            out.append((name, value))
        return replace(self, params=tuple(out))

    def without_param(self, name: str) -> NameAddr:
        return replace(self, params=tuple(p for p in self.params if p[0] != name))

    def __str__(self) -> str:
        uri = str(self.uri)
        if self.angle or self.display is not None or self.uri.params or self.uri.headers or (
                "," in uri or ";" in uri or "?" in uri):
            head = f"{self.display} <{uri}>" if self.display is not None else f"<{uri}>"
        else:
            head = uri
        return head + format_params(self.params) if self.params else head


@dataclass(frozen=True, slots=True, kw_only=True)
class Via:
    """One Via value (RFC 3261 §20.42, §18.2.1; RFC 3581 rport)."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Self:
        text = text.strip()
        # sent-protocol: protocol-name SLASH protocol-version SLASH transport (LWS around '/')
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
        if not name or not version or not transport or not rest:
            raise SipParseError("bad Via")
        semi = rest.find(";")
        if semi >= 0:
            sent_by, params = rest[:semi].strip(), parse_params(rest[semi + 1:])
        else:
            sent_by, params = rest, ()
        # RFC 3261 §25.1 allows LWS around the ':' of sent-by
        sent_by = sent_by.replace(" ", "").replace("\t", "")
        host, port = parse_host_port(sent_by)
        return cls(transport=transport.upper(), host=host, port=port, params=params,
                   protocol=f"{name.upper()}/{version}")

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
        out = [(k, v) for k, v in self.params if k != name]
        # keep the new parameter where the old one was, if it was there
        for i, (k, _) in enumerate(self.params):
            if k == name:
                out.insert(i, (name, value))
                break
        else:
            out.append((name, value))
        return replace(self, params=tuple(out))

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16: the number is below 2**31)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> Self:
        num, _, method = text.strip().partition(" ")
        method = method.strip()
        if not num.isdigit() or not num.isascii() or len(num) > 10 or not method:
            raise SipParseError(f"bad CSeq {text[:40]!r}")
        seq = int(num)
        if seq >= 2**31:
            raise SipParseError("CSeq number too large")
        if " " in method or "\t" in method:
            raise SipParseError("bad CSeq method")
        return cls(seq=seq, method=method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ContactList:
    """The Contact header field(s) of a message: ``*`` or a list of addresses (§20.10)."""

    star: bool = False
    items: tuple[NameAddr, ...] = ()

    @classmethod
    def parse_values(cls, lines: list[str]) -> Self:
        """Parse the values of every Contact line of a message."""
        items: list[NameAddr] = []
        star = False
        for line in lines:
            for value in split_commas(line):
                if value == "*":
                    star = True
                else:
                    items.append(NameAddr.parse(value))
        if star and (items or len(lines) > 1):
            raise SipParseError("Contact: * must stand alone")
        return cls(star=star, items=tuple(items))

    def __bool__(self) -> bool:
        return self.star or bool(self.items)

    def __str__(self) -> str:
        return "*" if self.star else ", ".join(str(c) for c in self.items)
