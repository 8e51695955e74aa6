# Target resolution for requests toward registered devices (OPENSIPS-BEHAVIOUR.md §1.1 i,
# §1.3 i; RFC 3261 §16.5) and the NAT policy that decides where a branch is sent (DESIGN.md §4).
#
# - Contact id (mirror, contact throttling): the Request-URI carries `;ctid=N` (the parameter
#   name is Config.contact_id_param) or, with contact_id_in_user, N as its user part; it resolves
#   in O(1) through LocationTable.by_ctid to exactly one live contact.
# - Aggregate contact (AOR throttling): the user part is the escaped AOR; every live contact of
#   that AOR is a target, ordered by q (highest first; no q counts as 1.0) and, for equal q, by
#   the most recent registration first, keeping only contacts whose `methods` allow the request
#   and one contact per `+sip.instance` (RFC 5626 §5.3: the first of its flows in that order).
# - Failures: unknown id / AOR, or an expired contact -> 404; an AOR we know with no live contact
#   -> 480; contacts exist but none accepts the method -> 405 with Allow (OpenSIPS rc -2).
# - Trust: only the main registrar's host and Config.trusted may make us send requests toward a
#   device; anyone else gets 403 or nothing (Config.untrusted), so we are never an open relay.
#
# NAT (Config.nat): `never` sends to the Contact address; `always` to where the REGISTER came
# from; `detect` to the REGISTER's source (and its connection) when the device registered over
# TCP/TLS, asked for RFC 5626 outbound (`ob` URI parameter or `reg-id`), or wrote a Contact host in
# a private (RFC 1918, IPv6 ULA) or shared (RFC 6598) range while the REGISTER came from another
# address; otherwise to the Contact (the oracle phones register from one port and listen on
# another: same host, so the Contact wins). A stored Path (RFC 3327 §5) becomes the Route set and
# the first hop is the destination.
from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Final, NamedTuple

from ._actions import Endpoint, Transport
from ._aor import aor_from_aggregate
from ._bindings import Contact
from ._config import Mode
from ._context import Context
from .sip import NameAddr, Request, SipParseError, Uri

__all__ = ["Refusal", "Target", "contact_id", "is_trusted", "lookup", "target_of",
           "uri_dest"]

_SHARED: Final = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # RFC 1918
    "100.64.0.0/10",  # RFC 6598 shared address space (carrier-grade NAT)
    "fc00::/7",  # RFC 4193 unique local IPv6
))


class Target(NamedTuple):
    """One branch destination: the Request-URI to write, where to send it, the Route set.
    (A NamedTuple: one is built per branch of every fork, and a tuple is the cheapest record.)"""

    contact: Contact
    uri: str
    dest: Endpoint
    route: tuple[str, ...]
    nat: bool  # the destination is the REGISTER's source, not the Contact address


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why no target: the status to answer, its reason phrase and extra headers."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


def is_trusted(ctx: Context, host: str) -> bool:
    """Is ``host`` the main registrar or one of Config.trusted?"""
    trusted = ctx.trusted_hosts
    return host in trusted or host.lower().strip("[]") in trusted


@functools.lru_cache(maxsize=4096)
def is_shared_range(host: str) -> bool:
    """True for an IP literal in a private or shared address range."""
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False  # a host name: we cannot tell
    return any(addr in net for net in _SHARED if net.version == addr.version)


def uri_dest(uri: Uri) -> Endpoint | None:
    """Where a SIP URI says to send (host, port, transport parameter; §19.1.2, no DNS)."""
    if not uri.is_sip or not uri.host:
        return None
    transport: Transport = "tls" if uri.scheme == "sips" else "udp"
    param = (uri.param("transport") or "").lower()
    if param in ("tcp", "tls") and transport != "tls":
        transport = "tcp" if param == "tcp" else "tls"
    port = uri.port or (5061 if transport == "tls" else 5060)
    return Endpoint(transport=transport, host=uri.host, port=port)


def _behind_nat(policy: str, source: Endpoint, reg_id: int | None, uri: Uri) -> bool:
    if policy != "detect":
        return policy == "always"
    if source.is_reliable or reg_id is not None:
        return True  # reuse the registration's connection / RFC 5626 flow
    if uri.is_sip and uri.param("ob") is not None:
        return True
    return uri.is_sip and is_shared_range(uri.host) and uri.host.lower() != source.host.lower()


def target_of(ctx: Context, contact: Contact) -> Target | None:
    """The branch destination of ``contact`` (None when its URI cannot be routed). The last one
    built for a contact is kept in Context.targets and reused while the contact still holds the
    very same uri/source/details objects (identity checks): the lru_cache of _plan alone
    hashes an Endpoint and builds a Target per branch, and bench_fork fell from 0.264 to 0.245
    without this memo."""
    uri = contact.uri
    source = contact.source
    details = contact.details
    policy = ctx.cfg.nat
    targets = ctx.targets
    memo = targets.get(contact.ctid)
    if memo is not None and memo[0] is uri and memo[1] is source and memo[2] is details and (
            memo[3] is policy and memo[4].contact is contact):
        return memo[4]
    path = contact.path
    plan = _plan(uri, source, path, contact.reg_id, policy)
    if plan is None:
        return None
    dest, nat = plan
    target = Target(contact=contact, uri=uri, dest=dest, route=path, nat=nat)
    if len(targets) >= 16384:
        targets.clear()
    targets[contact.ctid] = (uri, source, details, policy, target)
    return target


@functools.lru_cache(maxsize=16384)
def _plan(uri_text: str, source: Endpoint, path: tuple[str, ...], reg_id: int | None,
          policy: str) -> tuple[Endpoint, bool] | None:
    """(destination, behind NAT) of a binding: a pure function of what the binding stores,
    memoised because every request toward a device needs it (URI and IP parsing are slow)."""
    try:
        uri = Uri.parse(uri_text)
    except SipParseError:
        return None
    direct = uri_dest(uri)
    if direct is None:
        return None
    if path:  # RFC 3327 §5: the Path becomes the Route set, its first hop is the next hop
        try:
            first = uri_dest(NameAddr.parse(path[0]).uri)
        except SipParseError:
            return None
        if first is None:
            return None
        return (source if source.is_reliable else first), False
    if _behind_nat(policy, source, reg_id, uri):
        return source, True
    return direct, False


def contact_id(ctx: Context, uri: Uri) -> int | None:
    """The contact id a Request-URI carries, if any (§1.1 i)."""
    cfg = ctx.cfg
    text = uri.param(cfg.contact_id_param)
    if text is None and cfg.contact_id_in_user:
        text = uri.user
    if text and text.isdigit() and text.isascii() and len(text) <= 20:
        return int(text)
    return None


def _order(contact: Contact) -> tuple[float, float]:
    return (-contact.q_value, -contact.registered_at)


_RURIS: dict[str, Uri] = {}
"""Request-URI text -> Uri: calls to an AOR repeat its URI (bounded memo)."""


def _request_uri(req: Request) -> Uri:
    uri = _RURIS.get(req.uri_text)
    if uri is None:
        uri = req.uri
        if len(_RURIS) >= 4096:
            _RURIS.clear()
        _RURIS[req.uri_text] = uri
    return uri


def lookup(ctx: Context, req: Request, now: float) -> list[Target] | Refusal:
    """The targets of an initial request toward our devices, or why there are none."""
    uri = _request_uri(req)
    if not uri.is_sip:
        return Refusal(416, "Unsupported URI Scheme")
    ctid = contact_id(ctx, uri)
    if ctid is not None:
        contact = ctx.table.by_ctid.get(ctid)
        if contact is None or contact.expires_at <= now:
            return Refusal(404, "Not Found")
        target = target_of(ctx, contact)
        return [target] if target is not None else Refusal(480, "Temporarily Unavailable")
    if ctx.cfg.mode is not Mode.AOR_THROTTLING or not uri.user:
        return Refusal(404, "Not Found")
    aor = ctx.table.aors.get(aor_from_aggregate(uri.user, ctx.cfg.at_escape))
    if aor is None:
        return Refusal(404, "Not Found")
    method = req.method
    live = 0
    allowed: list[Contact] = []
    for c in aor.contacts:
        if c.expires_at > now:
            live += 1
            details = c.details
            if details is None or details[3] is None or method in details[3]:
                allowed.append(c)
    if not live:
        return Refusal(480, "Temporarily Unavailable")
    if not allowed:
        methods = sorted(set().union(*(c.methods or () for c in aor.live(now))))
        return Refusal(405, "Method Not Allowed", (("Allow", ", ".join(methods)),))
    # q descending, then the most recent registration first (stable for full ties)
    if len(allowed) > 1:
        allowed.sort(key=_order)
    targets = []
    instances: set[str] = set()
    for c in allowed:
        details = c.details
        instance = details[1] if details is not None else None
        if instance is not None and instance in instances:
            continue  # RFC 5626 §5.3: one flow per instance (the first in order: the newest)
        target = target_of(ctx, c)
        if target is not None:
            targets.append(target)
            if instance is not None:
                instances.add(instance)
    return targets or Refusal(480, "Temporarily Unavailable")
