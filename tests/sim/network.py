# The simulated network: one MidRegistrar core, one simulated main registrar, any number of
# simulated UAs, and a virtual clock (the SIP analogue of h11's ConnectionPair, STYLE.md §8).
#
# Every datagram is an event delivered `latency` seconds after it was sent; `advance(to)` runs
# every event and every core deadline up to `to`, in time order (core deadlines first on a tie),
# so protocol timers and expiries fire exactly when they are due. The network executes the core's
# actions: SendUpstream goes to the main registrar, Reply to the UA at its destination, Drop is
# recorded, ArmTimer is checked against `next_deadline()`. Every core input is recorded (when
# `record` is on) so that a run can be replayed into a fresh core (determinism, DESIGN.md §2.5).
# `hooks` run after every event (invariant checks).
from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sansmidreg import (
    Action,
    ArmTimer,
    Config,
    Drop,
    Endpoint,
    Fork,
    MidRegistrar,
    Reply,
    SeededIds,
    SendRequest,
    SendUpstream,
)

from .mainreg import SimMainRegistrar
from .ua import Answer, SimUA

__all__ = ["Input", "Network", "replay"]


@dataclass(frozen=True, slots=True)
class Input:
    """One call into the core: a datagram (``data``/``source``) or a timer tick (data None)."""

    kind: Literal["receive", "timer"]
    now: float
    data: bytes = b""
    source: Endpoint | None = None


_Event = tuple[float, int, Callable[[], None]]


@dataclass(slots=True)
class Network:
    """A core, its main registrar and its UAs on a virtual clock."""

    config: Config
    seed: int = 7
    latency: float = 0.0
    now: float = 0.0
    record: bool = True
    retransmit: bool = True
    """UAs retransmit unanswered requests on timer E (T1, 2*T1 ... T2) until timer F."""
    registrar: SimMainRegistrar = field(default_factory=SimMainRegistrar)
    core: MidRegistrar = field(init=False)
    uas: dict[tuple[str, int], SimUA] = field(default_factory=dict)
    inputs: list[Input] = field(default_factory=list)
    outputs: list[list[Action]] = field(default_factory=list)
    drops: list[Drop] = field(default_factory=list)
    upstream_sent: int = 0
    """SendUpstream actions the core produced (relays, de-REGISTERs, retransmissions)."""
    ua_requests: int = 0
    hooks: list[Callable[[Network], None]] = field(default_factory=list)
    armed: float | None = None
    stray: list[tuple[Endpoint, bytes]] = field(default_factory=list)
    """Replies to an address no UA owns."""
    _events: list[_Event] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.core = MidRegistrar(self.config, ids=SeededIds(self.seed))
        self.registrar.endpoint = self.config.upstream
        self.registrar.mid_registrar = self.config.advertised_endpoint

    # -- population ------------------------------------------------------------------------------
    def add(self, ua: SimUA) -> SimUA:
        self.uas[(ua.host, ua.port)] = ua
        return ua

    def ua(self, user: str, port: int, **kwargs: object) -> SimUA:
        """Create and attach a UA (keyword arguments go to SimUA)."""
        return self.add(SimUA(user=user, port=port, **kwargs))  # type: ignore[arg-type]

    # -- sending ---------------------------------------------------------------------------------
    def send(self, ua: SimUA, data: bytes, *, retransmit: bool | None = None) -> None:
        """The UA sends ``data`` to the mid-registrar (delivered after ``latency``)."""
        self.ua_requests += 1
        self._deliver_to_core(data, ua.endpoint)
        if self.retransmit if retransmit is None else retransmit:
            self._arm_ua_timer(ua, ua.last_branch, self.config.t1, self.now)

    def register(self, ua: SimUA, expires: int | None = 60, **kwargs: Any) -> Answer:
        """``ua`` sends a REGISTER (keyword arguments go to SimUA.register); the network runs
        until it is answered (a few round trips); its final answer. AssertionError if none."""
        before = len(ua.answers)
        self.send(ua, ua.register(expires, **kwargs))
        self.settle(0.1 + 4 * self.latency)
        assert len(ua.answers) > before, "no final response"
        return ua.last_answer

    def inject(self, data: bytes, source: Endpoint) -> list[Action]:
        """Feed bytes to the core right now (no UA, no latency); the actions are executed."""
        return self._receive(data, source)

    def at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` at virtual time ``when``."""
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, callback))

    def _deliver_to_core(self, data: bytes, source: Endpoint) -> None:
        def deliver() -> None:
            self._receive(data, source)
        self.at(self.now + self.latency, deliver)

    def _arm_ua_timer(self, ua: SimUA, branch: str | None, interval: float, started: float) -> None:
        cfg = self.config
        when = self.now + interval
        if when >= started + 64 * cfg.t1:
            return

        def fire() -> None:
            if ua.awaiting and ua.last_branch == branch:
                self.ua_requests += 1
                self._deliver_to_core(ua.retransmit(), ua.endpoint)
                self._arm_ua_timer(ua, branch, min(interval * 2, cfg.t2), started)
        self.at(when, fire)

    # -- the clock -------------------------------------------------------------------------------
    def advance(self, to: float) -> None:
        """Run every event and every core deadline up to ``to`` (inclusive), in time order."""
        if to < self.now:
            raise ValueError(f"advance({to}) is in the past (now {self.now})")
        while True:
            t_event = self._events[0][0] if self._events else float("inf")
            deadline = self.core.next_deadline()
            t_core = float("inf") if deadline is None else deadline
            t = min(t_event, t_core)
            if t > to:
                break
            self.now = max(self.now, t)
            if t_core <= t_event:
                self._timer()
            else:
                _, _, callback = heapq.heappop(self._events)
                callback()
            for hook in self.hooks:
                hook(self)
        self.now = to

    def tick(self, when: float) -> list[Action]:
        """Call ``handle_timer(when)`` directly (events up to ``when`` are delivered first)."""
        self.advance(when)
        if self.record:
            self.inputs.append(Input(kind="timer", now=when))
        actions = self.core.handle_timer(when)
        self._execute(actions)
        return actions

    def settle(self, horizon: float = 1.0) -> None:
        """Advance a little (default 1 s): enough for in-flight messages, not for expiries."""
        self.advance(self.now + horizon)

    def _timer(self) -> None:
        now = self.now
        if self.record:
            self.inputs.append(Input(kind="timer", now=now))
        self._execute(self.core.handle_timer(now))

    def _receive(self, data: bytes, source: Endpoint) -> list[Action]:
        now = self.now
        if self.record:
            self.inputs.append(Input(kind="receive", now=now, data=data, source=source))
        actions = self.core.receive(data, source, now)
        self._execute(actions)
        return actions

    def _execute(self, actions: list[Action]) -> None:
        if self.record:
            self.outputs.append(actions)
        for action in actions:
            match action:
                case SendUpstream(data=data, dest=dest):
                    self.upstream_sent += 1
                    if dest != self.registrar.endpoint:
                        raise AssertionError(f"SendUpstream to {dest}, not the main registrar")
                    self.at(self.now + self.latency, self._later(self._to_registrar, data))
                case Reply(data=data, dest=dest):
                    self.at(self.now + self.latency, self._later(self._to_ua, data, dest))
                case ArmTimer(at=at):
                    self.armed = at
                case Drop():
                    self.drops.append(action)
                case Fork() | SendRequest():
                    raise AssertionError(f"unexpected {type(action).__name__} in a REGISTER run")
        if self.armed != self.core.next_deadline():
            raise AssertionError(
                f"ArmTimer says {self.armed}, next_deadline() says {self.core.next_deadline()}")

    @staticmethod
    def _later(fn: Callable[..., None], *args: object) -> Callable[[], None]:
        return lambda: fn(*args)

    def _to_registrar(self, data: bytes) -> None:
        response = self.registrar.receive(data, self.now)
        if response is not None:
            self._deliver_to_core(response, self.registrar.endpoint)

    def _to_ua(self, data: bytes, dest: Endpoint) -> None:
        ua = self.uas.get((dest.host, dest.port))
        if ua is None:
            self.stray.append((dest, data))
            return
        follow_up = ua.on_response(data, self.now)
        if follow_up is not None:
            self.send(ua, follow_up)

    # -- observation -----------------------------------------------------------------------------
    def sent_to(self, ua: SimUA) -> list[bytes]:
        """Every Reply the core addressed to ``ua`` so far (needs ``record``)."""
        out = []
        for actions in self.outputs:
            for action in actions:
                if isinstance(action, Reply) and (action.dest.host, action.dest.port) == (
                        ua.host, ua.port):
                    out.append(action.data)
        return out

    def upstream(self) -> list[bytes]:
        """Every SendUpstream the core produced so far (needs ``record``)."""
        return [a.data for actions in self.outputs for a in actions if isinstance(a, SendUpstream)]


def replay(config: Config, seed: int, inputs: list[Input]) -> list[list[Action]]:
    """Feed recorded inputs into a fresh core; the actions of every call, in order."""
    core = MidRegistrar(config, ids=SeededIds(seed))
    out: list[list[Action]] = []
    for item in inputs:
        if item.kind == "timer":
            out.append(core.handle_timer(item.now))
        else:
            assert item.source is not None
            out.append(core.receive(item.data, item.source, item.now))
    return out
