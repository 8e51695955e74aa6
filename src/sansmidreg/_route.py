# Routing without state: loose-routed requests relayed statelessly (RFC 3261 §16.12, §16.11),
# responses to them relayed by their Via (§16.11, §18.2.2), our Record-Route entries (§16.6
# step 4, with RFC 5658 double Record-Route when the two sides use different transports), and
# the server-transaction key of a request (§17.2.3).
#
# A Route naming us is popped (every consecutive one: a double Record-Route puts two); a
# Request-URI that is one of our Record-Route values (a strict router before us) is replaced by
# the last Route (§16.4). The next hop is then the next Route -- a strict one (no `lr`) gets the
# Request-URI swapped into the Route set, §16.6 step 6 -- else the Request-URI. When the entry we popped carries our
# contact-id parameter (we Record-Routed a branch toward a device behind NAT), and no Route is
# left, the request goes where the device's registration says (its NAT flow), not to the
# Request-URI. Stateless branches are a hash of the request's own branch (§16.11), prefixed so
# that a response to one is told apart from a stale response to a stateful branch.
#
# Open relay: a routed request is relayed only when it comes from a trusted source (main
# registrar, Config.trusted) or goes to one; anything else gets 403 (or is dropped).
from __future__ import annotations

import hashlib
from typing import Final

from ._actions import Action, Drop, Endpoint, Reply, SendRequest, Transport
from ._context import Context, stamp_via
from ._lookup import is_trusted, target_of, uri_dest
from .sip import NameAddr, Request, Response, SipParseError, Uri, Via

__all__ = ["STATELESS_PREFIX", "pop_our_routes", "record_route_values", "relay_response",
           "relay_routed", "server_key", "via_dest"]

STATELESS_PREFIX: Final = "z9hG4bKsl"
_TRANSPORTS: Final[dict[str, Transport]] = {"UDP": "udp", "TCP": "tcp", "TLS": "tls"}


def server_key(req: Request, method: str) -> tuple[str, ...]:
    """The key of the server transaction ``req`` belongs to (§17.2.3; §17.2.3 fallback for
    branches without the magic cookie). ACK and CANCEL pass ``"INVITE"`` to find the INVITE."""
    via = req.top_via
    branch = via.branch or ""
    if branch.startswith("z9hG4bK"):
        return (branch, via.sent_by, method)
    return (req.call_id, str(req.cseq.seq), req.from_.tag or "", via.sent_by, method,
            req.uri_text)


def via_dest(via: Via) -> Endpoint:
    """Where a response goes by a Via we did not receive the request on (§18.2.2, RFC 3581)."""
    transport = _TRANSPORTS.get(via.transport.upper(), "udp")
    host = via.received or via.host
    rport = via.rport
    port = int(rport) if rport and rport.isdigit() else (
        via.port or (5061 if transport == "tls" else 5060))
    return Endpoint(transport=transport, host=host, port=port)


def record_route_values(ctx: Context, req: Request, upstream: Endpoint, branch: Endpoint,
                        ctid: int | None) -> list[str]:
    """Our Record-Route entries for a branch, top first (§16.6 step 4; RFC 5658 §3.3 when the
    upstream and device sides use different transports). ``ctid`` marks a NAT'd device."""
    cfg = ctx.cfg
    host_port = ctx.adv_host_port
    extra = ""
    if cfg.compat == "opensips":  # OpenSIPS writes the From tag (its dialog matching) too
        tag = req.from_.tag
        extra = f";ftag={tag}" if tag else ""
    ct = f";{cfg.contact_id_param}={ctid}" if ctid is not None else ""
    device_side = f"<sip:{host_port}{ctx.transport_param(branch)};lr{ct}{extra}>"
    if branch.transport == upstream.transport:
        return [device_side]
    return [device_side, f"<sip:{host_port}{ctx.transport_param(upstream)};lr{extra}>"]


def pop_our_routes(ctx: Context, req: Request) -> tuple[Request, list[NameAddr]]:
    """Remove every leading Route entry that names us; returns the request and what was popped
    (nothing when the first Route is not ours). A request from a strict router, whose
    Request-URI is one of our Record-Route values (no user part, ``lr``, our address), first
    takes its Request-URI from the last Route (§16.4); that URI of ours then counts as popped."""
    if req.first("route") is None:
        return req, []
    raw = req.values("route")
    routes = req.route
    popped: list[NameAddr] = []
    try:
        uri: Uri | None = req.uri
    except SipParseError:  # not a SIP URI (tel: ...): it is not ours, the Route decides
        uri = None
    if uri is not None and not uri.user and uri.param("lr") is not None and _names_us(ctx, uri):
        popped.append(NameAddr.parse(f"<{req.uri_text}>"))  # §16.4
        req = req.with_uri(str(routes[-1].uri))
        raw, routes = raw[:-1], routes[:-1]
    ours = 0
    for na in routes:
        if not _names_us(ctx, na.uri):
            break
        popped.append(na)
        ours += 1
    if not popped:
        return req, []
    rest = raw[ours:]
    return req.replace_headers("route", [", ".join(rest)] if rest else []), popped


def _names_us(ctx: Context, uri: Uri) -> bool:
    return uri.is_sip and ctx.is_us(uri.host, uri.port, 5061 if uri.scheme == "sips" else 5060)


def _toward_strict_router(req: Request) -> Request:
    """§16.6 step 6 (a stateless relay too, §16.11): when the first Route has no ``lr``, the
    next hop is a strict router: the Request-URI goes last into the Route set and the first
    Route becomes the Request-URI."""
    routes = req.route
    if not routes or routes[0].uri.param("lr") is not None:
        return req
    raw = req.values("route")
    rest = [*raw[1:], f"<{req.uri_text}>"]
    return req.with_uri(str(routes[0].uri)).replace_headers("route", [", ".join(rest)])


def _stateless_branch(req: Request) -> str:
    """Same input -> same branch (retransmissions), different requests -> different (§16.11);
    a CANCEL, and the ACK of a non-2xx final, get the branch of their INVITE (they carry its
    branch, and the next hop matches them to that INVITE's transaction, §9.2, §17.2.3)."""
    via = req.top_via
    method = "INVITE" if req.method in ("CANCEL", "ACK") else req.method
    seed = f"{via.branch}|{via.sent_by}|{method}"
    if not (via.branch or "").startswith("z9hG4bK"):
        cseq = f"{req.cseq.seq} {method}" if method != req.method else req.get("cseq")
        seed += f"|{req.uri_text}|{req.get('call-id')}|{cseq}|{req.get('from')}"
        seed += f"|{req.get('to')}"
    return STATELESS_PREFIX + hashlib.blake2b(seed.encode("utf-8", "surrogateescape"),
                                              digest_size=8).hexdigest()


def relay_routed(ctx: Context, req: Request, source: Endpoint,
                 popped: list[NameAddr]) -> list[Action]:
    """Relay a request whose Route named us, statelessly, to the next hop (§16.12)."""
    cfg = ctx.cfg
    is_ack = req.method == "ACK"
    max_forwards = req.max_forwards
    if max_forwards == 0:
        if is_ack:
            return [Drop(reason="too-many-hops", detail="ACK with Max-Forwards 0", source=source)]
        return [ctx.reply(req, source, 483, "Too Many Hops")]
    routes = req.route
    dest: Endpoint | None = None
    if routes:
        dest = uri_dest(routes[0].uri)  # the next Route is the next hop (a strict one too)
        req = _toward_strict_router(req)
    else:
        ctid = _popped_ctid(ctx, popped)
        contact = ctx.table.by_ctid.get(ctid) if ctid is not None else None
        if contact is not None:
            target = target_of(ctx, contact)
            dest = target.dest if target is not None and target.nat else None
        if dest is None:
            dest = uri_dest(req.uri)
    if dest is None:
        if is_ack:
            return [Drop(reason="unroutable", detail="ACK to a non-SIP URI", source=source)]
        return [ctx.reply(req, source, 416, "Unsupported URI Scheme")]
    if not (is_trusted(ctx, source.host) or is_trusted(ctx, dest.host)):
        ctx.stats.drops["untrusted"] += 1
        if is_ack or cfg.untrusted == "drop":
            return [Drop(reason="untrusted", detail=f"routed {req.method} from {source} to "
                                                    f"{dest}: relaying denied", source=source)]
        return [ctx.reply(req, source, 403, "Relaying Denied")]
    out = stamp_via(req, source)
    out = out.replace_headers("max-forwards",
                              [str(70 if max_forwards is None else max_forwards - 1)])
    _, via = ctx.our_via(dest, _stateless_branch(req))
    out = out.push_via(via)
    return [SendRequest(data=out.serialize(), dest=dest)]


def _popped_ctid(ctx: Context, popped: list[NameAddr]) -> int | None:
    for na in popped:
        text = na.uri.param(ctx.cfg.contact_id_param)
        if text and text.isdigit() and text.isascii() and len(text) <= 20:
            return int(text)
    return None


def relay_response(ctx: Context, resp: Response, source: Endpoint) -> list[Action]:
    """A response no transaction claims: relay it by its Via when it answers a request we
    relayed statelessly (§16.11), else drop it (a late response to a finished transaction)."""
    via = resp.top_via
    branch = via.branch or ""
    if not branch.startswith(STATELESS_PREFIX) or not ctx.is_us(via.host, via.port):
        ctx.stats.drops["stray-response"] += 1
        return [Drop(reason="stray-response",
                     detail=f"{resp.status} matching no transaction", source=source)]
    try:
        out = resp.pop_via()
        nxt = out.top_via
    except SipParseError:
        ctx.stats.drops["bad-response"] += 1
        return [Drop(reason="bad-response", detail="no Via left to relay the response to",
                     source=source)]
    return [Reply(data=out.serialize(), dest=via_dest(nxt))]
