# Requests toward registered devices: the proxy half of the mid-registrar (RFC 3261 §16).
#
# Every non-REGISTER request and every response no core transaction claims arrives here.
# Requests, in order (§16.3 validation, then §16.4-§16.6):
#   ACK     -> the INVITE server transaction it belongs to (non-2xx: absorbed, §17.2.1), else
#              relayed by its Route (ACK for a 2xx, end to end), else dropped;
#   CANCEL  -> 200 and the response context cancels its branches (§16.10; a forked non-INVITE
#              is not cancelled, §9.1, but the CANCEL still gets 200, §9.2); without one,
#              relayed statelessly by its Route (a re-INVITE we relayed so), else 481;
#   a retransmission of a request we fork -> its server transaction (absorbed / last response);
#   then CSeq method check (400), Max-Forwards 0 (483), Proxy-Require (420), loop (482: a Via of
#   ours whose branch is live and whose request had the same Request-URI, §16.3 step 4);
#   Route naming us -> popped; anything left to route -> stateless relay (_route.py, §16.12);
#   an untrusted source -> 403 or dropped (Config.untrusted); lookup (_lookup.py) -> 404/480/405
#   or a response context with one branch per target (_fork_context.py).
# Responses: matched to our client transactions by (Via branch, CSeq method) (§17.1.3), else
# relayed statelessly when they answer a stateless relay, else dropped. A device's response is
# first tried without a full parse (Proxy.absorb, called by the core before parse_message), the
# way proxies parse lazily: its start line, top Via, CSeq, To and Content-Length lines are
# enough for one that goes nowhere (100, answers to our CANCEL, finals after ours went up,
# retransmissions) and for a provisional or 2xx we relay (the bytes that came, less our Via
# value). Such a response is not checked beyond those lines; everything else -- finals we keep,
# anything written unusually -- is parsed. A property test holds both paths to the same actions.
# Timers: our client/server transactions (_invite.py) and each INVITE branch's Timer C, which
# rides on its INVITE client transaction's heap entry.
from __future__ import annotations

import re
from typing import Final

from ._actions import Action, Drop, Endpoint, Reply, new_send_request
from ._context import Context, response_dest, stamp_via
from ._fork_context import ProxyTables, start_fork
from ._invite import (
    EFF_ABSORB,
    EFF_ACK,
    EFF_PASS,
    EFF_PASS_ACK,
    EFF_RESEND,
    EFF_RETRANSMIT,
    EFF_TIMEOUT,
    EV_ACK,
    EV_REQUEST,
    PENDING,
    TERMINATED,
    ClientTransaction,
    InviteServer,
)
from ._lookup import Refusal, contact_id, is_trusted, lookup
from ._route import pop_our_routes, relay_response, relay_routed, server_key
from .sip import Request, Response, SipParseError, make_response

__all__ = ["Proxy"]

# Proxy.absorb: the first Via value, the CSeq method, the To value (one line each, in the header
# section; a folded or odd line makes the search fail and the response take the general path)
_TOP_VIA: Final = re.compile(
    rb"\r\n(?:[Vv][Ii][Aa]|[Vv])[ \t]*:[ \t]*([^\r\n,]*[^\r\n, \t])[ \t]*[,\r]")
_CSEQ_METHOD: Final = re.compile(
    rb"\r\n[Cc][Ss][Ee][Qq][ \t]*:[ \t]*[0-9]{1,10}[ \t]+([!-~]+)\r\n")
_TO: Final = re.compile(
    rb"\r\n(?:[Tt][Oo]|[Tt])[ \t]*:[ \t]*([^\r\n]*[^\r\n \t])\r\n(?![ \t])")
_ANY_VIA: Final = re.compile(rb"\r\n(?:[Vv][Ii][Aa]|[Vv])[ \t]*:")
_CONTENT_LENGTH: Final = re.compile(
    rb"\r\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])[ \t]*:[ \t]*"
    rb"([0-9]{1,9})[ \t]*\r\n")


def _without_our_via(data: bytes, line: int, end: int) -> bytes | None:
    """``data`` without the first value of the Via line starting at ``line``, when that line is
    the first header, written ``Via: `` and not folded, another Via stays, and Content-Length
    counts the body exactly (else None: the general path writes it)."""
    if data.rfind(b"\r\n", 0, line - 2) >= 0 or not data.startswith(b"Via: ", line):
        return None
    stop = data.find(b"\r\n", line)
    if data[stop + 2:stop + 3] in (b" ", b"\t"):
        return None
    length = _CONTENT_LENGTH.search(data, stop, end)
    if length is None or int(length.group(1)) != len(data) - end - 2 or (
            _CONTENT_LENGTH.search(data, length.end() - 2, end) is not None):
        return None
    comma = data.find(b",", line, stop)
    if comma >= 0:
        rest = data[comma + 1:stop].lstrip(b" \t")
        return data[:line + 5] + rest + data[stop:] if rest else None
    if _ANY_VIA.search(data, stop, end) is None:
        return None  # ours was its only Via: the general path writes the request's (_relayed)
    return data[:line] + data[stop + 2:]

def _reason(req: Request) -> str | None:
    """The Reason values of a CANCEL on one line (RFC 3326; the parser unfolds them), or None."""
    return ", ".join(req.lines("reason")) or None


class Proxy:
    """The stateful forking proxy and stateless relay of one MidRegistrar."""

    __slots__ = ("ctx", "tables")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.tables = ProxyTables(ctx)

    @property
    def transactions(self) -> int:
        """Live proxy transactions (client INVITE/non-INVITE/CANCEL, server INVITE)."""
        return len(self.tables.clients) + len(self.tables.servers)

    # -- requests --------------------------------------------------------------------------------
    def handle_request(self, req: Request, source: Endpoint, now: float) -> list[Action]:
        """A non-REGISTER request. Raises SipParseError for unusable headers (the core answers)."""
        method = req.method
        if method == "ACK":
            return self._ack(req, source, now)
        if method == "CANCEL":
            return self._cancel(req, source, now)
        key = server_key(req, method)
        ctx = self.ctx
        if method == "INVITE":
            server = self.tables.servers.get(key)
            if server is not None:  # a retransmission (§17.2.1)
                ctx.stats.retransmissions_absorbed += 1
                effect = server.step(EV_REQUEST, now)
                return [server.last] if effect is EFF_RESEND and server.last else []
        else:
            txn = ctx.txns.server(key)
            if txn is not None:  # a retransmission (§17.2.2)
                ctx.stats.retransmissions_absorbed += 1
                resend = ctx.txns.server_retransmission(txn)
                return [resend] if resend is not None else []
        return self._initial(req, source, key, now)

    def _initial(self, req: Request, source: Endpoint, key: tuple[str, ...],
                 now: float) -> list[Action]:
        ctx = self.ctx
        if req.cseq.method != req.method:
            return [ctx.reply(req, source, 400, "CSeq method does not match the request")]
        req.check_address("from")  # checked before any state (400 if bad)
        req.check_address("to")
        req.call_id  # noqa: B018
        max_forwards = req.max_forwards
        if max_forwards == 0:
            return [ctx.reply(req, source, 483, "Too Many Hops")]  # §16.3 step 3
        unsupported = sorted(req.option_tags("proxy-require")) if req.first(
            "proxy-require") is not None else None
        if unsupported:  # §16.3 step 5: we support no proxy extension
            return [ctx.reply(req, source, 420, "Bad Extension",
                              (("Unsupported", ", ".join(unsupported)),))]
        if self._is_loop(req):
            return [ctx.reply(req, source, 482, "Loop Detected")]
        routed, popped = pop_our_routes(ctx, req)
        if routed.first("route") is not None or (popped and not self._names_us(routed)):
            return relay_routed(ctx, routed, source, popped)  # §16.4, §16.12
        if not is_trusted(ctx, source.host):
            ctx.stats.drops["untrusted"] += 1
            if ctx.cfg.untrusted == "drop":
                return [Drop(reason="untrusted", detail=f"{req.method} toward a device from "
                                                        f"untrusted {source}", source=source)]
            return [ctx.reply(req, source, 403, "Forbidden")]
        found = lookup(ctx, routed, now)
        if isinstance(found, Refusal):
            return [ctx.reply(req, source, found.status, found.reason, found.headers)]
        stamped = stamp_via(routed, source)
        dest = response_dest(stamped.top_via, source)
        return start_fork(self.tables, stamped, source, dest, key, found, now, max_forwards)

    def _names_us(self, req: Request) -> bool:
        uri = req.uri
        if not uri.is_sip:
            return False
        return self.ctx.is_us(uri.host, uri.port) or contact_id(self.ctx, uri) is not None

    def _is_loop(self, req: Request) -> bool:
        """§16.3 step 4: a Via of ours carrying a branch we sent for this same Request-URI."""
        marker = self.ctx.adv_host_port
        for value in req.lines("via"):
            if marker in value:
                break
        else:
            return False
        clients = self.tables.clients
        for via in req.vias:
            txn = clients.get((via.branch or "", req.method))
            if txn is not None and txn.owner.uri == req.uri_text:
                return True
        return False

    def _ack(self, req: Request, source: Endpoint, now: float) -> list[Action]:
        server = self.tables.servers.get(server_key(req, "INVITE"))
        if server is not None:
            effect = server.step(EV_ACK, now)
            self.tables.arm_server(server)
            if effect is not EFF_PASS:
                return []  # the ACK of a non-2xx final ends here (hop by hop, §17.2.1)
        routed, popped = pop_our_routes(self.ctx, req)
        if popped or routed.has("route"):
            return relay_routed(self.ctx, routed, source, popped)  # ACK for a 2xx (§16.12)
        self.ctx.stats.drops["stray-ack"] += 1
        return [Drop(reason="stray-ack", detail="ACK matching no transaction and no Route",
                     source=source)]

    def _cancel(self, req: Request, source: Endpoint, now: float) -> list[Action]:
        ctx = self.ctx
        ckey = server_key(req, "CANCEL")
        txn = ctx.txns.server(ckey)
        if txn is not None:  # a retransmitted CANCEL: its 200 again
            ctx.stats.retransmissions_absorbed += 1
            resend = ctx.txns.server_retransmission(txn)
            return [resend] if resend is not None else []
        server = self.tables.servers.get(server_key(req, "INVITE"))
        context = server.context if server is not None else self.tables.non_invite.get(
            server_key(req, ""))  # §9.2: a CANCEL of a forked non-INVITE gets 200, no effect
        if context is None:
            routed, popped = pop_our_routes(ctx, req)
            if popped or routed.first("route") is not None:
                # §16.10: no response context (we relayed its INVITE statelessly, in a dialog):
                # the CANCEL is forwarded statelessly too, by its Route
                return relay_routed(ctx, routed, source, popped)
            return [ctx.reply(req, source, 481, "Call/Transaction Does Not Exist")]
        stamped = stamp_via(req, source)
        ok = ctx.txns.start_server(ckey, source, 64 * ctx.cfg.t1)
        # §9.2: the 200 to the CANCEL and the 487 share their To tag
        response = make_response(stamped, 200, "OK", to_tag=context.local_tag())
        reply = Reply(data=response.serialize(), dest=response_dest(stamped.top_via, source))
        ctx.txns.server_send(ok, reply, 200, now)
        return [reply, *context.upstream_cancel(now, _reason(req))]

    # -- responses -------------------------------------------------------------------------------
    def absorb(self, data: bytes, now: float) -> list[Action] | ClientTransaction | None:
        """A device's response handled without a full parse, as proxies parse lazily:
        - one that goes nowhere (a 100, an answer to our CANCEL, a final after ours went up, a
          retransmission), from its start line, top Via, CSeq (and To, for the ACK of a final);
        - a provisional or 2xx that goes upstream, when our Via is the first value of its first
          header line and its Content-Length is right: relayed as the bytes that came, less
          that value (what the general path sends too).
        None, or the transaction found, when it is a final to keep or looks unusual: the general
        path then parses it."""
        code = data[8:11]
        if data[11:12] != b" " or not code.isdigit():
            return None
        end = data.find(b"\r\n\r\n") + 2
        cseq = _CSEQ_METHOD.search(data, 0, end)
        via = _TOP_VIA.search(data, 0, end)
        if cseq is None or via is None:
            return None
        txn = self._ours(via.group(1).decode("latin-1"), cseq.group(1).decode("latin-1"))
        if txn is None:
            return None
        status = int(code)
        if status >= 700:
            return txn
        branch = txn.owner
        context = branch.context
        if txn.method != "CANCEL" and not context.goes_nowhere(branch, status):
            if status >= 300:
                return txn  # a final to keep as a candidate: parsed
            relayed = _without_our_via(data, via.start() + 2, end)
            if relayed is None:
                return txn
            passed, actions = self._step(txn, status, now, "")
            if passed:
                actions.extend(context.on_relayed(branch, status, relayed, now))
            return actions
        to = ""
        if txn.invite and status >= 300:  # its ACK copies the To
            found = _TO.search(data, 0, end)
            if found is None:
                return None
            to = found.group(1).decode("utf-8", "surrogateescape")
        passed, actions = self._step(txn, status, now, to)
        if passed:
            actions.extend(context.on_unrelayed(branch, status, now))
        return actions

    def _ours(self, top: str, method: str) -> ClientTransaction | None:
        """Our client transaction answered by a response whose first Via value is ``top`` and
        whose CSeq method is ``method``: ``top`` must be, character for character, the Via we
        sent (then its branch is the transaction's, §17.1.3, and no Via parse is needed)."""
        at = top.rfind(";branch=")
        if at < 0:
            return None
        txn = self.tables.clients.get((top[at + 8:], method))
        if txn is None or txn.owner.via != top or txn.branch in self.ctx.txns.clients:
            return None
        return txn

    def _step(self, txn: ClientTransaction, status: int, now: float,
              to: str) -> tuple[bool, list[Action]]:
        """Step ``txn`` with a response ``status`` (§17.1.1.2, §17.1.2.2; ``to`` is its To, which
        our ACK of a non-2xx final copies): (whether the response goes on to its branch, the
        ACK to send if any)."""
        effect = txn.respond(status, now)
        if effect is EFF_PASS:
            self.tables.arm_client(txn)
            return txn.method != "CANCEL", []
        if effect is EFF_PASS_ACK or effect is EFF_ACK:
            if txn.ack is None:
                txn.ack = txn.owner.ack(to)
            ack: list[Action] = [new_send_request(txn.ack, txn.dest)]
            if effect is EFF_PASS_ACK:
                self.tables.arm_client(txn)
                return True, ack
            self.ctx.stats.retransmissions_absorbed += 1  # a retransmitted final: ACK again
            return False, ack
        self.ctx.stats.retransmissions_absorbed += 1  # EFF_ABSORB: a stray or repeated response
        return False, []

    def claim(self, resp: Response) -> ClientTransaction | None:
        """The client transaction of ours ``resp`` answers when its top Via is, character for
        character, the Via we sent (the usual case, ``_ours``); None otherwise. Any other
        response (received= added, folded, reordered...) takes the general path."""
        top = resp.first("via")
        if top is None:
            return None
        comma = top.find(",")
        if comma >= 0:
            top = top[:comma]
        cseq = resp.first("cseq") or ""
        return self._ours(top, cseq[cseq.rfind(" ") + 1:])

    def handle_response(self, resp: Response, source: Endpoint, now: float) -> list[Action]:
        """A response no core transaction claimed: one of our branches, or a stateless relay."""
        try:
            cseq = resp.first("cseq") or ""  # the method is all we need: no CSeq parse here
            key = (resp.top_via.branch or "", cseq[cseq.rfind(" ") + 1:])
        except SipParseError as exc:
            self.ctx.stats.drops["bad-response"] += 1
            return [Drop(reason="bad-response", detail=exc.reason, source=source)]
        txn = self.tables.clients.get(key)
        if txn is None:
            return relay_response(self.ctx, resp, source)
        return self.client_response(txn, resp, source, now)

    def client_response(self, txn: ClientTransaction, resp: Response, source: Endpoint,
                        now: float) -> list[Action]:
        """``resp`` answers our client transaction ``txn`` (§17.1.1, §17.1.2, then §16.7)."""
        status = resp.status
        if status >= 700 or resp.first("from") is None or resp.first("to") is None or (
                resp.first("call-id") is None):
            # §7.2 / §8.1.3.3: no such class, or no From/To/Call-ID: nothing sane to relay
            self.ctx.stats.drops["bad-response"] += 1
            return [Drop(reason="bad-response", detail=f"{status} without From/To/Call-ID "
                         "or of no known class", source=source)]
        passed, actions = self._step(txn, status, now, resp.get("to") or "")
        if passed:
            branch = txn.owner
            actions.extend(branch.context.on_response(branch, resp, now))
        return actions

    # -- timers ----------------------------------------------------------------------------------
    def on_timer(self, key: object, now: float) -> list[Action]:
        """A deadline of ours fired (the core passes every key it does not own)."""
        if isinstance(key, ClientTransaction):
            return self.client_timer(key, now)
        if isinstance(key, InviteServer):
            return self._server_timer(key, now)
        return []

    def client_timer(self, txn: ClientTransaction, now: float) -> list[Action]:
        """A deadline of one of our client transactions (or its branch's Timer C) passed."""
        actions: list[Action] = []
        branch = txn.owner
        if txn.invite and branch.c_at <= now and txn.state in PENDING:
            actions = branch.context.on_branch_timer(branch, now)  # Timer C / CANCEL wait
            if txn.state is TERMINATED:
                return actions
        at = txn.next_at
        if at is None or at > now:  # not due (DeadlineHeap.arm is lazy): re-arm
            self.tables.arm_client(txn)
            return actions
        event = txn.due_event(now)
        if event is None:
            return actions
        effect = txn.step(event)
        if txn.state is TERMINATED:
            if effect is EFF_TIMEOUT and txn.method != "CANCEL":
                actions.extend(branch.context.on_timeout(branch, now))
            self.tables.end_client(txn)  # last: it may release the context (ended())
            return actions
        self.tables.arm_client(txn)
        if effect is EFF_RETRANSMIT:
            self.ctx.stats.retransmissions_sent += 1
            actions.append(new_send_request(txn.data, txn.dest))
        return actions

    def _server_timer(self, txn: InviteServer, now: float) -> list[Action]:
        at = txn.next_at
        if at is None or at > now:  # an early entry (DeadlineHeap.arm is lazy)
            self.tables.arm_server(txn)
            return []
        event = txn.due_event(now)
        if event is None:
            return []
        effect = txn.step(event, now)
        if txn.state is TERMINATED:
            self.tables.end_server(txn)
            return []
        self.tables.arm_server(txn)
        if effect is EFF_RESEND and txn.last is not None:
            self.ctx.stats.retransmissions_sent += 1
            return [txn.last]
        return []
