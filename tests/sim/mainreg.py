# A simulated main registrar: a real RFC 3261 §10.3 registrar over the virtual network.
#
# It keeps bindings per AOR (the To URI, user@host) with their Call-ID, CSeq and expiry; checks
# CSeq ordering per Call-ID (§10.3 step 7), `Contact: *` rules (step 6), Min-Expires (423); answers
# 200 listing every live binding of the AOR with its remaining lifetime (step 8), plus an Expires
# header of its own (so tests can check it never reaches a UA). It is a UAS with server
# transactions: a retransmitted request gets the same response again.
#
# Tests script it: `expect(Behaviour.CHALLENGE, ...)` sets what the next new requests get (401
# first, 500, 403, all transmissions dropped, the first one dropped, a shortened lifetime),
# `expect_deregister(...)` does the same for the mid-registrar's own de-REGISTERs only. It also
# checks what the mid-registrar sends upstream (no Path, Max-Forwards decremented, every Contact
# pointing at the mid-registrar, de-REGISTERs shaped as OPENSIPS-BEHAVIOUR.md §1.2 e says) and
# records every breach in `violations`.
from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sansmidreg import Endpoint
from sansmidreg.sip import (
    NameAddr,
    Request,
    SipParseError,
    Uri,
    parse_message,
    unescape,
)

__all__ = ["Behaviour", "Binding", "Seen", "SimMainRegistrar", "binding_key"]


class Behaviour(enum.Enum):
    OK = "ok"
    CHALLENGE = "challenge"  # 401 unless the request carries Authorization
    REJECT = "reject"  # 500 Server Internal Error
    FORBIDDEN = "forbidden"  # 403
    DROP = "drop"  # every transmission lost: the sender times out
    DROP_FIRST = "drop-first"  # the first transmission lost; a retransmission is answered
    SHORTEN = "shorten"  # grant at most `shorten_to` seconds


@dataclass(slots=True)
class Binding:
    aor: str
    uri: str
    key: str
    call_id: str
    cseq: int
    expires_at: float
    granted: int


@dataclass(frozen=True, slots=True)
class Seen:
    """A request that reached the main registrar (first transmission only)."""

    at: float
    request: Request
    own: bool
    """True for the mid-registrar's own requests (one Via: its de-REGISTERs)."""
    status: int | None
    """What it answered (None: dropped)."""


def binding_key(uri: Uri) -> str:
    """Bindings compare by URI (§10.3 step 7, §19.1.4, simplified: parameters sorted)."""
    user = unescape(uri.user) if uri.user is not None else ""
    params = ";".join(sorted(f"{k}={v}" for k, v in uri.params))
    return f"{uri.scheme}:{user}@{uri.host.lower()}:{uri.port or 5060};{params}"


@dataclass(slots=True)
class _Txn:
    behaviour: Behaviour
    response: bytes | None = None
    dropped_once: bool = False


@dataclass(slots=True)
class SimMainRegistrar:
    endpoint: Endpoint = field(default_factory=lambda: Endpoint(host="127.0.0.1", port=5080))
    mid_registrar: Endpoint = field(
        default_factory=lambda: Endpoint(host="127.0.0.1", port=5060))
    max_expires: int = 3600
    min_expires: int = 0
    default_expires: int = 3600
    expires_header: bool = True
    """Add an ``Expires:`` header (its max_expires) to every 200 (must never reach a UA)."""
    require_auth: bool = False
    """Challenge every relayed REGISTER without credentials (the mid-registrar's own
    de-REGISTERs are accepted: its address is "whitelisted", as OpenSIPS's tutorial says)."""
    shorten_to: int = 60
    echo: Callable[[str], str] = field(default=lambda uri: uri)
    """How a binding's URI is written in the 200 (main registrars may re-format it)."""
    bindings: dict[str, dict[str, Binding]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    failed_deregisters: set[str] = field(default_factory=set)
    """Keys of bindings whose de-REGISTER was refused or lost (unless a retransmission of it
    was answered 2xx later)."""
    refused_at: list[float] = field(default_factory=list)
    lost: list[tuple[float, str]] = field(default_factory=list)
    """(when, binding key) of the mid-registrar's de-REGISTERs lost with every retransmission,
    unless a REGISTER renewed that binding within 32 s (the mid-registrar may then stop its
    de-REGISTER: it is superseded, not failed)."""
    """When the mid-registrar's de-REGISTERs that were answered >= 300, or lost with every
    retransmission, first arrived."""
    _plan: deque[Behaviour] = field(default_factory=deque)
    _plan_own: deque[Behaviour] = field(default_factory=deque)
    _txns: dict[str, _Txn] = field(default_factory=dict)
    _tags: int = 0

    # -- scripting -------------------------------------------------------------------------------
    def expect(self, *behaviours: Behaviour) -> None:
        """How the next new relayed REGISTERs are answered (then OK again)."""
        self._plan.extend(behaviours)

    def expect_deregister(self, *behaviours: Behaviour) -> None:
        """How the mid-registrar's next own de-REGISTERs are answered."""
        self._plan_own.extend(behaviours)

    def add_foreign(self, aor: str, uri: str, expires: int, now: float) -> None:
        """A binding somebody else registered for ``aor`` (must never reach our UAs)."""
        parsed = Uri.parse(uri)
        key = binding_key(parsed)
        self.bindings.setdefault(aor, {})[key] = Binding(
            aor=aor, uri=uri, key=key, call_id="foreign", cseq=1, expires_at=now + expires,
            granted=expires)

    # -- state -----------------------------------------------------------------------------------
    def live(self, now: float) -> list[Binding]:
        return [b for per in self.bindings.values() for b in per.values() if b.expires_at > now]

    def live_for(self, aor: str, now: float) -> list[Binding]:
        return [b for b in self.bindings.get(aor, {}).values() if b.expires_at > now]

    @property
    def relayed(self) -> list[Seen]:
        return [s for s in self.seen if not s.own]

    @property
    def deregisters(self) -> list[Seen]:
        return [s for s in self.seen if s.own]

    # -- the UAS ---------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> bytes | None:
        """One request from the mid-registrar; the response bytes, or None when it is lost."""
        try:
            req = parse_message(data)
        except SipParseError as exc:
            self.violations.append(f"unparseable request upstream: {exc}")
            return None
        if not isinstance(req, Request):
            self.violations.append("a response was sent to the main registrar")
            return None
        if req.method != "REGISTER":
            self.violations.append(f"{req.method} sent to the main registrar")
            return None
        branch = req.top_via.branch or ""
        txn = self._txns.get(branch)
        if txn is not None:  # a retransmission (RFC 3261 §17.2.2)
            if txn.behaviour is Behaviour.DROP:
                return None
            if txn.behaviour is Behaviour.DROP_FIRST and not txn.dropped_once:
                txn.dropped_once = True
                txn.behaviour = Behaviour.OK
                txn.response = self._process(req, now, txn.behaviour)
                if len(req.vias) == 1:
                    if int(txn.response.split(b" ", 2)[1]) < 300:
                        self._mark_failed(req, failed=False)
                    else:
                        self.refused_at.append(now)
            return txn.response
        own = len(req.vias) == 1
        self._check_shape(req, own)
        if own and self.lost:  # the mid-registrar tries again: an earlier loss is accounted for
            try:
                keys = {binding_key(item.uri) for item in req.contacts.items}
            except SipParseError:
                keys = set()
            self.lost = [(t, k) for t, k in self.lost if k not in keys]
        plan = self._plan_own if own else self._plan
        behaviour = plan.popleft() if plan else Behaviour.OK
        txn = self._txns[branch] = _Txn(behaviour)
        if behaviour in (Behaviour.DROP, Behaviour.DROP_FIRST):
            if own:  # lost, unless a retransmission gets through (DROP_FIRST)
                self._mark_failed(req)
                if behaviour is Behaviour.DROP:
                    try:
                        self.lost.extend((now, binding_key(i.uri)) for i in req.contacts.items)
                    except SipParseError:
                        pass
            self.seen.append(Seen(at=now, request=req, own=own, status=None))
            return None
        txn.response = self._process(req, now, behaviour)
        status = int(txn.response.split(b" ", 2)[1])
        if own and status >= 300:
            self._mark_failed(req)
            self.refused_at.append(now)
        elif own:
            self._mark_failed(req, failed=False)
        self.seen.append(Seen(at=now, request=req, own=own, status=status))
        return txn.response

    def _mark_failed(self, req: Request, *, failed: bool = True) -> None:
        try:
            for item in req.contacts.items:
                key = binding_key(item.uri)
                if failed:
                    self.failed_deregisters.add(key)
                else:  # a later de-REGISTER of the same binding got through
                    self.failed_deregisters.discard(key)
                    self.lost = [(t, k) for t, k in self.lost if k != key]
        except SipParseError:
            pass

    def _check_shape(self, req: Request, own: bool) -> None:
        """What the mid-registrar sends upstream must be right (violations are recorded)."""
        mr = self.mid_registrar
        if req.has("path"):
            self.violations.append("Path header relayed upstream (RFC 3327: we are the path)")
        top = req.top_via
        if (top.host, top.port or 5060) != (mr.host, mr.port):
            self.violations.append(f"top Via {top.sent_by} is not the mid-registrar")
        try:
            items = req.contacts.items
            mf = req.max_forwards
        except SipParseError as exc:
            self.violations.append(f"bad request upstream: {exc}")
            return
        for item in items:
            if (item.uri.host, item.uri.port or 5060) != (mr.host, mr.port):
                self.violations.append(f"Contact {item.uri} does not point at the mid-registrar")
        if own:
            if mf != 70 or req.has("expires") or len(items) != 1 or items[0].expires != "0":
                self.violations.append(f"malformed de-REGISTER: {req.serialize()!r}")
        elif mf is None or mf >= 70:
            self.violations.append("Max-Forwards not decremented")

    def _process(self, req: Request, now: float, behaviour: Behaviour) -> bytes:
        if behaviour is Behaviour.REJECT:
            return self._answer(req, 500, "Server Internal Error")
        if behaviour is Behaviour.FORBIDDEN:
            return self._answer(req, 403, "Forbidden")
        own = len(req.vias) == 1
        wants_auth = behaviour is Behaviour.CHALLENGE or (self.require_auth and not own)
        if wants_auth and not req.has("authorization"):
            return self._answer(req, 401, "Unauthorized", [
                ("WWW-Authenticate", 'Digest realm="example.test", nonce="n0nce"')])
        try:
            to = req.to.uri
            call_id = req.call_id
            seq = req.cseq.seq
            contacts = req.contacts
            header_expires = req.expires
        except SipParseError:
            return self._answer(req, 400, "Bad Request")
        aor = f"{to.user}@{to.host.lower()}"
        table = self.bindings.setdefault(aor, {})
        for key in [k for k, b in table.items() if b.expires_at <= now]:
            del table[key]
        if contacts.star:  # §10.3 step 6
            if header_expires != 0:
                return self._answer(req, 400, "Bad Request")
            if any(b.call_id == call_id and seq <= b.cseq for b in table.values()):
                return self._answer(req, 500, "Invalid CSeq")
            self.lost = [(t, k) for t, k in self.lost if k not in table]  # gone anyway
            table.clear()
            return self._ok(req, aor, now)
        cap = self.shorten_to if behaviour is Behaviour.SHORTEN else self.max_expires
        changes: list[tuple[NameAddr, str, int]] = []
        for item in contacts.items:
            raw = item.expires
            asked = int(raw) if raw is not None and raw.isdigit() else (
                header_expires if header_expires is not None else self.default_expires)
            if 0 < asked < self.min_expires:
                return self._answer(req, 423, "Interval Too Brief",
                                    [("Min-Expires", str(self.min_expires))])
            key = binding_key(item.uri)
            old = table.get(key)
            if old is not None and old.call_id == call_id and seq <= old.cseq:  # step 7
                return self._answer(req, 500, "Invalid CSeq")
            changes.append((item, key, min(asked, cap)))
        for item, key, granted in changes:
            if granted == 0:
                table.pop(key, None)
                self.lost = [(t, k) for t, k in self.lost if k != key]  # gone anyway
            else:
                table[key] = Binding(aor=aor, uri=str(item.uri), key=key, call_id=call_id,
                                     cseq=seq, expires_at=now + granted, granted=granted)
                self.failed_deregisters.discard(key)  # a new lease: judged afresh
                self.lost = [(t, k) for t, k in self.lost if k != key or now - t > 32.0]
        return self._ok(req, aor, now)

    def _ok(self, req: Request, aor: str, now: float) -> bytes:
        listing = [f"<{self.echo(b.uri)}>;expires={_remaining(b.expires_at, now)}"
                   for b in self.bindings.get(aor, {}).values() if b.expires_at > now]
        headers = [("Contact", v) for v in listing]
        if self.expires_header:
            headers.append(("Expires", str(self.max_expires)))
        return self._answer(req, 200, "OK", headers)

    def _answer(self, req: Request, status: int, reason: str,
                headers: list[tuple[str, str]] | None = None) -> bytes:
        self._tags += 1
        lines = [f"SIP/2.0 {status} {reason}"]
        lines += [f"Via: {v}" for v in req.get_all("via")]
        to = req.get("to") or ""
        if ";tag=" not in to:
            to = f"{to};tag=mr{self._tags}"
        lines += [f"From: {req.get('from')}", f"To: {to}", f"Call-ID: {req.get('call-id')}",
                  f"CSeq: {req.get('cseq')}"]
        lines += [f"{n}: {v}" for n, v in headers or []]
        lines += ["Server: sim-main-registrar", "Content-Length: 0", "", ""]
        return "\r\n".join(lines).encode()


def _remaining(expires_at: float, now: float) -> int:
    return max(0, int(expires_at - now + 0.5))
