# MidRegistrar: the sans-IO core object (DESIGN.md §2). Bytes and time in, actions out.
#
# receive() parses one datagram (or one framed stream message), dispatches REGISTERs to the
# registrar, other requests to the proxy, responses to the transaction that sent the request;
# handle_timer() fires every deadline due; each returns list[Action] with the state already
# committed, ending with an ArmTimer whenever the earliest deadline changed.
#
# Remote input never raises: a message we cannot parse is answered with the error its parse
# failure names when a response can be addressed (request line + Via readable), else dropped.
# A bug that raises anyway is caught at this boundary, counted (stats.internal_errors), answered
# with 500 where possible and reported as Drop(reason="internal-error") -- tests assert it never
# happens. Local misuse (time going backwards) raises UsageError.
from __future__ import annotations

import re
import traceback

from ._actions import Action, Drop, Endpoint, Reply, new_arm_timer, new_reply
from ._bindings import Contact
from ._config import Config, Mode
from ._context import Context, response_dest
from ._errors import UsageError
from ._fastpath import absorb_fast
from ._forking import Proxy
from ._invite import ClientTransaction
from ._ids import IdSource
from ._registrar import Registrar
from ._stats import Stats
from ._transactions import ClientTxn, ServerTxn
from .sip import Request, Response, SipParseError, Via, make_response, parse_message

__all__ = ["MidRegistrar"]

_SALVAGE_HEADER = re.compile(
    rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*([^\r\n]*)\r?$", re.I | re.M)


class MidRegistrar:
    """A SIP mid-registrar. One instance per listening identity; not thread-safe.

    :param config: the validated configuration.
    :param ids: where branches, tags and contact ids come from (``SeededIds(n)`` for
        reproducible runs, ``SystemIds()`` in production).
    """

    def __init__(self, config: Config, *, ids: IdSource) -> None:
        if not isinstance(config, Config):
            raise UsageError("MidRegistrar(config, ids=...): config must be a sansmidreg.Config")
        self._ctx = Context(config, ids)
        self._registrar = Registrar(self._ctx)
        self._proxy = Proxy(self._ctx)
        self._now = float("-inf")
        self._armed: float | None = None
        self._fast = not config.max_contacts and not config.domains and (
            config.mode is Mode.CONTACT_THROTTLING or (
                config.mode is Mode.AOR_THROTTLING and config.conservative_aor_window))
        """Try the absorbed-refresh fast path first (tests turn it off to compare both paths)."""
        self._absorb = True
        """Try Proxy.absorb on responses before parsing them (tests turn it off likewise)."""

    @property
    def config(self) -> Config:
        return self._ctx.cfg

    # -- entry points --------------------------------------------------------------------------
    def receive(self, data: bytes, source: Endpoint, now: float) -> list[Action]:
        """Process one datagram (or one whole message of a stream flow) from ``source``.

        :returns: the actions to execute, in order; state is already updated.
        """
        self._advance(now)
        try:
            actions = self._receive(data, source, now)
        except Exception as exc:  # a bug: never let remote input crash the embedding program
            actions = self._internal_error(data, source, exc)
        return self._arm(actions)

    def handle_timer(self, now: float) -> list[Action]:
        """Fire every deadline at or before ``now``. Calling it early returns no sends.

        :returns: the actions (retransmissions, timeouts, expiries, de-REGISTERs).
        """
        self._advance(now)
        ctx = self._ctx
        actions: list[Action] = []
        while (key := ctx.heap.pop_due(now)) is not None:
            try:
                if type(key) is Contact:
                    actions.extend(self._registrar.contact_timer(key, now))
                elif type(key) is ClientTransaction:  # a branch or CANCEL toward a device
                    actions.extend(self._proxy.client_timer(key, now))
                elif isinstance(key, ClientTxn):
                    actions.extend(ctx.txns.client_timer(key, now))
                elif isinstance(key, ServerTxn):
                    ctx.txns.server_timer(key)
                else:
                    actions.extend(self._proxy.on_timer(key, now))
            except Exception as exc:
                ctx.stats.internal_errors += 1
                actions.append(Drop(reason="internal-error", detail=_describe(exc)))
        return self._arm(actions)

    def next_deadline(self) -> float | None:
        """The earliest time ``handle_timer`` has work, or None (absolute, caller's clock)."""
        return self._ctx.heap.next_deadline()

    def stats(self) -> Stats:
        """A snapshot of the counters and gauges."""
        ctx = self._ctx
        return ctx.stats.snapshot(aors=len(ctx.table.aors), contacts=ctx.table.contact_count,
                                  transactions=len(ctx.txns.clients) + len(ctx.txns.servers)
                                  + self._proxy.transactions)

    # -- internals -----------------------------------------------------------------------------
    def _advance(self, now: float) -> None:
        if now != now or now < self._now:  # NaN or backwards
            raise UsageError(f"time went backwards ({now} after {self._now}): "
                             "pass a monotonic clock")
        self._now = now

    def _arm(self, actions: list[Action]) -> list[Action]:
        deadline = self._ctx.heap.next_deadline()
        if deadline != self._armed:
            self._armed = deadline
            actions.append(new_arm_timer(deadline))
        return actions

    def _receive(self, data: bytes, source: Endpoint, now: float) -> list[Action]:
        ctx = self._ctx
        cfg = ctx.cfg
        if data.startswith(b"SIP/2.0 ") and self._absorb and self._proxy.tables.clients and (
                len(data) <= cfg.max_message_size):  # a device's answer: Proxy.absorb first
            absorbed = self._proxy.absorb(data, now)
            if type(absorbed) is list:
                return absorbed
        else:
            absorbed = None
        try:
            msg = parse_message(data, max_size=cfg.max_message_size, max_headers=cfg.max_headers,
                                stream=source.transport != "udp")
        except SipParseError as exc:
            return self._unparseable(data, source, exc)
        if isinstance(msg, Response):
            return self._response(msg, source, now, absorbed)
        if self._fast and msg.method == "REGISTER":  # the common absorbed refresh (_fastpath.py)
            absorbed = absorb_fast(self._registrar, msg, source, now)
            if absorbed is not None:
                return absorbed
        try:
            msg.top_via  # noqa: B018 - without a Via there is nobody to answer
        except SipParseError as exc:
            ctx.stats.drops["bad-via"] += 1
            return [Drop(reason="bad-via", detail=f"{msg.method} without usable Via: {exc.reason}",
                         source=source)]
        try:
            if msg.method == "REGISTER":
                return self._registrar.handle(msg, source, now)
            return self._proxy.handle_request(msg, source, now)
        except SipParseError as exc:
            if msg.method == "ACK":
                return [Drop(reason="bad-ack", detail=exc.reason, source=source)]
            ctx.stats.rejected[exc.status] += 1
            return [self._error_reply(msg, source, exc.status, exc.reason)]

    def _response(self, resp: Response, source: Endpoint, now: float,
                  mine: object = None) -> list[Action]:
        """``mine``: the proxy transaction Proxy.absorb found for it (it claims the same)."""
        ctx = self._ctx
        if type(mine) is not ClientTransaction:
            mine = self._proxy.claim(resp)  # the usual case: our own Via on top, no Via parse
        if mine is not None:  # (never a branch of the core's own transactions: Proxy._ours)
            return self._proxy.client_response(mine, resp, source, now)
        try:
            branch = resp.top_via.branch
        except SipParseError as exc:
            ctx.stats.drops["bad-response"] += 1
            return [Drop(reason="bad-response", detail=exc.reason, source=source)]
        txn = ctx.txns.clients.get(branch or "")
        if txn is None:
            return self._proxy.handle_response(resp, source, now)
        try:
            return ctx.txns.client_response(txn, resp, now)
        except SipParseError as exc:
            ctx.stats.drops["bad-response"] += 1
            return [Drop(reason="bad-response", detail=exc.reason, source=source)]

    def _error_reply(self, req: Request, source: Endpoint, status: int, reason: str) -> Reply:
        try:
            return self._ctx.reply(req, source, status, reason)
        except SipParseError:  # From/To/CSeq unusable: answer with what we can copy
            response = make_response(req, status, reason)
            return new_reply(response.serialize(), source)

    def _unparseable(self, data: bytes, source: Endpoint, exc: SipParseError) -> list[Action]:
        """Answer a request that failed to parse, if its request line and Via are readable."""
        ctx = self._ctx
        head = data[:data.find(b"\n")] if b"\n" in data else data
        if head.startswith(b"SIP/") or b" SIP/2.0" not in head or head.startswith(b"ACK "):
            ctx.stats.drops["unparseable"] += 1
            return [Drop(reason="unparseable", detail=exc.reason, source=source)]
        lines: dict[str, bytes] = {}
        vias: list[bytes] = []
        for m in _SALVAGE_HEADER.finditer(data[:4096]):
            name = m.group(1).lower().decode()
            name = {"v": "via", "f": "from", "t": "to", "i": "call-id"}.get(name, name)
            if name == "via":
                vias.append(m.group(2))
            lines.setdefault(name, m.group(2))
        if not vias:
            ctx.stats.drops["unparseable"] += 1
            return [Drop(reason="unparseable", detail=exc.reason, source=source)]
        try:
            top = Via.parse(vias[0].split(b",")[0].decode("utf-8", "surrogateescape"))
        except SipParseError:
            ctx.stats.drops["unparseable"] += 1
            return [Drop(reason="unparseable", detail=exc.reason, source=source)]
        out = [f"SIP/2.0 {exc.status} {_phrase(exc.reason)}"]
        out += [f"Via: {v.decode('utf-8', 'surrogateescape')}" for v in vias]
        for name, label in (("from", "From"), ("to", "To"), ("call-id", "Call-ID"),
                            ("cseq", "CSeq")):
            if name in lines:
                out.append(f"{label}: {lines[name].decode('utf-8', 'surrogateescape')}")
        out += ["Content-Length: 0", "", ""]
        ctx.stats.rejected[exc.status] += 1
        return [Reply(data="\r\n".join(out).encode("utf-8", "surrogateescape"),
                      dest=response_dest(top, source))]

    def _internal_error(self, data: bytes, source: Endpoint, exc: Exception) -> list[Action]:
        self._ctx.stats.internal_errors += 1
        actions: list[Action] = [Drop(reason="internal-error", detail=_describe(exc),
                                      source=source)]
        try:
            msg = parse_message(data)
            if isinstance(msg, Request) and msg.method != "ACK":
                actions.append(self._error_reply(msg, source, 500, "Server Internal Error"))
        except Exception:  # noqa: BLE001 - nothing more we can do for this input
            pass
        return actions


def _phrase(reason: str) -> str:
    """A reason phrase from a parse error text (one line, printable)."""
    text = "".join(c if c.isprintable() else " " for c in reason)[:80].strip()
    return text or "Bad Request"


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
