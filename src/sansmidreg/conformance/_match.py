# Semantic comparison of a message our core sent with the message a trace expects there.
#
# What is compared (issue 6 §1): the start line (method and Request-URI; status code -- a reason
# phrase is free text, RFC 3261 §21, and is only compared in --strict mode); the Via stack, value
# by value; From/To URI and tag; Call-ID; CSeq; the Contact set as URIs (RFC 3261 §19.1.4) with
# their `expires` and `q`; Expires; Path, Route and Record-Route (URIs in order, an absent port
# meaning the default one: a hop is an address); the body; every other header present in either
# message must be present in both with equal values. Lifetimes (`expires`) may differ by one
# second: they are counted down on two different clocks. A header missing on both sides is equal.
#
# Captured values: what the recorded system under test invented (its Via branches, tags, Call-IDs
# of its own requests, contact ids, other URI parameters it generated) cannot equal what our
# core invents. Such a value is *captured* at first sight -- recorded value -> ours -- and must be
# used consistently afterwards, in both directions. A recorded value is capturable only where an
# implementation may generate one (a Via branch, a tag, a Call-ID, a URI parameter, a numeric
# user part) and only if it never appeared in an input of the trace (a value seen in an input was
# relayed, not generated, and is compared literally). Inputs that echo captured values are
# rewritten with ours before they are fed (Captures.rewrite).
#
# Headers a real peer adds about itself (Server, User-Agent, Date ...) are compared only when
# their value was relayed from an input; a product token of the system under test is ignored.
from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from ..sip import (
    Message,
    NameAddr,
    Request,
    Response,
    SipParseError,
    Uri,
    Via,
    parse_message,
    unescape,
)

__all__ = [
    "Captures",
    "Difference",
    "InputLog",
    "compare_bytes",
    "compare_messages",
    "message_diff",
]

_MIN_CAPTURE: Final = 4
"""Values shorter than this are never captured (a flag parameter, "0", "udp" ...)."""
_TOKEN_CHARS: Final = r"A-Za-z0-9\-.!%*_+`'~"
_SEMANTIC: Final = frozenset({
    "via", "from", "to", "call-id", "cseq", "contact", "expires", "path", "route",
    "record-route", "content-length",
})
_PEER_ONLY: Final = frozenset({"server", "user-agent", "date", "timestamp", "organization"})
"""Headers an implementation adds about itself (RFC 3261 §20.35, §20.41, §20.17, §20.38 ...)."""
_MUST_MATCH: Final = frozenset({"user", "ttl", "method", "maddr", "transport"})
"""§19.1.4: these URI parameters must match when either URI has them."""


def _boundary(value: str) -> str:
    return rf"(?<![{_TOKEN_CHARS}]){re.escape(value)}(?![{_TOKEN_CHARS}])"


def _norm(value: str) -> str:
    return " ".join(value.split())


class InputLog:
    """Everything fed to the core so far (as recorded): decides whether a value was relayed."""

    __slots__ = ("_memo", "_parts", "_text")

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._text = ""
        self._memo: dict[str, bool] = {}

    def add(self, data: bytes) -> None:
        self._parts.append(data.decode("utf-8", "surrogateescape"))
        self._text = "\n".join(self._parts)
        self._memo = {k: v for k, v in self._memo.items() if v}  # seen stays seen

    def seen(self, value: str) -> bool:
        """Did ``value`` occur in an input (as a whole token)?"""
        if not value:
            return True
        hit = self._memo.get(value)
        if hit is None:
            hit = self._memo[value] = re.search(_boundary(value), self._text) is not None
        return hit


class Captures:
    """Recorded value -> the value our core generated in its place (and back)."""

    __slots__ = ("_pattern", "backward", "forward", "kinds")

    def __init__(self) -> None:
        self.forward: dict[str, str] = {}
        self.backward: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self._pattern: re.Pattern[str] | None = None

    def __len__(self) -> int:
        return len(self.forward)

    def bind(self, kind: str, recorded: str, ours: str) -> None:
        self.forward[recorded] = ours
        self.backward[ours] = recorded
        self.kinds[recorded] = kind
        self._pattern = None

    def rewrite(self, data: bytes) -> bytes:
        """``data`` (an input) with every captured recorded value in its header section replaced
        by ours. The body is left alone (Content-Length stays right)."""
        renames = {k: v for k, v in self.forward.items() if k != v}
        if not renames:
            return data
        if self._pattern is None:
            keys = sorted(renames, key=len, reverse=True)
            self._pattern = re.compile("|".join(_boundary(k) for k in keys))
        end = data.find(b"\r\n\r\n")
        head, tail = (data, b"") if end < 0 else (data[:end], data[end:])
        text = head.decode("utf-8", "surrogateescape")
        text = self._pattern.sub(lambda m: renames[m.group(0)], text)
        return text.encode("utf-8", "surrogateescape") + tail


@dataclass(frozen=True, slots=True)
class Difference:
    """One semantic difference: which part, what the trace has, what our core sent."""

    what: str
    expected: str
    got: str

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected}, got {self.got}"


class _Session:
    """One comparison: bindings made here are committed only if the messages match."""

    __slots__ = ("back", "captures", "diffs", "log", "parent", "pending")

    def __init__(self, captures: Captures, log: InputLog, parent: _Session | None = None) -> None:
        self.captures = captures
        self.log = log
        self.parent = parent
        self.pending: dict[str, tuple[str, str]] = {}
        self.back: dict[str, str] = {}
        self.diffs: list[Difference] = []

    def _forward(self, recorded: str) -> str | None:
        if recorded in self.pending:
            return self.pending[recorded][1]
        if self.parent is not None:
            return self.parent._forward(recorded)
        return self.captures.forward.get(recorded)

    def _backward(self, ours: str) -> str | None:
        if ours in self.back:
            return self.back[ours]
        if self.parent is not None:
            return self.parent._backward(ours)
        return self.captures.backward.get(ours)

    def child(self) -> _Session:
        return _Session(self.captures, self.log, self)

    def merge(self, child: _Session) -> None:
        self.pending.update(child.pending)
        self.back.update(child.back)

    def commit(self) -> None:
        for recorded, (kind, ours) in self.pending.items():
            self.captures.bind(kind, recorded, ours)

    def same(self, kind: str, recorded: str, ours: str, *, capturable: bool = True) -> bool:
        """Is ``ours`` what the trace's ``recorded`` stands for (binding it if it is new)?"""
        mapped = self._forward(recorded)
        if mapped is not None:
            return ours == mapped
        # both sides must have invented it: a value seen in an input was relayed, not generated
        can_bind = (capturable and len(recorded) >= _MIN_CAPTURE and not self.log.seen(recorded)
                    and not self.log.seen(ours))
        if not can_bind:
            return ours == recorded
        owner = self._backward(ours)
        if owner is not None and owner != recorded:
            return False  # our value already stands for another recorded one
        self.pending[recorded] = (kind, ours)
        self.back[ours] = recorded
        return True

    def diff(self, what: str, expected: object, got: object) -> None:
        self.diffs.append(Difference(what, str(expected), str(got)))

    # -- values --------------------------------------------------------------------------------
    def uri(self, kind: str, exp: Uri, got: Uri, *, route: bool = False) -> bool:
        """RFC 3261 §19.1.4 equivalence, generated parameter values and numeric user parts
        (contact ids) captured. ``route``: a hop of a Route/Record-Route/Path, where an absent
        port means the default one (the hop is an address, RFC 3263 §4.2)."""
        if exp.scheme != got.scheme:
            return False
        if exp.opaque is not None or got.opaque is not None:
            return exp.opaque is not None and got.opaque is not None and (
                unescape(exp.opaque) == unescape(got.opaque))
        if (exp.user is None) != (got.user is None):
            return False
        if exp.user is not None and got.user is not None:
            eu, gu = unescape(exp.user), unescape(got.user)
            if eu != gu and not (eu.isdigit() and gu.isdigit() and self.same(
                    f"{kind} user part", eu, gu)):
                return False
        ep, gp = exp.port, got.port
        if route:
            default = 5061 if exp.scheme == "sips" else 5060
            ep, gp = ep or default, gp or default
        if ep != gp or exp.host.lower().strip("[]") != got.host.lower().strip("[]"):
            return False
        if (exp.password or "") != (got.password or ""):
            return False
        mine = {k.lower(): "" if v is None else unescape(v) for k, v in exp.params}
        theirs = {k.lower(): "" if v is None else unescape(v) for k, v in got.params}
        for name in _MUST_MATCH:
            if (mine.get(name) or "").lower() != (theirs.get(name) or "").lower() or (
                    (name in mine) != (name in theirs)):
                return False
        for name in (mine.keys() & theirs.keys()) - _MUST_MATCH:
            if mine[name].lower() != theirs[name].lower() and not self.same(
                    f"{kind} ;{name}=", mine[name], theirs[name]):
                return False
            if mine[name] == theirs[name] and mine[name]:
                self.same(f"{kind} ;{name}=", mine[name], theirs[name])  # bind identical ids too
        exp_headers = sorted((unescape(k).lower(), unescape(v)) for k, v in exp.headers)
        got_headers = sorted((unescape(k).lower(), unescape(v)) for k, v in got.headers)
        return exp_headers == got_headers

    def address(self, what: str, exp: NameAddr, got: NameAddr) -> None:
        """From / To: URI and tag."""
        if not self.uri(what, exp.uri, got.uri):
            self.diff(f"{what} URI", exp.uri, got.uri)
        et, gt = exp.tag, got.tag
        if et is None or gt is None:
            if (et is None) != (gt is None):
                self.diff(f"{what} tag", et or "(none)", gt or "(none)")
        elif not self.same(f"{what} tag", et, gt):
            self.diff(f"{what} tag", et, self._explain(et, gt))

    def _explain(self, recorded: str, ours: str) -> str:
        mapped = self._forward(recorded)
        if mapped is not None:
            return f"{ours} (the trace's {recorded} was captured as {mapped})"
        owner = self._backward(ours)
        if owner is not None:
            return f"{ours} (which already stands for the trace's {owner})"
        return ours

    def vias(self, exp: Sequence[Via], got: Sequence[Via]) -> None:
        if len(exp) != len(got):
            self.diff("Via count", len(exp), len(got))
            return
        for n, (e, g) in enumerate(zip(exp, got), 1):
            what = f"Via #{n}"
            default = 5061 if e.transport.upper() == "TLS" else 5060
            if (e.transport.upper(), e.host.lower(), e.port or default) != (
                    g.transport.upper(), g.host.lower(), g.port or default):
                self.diff(what, e, g)
                continue
            ep = {k.lower(): v or "" for k, v in e.params}
            gp = {k.lower(): v or "" for k, v in g.params}
            if ep.keys() != gp.keys():
                self.diff(f"{what} parameters", e, g)
                continue
            for name, value in ep.items():
                ok = self.same(f"{what} branch", value, gp[name]) if name == "branch" else (
                    value.lower() == gp[name].lower())
                if not ok:
                    shown = self._explain(value, gp[name]) if name == "branch" else gp[name]
                    self.diff(f"{what} ;{name}=", value, shown)

    def uri_list(self, what: str, exp: Sequence[NameAddr], got: Sequence[NameAddr]) -> None:
        if len(exp) != len(got) or not all(
                self.uri(what, e.uri, g.uri, route=True) for e, g in zip(exp, got)):
            self.diff(what, ", ".join(str(e.uri) for e in exp) or "(none)",
                      ", ".join(str(g.uri) for g in got) or "(none)")

    def contacts(self, exp: Message, got: Message) -> None:
        try:
            ec, gc = exp.contacts, got.contacts
        except SipParseError as exc:
            self.diff("Contact", exp.get_all("contact"), f"unparseable ({exc})")
            return
        if ec.star or gc.star:
            if ec.star != gc.star:
                self.diff("Contact", "*" if ec.star else _contact_text(ec.items),
                          "*" if gc.star else _contact_text(gc.items))
            return
        remaining = list(gc.items)
        unmatched: list[NameAddr] = []
        for e in ec.items:
            chosen: tuple[int, _Session] | None = None
            for i, g in enumerate(remaining):
                trial = self.child()
                if trial.uri("Contact", e.uri, g.uri) and _lifetimes_agree(e, g):
                    if chosen is None or (trial.pending == {} and chosen[1].pending != {}):
                        chosen = (i, trial)
                    if not trial.pending:
                        break
            if chosen is None:
                unmatched.append(e)
                continue
            self.merge(chosen[1])
            remaining.pop(chosen[0])
        if unmatched or remaining:
            self.diff("Contact set", _contact_text(ec.items), _contact_text(gc.items))

    def expires(self, exp: Message, got: Message) -> None:
        e, g = exp.get("expires"), got.get("expires")
        if e is None and g is None:
            return
        if e is None or g is None or not _close(e, g):
            self.diff("Expires", e if e is not None else "(none)", g if g is not None else "(none)")

    def other_headers(self, exp: Message, got: Message) -> None:
        names: list[str] = []
        for key, _, _ in exp.headers + got.headers:
            if key not in names and key not in _SEMANTIC:
                names.append(key)
        for key in names:
            ev = [_norm(v) for v in exp.get_all(key)]
            gv = [_norm(v) for v in got.get_all(key)]
            if key in _PEER_ONLY:  # only a relayed value counts
                ev = [v for v in ev if self.log.seen(v)]
                gv = [v for v in gv if self.log.seen(v)]
            if ev != gv:
                label = _header_label(exp, got, key)
                self.diff(label, " | ".join(ev) or "(absent)", " | ".join(gv) or "(absent)")


def _header_label(exp: Message, got: Message, key: str) -> str:
    for k, _, raw in exp.headers + got.headers:
        if k == key:
            return raw.split(":", 1)[0].strip()
    return key


def _close(a: str, b: str) -> bool:
    """Two lifetimes agree: equal, or both numbers at most 1 s apart (two clocks)."""
    a, b = a.strip(), b.strip()
    if a == b:
        return True
    if a.isdigit() and b.isdigit():
        return abs(int(a) - int(b)) <= 1
    return False


def _lifetimes_agree(e: NameAddr, g: NameAddr) -> bool:
    ee, ge = e.expires, g.expires
    if (ee is None) != (ge is None):
        return False
    if ee is not None and ge is not None and not _close(ee, ge):
        return False
    eq, gq = e.param("q"), g.param("q")
    if (eq is None) != (gq is None):
        return False
    if eq is not None and gq is not None:
        try:
            return abs(float(eq) - float(gq)) < 1e-9
        except ValueError:
            return eq == gq
    return True


def _contact_text(items: Sequence[NameAddr]) -> str:
    return ", ".join(str(c) for c in items) or "(none)"


def compare_messages(expected: bytes, got: bytes, captures: Captures, log: InputLog, *,
                     lenient: bool = False) -> list[Difference]:
    """The semantic differences between what the trace expects and what our core sent.

    With no difference, the values captured while comparing are committed to ``captures``; with
    ``lenient`` (a documented deviation) they are committed anyway. Unparseable messages are
    compared byte for byte.
    """
    try:
        exp = parse_message(expected)
        ours = parse_message(got)
    except SipParseError:
        return compare_bytes(expected, got)
    s = _Session(captures, log)
    _compare(s, exp, ours)
    if not s.diffs or lenient:
        s.commit()
    return s.diffs


def _compare(s: _Session, exp: Message, got: Message) -> None:
    if isinstance(exp, Request) and isinstance(got, Request):
        if exp.method != got.method:
            s.diff("method", exp.method, got.method)
            return
        try:
            if not s.uri("Request-URI", exp.uri, got.uri):
                s.diff("Request-URI", exp.uri_text, got.uri_text)
        except SipParseError:
            if exp.uri_text != got.uri_text:
                s.diff("Request-URI", exp.uri_text, got.uri_text)
    elif isinstance(exp, Response) and isinstance(got, Response):
        if exp.status != got.status:
            s.diff("status", f"{exp.status} {exp.reason}", f"{got.status} {got.reason}")
            return
    else:
        s.diff("start line", exp.start_line(), got.start_line())
        return
    steps: tuple[tuple[str, Callable[[], None]], ...] = (
        ("via", lambda: s.vias(exp.vias, got.vias)),
        ("from", lambda: s.address("From", exp.from_, got.from_)),
        ("to", lambda: s.address("To", exp.to, got.to)),
        ("call-id", lambda: None if s.same("Call-ID", exp.call_id, got.call_id) else s.diff(
            "Call-ID", exp.call_id, s._explain(exp.call_id, got.call_id))),
        ("cseq", lambda: None if exp.cseq == got.cseq else s.diff("CSeq", exp.cseq, got.cseq)),
        ("contact", lambda: s.contacts(exp, got)),
        ("expires", lambda: s.expires(exp, got)),
        ("path", lambda: s.uri_list("Path", exp.path, got.path)),
        ("route", lambda: s.uri_list("Route", exp.route, got.route)),
        ("record-route", lambda: s.uri_list("Record-Route", exp.record_route, got.record_route)),
        ("", lambda: s.other_headers(exp, got)),
    )
    for name, step in steps:
        if name:
            ev, gv = exp.get_all(name), got.get_all(name)
            label = _header_label(exp, got, name)
            if not ev and not gv:
                continue
            if not ev or not gv:
                s.diff(label, " | ".join(ev) or "(absent)", " | ".join(gv) or "(absent)")
                continue
        try:
            step()
        except SipParseError:  # a value that does not parse: compare it as text
            ev, gv = [_norm(v) for v in exp.get_all(name)], [_norm(v) for v in got.get_all(name)]
            if ev != gv:
                s.diff(_header_label(exp, got, name), " | ".join(ev), " | ".join(gv))
    if exp.body != got.body:
        s.diff("body", f"{len(exp.body)} bytes", f"{len(got.body)} bytes (content differs)")


def compare_bytes(expected: bytes, got: bytes) -> list[Difference]:
    """--strict: the bytes must be identical."""
    if expected == got:
        return []
    exp_lines = expected.split(b"\r\n")
    got_lines = got.split(b"\r\n")
    for n, (e, g) in enumerate(zip(exp_lines, got_lines), 1):
        if e != g:
            return [Difference(f"line {n}", repr(e.decode("utf-8", "replace")),
                               repr(g.decode("utf-8", "replace")))]
    return [Difference("length", f"{len(expected)} bytes", f"{len(got)} bytes")]


def message_diff(expected: bytes, got: bytes, *, expected_label: str = "expected (trace)",
                 got_label: str = "got (our core)") -> str:
    """A unified diff of two messages, one header line per diff line."""
    exp = expected.decode("utf-8", "replace").replace("\r\n", "\n").splitlines()
    ours = got.decode("utf-8", "replace").replace("\r\n", "\n").splitlines()
    lines = difflib.unified_diff(exp, ours, expected_label, got_label, n=max(len(exp), len(ours)),
                                 lineterm="")
    return "\n".join(lines)

