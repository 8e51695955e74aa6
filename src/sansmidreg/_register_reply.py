# What happens after a REGISTER went upstream: the main registrar's answer applied to the
# bindings (OPENSIPS-BEHAVIOUR.md §1.1 f, §1.2 a/f, §1.3 a/f), the reply relayed to the UA with
# the UA's own contacts and lifetimes (never the upstream ones, DESIGN.md §5.4), timeouts turned
# into 408 (RFC 3261 §16.7 step 6 / §17.1.2.2), our own de-REGISTERs (§1.2 e, §1.3 e) with
# their transaction (retransmitted, DESIGN.md §5.5; failures counted).
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._actions import Action, Drop, Endpoint, Reply
from ._aor import aggregate_user
from ._bindings import Aor, Contact, Upstream
from ._config import Mode
from ._context import Context
from ._transactions import ClientTxn, ServerTxn
from .sip import (
    Header,
    NameAddr,
    Request,
    Response,
    SipParseError,
    Uri,
    make_request,
    make_response,
    split_list,
    unescape,
)

if TYPE_CHECKING:
    from ._registrar import Registrar

__all__ = ["Deregister", "PendingRegister", "ReqContact", "build_deregister", "contact_list_value",
           "our_contact_uri"]


@dataclass(frozen=True, slots=True)
class ReqContact:
    """One Contact of a REGISTER, with its lifetimes (§3.7: e_raw as asked, e_in clamped)."""

    addr: NameAddr
    uri: str
    e_raw: int
    e_in: int
    q: str | None
    user: str
    instance: str | None
    reg_id: int | None
    methods: frozenset[str] | None


def contact_list_value(aor: Aor, now: float) -> str:
    """The Contact value listing every live binding of ``aor`` with its remaining lifetime
    (RFC 3261 §10.3 step 8; RFC 5626 §6: instance and reg-id echoed)."""
    parts = []
    for c in aor.contacts:
        if c.expires_at <= now:
            continue
        text = f"<{c.uri}>"
        if c.q is not None:
            text += f";q={c.q}"
        text += f";expires={max(1, c.remaining(now))}"
        if c.instance is not None:
            text += f';+sip.instance="{c.instance}"'
        if c.reg_id is not None:
            text += f";reg-id={c.reg_id}"
        parts.append(text)
    return ", ".join(parts)


def _granted(addr: NameAddr, header_expires: int | None, default: int) -> int:
    """e_out: the lifetime the main registrar granted a contact (§1.1 f.3)."""
    raw = addr.expires
    if raw is not None and raw.isdigit() and raw.isascii():
        return int(raw)
    return header_expires if header_expires is not None else default


class PendingRegister:
    """A REGISTER relayed upstream, waiting for the main registrar's answer."""

    __slots__ = ("registrar", "_request", "via_line", "source", "dest", "aor", "entries",
                 "ctids", "star", "path", "server", "request_uri", "started", "dialog",
                 "resume")

    def __init__(self, *, registrar: Registrar, request: Request, via_line: str | None,
                 source: Endpoint, dest: Endpoint, aor: Aor, entries: list[ReqContact],
                 ctids: list[int], star: bool, path: tuple[str, ...], server: ServerTxn,
                 request_uri: str, started: float, dialog: tuple[str, int, Uri, Uri]) -> None:
        self.registrar = registrar
        self._request = request  # as it came
        self.via_line = via_line  # its first Via line as stamped (None: unchanged)
        self.source = source
        self.dest = dest
        self.aor = aor
        self.entries = entries
        self.ctids = ctids
        self.star = star
        self.path = path
        self.server = server
        self.request_uri = request_uri
        self.started = started
        self.dialog = dialog
        """(Call-ID, CSeq number, From URI, To URI) of the REGISTER, parsed when it came."""
        self.resume: Deregister | None = None
        """AOR mode: our de-REGISTER of the aggregate that this REGISTER interrupted; sent again
        if this one binds nothing (Registrar._relay)."""

    @property
    def request(self) -> Request:
        """The REGISTER with received/rport stamped on its top Via (what our own replies copy;
        built when one is due: a relayed REGISTER usually gets the main registrar's)."""
        request = self._request
        line = self.via_line
        if line is not None:
            headers = list(request.headers)
            for i, (key, _, raw) in enumerate(headers):
                if key == "via":
                    headers[i] = ("via", line, f"{raw[:raw.index(':')]}: {line}")
                    break
            request = Request(request.method, request.uri_text, tuple(headers), request.body,
                              request.version)
            self._request, self.via_line = request, None
        return request

    def _send(self, response: Response, now: float) -> Reply:
        ctx = self.registrar.ctx
        reply = Reply(data=response.serialize(), dest=self.dest)
        return ctx.txns.server_send(self.server, reply, response.status, now)

    def _done(self) -> None:
        aor = self.aor
        table = self.registrar.ctx.table
        aor.pending -= 1
        for entry in self.entries:
            table.release(aor.key, entry.uri)
        table.discard_if_empty(aor)

    def on_response(self, txn: ClientTxn, response: Response, now: float) -> list[Action]:
        ctx = self.registrar.ctx
        if response.status < 200:
            # 100 Trying is hop-by-hop (RFC 3261 §16.7 step 3); other provisionals go on
            return [] if response.status == 100 else [self._send(response.pop_via(), now)]
        actions: list[Action] = []
        if response.status < 300:
            try:
                actions.extend(self._apply_2xx(response, now))
                relayed = self._ua_reply(response, now)
            except SipParseError as exc:
                ctx.stats.relayed_failed += 1
                self._done()
                bad = make_response(self.request, 502, "Bad Gateway")
                return [Drop(reason="bad-upstream-2xx", detail=f"main registrar's 2xx: {exc}"),
                        self._send(bad, now), *self._resume(now)]
        else:  # 4xx/5xx/6xx: relayed unchanged, bindings untouched (§1.1 g, h) -- but a 503
            # becomes 500 (RFC 3261 §16.7 step 6: the UA must not take it as ours)
            ctx.stats.relayed_failed += 1
            relayed = response.pop_via()
            if response.status == 423 and ctx.cfg.mode is not Mode.MIRROR:
                self._learn_min_expires(response)
            if response.status == 503:
                relayed = relayed.with_status(500, "Server Internal Error")
            actions.extend(self._resume(now))
        self._done()
        actions.append(self._send(relayed, now))
        return actions

    def _learn_min_expires(self, response: Response) -> None:
        """A 423 to a lifetime we chose (throttling modes, outgoing_expires): ask at least its
        Min-Expires from now on, so that the UA's retry, relayed, is accepted (RFC 3261
        §10.2.8). The 423 itself goes to the UA as it came. An unreadable or absurd value (over
        a week) is not learned."""
        ctx = self.registrar.ctx
        try:
            minimum = response.min_expires
        except SipParseError:
            return
        if minimum is not None and ctx.upstream_min_expires < minimum <= 7 * 86400:
            ctx.upstream_min_expires = minimum

    def _resume(self, now: float) -> list[Action]:
        """This REGISTER failed: finish the de-REGISTER it interrupted, unless the AOR got a
        binding or a device meanwhile (or the binding ran out by itself)."""
        dereg = self.resume
        self.resume = None
        aor = self.aor
        if dereg is None or aor.upstream is not None or aor.live(now) or dereg.until <= now:
            return []
        up = dereg.up
        up.expires_at = dereg.until
        return [build_deregister(self.registrar.ctx, up, now)]

    def on_timeout(self, txn: ClientTxn, now: float) -> list[Action]:
        ctx = self.registrar.ctx
        ctx.stats.relayed_failed += 1
        ctx.stats.relayed_timeouts += 1
        resumed = self._resume(now)
        self._done()
        timeout = make_response(self.request, 408, "Request Timeout", to_tag=ctx.ids.token())
        return [*resumed, self._send(timeout, now)]

    def _ua_reply(self, response: Response, now: float) -> Response:
        """The 2xx for the UA, in one pass: our Via popped (RFC 3261 §16.7 step 3), the main
        registrar's Contacts (and Expires) out, the UA's own bindings and lifetimes in, at the
        end (DESIGN.md §5.4), with the stored Path when the UA supports it (RFC 3327 §5.3)."""
        cfg = self.registrar.ctx.cfg
        strip_expires = cfg.strip_reply_expires or cfg.mode is not Mode.AOR_THROTTLING
        headers: list[Header] = []
        popped = False
        for header in response.headers:
            key, value, raw = header
            if key == "via" and not popped:
                popped = True
                rest = split_list(value)[1:] if "," in value else []
                if rest:
                    joined = ", ".join(rest)
                    headers.append(("via", joined, f"{raw[:raw.index(':')]}: {joined}"))
            elif key != "contact" and (key != "expires" or not strip_expires):
                headers.append(header)
        if not popped:
            raise SipParseError("no Via to remove")
        listing = contact_list_value(self.aor, now)
        if listing:
            headers.append(("contact", listing, "Contact: " + listing))
        if self.path and "path" in self._request.option_tags("supported"):
            for hop in self.path:  # RFC 3327 §5.3: the registrar echoes the Path it stored
                headers.append(("path", hop, "Path: " + hop))
        return Response(response.status, response.reason, tuple(headers), response.body,
                        response.version)

    def _apply_2xx(self, response: Response, now: float) -> list[Action]:
        registrar = self.registrar
        ctx = registrar.ctx
        cfg = ctx.cfg
        aor = self.aor
        items = response.contacts.items  # may raise SipParseError: nothing changed yet
        header_expires = response.expires
        call_id, seq, from_parsed, to_parsed = self.dialog
        from_uri = str(from_parsed)
        to_uri = str(to_parsed)
        actions: list[Action] = []
        if self.star:  # Contact: * accepted upstream: every binding of the AOR is gone
            for contact in aor.contacts:
                contact.timer = None
                ctx.table.remove(contact)
            aor.upstream = None
            return actions

        aggregate = cfg.mode is Mode.AOR_THROTTLING
        e_common = 0
        by_id: dict[int, NameAddr] = {}
        if aggregate:
            wanted = unescape(aggregate_user(aor.key, cfg.at_escape))
            agg = next((rc for rc in items if rc.uri.user is not None
                        and unescape(rc.uri.user) == wanted), None)
            if agg is not None:
                e_common = _granted(agg, header_expires, cfg.default_expires)
            if agg is not None and e_common > 0:
                old = aor.upstream
                cseq = max(old.cseq, seq) if old is not None and old.call_id == call_id else seq
                aor.upstream = Upstream(
                    aor=aor.key, from_uri=from_uri, to_uri=to_uri, request_uri=self.request_uri,
                    call_id=call_id, cseq=cseq, contact_uri=str(agg.uri), granted=e_common,
                    refreshed_at=now)
            else:
                aor.upstream = None
        else:
            for item in items:
                ident = item.uri.user if cfg.contact_id_in_user else item.uri.param(
                    cfg.contact_id_param)
                if ident and ident.isdigit() and ident.isascii():
                    by_id[int(ident)] = item

        bound: list[Contact] = []
        for entry, ctid in zip(self.entries, self.ctids):
            found = registrar._match(aor, entry)
            if found is not None and found.ctid != ctid and not aggregate:
                actions.extend(registrar.expire(found, now))  # replaced under a new id
                found = None
            if entry.e_in == 0:
                if found is not None:
                    self._drop(found)
                continue
            rc: NameAddr | None = None if aggregate else by_id.get(ctid)
            e_out = e_common if aggregate else (
                _granted(rc, header_expires, cfg.default_expires) if rc is not None else 0)
            e_local = min(entry.e_in, e_out)
            if e_local <= 0:  # not bound upstream: it must not live here either
                if found is not None:
                    self._drop(found)
                continue
            if found is None:
                found = registrar.insert(aor, entry, self.source, ctid, now)
            found.source = self.source
            registrar.refresh(found, entry, e_local, call_id, seq, now, self.path)
            bound.append(found)
            actions.extend(registrar.replace_flows(aor, found, now))  # RFC 5626 §6
            if rc is not None:
                con = str(rc.uri)
                found.upstream = Upstream(
                    aor=aor.key, from_uri=from_uri, to_uri=to_uri, request_uri=self.request_uri,
                    call_id=call_id, cseq=seq,
                    contact_uri=None if con == our_contact_uri(ctx, entry.user, ctid) else con,
                    granted=e_out, refreshed_at=now)
        if not aggregate:
            # §10.3 step 8: a 2xx lists every binding of the AOR. A device of ours it no longer
            # lists has lost its binding upstream (evicted, the registrar restarted): its next
            # refresh is relayed, not absorbed
            for contact in aor.contacts:
                if contact.upstream is not None and contact.ctid not in by_id:
                    contact.upstream = None
        if aggregate:
            if aor.upstream is None:
                for contact in aor.contacts:  # nothing upstream reaches them any more
                    self._drop(contact)
            elif not aor.live(now):
                up, aor.upstream = aor.upstream, None
                actions.append(build_deregister(ctx, up, now))
            elif cfg.conservative_aor_window:
                # DESIGN.md §5.1: the main registrar may grant the aggregate less than it had
                # before; no device of the AOR may outlive it
                end = aor.upstream.expires_at
                for contact in aor.contacts:
                    if contact.expires_at > end:
                        contact.expires_at = end
                        registrar.schedule_expiry(contact)
        actions.extend(registrar.enforce_max_contacts(aor, now, bound))
        return actions

    def _drop(self, contact: Contact) -> None:
        ctx = self.registrar.ctx
        contact.timer = None
        ctx.table.remove(contact)


class Deregister:
    """Our own de-REGISTER: its outcome is counted, and logged when it fails."""

    __slots__ = ("ctx", "contact_uri", "aor", "up", "until")

    def __init__(self, ctx: Context, contact_uri: str, aor: str | None, up: Upstream,
                 until: float) -> None:
        self.ctx = ctx
        self.contact_uri = contact_uri
        self.aor = aor  # AOR mode: the AOR whose aggregate binding goes
        self.up = up
        self.until = until  # when the binding would have ended on its own

    def _over(self, txn: ClientTxn) -> None:
        if self.aor is not None and self.ctx.deregistering.get(self.aor) is txn:
            del self.ctx.deregistering[self.aor]

    def on_response(self, txn: ClientTxn, response: Response, now: float) -> list[Action]:
        self._over(txn)
        if response.status < 300:
            return []
        self.ctx.stats.deregisters_failed += 1
        return [Drop(reason="deregister-failed",
                     detail=f"main registrar answered {response.status} {response.reason} to "
                            f"our de-REGISTER of {self.contact_uri}")]

    def on_timeout(self, txn: ClientTxn, now: float) -> list[Action]:
        self._over(txn)
        self.ctx.stats.deregisters_failed += 1
        return [Drop(reason="deregister-timeout",
                     detail=f"no answer to our de-REGISTER of {self.contact_uri}")]


def our_contact_uri(ctx: Context, user: str, ctid: int) -> str:
    """The Contact URI we write upstream for a device (§3.2): ``sip:user@us;ctid=N`` or, with
    contact_id_in_user, ``sip:N@us``."""
    cfg = ctx.cfg
    tparam = ctx.transport_param(cfg.upstream)
    if cfg.contact_id_in_user:
        return f"sip:{ctid}@{ctx.adv_host_port}{tparam}"
    return f"sip:{user}@{ctx.adv_host_port};{cfg.contact_id_param}={ctid}{tparam}"


def _device_user(contact: Contact, up: Upstream) -> str:
    """The user part we wrote for ``contact`` upstream (ReqContact.user): its Contact's, else
    the AOR's."""
    for text in (contact.uri, up.to_uri):
        try:
            uri = Uri.parse(text)
        except SipParseError:
            continue
        if uri.is_sip and uri.user:
            return uri.user
    return ""


def build_deregister(ctx: Context, up: Upstream, now: float,
                     contact: Contact | None = None) -> Action:
    """A REGISTER removing ``up`` from the main registrar: its Call-ID, CSeq + 1, a new From tag,
    the Contact the main registrar returned with ;expires=0 (OPENSIPS-BEHAVIOUR.md §1.2 e).
    ``contact`` is the device ``up`` belongs to (contact throttling), to rebuild the Contact we
    sent when the main registrar returned it unchanged."""
    cfg = ctx.cfg
    con = up.contact_uri
    if con is None:
        assert contact is not None, "a de-REGISTER of a contact binding needs its contact"
        con = our_contact_uri(ctx, _device_user(contact, up), contact.ctid)
    up.cseq += 1
    branch, via = ctx.our_via(cfg.upstream)
    request = make_request("REGISTER", up.request_uri, [
        ("Via", via),
        ("Max-Forwards", "70"),
        ("From", f"<{up.from_uri}>;tag={ctx.ids.token()}"),
        ("To", f"<{up.to_uri}>"),
        ("Call-ID", up.call_id),
        ("CSeq", f"{up.cseq} REGISTER"),
        ("Contact", f"<{con}>;expires=0"),
    ])
    aggregate = contact is None and cfg.mode is Mode.AOR_THROTTLING
    txn = ClientTxn(branch=branch, data=request.serialize(), dest=cfg.upstream,
                    user=Deregister(ctx, con, up.aor if aggregate else None, up, up.expires_at),
                    now=now, t1=cfg.t1, t2=cfg.t2, t4=cfg.t4, upstream=True)
    if not cfg.retransmit_deregister:
        txn.next_at = txn.f_at  # OpenSIPS sends it once (§1.2 e)
    if aggregate:  # a REGISTER relayed for the AOR meanwhile stops it (Registrar._relay)
        ctx.deregistering[up.aor] = txn
    up.expires_at = min(up.expires_at, now)  # we consider it gone from here on
    ctx.stats.deregisters_sent += 1
    return ctx.txns.start_client(txn)
