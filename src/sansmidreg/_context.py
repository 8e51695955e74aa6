# The state every part of the core shares (config, ids, location table, transactions, deadline
# heap, counters) and the small helpers they all need: where a response goes (RFC 3261 §18.2.2,
# RFC 3581 §4), stamping received/rport on a request's top Via (§18.2.1), our own Via and
# addresses, and building a locally generated reply, whose To tag is a function of the request
# (reply_tag: a retransmission, which no transaction absorbs, gets the same bytes, §8.2.7).
from __future__ import annotations

from collections.abc import Iterable
from hashlib import blake2b
from typing import TYPE_CHECKING

from ._actions import Endpoint, Reply
from ._bindings import LocationTable
from ._config import Config
from ._ids import IdSource, branch_id
from ._stats import Counters
from ._timers import DeadlineHeap
from ._transactions import ClientTxn, TransactionLayer
from .sip import Request, Via, make_response, split_list

if TYPE_CHECKING:
    from ._lookup import Target

__all__ = ["Context", "reply_tag", "request_tag", "response_dest", "stamp_via",
           "stamped_via_line"]


def response_dest(via: Via, source: Endpoint) -> Endpoint:
    """Where a response to a request that arrived from ``source`` with top ``via`` goes."""
    if source.is_reliable or via.rport is not None:
        return source  # the same connection, or RFC 3581 symmetric response routing
    port = via.port or (5061 if via.transport == "TLS" else 5060)
    if port == source.port:
        return source
    return Endpoint(transport=source.transport, host=source.host, port=port)


def _stamped(via: Via, source: Endpoint) -> Via:
    """``via`` with ``received`` added when its sent-by host differs from the packet's source
    (§18.2.1) or it asks for rport, and an empty ``rport`` filled in (RFC 3581 §4: then received
    is added "even if it is identical to the value of the sent-by component")."""
    changed = via
    rport = via.rport == ""
    if rport or via.host != source.host:
        changed = changed.with_param("received", source.host)
    if rport:
        changed = changed.with_param("rport", str(source.port))
    return changed


def stamp_via(request: Request, source: Endpoint) -> Request:
    """The request with its top Via stamped (``received``, ``rport``; see _stamped)."""
    via = request.top_via
    changed = _stamped(via, source)
    return request if changed is via else request.replace_top_via(changed)


def stamped_via_line(request: Request, source: Endpoint) -> str | None:
    """The first Via line's value as stamp_via leaves it, or None when it leaves it alone
    (to write a relayed request in one pass without copying the request first)."""
    via = request.top_via
    changed = _stamped(via, source)
    if changed is via:
        return None
    text = str(changed)
    first = request.get("via") or ""
    return ", ".join([text, *split_list(first)[1:]]) if "," in first else text


def reply_tag(branch: str, call_id: str, cseq: str) -> str:
    """The To tag of a response we generate without a transaction (an absorbed REGISTER, a
    rejection), from the request's top Via branch and its Call-ID and CSeq values as received:
    a retransmission (the same request again, e.g. because our answer was lost) gets the same
    tag, hence the same response (RFC 3261 §8.2.7: a stateless UAS MUST generate the same tag
    for the same request; §17.2.2). A hash of the request, not an id drawn from
    the IdSource (DESIGN.md §2.5): blake2b, stable across processes (the builtin hash() of a str
    is salted per process), so traces replay byte for byte."""
    text = f"{branch}\n{call_id}\n{cseq}".encode("utf-8", "surrogateescape")
    return blake2b(text, digest_size=8).hexdigest()


def request_tag(req: Request) -> str:
    """reply_tag of ``req`` (its top Via must parse)."""
    first = req.first
    return reply_tag(req.top_via.branch or "", first("call-id") or "", first("cseq") or "")


class Context:
    """Shared state of one MidRegistrar."""

    __slots__ = ("cfg", "ids", "table", "txns", "heap", "stats", "adv", "adv_host_port",
                 "deregistering", "trusted_hosts", "targets", "upstream_min_expires", "_local")

    def __init__(self, cfg: Config, ids: IdSource) -> None:
        self.cfg = cfg
        self.ids = ids
        self.table = LocationTable()
        self.heap: DeadlineHeap[object] = DeadlineHeap()
        self.stats = Counters()
        self.txns = TransactionLayer(self.heap, self.stats)
        self.deregistering: dict[str, ClientTxn] = {}
        """AOR key -> our de-REGISTER of its aggregate binding, while it is in progress."""
        self.upstream_min_expires = 0
        """The main registrar's Min-Expires learned from a 423 (throttling modes: the lifetime
        we ask upstream is then at least this, RFC 3261 §10.2.8)."""
        self.adv = cfg.advertised_endpoint
        host = f"[{self.adv.host}]" if ":" in self.adv.host else self.adv.host
        self.adv_host_port = f"{host}:{self.adv.port}"
        self._local = {(e.host.lower(), e.port) for e in (*cfg.local, self.adv)}
        self.trusted_hosts = frozenset(h.lower().strip("[]") for h in (cfg.upstream.host,
                                                                       *cfg.trusted))
        """Hosts that may send us requests toward devices (lower case, no IPv6 brackets)."""
        self.targets: dict[int, tuple[str, Endpoint, object, str, Target]] = {}
        """ctid -> the last branch Target built for that contact (_lookup.target_of; bounded)."""

    def is_us(self, host: str, port: int | None, default_port: int = 5060) -> bool:
        """Does host:port name one of our addresses (Route / Request-URI checks)?"""
        return (host.lower().strip("[]"), port or default_port) in self._local

    def our_via(self, dest: Endpoint, branch: str | None = None) -> tuple[str, str]:
        """(branch, Via value) for a request we send toward ``dest``."""
        branch = branch or branch_id(self.ids)
        return branch, f"SIP/2.0/{dest.transport.upper()} {self.adv_host_port};branch={branch}"

    def transport_param(self, dest: Endpoint) -> str:
        """``;transport=tcp`` for URIs that must bring requests back over a stream transport."""
        return "" if dest.transport == "udp" else f";transport={dest.transport}"

    def reply(self, request: Request, source: Endpoint, status: int, reason: str | None = None,
              headers: Iterable[tuple[str, str]] = (), *, stamped: bool = False,
              to_tag: str | None = None) -> Reply:
        """A locally generated response to ``request`` (a To tag -- ``to_tag``, else
        ``request_tag``, the same for a retransmission -- is added when it has none)."""
        req = request if stamped else stamp_via(request, source)
        response = make_response(req, status, reason, to_tag=to_tag or request_tag(req),
                                 headers=headers)
        return Reply(data=response.serialize(), dest=response_dest(req.top_via, source))
