# The proxy's own transactions, as transition tables (h2 style): the INVITE client transaction
# (RFC 3261 §17.1.1, Figure 5, with the RFC 6026 "Accepted" state), the non-INVITE client
# transaction used for forked MESSAGE/OPTIONS/... branches and for our CANCELs (§17.1.2,
# Figure 6), and the INVITE server transaction (§17.2.1, Figure 7, with RFC 6026 "Accepted").
# Non-INVITE *server* transactions reuse `_transactions.ServerTxn` (the core's layer).
#
# Invariants: TERMINATED is absorbing; every non-terminated transaction has a deadline
# (`next_at`) and an entry in the core's heap no later than it (`DeadlineHeap.arm`: the entry may
# be earlier, the transaction re-checks `next_at` when it fires), except a client INVITE in
# PROCEEDING (no timer of its own: its branch's Timer C, which rides on its heap entry, bounds
# it) and a server INVITE in PROCEEDING (the response context bounds it). A (state, event) pair
# missing from a table changes nothing: for a client it is a stray or retransmitted response
# (absorbed), for a server a retransmission (absorbed).
#
# Timers (all from Config): A = T1 doubling (INVITE, UDP only); B = F = 64*T1; D = 32 s on UDP,
# 0 on TCP/TLS; E = T1 doubling to T2 (UDP only); K = T4 on UDP, 0 otherwise; M = L = 64*T1
# (RFC 6026 §8.4, §8.7); G = T1 doubling to T2 (UDP only); H = 64*T1; I = T4 on UDP, 0 otherwise.
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Final

from ._actions import Endpoint, Reply

if TYPE_CHECKING:
    from ._fork_context import ForkBranch, ResponseContext

__all__ = ["ClientTransaction", "Eff", "Ev", "InviteServer", "St", "INVITE_CLIENT",
           "INVITE_SERVER", "NON_INVITE_CLIENT", "PENDING"]


class St(enum.Enum):
    __hash__ = object.__hash__  # C-level identity hash: table lookups are hot

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Ev(enum.Enum):
    __hash__ = object.__hash__  # C-level identity hash: table lookups are hot

    # client side
    PROVISIONAL = "1xx"
    SUCCESS = "2xx"
    FAILURE = "3xx-6xx"
    TIMER_A = "A"
    TIMER_B = "B"
    TIMER_D = "D"
    TIMER_E = "E"
    TIMER_F = "F"
    TIMER_K = "K"
    TIMER_M = "M"
    ABANDON = "abandon"  # no final 64*T1 after our CANCEL (§9.1): give up as if timed out
    # server side
    REQUEST = "request"  # the INVITE arrived again
    ACK = "ack"
    SEND_PROVISIONAL = "send-1xx"
    SEND_SUCCESS = "send-2xx"
    SEND_FAILURE = "send-3xx-6xx"
    TIMER_G = "G"
    TIMER_H = "H"
    TIMER_I = "I"
    TIMER_L = "L"


class Eff(enum.Enum):
    __hash__ = object.__hash__  # C-level identity hash: table lookups are hot

    NONE = "none"
    PASS = "pass"  # hand the response to the branch
    PASS_ACK = "pass+ack"  # send the hop-by-hop ACK (§17.1.1.3), then hand it to the branch
    ACK = "ack"  # a retransmitted non-2xx final: ACK it again, nothing else
    ABSORB = "absorb"
    RETRANSMIT = "retransmit"
    TIMEOUT = "timeout"
    SEND = "send"  # server: send this response
    RESEND = "resend"  # server: send the last response again


# Enum members cost a Python-level descriptor call per access on Python 3.11 (~70 ns);
# the hot paths use these module constants instead (the same objects).
(CALLING, TRYING, PROCEEDING, COMPLETED, ACCEPTED, CONFIRMED, TERMINATED) = (
    St.CALLING, St.TRYING, St.PROCEEDING, St.COMPLETED, St.ACCEPTED, St.CONFIRMED, St.TERMINATED)
(EV_PROVISIONAL, EV_SUCCESS, EV_FAILURE, EV_TIMER_A, EV_TIMER_B, EV_TIMER_D, EV_TIMER_E,
 EV_TIMER_F, EV_TIMER_K, EV_TIMER_M, EV_ABANDON, EV_REQUEST, EV_ACK, EV_SEND_PROVISIONAL,
 EV_SEND_SUCCESS, EV_SEND_FAILURE, EV_TIMER_G, EV_TIMER_H, EV_TIMER_I, EV_TIMER_L) = (
    Ev.PROVISIONAL, Ev.SUCCESS, Ev.FAILURE, Ev.TIMER_A, Ev.TIMER_B, Ev.TIMER_D, Ev.TIMER_E,
    Ev.TIMER_F, Ev.TIMER_K, Ev.TIMER_M, Ev.ABANDON, Ev.REQUEST, Ev.ACK, Ev.SEND_PROVISIONAL,
    Ev.SEND_SUCCESS, Ev.SEND_FAILURE, Ev.TIMER_G, Ev.TIMER_H, Ev.TIMER_I, Ev.TIMER_L)
(EFF_NONE, EFF_PASS, EFF_PASS_ACK, EFF_ACK, EFF_ABSORB, EFF_RETRANSMIT, EFF_TIMEOUT, EFF_SEND,
 EFF_RESEND) = (
    Eff.NONE, Eff.PASS, Eff.PASS_ACK, Eff.ACK, Eff.ABSORB, Eff.RETRANSMIT, Eff.TIMEOUT,
    Eff.SEND, Eff.RESEND)

PENDING: Final = frozenset({CALLING, PROCEEDING})
"""A client INVITE that may still be CANCELled and is guarded by Timer C."""

_C = St
_E = Ev
Table = dict[tuple[St, Ev], tuple[St, Eff]]

# RFC 3261 Figure 5 + RFC 6026 Figure 3 (INVITE client transaction)
INVITE_CLIENT: Final[Table] = {
    (_C.CALLING, _E.TIMER_A): (_C.CALLING, EFF_RETRANSMIT),
    (_C.CALLING, _E.TIMER_B): (_C.TERMINATED, EFF_TIMEOUT),
    (_C.CALLING, _E.PROVISIONAL): (_C.PROCEEDING, EFF_PASS),
    (_C.CALLING, _E.SUCCESS): (_C.ACCEPTED, EFF_PASS),
    (_C.CALLING, _E.FAILURE): (_C.COMPLETED, EFF_PASS_ACK),
    (_C.CALLING, _E.ABANDON): (_C.TERMINATED, EFF_TIMEOUT),
    (_C.PROCEEDING, _E.PROVISIONAL): (_C.PROCEEDING, EFF_PASS),
    (_C.PROCEEDING, _E.SUCCESS): (_C.ACCEPTED, EFF_PASS),
    (_C.PROCEEDING, _E.FAILURE): (_C.COMPLETED, EFF_PASS_ACK),
    (_C.PROCEEDING, _E.ABANDON): (_C.TERMINATED, EFF_TIMEOUT),
    (_C.COMPLETED, _E.FAILURE): (_C.COMPLETED, EFF_ACK),
    (_C.COMPLETED, _E.TIMER_D): (_C.TERMINATED, EFF_NONE),
    (_C.ACCEPTED, _E.SUCCESS): (_C.ACCEPTED, EFF_PASS),  # 2xx retransmissions go upstream
    (_C.ACCEPTED, _E.TIMER_M): (_C.TERMINATED, EFF_NONE),
}
# RFC 3261 Figure 6 (non-INVITE client transaction)
NON_INVITE_CLIENT: Final[Table] = {
    (_C.TRYING, _E.PROVISIONAL): (_C.PROCEEDING, EFF_PASS),
    (_C.TRYING, _E.SUCCESS): (_C.COMPLETED, EFF_PASS),
    (_C.TRYING, _E.FAILURE): (_C.COMPLETED, EFF_PASS),
    (_C.TRYING, _E.TIMER_E): (_C.TRYING, EFF_RETRANSMIT),
    (_C.TRYING, _E.TIMER_F): (_C.TERMINATED, EFF_TIMEOUT),
    (_C.PROCEEDING, _E.PROVISIONAL): (_C.PROCEEDING, EFF_PASS),
    (_C.PROCEEDING, _E.SUCCESS): (_C.COMPLETED, EFF_PASS),
    (_C.PROCEEDING, _E.FAILURE): (_C.COMPLETED, EFF_PASS),
    (_C.PROCEEDING, _E.TIMER_E): (_C.PROCEEDING, EFF_RETRANSMIT),
    (_C.PROCEEDING, _E.TIMER_F): (_C.TERMINATED, EFF_TIMEOUT),
    (_C.COMPLETED, _E.TIMER_K): (_C.TERMINATED, EFF_NONE),
}
# RFC 3261 Figure 7 + RFC 6026 Figure 5 (INVITE server transaction; PROCEEDING from the start
# because the 100 Trying goes out at once, §17.2.1)
INVITE_SERVER: Final[Table] = {
    (_C.PROCEEDING, _E.REQUEST): (_C.PROCEEDING, EFF_RESEND),
    (_C.PROCEEDING, _E.SEND_PROVISIONAL): (_C.PROCEEDING, EFF_SEND),
    (_C.PROCEEDING, _E.SEND_SUCCESS): (_C.ACCEPTED, EFF_SEND),
    (_C.PROCEEDING, _E.SEND_FAILURE): (_C.COMPLETED, EFF_SEND),
    (_C.COMPLETED, _E.REQUEST): (_C.COMPLETED, EFF_RESEND),
    (_C.COMPLETED, _E.ACK): (_C.CONFIRMED, EFF_ABSORB),
    (_C.COMPLETED, _E.TIMER_G): (_C.COMPLETED, EFF_RESEND),
    (_C.COMPLETED, _E.TIMER_H): (_C.TERMINATED, EFF_TIMEOUT),
    (_C.CONFIRMED, _E.TIMER_I): (_C.TERMINATED, EFF_NONE),
    (_C.ACCEPTED, _E.SEND_SUCCESS): (_C.ACCEPTED, EFF_SEND),  # later 2xx (§16.7 step 5)
    (_C.ACCEPTED, _E.ACK): (_C.ACCEPTED, EFF_PASS),  # an ACK for a 2xx: end to end
    (_C.ACCEPTED, _E.TIMER_L): (_C.TERMINATED, EFF_NONE),
}

_TIMER_D_UDP: Final = 32.0  # §17.1.1.2: "at least 32 seconds for unreliable transports"


class ClientTransaction:
    """One client transaction toward a device: a branch (INVITE or not) or a CANCEL.

    ``next_at`` is the deadline of the pending timer (None: none pending)."""

    __slots__ = ("branch", "method", "data", "dest", "owner", "state", "table", "invite",
                 "reliable", "interval", "end_at", "next_at", "timer", "ack", "t1", "t2", "t4")

    def __init__(self, branch: str, method: str, data: bytes, dest: Endpoint,
                 owner: ForkBranch, now: float, t1: float, t2: float, t4: float) -> None:
        self.branch = branch
        self.method = method
        self.data = data
        self.dest = dest
        self.owner = owner
        self.invite = invite = method == "INVITE"
        self.state = CALLING if invite else TRYING
        self.table = INVITE_CLIENT if invite else NON_INVITE_CLIENT
        self.reliable = reliable = dest.transport != "udp"
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.interval = t1
        self.end_at = end_at = now + 64 * t1  # Timer B / Timer F
        self.next_at: float | None = end_at if reliable else now + t1
        self.timer: Any = None  # its entry in the deadline heap (DeadlineHeap.arm)
        self.ack: bytes | None = None  # our ACK for a non-2xx final (resent on retransmissions)

    def step(self, event: Ev) -> Eff:
        """Apply ``event``; a pair missing from the table is absorbed."""
        state, effect = self.table.get((self.state, event), (self.state, EFF_ABSORB))
        self.state = state
        return effect

    def respond(self, status: int, now: float) -> Eff:
        """A response with ``status`` arrived: ``step`` its event, then ``after_response``
        (one call on the proxy's hot path)."""
        before = self.state
        event = EV_PROVISIONAL if status < 200 else EV_SUCCESS if status < 300 else EV_FAILURE
        found = self.table.get((before, event))
        if found is None:
            return EFF_ABSORB
        state, effect = found
        if state is not before:
            self.state = state
            self.after_response(before, now)
        return effect

    def due_event(self, now: float) -> Ev | None:
        """Which timer fires at ``now`` (the caller saw next_at <= now), None for a stale one."""
        state = self.state
        if state is COMPLETED:
            return EV_TIMER_D if self.invite else EV_TIMER_K
        if state is ACCEPTED:
            return EV_TIMER_M
        if state in (CALLING, TRYING) or (state is PROCEEDING and not self.invite):
            if now >= self.end_at:
                return EV_TIMER_B if self.invite else EV_TIMER_F
            if self.invite:
                self.interval *= 2  # Timer A doubles without a cap (§17.1.1.2)
            else:  # Timer E doubles up to T2; in PROCEEDING it stays at T2 (§17.1.2.2)
                self.interval = self.t2 if state is PROCEEDING else min(
                    self.interval * 2, self.t2)
            self.next_at = min(now + self.interval, self.end_at)
            return EV_TIMER_A if self.invite else EV_TIMER_E
        return None

    def after_response(self, before: St, now: float) -> None:
        """Re-plan the pending timer after a response moved the state."""
        state = self.state
        if state is before:
            return
        if state is PROCEEDING:
            # INVITE: no client timer in Proceeding; non-INVITE: E continues, F still runs
            if self.invite:
                self.next_at = None
        elif state is COMPLETED:
            if self.reliable:
                self.next_at = now
            else:
                self.next_at = now + (_TIMER_D_UDP if self.invite else self.t4)
        elif state is ACCEPTED:
            self.next_at = now + 64 * self.t1


class InviteServer:
    """The INVITE server transaction toward the main registrar (or a trusted source)."""

    __slots__ = ("key", "dest", "reliable", "context", "state", "last", "interval", "h_at",
                 "next_at", "timer", "t1", "t2", "t4")

    def __init__(self, *, key: tuple[str, ...], dest: Endpoint, reliable: bool,
                 context: ResponseContext, t1: float, t2: float, t4: float) -> None:
        self.key = key
        self.dest = dest  # where responses go (§18.2.2)
        self.reliable = reliable
        self.context = context
        self.state = PROCEEDING
        self.last: Reply | None = None  # the last response sent (resent on retransmissions)
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.interval = t1
        self.h_at = 0.0
        self.next_at: float | None = None
        self.timer: Any = None  # its entry in the deadline heap (DeadlineHeap.arm)

    def step(self, event: Ev, now: float) -> Eff:
        """Apply ``event`` at ``now``; entering a state plans its timer."""
        state, effect = INVITE_SERVER.get((self.state, event), (self.state, EFF_ABSORB))
        before = self.state
        self.state = state
        if state is not before:
            self._plan(state, now)
        return effect

    def _plan(self, state: St, now: float) -> None:
        if state is COMPLETED:
            self.h_at = now + 64 * self.t1
            self.next_at = self.h_at if self.reliable else min(now + self.t1, self.h_at)
        elif state is CONFIRMED:
            self.next_at = now + (0.0 if self.reliable else self.t4)
        elif state is ACCEPTED:
            self.next_at = now + 64 * self.t1
        elif state is TERMINATED:
            self.next_at = None

    def due_event(self, now: float) -> Ev | None:
        state = self.state
        if state is COMPLETED:
            if now >= self.h_at:
                return EV_TIMER_H
            self.interval = min(self.interval * 2, self.t2)  # Timer G (§17.2.1)
            self.next_at = min(now + self.interval, self.h_at)
            return EV_TIMER_G
        if state is CONFIRMED:
            return EV_TIMER_I
        if state is ACCEPTED:
            return EV_TIMER_L
        return None
