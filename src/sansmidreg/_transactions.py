# Non-INVITE transactions, RFC 3261 §17.1.2 (client) and §17.2.2 (server), as transition tables.
#
# Client: a request we send upstream (a relayed REGISTER, our own de-REGISTER). Over UDP it is
# retransmitted by Timer E (T1, doubling, capped at T2) until a response arrives; Timer F (64*T1)
# ends it with a timeout; after a final response Timer K (T4; 0 on TCP/TLS) absorbs response
# retransmissions. Responses are matched by the branch of our Via (§17.1.3).
# Server: a request a UA sent us that we relay (§17.2.2). Retransmissions are absorbed while no
# response exists and answered with the last response afterwards; Timer J (64*T1; 0 on TCP/TLS)
# keeps a completed transaction around for that. Matching by top Via branch + sent-by + method
# (§17.2.3).
#
# Each transaction owns one deadline in the core's heap (its earliest pending timer). What the
# transaction *means* (relay a REGISTER, count a failed de-REGISTER, a forked branch) is its
# `user`'s business: the layer only reports responses and timeouts to it.
from __future__ import annotations

import enum
from typing import Final, Protocol

from ._actions import Action, Endpoint, Reply, SendUpstream, SendRequest
from ._stats import Counters
from ._timers import DeadlineHeap, TimerHandle
from .sip import Response

__all__ = ["ClientTxn", "ServerTxn", "TxnState", "TxnUser", "Event", "CLIENT_TABLE", "SERVER_TABLE"]


class TxnState(enum.Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    TERMINATED = "terminated"


class Event(enum.Enum):
    PROVISIONAL = "1xx"
    FINAL = "final"
    TIMER_E = "E"  # client retransmission
    TIMER_F = "F"  # client timeout
    TIMER_K = "K"  # client linger ends
    REQUEST = "request"  # server: the request arrived again
    SEND_PROVISIONAL = "send-1xx"
    SEND_FINAL = "send-final"
    TIMER_J = "J"  # server linger ends


class Effect(enum.Enum):
    NONE = "none"
    PASS = "pass"  # hand the response to the transaction user
    ABSORB = "absorb"  # a retransmitted response: swallow it
    RETRANSMIT = "retransmit"  # send our request again
    TIMEOUT = "timeout"  # tell the user the transaction timed out
    RESEND = "resend"  # server: send the last response again
    SEND = "send"  # server: send this response


S = TxnState
E = Event
# RFC 3261 Figure 6 (non-INVITE client transaction)
CLIENT_TABLE: Final[dict[tuple[TxnState, Event], tuple[TxnState, Effect]]] = {
    (S.TRYING, E.PROVISIONAL): (S.PROCEEDING, Effect.PASS),
    (S.TRYING, E.FINAL): (S.COMPLETED, Effect.PASS),
    (S.TRYING, E.TIMER_E): (S.TRYING, Effect.RETRANSMIT),
    (S.TRYING, E.TIMER_F): (S.TERMINATED, Effect.TIMEOUT),
    (S.PROCEEDING, E.PROVISIONAL): (S.PROCEEDING, Effect.PASS),
    (S.PROCEEDING, E.FINAL): (S.COMPLETED, Effect.PASS),
    (S.PROCEEDING, E.TIMER_E): (S.PROCEEDING, Effect.RETRANSMIT),
    (S.PROCEEDING, E.TIMER_F): (S.TERMINATED, Effect.TIMEOUT),
    (S.COMPLETED, E.PROVISIONAL): (S.COMPLETED, Effect.ABSORB),
    (S.COMPLETED, E.FINAL): (S.COMPLETED, Effect.ABSORB),
    (S.COMPLETED, E.TIMER_K): (S.TERMINATED, Effect.NONE),
}
# RFC 3261 Figure 8 (non-INVITE server transaction)
SERVER_TABLE: Final[dict[tuple[TxnState, Event], tuple[TxnState, Effect]]] = {
    (S.TRYING, E.REQUEST): (S.TRYING, Effect.ABSORB),
    (S.TRYING, E.SEND_PROVISIONAL): (S.PROCEEDING, Effect.SEND),
    (S.TRYING, E.SEND_FINAL): (S.COMPLETED, Effect.SEND),
    (S.PROCEEDING, E.REQUEST): (S.PROCEEDING, Effect.RESEND),
    (S.PROCEEDING, E.SEND_PROVISIONAL): (S.PROCEEDING, Effect.SEND),
    (S.PROCEEDING, E.SEND_FINAL): (S.COMPLETED, Effect.SEND),
    (S.COMPLETED, E.REQUEST): (S.COMPLETED, Effect.RESEND),
    (S.COMPLETED, E.TIMER_J): (S.TERMINATED, Effect.NONE),
}


class TxnUser(Protocol):
    """Who is told what happened to a client transaction."""

    def on_response(self, txn: ClientTxn, response: Response, now: float) -> list[Action]: ...

    def on_timeout(self, txn: ClientTxn, now: float) -> list[Action]: ...


class _Done:
    """The user of a completed client transaction: nothing more is reported."""

    def on_response(self, txn: ClientTxn, response: Response, now: float) -> list[Action]:
        return []

    def on_timeout(self, txn: ClientTxn, now: float) -> list[Action]:
        return []


_DONE: Final = _Done()


class ClientTxn:
    """A non-INVITE client transaction (RFC 3261 §17.1.2)."""

    __slots__ = ("branch", "data", "dest", "user", "state", "interval", "next_at", "f_at",
                 "timer", "upstream", "t2", "t4")

    def __init__(self, *, branch: str, data: bytes, dest: Endpoint, user: TxnUser, now: float,
                 t1: float, t2: float, t4: float, upstream: bool) -> None:
        self.branch = branch
        self.data = data
        self.dest = dest
        self.user = user
        self.state = TxnState.TRYING
        self.upstream = upstream  # send as SendUpstream (else SendRequest)
        self.interval = t1
        self.t2 = t2
        self.t4 = t4
        self.f_at = now + 64 * t1
        # reliable transports: no Timer E (§17.1.2.2)
        self.next_at = self.f_at if dest.is_reliable else min(now + t1, self.f_at)
        self.timer: TimerHandle[object] | None = None

    def send(self) -> Action:
        if self.upstream:
            return SendUpstream(data=self.data, dest=self.dest)
        return SendRequest(data=self.data, dest=self.dest)

    def step(self, event: Event) -> Effect:
        """Apply one event; unknown (state, event) pairs change nothing."""
        state, effect = CLIENT_TABLE.get((self.state, event), (self.state, Effect.ABSORB))
        self.state = state
        return effect

    def fire(self, now: float) -> Event:
        """Which timer is due at ``now`` (the caller checked next_at <= now)."""
        if self.state is TxnState.COMPLETED:
            return Event.TIMER_K
        if now >= self.f_at:
            return Event.TIMER_F
        # Timer E doubles up to T2 (in PROCEEDING it stays at T2, §17.1.2.2)
        self.interval = self.t2 if self.state is TxnState.PROCEEDING else min(
            self.interval * 2, self.t2)
        self.next_at = min(now + self.interval, self.f_at)
        return Event.TIMER_E

    def complete(self, now: float) -> None:
        """After a final response: linger for Timer K."""
        self.next_at = now + (0.0 if self.dest.is_reliable else self.t4)


class ServerTxn:
    """A non-INVITE server transaction (RFC 3261 §17.2.2) for a request we relay."""

    __slots__ = ("key", "source", "state", "last", "timer", "linger")

    def __init__(self, key: tuple[str, ...], source: Endpoint, linger: float) -> None:
        self.key = key
        self.source = source
        self.state = TxnState.TRYING
        self.last: Reply | None = None
        self.timer: TimerHandle[object] | None = None
        self.linger = 0.0 if source.is_reliable else linger  # Timer J

    def step(self, event: Event) -> Effect:
        state, effect = SERVER_TABLE.get((self.state, event), (self.state, Effect.NONE))
        self.state = state
        return effect


class TransactionLayer:
    """The live client and server transactions and their deadlines."""

    __slots__ = ("clients", "servers", "heap", "counters")

    def __init__(self, heap: DeadlineHeap[object], counters: Counters | None = None) -> None:
        self.clients: dict[str, ClientTxn] = {}
        self.servers: dict[tuple[str, ...], ServerTxn] = {}
        self.heap = heap
        self.counters = counters if counters is not None else Counters()

    # -- client side ---------------------------------------------------------------------------
    def start_client(self, txn: ClientTxn) -> Action:
        self.clients[txn.branch] = txn
        txn.timer = self.heap.schedule(txn.next_at, txn)
        return txn.send()

    def client_response(self, txn: ClientTxn, response: Response, now: float) -> list[Action]:
        event = Event.PROVISIONAL if response.status < 200 else Event.FINAL
        effect = txn.step(event)
        if effect is not Effect.PASS:
            return []
        if event is Event.PROVISIONAL:
            return txn.user.on_response(txn, response, now)  # Timer E goes on (T2 in Proceeding)
        self.heap.cancel(txn.timer)
        txn.complete(now)
        txn.timer = self.heap.schedule(txn.next_at, txn)
        user = txn.user
        # Completed only absorbs response retransmissions until Timer K: let the user and the
        # request bytes go now rather than then (less for the garbage collector to carry)
        txn.user = _DONE
        txn.data = b""
        return user.on_response(txn, response, now)

    def abandon(self, txn: ClientTxn) -> None:
        """Stop a client transaction now: no more retransmissions, no timeout reported; a late
        response to it is a stray one."""
        self.heap.cancel(txn.timer)
        txn.timer = None
        txn.state = TxnState.TERMINATED
        txn.user = _DONE
        if self.clients.get(txn.branch) is txn:
            del self.clients[txn.branch]

    def client_timer(self, txn: ClientTxn, now: float) -> list[Action]:
        event = txn.fire(now)
        effect = txn.step(event)
        if txn.state is TxnState.TERMINATED:
            self.clients.pop(txn.branch, None)
            txn.timer = None
            if effect is Effect.TIMEOUT:
                return txn.user.on_timeout(txn, now)
            return []
        txn.timer = self.heap.schedule(txn.next_at, txn)
        if effect is Effect.RETRANSMIT:
            self.counters.retransmissions_sent += 1
            return [txn.send()]
        return []

    # -- server side ---------------------------------------------------------------------------
    def server(self, key: tuple[str, ...]) -> ServerTxn | None:
        return self.servers.get(key)

    def start_server(self, key: tuple[str, ...], source: Endpoint, linger: float) -> ServerTxn:
        txn = ServerTxn(key, source, linger)
        self.servers[key] = txn
        return txn

    def server_retransmission(self, txn: ServerTxn) -> Reply | None:
        """The request came again: the response to resend, or None to absorb it."""
        effect = txn.step(Event.REQUEST)
        return txn.last if effect is Effect.RESEND else None

    def server_send(self, txn: ServerTxn, reply: Reply, status: int, now: float) -> Reply:
        txn.step(Event.SEND_PROVISIONAL if status < 200 else Event.SEND_FINAL)
        txn.last = reply
        if txn.state is TxnState.COMPLETED:
            self.heap.cancel(txn.timer)
            txn.timer = self.heap.schedule(now + txn.linger, txn)
        return reply

    def server_timer(self, txn: ServerTxn) -> None:
        txn.step(Event.TIMER_J)
        txn.timer = None
        if self.servers.get(txn.key) is txn:
            del self.servers[txn.key]
