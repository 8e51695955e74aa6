# The response context of a forked request (RFC 3261 §16.6-§16.10): one server transaction
# toward the main registrar, one client transaction per branch, and what to send upstream.
#
# - §16.6: each branch is a copy with the target's URI, Max-Forwards - 1, our Record-Route
#   (dialog-creating methods, when configured), the Path as Route, our Via with a new branch;
#   Timer C (Config.timer_c) guards every INVITE branch.
# - §16.7: 100 is not forwarded; other provisionals are, while no final was sent (and reset
#   Timer C, step 2); every 2xx to an INVITE goes upstream at once, also after the final (step 5,
#   RFC 6026), and the first one CANCELs every pending branch (step 10, RFC 3326 Reason); a 6xx
#   CANCELs them too; other finals wait until every branch is done, then the best is chosen
#   (_fork_response.py). Non-INVITE requests fork the same way but are never CANCELled.
# - §16.8 Timer C: a branch with a provisional is CANCELled; one without is counted as 408.
# - §16.10 CANCEL from upstream: every pending branch is CANCELled (with the upstream CANCEL's
#   Reason, RFC 3326 §2; after a 2xx: "Call completed elsewhere"); a branch that has not
#   answered yet cannot be (§9.1): it counts as 487 at once and is CANCELled when its first
#   provisional arrives. If no final comes 64*T1 after our CANCEL, the branch is abandoned (408).
# - §17.1.1.3: the ACK for a non-2xx final is ours, built from the INVITE we sent.
#
# A branch reaches its end when its client transaction is TERMINATED; the context needs no
# registry of its own: its transactions (and the heap) hold it until the last one ends.
from __future__ import annotations

from typing import Final

from ._actions import (
    Action,
    Branch,
    Drop,
    Endpoint,
    new_branch as branch_action,
    new_fork,
    new_reply,
    new_send_request,
)
from ._context import Context
from ._ids import branch_id as new_branch
from ._fork_response import Candidate, choose, merge_challenges
from ._invite import (
    EFF_SEND,
    EV_ABANDON,
    EV_SEND_FAILURE,
    EV_SEND_PROVISIONAL,
    EV_SEND_SUCCESS,
    PENDING,
    PROCEEDING,
    ClientTransaction,
    InviteServer,
)
from ._lookup import Target
from ._route import record_route_values, server_key
from ._transactions import ServerTxn, TxnState
from .sip import Request, Response, make_response, response_bytes

__all__ = ["ForkBranch", "ProxyTables", "ResponseContext", "start_fork"]

_RECORD_ROUTE_METHODS: Final = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})
_COMPLETED_ELSEWHERE: Final = 'SIP;cause=200;text="Call completed elsewhere"'
_NEVER: Final = float("inf")


class ProxyTables:
    """The proxy's live transactions (the core routes responses and timers to them)."""

    __slots__ = ("ctx", "clients", "servers", "non_invite")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.clients: dict[tuple[str, str], ClientTransaction] = {}
        self.servers: dict[tuple[str, ...], InviteServer] = {}
        # forked non-INVITE requests by ``server_key(request, "")``, which a CANCEL of theirs
        # shares (§9.2: it has no effect on them, but is answered 200 while they are pending)
        self.non_invite: dict[tuple[str, ...], ResponseContext] = {}

    def arm_client(self, txn: ClientTransaction) -> None:
        """Its heap entry no later than its next deadline (lazy: an earlier one is kept): its
        own timer, or for a pending INVITE branch its Timer C / CANCEL wait if earlier."""
        at = txn.next_at
        if txn.invite and txn.state in PENDING:
            c_at = txn.owner.c_at
            if at is None or c_at < at:
                at = c_at
        if at is not None:
            self.ctx.heap.arm(txn, at)

    def arm_server(self, txn: InviteServer) -> None:
        if txn.next_at is not None:
            self.ctx.heap.arm(txn, txn.next_at)

    def end_client(self, txn: ClientTransaction) -> None:
        self.ctx.heap.disarm(txn)
        if self.clients.get((txn.branch, txn.method)) is txn:
            del self.clients[(txn.branch, txn.method)]
            txn.owner.context.ended()

    def end_server(self, txn: InviteServer) -> None:
        self.ctx.heap.disarm(txn)
        if self.servers.get(txn.key) is txn:
            del self.servers[txn.key]
            txn.context.ended()


class ForkBranch:
    """One target of a response context. Its Timer C / CANCEL timeout (``c_at``) rides on the
    heap entry of its INVITE client transaction (ProxyTables.arm_client)."""

    __slots__ = ("context", "target", "uri", "via", "route", "txn", "final", "provisional",
                 "cancel_pending", "cancel_reason", "cancel_txn", "c_at")

    def __init__(self, context: ResponseContext, target: Target, uri: str, via: str,
                 route: tuple[str, ...]) -> None:
        self.context = context
        self.target = target
        self.uri = uri  # what we sent: Request-URI, our Via, Route set (CANCEL and ACK copy them)
        self.via = via
        self.route = route
        self.txn: ClientTransaction | None = None
        self.final: int | None = None  # the status this branch counts with in the context
        self.provisional = False
        self.cancel_pending = False
        self.cancel_reason: str | None = None  # the Reason its CANCEL carries (RFC 3326)
        self.cancel_txn: ClientTransaction | None = None
        self.c_at = _NEVER  # Timer C, or after our CANCEL the end of its 64*T1 wait

    def _hop_request(self, method: str, to: str, reason: str | None) -> bytes:
        """ACK / CANCEL of this branch: the INVITE's URI, Via, From, Call-ID, CSeq number and
        Route set (§9.1, §17.1.1.3), written directly (they are copies of checked values)."""
        ctx = self.context
        route = "".join([f"Route: {r}\r\n" for r in self.route]) if self.route else ""
        extra = f"{route}Reason: {reason}\r\n" if reason else route
        return (f"{method} {self.uri} SIP/2.0\r\nVia: {self.via}\r\nMax-Forwards: 70\r\n"
                f"From: {ctx.from_value}\r\nTo: {to}\r\nCall-ID: {ctx.call_id}\r\n"
                f"CSeq: {ctx.seq} {method}\r\n{extra}Content-Length: 0\r\n\r\n"
                ).encode("utf-8", "surrogateescape")

    def ack(self, to: str) -> bytes:
        """The ACK for a non-2xx final: the INVITE's URI, Via, Route; ``to``, the response's To
        (§17.1.1.3)."""
        return self._hop_request("ACK", to, None)

    def cancel(self, reason: str | None) -> bytes:
        """A CANCEL of this branch (§9.1): same URI, Via branch, From, To, Call-ID, CSeq number."""
        return self._hop_request("CANCEL", self.context.to_value, reason)


class ResponseContext:
    """§16.7 for one forked request."""

    __slots__ = ("tables", "request", "dest", "invite", "server", "branches", "candidates",
                 "final_sent", "cancelled", "_tag", "from_value", "to_value", "call_id", "seq",
                 "live")

    def __init__(self, tables: ProxyTables, request: Request, dest: Endpoint) -> None:
        self.tables = tables
        self.request = request  # as received, with received/rport stamped
        self.dest = dest  # where responses go upstream
        self.invite = request.method == "INVITE"
        self.server: InviteServer | ServerTxn | None = None
        self.branches: list[ForkBranch] = []
        self.candidates: list[Candidate] = []
        self.final_sent = False
        self.cancelled = False
        self._tag: str | None = None
        self.from_value = request.first("from") or ""  # checked by Proxy._initial
        self.to_value = request.first("to") or ""
        self.call_id = request.first("call-id") or ""
        self.seq = request.cseq.seq
        self.live = 0  # its transactions still in the tables (ended(): when none is left)

    def local_tag(self) -> str:
        """The To tag of every response we generate in this context (§9.2: the 200 to a CANCEL
        and the 487 carry the same one)."""
        if self._tag is None:
            self._tag = self.tables.ctx.ids.token()
        return self._tag

    def ended(self) -> None:
        """One of its transactions left the tables. After the last one nothing can reach this
        context any more (responses and timers find it through them): the references between
        it, its branches and their transactions are dropped, so that reference counting frees
        them at once instead of the cycle collector, later (measured: about 5 % of a fork's
        time went to collecting them)."""
        self.live -= 1
        if self.live == 0:
            for branch in self.branches:
                branch.txn = branch.cancel_txn = None
            self.branches = []
            self.server = None
            if not self.invite:
                self.tables.non_invite.pop(server_key(self.request, ""), None)

    # -- upstream --------------------------------------------------------------------------------
    def send_upstream(self, status: int, data: bytes, now: float) -> list[Action]:
        """Send a response through the server transaction (2xx statelessly once it is done)."""
        reply = new_reply(data, self.dest)
        server = self.server
        if type(server) is InviteServer:
            event = EV_SEND_PROVISIONAL if status < 200 else (
                EV_SEND_SUCCESS if status < 300 else EV_SEND_FAILURE)
            if server.step(event, now) is EFF_SEND:
                server.last = reply
                self.tables.arm_server(server)
                return [reply]
            # after a non-2xx final, a 2xx still goes up (§16.7 step 5; RFC 6026 §8.5)
            return [reply] if 200 <= status < 300 else []
        if server is None or server.state in (TxnState.COMPLETED, TxnState.TERMINATED):
            return []
        assert isinstance(server, ServerTxn)
        return [self.tables.ctx.txns.server_send(server, reply, status, now)]

    def upstream_cancel(self, now: float, reason: str | None = None) -> list[Action]:
        """A CANCEL for our server transaction arrived (§16.10); ``reason``, its Reason value(s),
        goes into the CANCELs it causes (RFC 3326 §2: a proxy SHOULD copy it)."""
        if self.final_sent or not self.invite:
            return []
        self.cancelled = True
        return self._cancel_pending(now, reason) + self._complete(now)

    # -- branch events ---------------------------------------------------------------------------
    def goes_nowhere(self, branch: ForkBranch, status: int) -> bool:
        """Would ``on_response`` neither relay nor keep a response with ``status``? (Then
        ``on_unrelayed`` does its work without the response: Proxy.absorb.)"""
        if status < 200:  # §16.7 step 5: every other provisional goes up until the final does
            return status == 100 or self.final_sent
        return status >= 300 and self.final_sent

    def on_unrelayed(self, branch: ForkBranch, status: int, now: float) -> list[Action]:
        """``on_response`` for a response ``goes_nowhere`` says nothing is done with (after the
        final went upstream, a branch's final is only counted: no candidate is chosen any more)."""
        if status < 200:
            branch.provisional = True
            if branch.cancel_pending and branch.cancel_txn is None:
                # §9.1: now it can be cancelled, with the Reason it was to be cancelled for
                return self._send_cancel(branch, now)
            if status > 100 and self.invite and not branch.cancel_pending:
                branch.c_at = now + self.tables.ctx.cfg.timer_c  # §16.7 step 2 (lazy re-arm)
            return []
        if branch.final is None:
            branch.final = status
        return []

    def on_relayed(self, branch: ForkBranch, status: int, data: bytes,
                   now: float) -> list[Action]:
        """``on_response`` for a provisional or 2xx that goes upstream (``goes_nowhere`` is
        False), given as the bytes to send (our Via removed)."""
        if status < 200:
            branch.provisional = True
            relayed = self.send_upstream(status, data, now)
            if branch.cancel_pending:  # Timer C is off; a CANCEL deferred by §9.1 goes now
                if branch.cancel_txn is None:
                    relayed.extend(self._send_cancel(branch, now))
            elif self.invite:
                branch.c_at = now + self.tables.ctx.cfg.timer_c  # §16.7 step 2 (lazy re-arm)
            return relayed
        if branch.final is None:
            branch.final = status
        actions = self.send_upstream(status, data, now)
        if not self.final_sent:
            self.final_sent = True
            if self.invite:  # §16.7 step 10 / §16.10
                actions.extend(self._cancel_pending(now, _COMPLETED_ELSEWHERE))
        return actions

    def on_response(self, branch: ForkBranch, response: Response, now: float) -> list[Action]:
        """A branch's response (§16.7): relayed (provisional, 2xx), kept as a candidate
        (other finals), or only counted (``goes_nowhere``)."""
        status = response.status
        if self.goes_nowhere(branch, status):
            return self.on_unrelayed(branch, status, now)
        if status < 300:
            return self.on_relayed(branch, status, self._relayed(response), now)
        actions: list[Action] = []
        if branch.final is None:
            branch.final = status
            self.candidates.append(Candidate(status=status, response=response,
                                             order=len(self.candidates)))
        if status >= 600 and self.invite:
            actions.extend(self._cancel_pending(now, None))  # §16.7 step 5: 6xx stops the rest
        actions.extend(self._complete(now))
        return actions

    def on_timeout(self, branch: ForkBranch, now: float) -> list[Action]:
        """Timer B/F, or abandoned after our CANCEL: the branch counts as 408 (§16.7 step 6)."""
        self._count(branch, 408)
        return self._complete(now)

    def on_branch_timer(self, branch: ForkBranch, now: float) -> list[Action]:
        """Timer C, or the 64*T1 wait for a final after our CANCEL (the caller saw ``c_at``
        pass while the INVITE is pending)."""
        txn = branch.txn
        if txn is None or txn.state not in PENDING:
            return []
        branch.c_at = _NEVER
        if branch.cancel_txn is not None:  # the branch never answered our CANCEL: give up
            txn.step(EV_ABANDON)
            actions: list[Action] = [Drop(reason="branch-abandoned",
                                          detail=f"no final response from {txn.dest} after CANCEL")]
            actions.extend(self.on_timeout(branch, now))
            self.tables.end_client(txn)  # last: it may release this context (ended())
            return actions
        branch.cancel_pending = True  # §16.8 Timer C (a CANCEL without Reason)
        branch.cancel_reason = None
        if txn.state is PROCEEDING:
            return self._send_cancel(branch, now)
        self._count(branch, 408)
        return self._complete(now)

    # -- internals -------------------------------------------------------------------------------
    def _relayed(self, response: Response) -> bytes:
        """A branch's response as it goes upstream: without our Via (§16.7 step 3). A device that
        did not copy the request's Vias leaves none once ours is gone; such a response would be
        meant for us and cannot reach the main registrar, so it goes up with the Via lines of
        the request we forwarded (what the device should have echoed, §8.2.6.2)."""
        if _only_our_via(response):
            return self._with_request_vias(response.pop_via()).serialize()
        return response.serialize_without_top_via()

    def _popped(self, response: Response) -> Response:
        """``response`` without our Via, the request's Vias restored if it had no other."""
        popped = response.pop_via()
        return self._with_request_vias(popped) if _only_our_via(response) else popped

    def _with_request_vias(self, response: Response) -> Response:
        for value in reversed(self.request.lines("via")):
            response = response.push_via(value)
        return response

    def _count(self, branch: ForkBranch, status: int) -> None:
        if branch.final is None:
            branch.final = status
            self.candidates.append(Candidate(status=status, response=None,
                                             order=len(self.candidates)))

    def _cancel_pending(self, now: float, reason: str | None) -> list[Action]:
        actions: list[Action] = []
        for branch in self.branches:
            txn = branch.txn
            if txn is None or not txn.invite or txn.state not in PENDING or (
                    branch.cancel_pending):
                continue
            branch.cancel_pending = True
            branch.cancel_reason = reason
            if txn.state is PROCEEDING:
                actions.extend(self._send_cancel(branch, now))
            else:  # no provisional yet: CANCEL later (§9.1); it counts as terminated now
                branch.c_at = _NEVER  # Timer C is moot; Timer B bounds the wait
                self._count(branch, 487)
        return actions

    def _send_cancel(self, branch: ForkBranch, now: float) -> list[Action]:
        """CANCEL ``branch`` now, with its ``cancel_reason``."""
        txn = branch.txn
        assert txn is not None
        cfg = self.tables.ctx.cfg
        data = branch.cancel(branch.cancel_reason)
        cancel = ClientTransaction(txn.branch, "CANCEL", data, txn.dest, branch, now, cfg.t1,
                                   cfg.t2, cfg.t4)
        branch.cancel_txn = cancel
        self.tables.clients[(cancel.branch, "CANCEL")] = cancel
        self.live += 1
        self.tables.arm_client(cancel)
        branch.c_at = now + 64 * cfg.t1  # §9.1: the INVITE must end by then
        self.tables.arm_client(txn)
        return [new_send_request(data, txn.dest)]

    def _complete(self, now: float) -> list[Action]:
        """Send the best final once every branch has one (§16.7 step 6)."""
        if self.final_sent or any(b.final is None for b in self.branches):
            return []
        self.final_sent = True
        best = choose(self.candidates, cancelled=self.cancelled, invite=self.invite)
        ctx = self.tables.ctx
        if best is None:  # RFC 4320 §4.2: no 408 for a non-INVITE; let the client time out
            server = self.server
            if isinstance(server, ServerTxn):
                ctx.heap.cancel(server.timer)
                server.timer = ctx.heap.schedule(now, server)  # forget it (Timer J at once)
            return [Drop(reason="fork-timeout",
                         detail=f"no branch answered {self.request.method}; no 408 sent")]
        status = best.status
        if best.response is None:
            data = make_response(self.request, status, to_tag=self.local_tag()).serialize()
        elif status in (401, 407):
            data = self._popped(merge_challenges(best.response, self.candidates)).serialize()
        elif status == 503:  # §16.7 step 6
            status = 500
            data = self._popped(best.response).with_status(500, "Server Internal Error"
                                                           ).serialize()
        else:
            data = self._relayed(best.response)
        return self.send_upstream(status, data, now)


def _only_our_via(response: Response) -> bool:
    """Did the device echo only our Via (one value on one line)? (Then nothing upstream could
    match the response: _relayed and _popped put the request's Vias back.)"""
    return "," not in (response.first("via") or "") and len(response.lines("via")) == 1


def _after_start_line(request: Request, max_forwards: int | None) -> bytes:
    """The request's bytes after its start line, with Max-Forwards (``request.max_forwards``)
    decremented (or added with 70, §16.6 step 3): the one line is edited in place when it is
    alone of its kind."""
    lines = [h[2] for h in request.headers if h[0] == "max-forwards"]
    data = request.serialize()
    data = data[data.index(b"\r\n") + 2:]
    if max_forwards is None:
        return b"Max-Forwards: 70\r\n" + data
    if len(lines) == 1 and "\n" not in lines[0]:
        old = lines[0].encode("utf-8", "surrogateescape") + b"\r\n"
        at = 0 if data.startswith(old) else data.find(b"\n" + old)
        if at > 0:
            at += 1
        if at >= 0:
            new = f"Max-Forwards: {max_forwards - 1}\r\n".encode()
            return data[:at] + new + data[at + len(old):]
    base = request.replace_headers("max-forwards", [str(max_forwards - 1)]).serialize()
    return base[base.index(b"\r\n") + 2:]


def start_fork(tables: ProxyTables, request: Request, source: Endpoint, dest: Endpoint,
               key: tuple[str, ...], targets: list[Target], now: float,
               max_forwards: int | None) -> list[Action]:
    """Create the response context of ``request`` (already stamped; ``max_forwards`` is its
    Max-Forwards) and its branches."""
    ctx = tables.ctx
    cfg = ctx.cfg
    method = request.method
    context = ResponseContext(tables, request, dest)
    actions: list[Action] = []
    if context.invite:
        server = InviteServer(key=key, dest=dest, reliable=source.is_reliable, context=context,
                              t1=cfg.t1, t2=cfg.t2, t4=cfg.t4)
        context.server = server
        tables.servers[key] = server
        # §16.2: 100 at once for INVITE; a new server transaction in Proceeding just sends it
        # (what send_upstream does: the state stays, no timer)
        server.last = trying = new_reply(response_bytes(request, 100, "Trying"), dest)
        actions.append(trying)
    else:
        context.server = ctx.txns.start_server(key, source, 64 * cfg.t1)
        tables.non_invite[server_key(request, "")] = context
    # every branch is the same bytes after the start line: our Record-Route, Route and Via go
    # first (each then tops its own kind of header, §16.6 steps 4, 6, 8); only the Request-URI,
    # the Record-Route (per transport / NAT'd contact), the Route and our Via differ
    rest = _after_start_line(request, max_forwards)
    record = cfg.record_route and method in _RECORD_ROUTE_METHODS and (
        "tag" not in (request.first("to") or "").lower() or request.to.tag is None)
    record_lines: dict[tuple[str, int | None], str] = {}
    via_tail = f" {ctx.adv_host_port};branch="  # our Via (Context.our_via), written once
    ids = ctx.ids
    heap = ctx.heap
    clients = tables.clients
    branches = context.branches
    invite = context.invite
    t1, t2, t4 = cfg.t1, cfg.t2, cfg.t4
    c_at = now + cfg.timer_c
    out: list[Branch] = []
    for target in targets:
        tdest = target.dest
        head = f"{method} {target.uri} SIP/2.0\r\n"
        if record:
            ctid = target.contact.ctid if target.nat else None
            rr_key = (tdest.transport, ctid)
            rr = record_lines.get(rr_key)
            if rr is None:
                rr = record_lines[rr_key] = "".join([f"Record-Route: {v}\r\n" for v in (
                    record_route_values(ctx, request, source, tdest, ctid))])
            head += rr
        if target.route:  # RFC 3327: the stored Path is the Route set
            head += f"Route: {', '.join(target.route)}\r\n"
        branch_id = new_branch(ids)
        via = f"SIP/2.0/{tdest.transport.upper()}{via_tail}{branch_id}"
        data = f"{head}Via: {via}\r\n".encode("utf-8", "surrogateescape") + rest
        branch = ForkBranch(context, target, target.uri, via, target.route)
        txn = ClientTransaction(branch_id, method, data, tdest, branch, now, t1, t2, t4)
        branch.txn = txn
        clients[(branch_id, method)] = txn
        at = txn.next_at  # Timer A / E (B / F on a reliable transport)
        if invite:
            branch.c_at = c_at
            if at is None or c_at < at:
                at = c_at
        if at is not None:
            heap.arm(txn, at)
        branches.append(branch)
        out.append(branch_action(data, tdest))
    context.live = len(out) + int(invite)  # the server transaction counts when it is ours
    ctx.stats.requests_forked += 1
    ctx.stats.branches_created += len(out)
    actions.append(new_fork(tuple(out)))
    return actions
