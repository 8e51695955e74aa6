# REGISTER processing for the three modes: validate, decide (absorb / relay / reject), and
# apply what the main registrar answered. The decisions follow OPENSIPS-BEHAVIOUR.md §1 and
# Appendix A, with the DESIGN.md §5 policies; RFC 3261 §10.3 for what we answer ourselves.
#
# Order of work for a REGISTER: (1) every value we need is parsed and validated before any state
# changes, so a bad message never corrupts a binding; (2) the mode decides; (3) an absorbed
# REGISTER updates bindings and is answered at once; a relayed one becomes a PendingRegister (a
# client transaction upstream plus a server transaction toward the UA) and changes bindings only
# when a 2xx comes back (_register_reply.py).
#
# Invariant kept here: a local contact never outlives its upstream binding. Absorbing is allowed
# only while `now + e_in < upstream.expires_at` (contact mode per contact; AOR mode for every
# contact of the request when conservative_aor_window, OpenSIPS's max-diff rule otherwise). In
# mirror mode, where both sides expire alone, the lifetimes relayed upstream are clamped like the
# local ones so that no upstream binding outlives its local contact (compat=opensips relays the
# UA's raw lifetimes, as OpenSIPS does: OPENSIPS-BEHAVIOUR.md §1.1 a).
#
# What we answer ourselves carries a To tag derived from the request (reply_tag), so that a
# retransmission of an absorbed, refused or query REGISTER -- which leaves no transaction --
# gets the same response again (RFC 3261 §17.2.2) without per-request state.
from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ._actions import Action, Endpoint, Reply
from ._aor import aggregate_user, aor_of
from ._bindings import Aor, Contact, Upstream
from ._config import Mode
from ._context import Context, response_dest, stamp_via, stamped_via_line
from ._register_reply import (
    Deregister,
    PendingRegister,
    ReqContact,
    build_deregister,
    contact_list_value,
    our_contact_uri,
)
from ._route import pop_our_routes
from ._timers import SELF_TIE_LIMIT
from ._transactions import ClientTxn
from .sip import Header, NameAddr, Request, SipParseError, Uri

__all__ = ["Registrar"]

_MAX_URI = 255  # OpenSIPS max_contact_len
_MAX_USER = 64
_MAX_DOMAIN = 64
_SUPPORTED_EXTENSIONS = frozenset({"path"})


class Reject(Exception):
    """Internal: refuse the REGISTER with this status (never escapes the registrar)."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


@dataclass(slots=True)
class _Plan:
    """What an absorbable REGISTER will change (computed before anything is changed)."""

    updates: list[tuple[Contact, ReqContact]]
    inserts: list[ReqContact]
    removals: list[Contact]


class Registrar:
    """REGISTER handling; owns no state of its own beyond the shared Context."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # -- entry ---------------------------------------------------------------------------------
    def handle(self, req: Request, source: Endpoint, now: float) -> list[Action]:
        ctx = self.ctx
        ctx.stats.registers_received += 1
        via = req.top_via
        branch = via.branch or ""
        key = (branch, via.sent_by, "REGISTER") if branch.startswith("z9hG4bK") else (
            req.call_id, str(req.cseq.seq), req.from_.tag or "", via.sent_by)
        txn = ctx.txns.server(key)
        if txn is not None:  # a retransmission of a REGISTER we relayed (RFC 3261 §17.2.2)
            ctx.stats.retransmissions_absorbed += 1
            resend = ctx.txns.server_retransmission(txn)
            return [resend] if resend is not None else []
        try:
            return self._process(req, source, now, key)
        except Reject as rej:
            ctx.stats.rejected[rej.status] += 1
            return [ctx.reply(req, source, rej.status, rej.reason, rej.headers)]

    def _process(self, req: Request, source: Endpoint, now: float,
                 key: tuple[str, ...]) -> list[Action]:
        ctx = self.ctx
        cfg = ctx.cfg
        # (1) validate everything before touching state
        try:
            cseq = req.cseq
            call_id = req.call_id
            to_uri = req.to.uri
            req.from_  # noqa: B018 - a REGISTER needs a valid From (it is copied into replies)
            max_forwards = req.max_forwards
            req.uri  # noqa: B018 - Request-URI must parse (416 for other schemes)
            contacts = req.contacts
            header_expires = req.expires
            # §16.3 step 5 / §8.2.2.3: what we must understand, as a proxy and as a registrar
            require = req.option_tags("require") | req.option_tags("proxy-require")
            req.option_tags("supported")  # read by the answer (Path echo): checked before state
            path = tuple(str(p) for p in req.path) if req.has("path") else ()
        except SipParseError as exc:
            raise Reject(exc.status, exc.reason) from None
        if cseq.method != "REGISTER":
            raise Reject(400, "CSeq method does not match the request")
        if max_forwards == 0:
            raise Reject(483, "Too Many Hops")
        unsupported = sorted(require - _SUPPORTED_EXTENSIONS)
        if unsupported:
            raise Reject(420, "Bad Extension", (("Unsupported", ", ".join(unsupported)),))
        if not req.uri.is_sip or not to_uri.is_sip:
            raise Reject(416 if not req.uri.is_sip else 404, "Unsupported URI Scheme"
                         if not req.uri.is_sip else "Not a SIP address-of-record")
        if cfg.domains and to_uri.host.lower() not in cfg.domains:
            raise Reject(403, "Domain not served here")
        if not to_uri.user:
            raise Reject(400, "Empty AOR user part")
        if len(to_uri.user) > _MAX_USER or len(to_uri.host) > _MAX_DOMAIN:
            raise Reject(500, "Address Of Record too long")
        aor_key = aor_of(to_uri, use_domain=cfg.use_domain, case_sensitive=cfg.case_sensitive)
        aor = ctx.table.aors.get(aor_key)
        req, _ = pop_our_routes(ctx, req)  # §16.4: Routes naming us are not relayed upstream

        if not contacts:  # binding query (RFC 3261 §10.3 step 8)
            ctx.stats.queries_answered += 1
            return [self._ok(req, source, aor, now)]
        if contacts.star:
            if header_expires != 0:
                raise Reject(400, "Contact: * needs Expires: 0")
            return self._relay(req, source, now, key, aor_key, [], star=True, path=path)
        if len(contacts.items) > cfg.max_contacts_per_aor:
            raise Reject(400, "Too many contacts in one REGISTER")
        entries = [self._req_contact(c, header_expires, to_uri) for c in contacts.items]

        if cfg.mode is not Mode.MIRROR and aor is not None:
            plan = (self._plan_contact(aor, entries, source, call_id, cseq.seq, now)
                    if cfg.mode is Mode.CONTACT_THROTTLING
                    else self._plan_aor(aor, entries, source, call_id, cseq.seq, now))
            if plan is not None:
                self._check_limits(aor, len(plan.inserts) - len(plan.removals), now)
                return self._absorb(req, source, aor, plan, call_id, cseq.seq, now, path)
        self._check_limits(aor, self._new_count(aor, entries, now), now)
        return self._relay(req, source, now, key, aor_key, entries, star=False, path=path)

    def _req_contact(self, c: NameAddr, header_expires: int | None, to_uri: Uri) -> ReqContact:
        cfg = self.ctx.cfg
        uri_text = str(c.uri)
        if len(uri_text) > _MAX_URI:
            raise Reject(400, "Contact URI too long")
        raw = c.expires
        if raw is not None:
            # a non-numeric ;expires means default_expires (OPENSIPS-BEHAVIOUR.md §4.16)
            e_raw = min(int(raw), 2**32 - 1) if raw.isdigit() and raw.isascii() else (
                cfg.default_expires)
        elif header_expires is not None:
            e_raw = header_expires
        else:
            e_raw = cfg.default_expires
        if 0 < e_raw < min(cfg.min_expires, 3600) and cfg.compat != "opensips":
            # RFC 3261 §10.3 step 7: only below an hour (above, clamping raises it); OpenSIPS
            # clamps silently instead
            raise Reject(423, "Interval Too Brief", (("Min-Expires", str(cfg.min_expires)),))
        try:
            q = c.q
        except SipParseError as exc:
            raise Reject(400, exc.reason) from None
        methods_raw = c.param("methods")
        methods = frozenset(m.strip().upper() for m in methods_raw.strip('"').split(",")
                            ) if methods_raw else None
        user = c.uri.user if c.uri.is_sip and c.uri.user else (to_uri.user or "")
        return ReqContact(addr=c, uri=uri_text, e_raw=e_raw, e_in=cfg.clamp_expires(e_raw),
                          q=None if q is None else c.param("q"), user=user,
                          instance=c.instance, reg_id=c.reg_id, methods=methods)

    @staticmethod
    def _match(aor: Aor, entry: ReqContact) -> Contact | None:
        """The local contact this request contact refreshes: same URI text, else §19.1.4."""
        found = aor.find(entry.uri)
        if found is not None:
            return found
        for c in aor.contacts:
            try:
                if Uri.parse(c.uri).equivalent(entry.addr.uri):
                    return c
            except SipParseError:
                continue
        return None

    def _cseq_ok(self, contact: Contact, call_id: str, seq: int, now: float) -> bool:
        """RFC 3261 §10.3 step 7 for a binding we answer for (OPENSIPS-BEHAVIOUR.md §3.6)."""
        if contact.call_id != call_id:
            return True
        if seq > contact.cseq:
            return True
        if seq == contact.cseq:
            return self.ctx.cfg.allow_dup_cseq or now - contact.updated_at < 20.0
        return False

    # -- decisions -----------------------------------------------------------------------------
    def _plan_contact(self, aor: Aor, entries: list[ReqContact], source: Endpoint, call_id: str,
                      seq: int, now: float) -> _Plan | None:
        """Contact throttling (§1.2 b): absorb only if every contact may be absorbed."""
        pin = self.ctx.cfg.pin_absorb_source
        updates = []
        for entry in entries:
            if entry.e_in == 0:
                return None
            found = self._match(aor, entry)
            if found is None or found.expires_at <= now:
                return None
            up = found.upstream
            if up is None or now + entry.e_in >= up.expires_at:
                return None
            if pin and found.source != source:
                return None
            if not self._cseq_ok(found, call_id, seq, now):
                raise Reject(400, "Invalid CSeq number")
            updates.append((found, entry))
        return _Plan(updates=updates, inserts=[], removals=[])

    def _plan_aor(self, aor: Aor, entries: list[ReqContact], source: Endpoint, call_id: str,
                  seq: int, now: float) -> _Plan | None:
        """AOR throttling (§1.3 b) with the DESIGN.md §5.1/§5.2 policies."""
        cfg = self.ctx.cfg
        up = aor.upstream
        live = aor.live(now)
        if up is None or not live or up.expires_at <= now:
            return None
        plan = _Plan(updates=[], inserts=[], removals=[])
        for entry in entries:
            found = self._match(aor, entry)
            if found is not None and found.expires_at <= now:
                found = None
            if found is not None and not self._cseq_ok(found, call_id, seq, now):
                raise Reject(400, "Invalid CSeq number")
            if found is not None and cfg.pin_absorb_source and found.source != source:
                return None
            e = entry.e_in if cfg.conservative_aor_window else min(entry.e_in, up.granted)
            if found is None:
                if e == 0:
                    continue
                if cfg.relay_new_devices:
                    return None  # a new device is authenticated upstream (§5.2)
                plan.inserts.append(entry)
            elif e == 0:
                plan.removals.append(found)
            else:
                plan.updates.append((found, entry))
            if e > 0 and cfg.conservative_aor_window and now + e >= up.expires_at:
                return None  # this contact would outlive the upstream binding (§5.1)
        remaining = len(live) - len(plan.removals)
        if remaining + len(plan.inserts) <= 0:
            return None  # the last contact goes: the aggregate binding must go upstream too
        if (plan.updates or plan.inserts) and not cfg.conservative_aor_window:
            # OpenSIPS: forward when LRTs + max(expO - exp) <= now (§1.3 b.3)
            lifetimes = {id(c): min(c.lifetime, up.granted) for c in live}
            for c, entry in plan.updates:
                lifetimes[id(c)] = min(entry.e_in, up.granted)
            for c in plan.removals:
                lifetimes.pop(id(c), None)
            diffs = [up.granted - e for e in lifetimes.values()]
            diffs += [up.granted - min(entry.e_in, up.granted) for entry in plan.inserts]
            if up.refreshed_at + max(diffs) <= now:
                return None
        return plan

    def _new_count(self, aor: Aor | None, entries: list[ReqContact], now: float) -> int:
        if aor is None:
            return sum(1 for e in entries if e.e_in > 0)
        delta = 0
        for entry in entries:
            found = self._match(aor, entry)
            live = found is not None and found.expires_at > now
            if entry.e_in > 0 and not live:
                delta += 1
            elif entry.e_in == 0 and live:
                delta -= 1
        return delta

    def _check_limits(self, aor: Aor | None, added: int, now: float) -> None:
        cfg = self.ctx.cfg
        if aor is None and len(self.ctx.table.aors) >= cfg.max_aors:
            raise Reject(503, "Location table full", (("Retry-After", "60"),))
        if added <= 0:
            return
        count = len(aor.live(now)) if aor is not None else 0
        if count + added > cfg.max_contacts_per_aor:
            raise Reject(503, "Too many registered contacts", (("Retry-After", "60"),))
        if cfg.max_contacts and count + added > cfg.max_contacts and not cfg.force_registration:
            raise Reject(503, "Too many registered contacts", (("Retry-After", "60"),))

    # -- absorb --------------------------------------------------------------------------------
    def _absorb(self, req: Request, source: Endpoint, aor: Aor, plan: _Plan, call_id: str,
                seq: int, now: float, path: tuple[str, ...]) -> list[Action]:
        ctx = self.ctx
        cfg = ctx.cfg
        actions: list[Action] = []
        up = aor.upstream
        bound: list[Contact] = []
        for contact, entry in plan.updates:
            e = entry.e_in if up is None or cfg.conservative_aor_window else min(
                entry.e_in, up.granted)
            self.refresh(contact, entry, e, call_id, seq, now, path)
            bound.append(contact)
            if contact.upstream is not None and contact.upstream.call_id == call_id:
                contact.upstream.cseq = max(contact.upstream.cseq, seq)
        for contact in plan.removals:
            ctx.table.remove(contact)
        for entry in plan.inserts:  # compat=opensips only: a new device absorbed (§1.3 b)
            assert up is not None
            contact = self.insert(aor, entry, source, ctx.ids.contact_id(), now)
            self.refresh(contact, entry, min(entry.e_in, up.granted), call_id, seq, now, path)
            bound.append(contact)
            actions.extend(self.replace_flows(aor, contact, now))
        if up is not None and up.call_id == call_id:
            up.cseq = max(up.cseq, seq)
        actions.extend(self.enforce_max_contacts(aor, now, bound))
        ctx.stats.registers_absorbed += 1
        actions.append(self._ok(req, source, aor, now, path))
        return actions

    def _ok(self, req: Request, source: Endpoint, aor: Aor | None, now: float,
            path: tuple[str, ...] | None = None) -> Reply:
        """200 OK answered by us, listing every live binding (RFC 3261 §10.3 step 8). With
        ``Supported: path`` it echoes ``path``, the Path of the REGISTER it answers (RFC 3327
        §5.3, as a relayed answer does); a query (``path`` None) gets the one stored."""
        req = stamp_via(req, source)
        headers: list[tuple[str, str]] = []
        listing = contact_list_value(aor, now) if aor is not None else ""
        if listing:
            headers.append(("Contact", listing))
        if "path" in req.option_tags("supported"):
            echoed = self._stored_path(aor, now) if path is None else list(path)
            headers.extend(("Path", p) for p in echoed)
        return self.ctx.reply(req, source, 200, "OK", headers, stamped=True)

    @staticmethod
    def _stored_path(aor: Aor | None, now: float) -> list[str]:
        if aor is None:
            return []
        for c in aor.contacts:
            if c.path and c.expires_at > now:
                return list(c.path)
        return []

    # -- bindings (also used when a 2xx is applied) ----------------------------------------------
    def insert(self, aor: Aor, entry: ReqContact, source: Endpoint, ctid: int,
               now: float) -> Contact:
        table = self.ctx.table
        while ctid in table.by_ctid:  # ids are unique among live contacts
            ctid = self.ctx.ids.contact_id()
        contact = Contact(aor=aor.key, uri=entry.uri, ctid=ctid, source=source)
        contact.registered_at = now
        table.add(aor, contact)
        return contact

    def replace_flows(self, aor: Aor, contact: Contact, now: float) -> list[Action]:
        """RFC 5626 §6: ``contact``, bound with a +sip.instance and a reg-id, replaces every
        other binding of the AOR with the same two (the device's new flow after a NAT rebinding
        or an address change): those end as if they expired, so the main registrar loses their
        bindings too (mirror, contact throttling)."""
        instance, reg_id = contact.instance, contact.reg_id
        if instance is None or reg_id is None:
            return []
        stale = [c for c in aor.contacts if c is not contact and c.reg_id == reg_id
                 and c.instance == instance]
        actions: list[Action] = []
        for old in stale:
            actions.extend(self.expire(old, now))
        return actions

    def refresh(self, contact: Contact, entry: ReqContact, lifetime: int, call_id: str, seq: int,
                now: float, path: tuple[str, ...]) -> None:
        contact.expires_at = now + lifetime
        contact.call_id = call_id
        contact.cseq = seq
        contact.updated_at = now
        contact.set_details(entry.q, entry.instance, entry.reg_id, entry.methods, path)
        self.schedule_expiry(contact)

    def schedule_expiry(self, contact: Contact, at: float | None = None) -> None:
        """Keep one heap entry per contact, no later than its expiry (or ``at``: a postponed
        check; the contact is its own entry: DeadlineHeap.schedule_self). A refresh that moves
        the expiry later leaves the entry; when it fires early it is re-armed (lazy re-check)."""
        when = contact.expires_at if at is None else at
        entry = contact.timer
        if entry is not None and entry[0] <= when:
            return
        ctid = contact.ctid
        contact.timer = self.ctx.heap.schedule_self(
            when, ctid if ctid < SELF_TIE_LIMIT else ctid % SELF_TIE_LIMIT, contact)

    def enforce_max_contacts(self, aor: Aor, now: float,
                             bound: Collection[Contact] = ()) -> list[Action]:
        """force_registration: drop the contacts beyond max_contacts (§4.5), the least
        preferred first -- lowest q (none: 1.0), then the oldest registration -- and the ones
        the REGISTER being answered just ``bound`` only if the others do not make room.
        (OpenSIPS deletes from the head of its q-sorted list, the highest q first.)"""
        cfg = self.ctx.cfg
        if not cfg.max_contacts:
            return []
        live = aor.live(now)
        actions: list[Action] = []
        excess = len(live) - cfg.max_contacts
        if excess <= 0:
            return []
        for contact in sorted(live, key=lambda c: (c in bound, c.q_value, c.registered_at))[:excess]:
            actions.extend(self.expire(contact, now, evicted=True))
        return actions

    def expire(self, contact: Contact, now: float, *, evicted: bool = False) -> list[Action]:
        """A contact leaves without its UA asking: tell the main registrar if it still holds a
        binding only this contact justified (§1.2 e, §1.3 e). Mirror mode does so only when the
        main registrar granted more than the device asked (a registrar that raises short
        intervals instead of answering 423), so that no upstream binding outlives its contact;
        compat=opensips sends nothing in mirror mode, as OpenSIPS does."""
        ctx = self.ctx
        contact.timer = None
        ctx.table.remove(contact)
        mode = ctx.cfg.mode
        actions: list[Action] = []
        if mode is Mode.CONTACT_THROTTLING or (
                mode is Mode.MIRROR and ctx.cfg.compat != "opensips"):
            up = contact.upstream
            if up is not None and up.expires_at > now:
                actions.append(build_deregister(ctx, up, now, contact))
        elif mode is Mode.AOR_THROTTLING:
            aor = ctx.table.aors.get(contact.aor)
            if aor is not None and not aor.live(now):
                up = aor.upstream
                aor.upstream = None
                if up is not None and up.expires_at > now:
                    actions.append(self.deregister(up, now))
                for stale in aor.contacts:
                    stale.timer = None
                    ctx.table.remove(stale)
                ctx.table.discard_if_empty(aor)
        return actions

    def contact_timer(self, contact: Contact, now: float) -> list[Action]:
        contact.timer = None
        if self.ctx.table.by_ctid.get(contact.ctid) is not contact:
            return []  # removed meanwhile
        if contact.expires_at > now:
            self.schedule_expiry(contact)
            return []
        if self._renewal_in_flight(contact, now):
            # a relayed REGISTER may renew what our de-REGISTER would remove, and would cross
            # it on the way (another Call-ID: no CSeq order upstream). Decide once it is
            # answered: the contact is expired meanwhile (no call, no absorbed refresh reaches
            # it), and a 2xx revives it under the same contact id.
            self.schedule_expiry(contact, now + 64 * self.ctx.cfg.t1)
            return []
        return self.expire(contact, now)

    def _renewal_in_flight(self, contact: Contact, now: float) -> bool:
        """Is a relayed REGISTER in flight that would renew the binding ``contact``'s expiry
        de-registers upstream: the same device's (mirror, contact throttling), or, when it is
        the AOR's last live contact, any device's of the AOR (AOR throttling)?"""
        table = self.ctx.table
        if self.ctx.cfg.mode is Mode.AOR_THROTTLING:
            aor = table.aors.get(contact.aor)
            return aor is not None and aor.pending > 0 and not aor.live(now)
        return (contact.aor, contact.uri) in table.inflight

    # -- relay ---------------------------------------------------------------------------------
    def _relay(self, req: Request, source: Endpoint, now: float, key: tuple[str, ...],
               aor_key: str, entries: list[ReqContact], *, star: bool,
               path: tuple[str, ...]) -> list[Action]:
        ctx = self.ctx
        cfg = ctx.cfg
        max_forwards = req.max_forwards
        dialog = (req.call_id, req.cseq.seq, req.from_.uri, req.to.uri)
        dest = response_dest(req.top_via, source)
        via_line = stamped_via_line(req, source)  # received/rport (RFC 3261 §18.2.1, RFC 3581)
        aor = ctx.table.get_or_create(aor_key)
        mode = cfg.mode
        out = max(cfg.outgoing_expires, ctx.upstream_min_expires)
        raw_mirror = cfg.compat == "opensips"  # OpenSIPS relays the UA's unclamped lifetimes
        up_dest = cfg.upstream
        tparam = ctx.transport_param(up_dest)
        upstream_contacts: list[str] = []
        ctids: list[int] = []
        table = ctx.table
        for entry in entries:
            found = self._match(aor, entry)
            if found is not None:
                ctid = found.ctid
            elif (slot := table.inflight.get((aor_key, entry.uri))) is not None:
                ctid = slot[0]  # the same device relayed a moment ago: the same binding
            else:
                ctid = ctx.ids.contact_id()
                while ctid in table.by_ctid:
                    ctid = ctx.ids.contact_id()
            table.claim(aor_key, entry.uri, ctid)  # released when the answer is in
            ctids.append(ctid)
            if mode is Mode.AOR_THROTTLING:
                continue
            # mirror: the local binding's lifetime, so that the upstream one does not outlive it
            expires = (entry.e_raw if raw_mirror else entry.e_in) if mode is Mode.MIRROR else (
                out if entry.e_in > 0 else 0)
            upstream_contacts.append(f"<{our_contact_uri(ctx, entry.user, ctid)}>;expires={expires}")
        contact_value: str | None = None
        expires_value: str | None = None
        interrupted: object = None
        if not star:
            has_expires = req.has("expires")
            if mode is Mode.AOR_THROTTLING:
                stale = ctx.deregistering.pop(aor_key, None)
                if stale is not None:
                    # our de-REGISTER of this aggregate binding is still being retransmitted:
                    # a late copy would remove the binding this REGISTER is about to renew
                    # (it is sent again if this REGISTER binds nothing: PendingRegister._resume)
                    interrupted = stale.user
                    ctx.txns.abandon(stale)
                    ctx.stats.deregisters_superseded += 1
                live_after = {id(c) for c in aor.live(now)}
                for entry in entries:
                    found = self._match(aor, entry)
                    if found is not None:
                        live_after.discard(id(found))
                keep = bool(live_after) or any(e.e_in > 0 for e in entries)
                agg = f"sip:{aggregate_user(aor_key, cfg.at_escape)}@{ctx.adv_host_port}{tparam}"
                contact_value = f"<{agg}>" if has_expires else (
                    f"<{agg}>;expires={out if keep else 0}")
                if has_expires:
                    expires_value = str(out if keep else 0)
            else:
                contact_value = ", ".join(upstream_contacts)
                if mode is Mode.CONTACT_THROTTLING and has_expires:
                    expires_value = str(out if any(e.e_in for e in entries) else 0)
                elif has_expires and not raw_mirror and cfg.max_expires:
                    header_expires = req.expires
                    if header_expires is not None and header_expires > cfg.max_expires:
                        expires_value = str(cfg.max_expires)  # mirror, as the ;expires above
        branch, via = ctx.our_via(up_dest)
        data = _relayed_bytes(req, via_line, via, contact_value, expires_value, str(
            70 if max_forwards is None else max_forwards - 1), cfg.upstream_uri)

        server = ctx.txns.start_server(key, source, 64 * cfg.t1)
        pending = PendingRegister(
            registrar=self, request=req, via_line=via_line, source=source, dest=dest, aor=aor,
            entries=entries, ctids=ctids, star=star, path=path, server=server,
            request_uri=cfg.upstream_uri or req.uri_text, started=now, dialog=dialog)
        if isinstance(interrupted, Deregister):
            pending.resume = interrupted
        aor.pending += 1
        txn = ClientTxn(branch=branch, data=data, dest=up_dest, user=pending, now=now,
                        t1=cfg.t1, t2=cfg.t2, t4=cfg.t4, upstream=True)
        ctx.stats.registers_relayed += 1
        return [ctx.txns.start_client(txn)]

    def deregister(self, up: Upstream, now: float) -> Action:
        """Our own de-REGISTER of an AOR's aggregate binding (§1.3 e)."""
        return build_deregister(self.ctx, up, now)


def _relayed_bytes(req: Request, via_line: str | None, via: str, contact: str | None,
                   expires: str | None, max_forwards: str, request_uri: str | None) -> bytes:
    """The REGISTER we relay, in one pass over ``req``'s lines (RFC 3261 §16.6): our Via on top
    of the UA's (stamped: ``via_line``), Max-Forwards decremented, Contact and Expires replaced
    where the first of their lines stood (when given), Path removed (RFC 3327: we are the path
    upstream); every other line as it came."""
    headers: list[Header] = []
    placed: set[str] = set()
    pushed = False
    for header in req.headers:
        key = header[0]
        if key == "via" and not pushed:
            headers.append(("via", via, "Via: " + via))
            pushed = True
            if via_line is not None:
                raw = header[2]
                header = ("via", via_line, f"{raw[:raw.index(':')]}: {via_line}")
        elif key == "path":
            continue
        elif key == "contact" and contact is not None:
            if key not in placed:
                placed.add(key)
                headers.append(("contact", contact, "Contact: " + contact))
            continue
        elif key == "expires" and expires is not None:
            if key not in placed:
                placed.add(key)
                headers.append(("expires", expires, "Expires: " + expires))
            continue
        elif key == "max-forwards":
            if key not in placed:
                placed.add(key)
                headers.append(("max-forwards", max_forwards, "Max-Forwards: " + max_forwards))
            continue
        headers.append(header)
    if not pushed:
        headers.insert(0, ("via", via, "Via: " + via))
    if "max-forwards" not in placed:
        headers.append(("max-forwards", max_forwards, "Max-Forwards: " + max_forwards))
    if contact is not None and "contact" not in placed:
        headers.append(("contact", contact, "Contact: " + contact))
    if expires is not None and "expires" not in placed:
        headers.append(("expires", expires, "Expires: " + expires))
    return Request(req.method, request_uri or req.uri_text, tuple(headers), req.body,
                   req.version).serialize()
