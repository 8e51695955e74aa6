"""Property: whatever the devices answer, and whenever, a forked INVITE gets exactly one final
response upstream from its server transaction (plus any 2xx, which always pass), every branch
terminates, and once the last timer has fired no transaction and no deadline is left -- nor
any object of the fork in memory."""
from __future__ import annotations

import gc
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansmidreg import (
    Action,
    ArmTimer,
    Config,
    Drop,
    Endpoint,
    Fork,
    MidRegistrar,
    Mode,
    Reply,
    SeededIds,
    SendRequest,
    SendUpstream,
)
from sansmidreg._fork_context import ForkBranch, ResponseContext
from sansmidreg._invite import ClientTransaction, InviteServer
from sansmidreg.sip import Request, Response, SipParseError, make_response, parse_message

UPSTREAM = Endpoint(host="127.0.0.1", port=5080)
US = Endpoint(host="127.0.0.1", port=5060)
STATUSES = (100, 180, 183, 200, 302, 401, 404, 407, 486, 487, 500, 503, 600, 603)


@dataclass(frozen=True)
class Scenario:
    devices: int
    answers: tuple[tuple[tuple[float, int], ...], ...]  # per branch: (delay, status) ...
    cancel_at: float | None
    retransmit_at: float | None
    ack_upstream: bool
    timer_c: float
    reliable_upstream: bool
    answer_cancels: bool  # the devices answer our CANCELs with 200 at once


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    devices = draw(st.integers(1, 3))
    answer = st.tuples(st.floats(0, 40, allow_nan=False), st.sampled_from(STATUSES))
    answers = tuple(tuple(sorted(draw(st.lists(answer, max_size=4)))) for _ in range(devices))
    maybe_time = st.none() | st.floats(0, 40, allow_nan=False)
    return Scenario(devices=devices, answers=answers, cancel_at=draw(maybe_time),
                    retransmit_at=draw(maybe_time), ack_upstream=draw(st.booleans()),
                    timer_c=draw(st.sampled_from((3.0, 20.0, 180.0))),
                    reliable_upstream=draw(st.booleans()), answer_cancels=draw(st.booleans()))


def _request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def _register(core: MidRegistrar, i: int, now: float) -> None:
    src = Endpoint(host="127.0.0.1", port=5251 + i)
    data = (f"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{src.port};"
            f"branch=z9hG4bKr{i}\r\nFrom: <sip:bob@example.test>;tag=f{i}\r\n"
            f"To: <sip:bob@example.test>\r\nCall-ID: r{i}\r\nCSeq: 1 REGISTER\r\n"
            f"Contact: <sip:bob@127.0.0.1:{5201 + i}>\r\nExpires: 3600\r\n"
            f"Content-Length: 0\r\n\r\n").encode()
    (up,) = [a for a in core.receive(data, src, now) if isinstance(a, SendUpstream)]
    relayed = _request(up.data)
    contact = ", ".join(v if ";expires=" in v else v + ";expires=3600"
                        for v in relayed.values("contact"))
    ok = make_response(relayed, 200, "OK", to_tag=f"k{i}", headers=[("Contact", contact)])
    core.receive(ok.serialize(), UPSTREAM, now)


def _invite(method: str, upstream: Endpoint, to_tag: str | None = None) -> bytes:
    transport = upstream.transport.upper()
    return (f"{method} sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} 127.0.0.1:5080;branch=z9hG4bKprop\r\n"
            f"Max-Forwards: 70\r\nFrom: <sip:caller@example.test>;tag=c\r\n"
            f"To: <sip:bob@example.test>{';tag=' + to_tag if to_tag else ''}\r\n"
            f"Call-ID: prop\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n").encode()


class Run:
    def __init__(self, core: MidRegistrar, upstream: Endpoint, ack: bool = False,
                 answer_cancels: bool = False) -> None:
        self.answer_cancels = answer_cancels
        self.core = core
        self.upstream = upstream
        self.ack = ack  # the upstream ACKs a non-2xx final (else Timer H ends the transaction)
        self.now = 0.0
        self.finals: list[bytes] = []
        self.first_final: Response | None = None
        self.branches: list[tuple[bytes, Endpoint]] = []
        self.errors: list[str] = []
        self.log: list[Action] = []

    def take(self, actions: list[Action]) -> None:
        self.log.extend(actions)
        for a in actions:
            if isinstance(a, Drop) and a.reason == "internal-error":
                self.errors.append(a.detail)
            if isinstance(a, Fork):
                self.branches.extend((b.data, b.dest) for b in a.branches)
            if isinstance(a, SendRequest) and a.data.startswith(b"CANCEL ") and (
                    self.answer_cancels):
                ok = make_response(_request(a.data), 200, None, to_tag="c").serialize()
                self.take(self.core.receive(ok, a.dest, self.now))
            if isinstance(a, Reply) and a.dest.port == 5080:
                resp = parse_message(a.data)
                assert isinstance(resp, Response)
                if (resp.get("cseq") or "").endswith(" INVITE") and resp.status >= 200:
                    self.finals.append(a.data)
                    if self.first_final is None:
                        self.first_final = resp
                        if resp.status >= 300 and self.ack:
                            try:
                                tag = resp.to.tag
                            except SipParseError:
                                tag = None
                            self.take(self.core.receive(_invite("ACK", self.upstream, tag),
                                                        self.upstream, self.now))

    def at(self, t: float) -> None:
        while (deadline := self.core.next_deadline()) is not None and deadline <= t:
            self.now = max(self.now, deadline)
            self.take(self.core.handle_timer(self.now))
        self.now = max(self.now, t)


@given(scenarios())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_one_final_upstream_and_nothing_left(sc: Scenario) -> None:
    play(sc, absorb=True)


@given(scenarios())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_responses_absorbed_without_a_parse_change_nothing(sc: Scenario) -> None:
    # Proxy.absorb handles the responses that go nowhere from a few header lines; with it off,
    # every response is parsed: the actions, their order and the counters must be the same
    fast, slow = play(sc, absorb=True), play(sc, absorb=False)
    assert fast.log == slow.log
    assert fast.core.stats() == slow.core.stats()


@given(scenarios())
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_finished_fork_is_freed_without_the_cycle_collector(sc: Scenario) -> None:
    # once its last transaction has ended, nothing of a fork stays in memory: reference counting
    # frees it at once (ResponseContext.ended breaks its cycles), the cycle collector has no
    # work. With the collector off from a clean start, every object made during the run is
    # still in generation 0 if alive, or unreachable there if it was left in a cycle.
    gc.collect()
    gc.disable()
    try:
        play(sc, absorb=True)
        left = [type(o).__name__ for o in gc.get_objects(generation=0)
                if type(o) in _PROXY_TYPES]
    finally:
        gc.enable()
    assert left == []


_PROXY_TYPES = (ResponseContext, ForkBranch, ClientTransaction, InviteServer)


def play(sc: Scenario, *, absorb: bool) -> Run:
    """Play ``sc`` and check the property; returns the run (its log holds every action)."""
    core = MidRegistrar(Config(mode=Mode.AOR_THROTTLING, upstream=UPSTREAM, local=(US,),
                               min_expires=5, timer_c=sc.timer_c), ids=SeededIds(3))
    core._absorb = absorb
    for i in range(sc.devices):
        _register(core, i, 0.0)
    upstream = Endpoint(transport="tcp", host="127.0.0.1", port=5080, flow=1) if (
        sc.reliable_upstream) else UPSTREAM
    run = Run(core, upstream, sc.ack_upstream, sc.answer_cancels)
    start = 1.0
    run.at(start)
    run.take(core.receive(_invite("INVITE", upstream), upstream, start))
    assert len(run.branches) == sc.devices
    events: list[tuple[float, int, int]] = []  # (time, kind, arg)
    for index, script in enumerate(sc.answers):
        events += [(start + delay, index, status) for delay, status in script]
    if sc.cancel_at is not None:
        events.append((start + sc.cancel_at, -1, 0))
    if sc.retransmit_at is not None:
        events.append((start + sc.retransmit_at, -2, 0))
    for t, kind, arg in sorted(events):
        run.at(t)
        if kind == -1:
            run.take(core.receive(_invite("CANCEL", upstream), upstream, run.now))
        elif kind == -2:
            if run.first_final is None:  # a client retransmits only before a final
                run.take(core.receive(_invite("INVITE", upstream), upstream, run.now))
        else:
            data, dest = run.branches[kind]
            tag = None if arg == 100 else f"d{kind}"
            body = make_response(_request(data), arg, None, to_tag=tag).serialize()
            run.take(core.receive(body, dest, run.now))
    run.at(start + 10_000.0)  # every transaction, Timer C, contact expiry, de-REGISTER
    assert run.errors == []
    assert run.first_final is not None, "no final response upstream"
    first = run.finals[0]
    for data in run.finals[1:]:
        resp = parse_message(data)
        assert isinstance(resp, Response)
        # only 2xx (end to end, §16.7 step 5) or a retransmission of the one final
        assert 200 <= resp.status < 300 or data == first
    if 200 <= run.first_final.status < 300:
        assert all(200 <= r.status < 300 for r in (parse_message(d) for d in run.finals)
                   if isinstance(r, Response))
    stats = core.stats()
    assert stats.transactions == 0
    assert core.next_deadline() is None
    assert stats.internal_errors == 0
    assert not any(isinstance(a, ArmTimer) and a.at is not None
                   for a in core.handle_timer(run.now))
    return run


NASTY = ("", "<", ">", ";", "sip:", "<sip:@>", "0", "70000", "a,b", '"', "SIP/2.0/UDP", " , ",
         "sip:x@127.0.0.1:5060;ctid=1", "<sip:127.0.0.1:5060;lr>", "99999999999 INVITE")


def _mutate(data: bytes, line: int, how: int, nasty: str) -> bytes:
    """Delete line ``line`` (how 0), replace its value with ``nasty`` (1), or duplicate it (2)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    index = 1 + line % max(1, len(lines) - 1)
    if index >= len(lines):
        return data
    name = lines[index].split(b":", 1)[0]
    if how == 0:
        del lines[index]
    elif how == 1:
        lines[index] = name + b": " + nasty.encode()
    else:
        lines.insert(index, lines[index])
    return b"\r\n".join(lines) + sep + body


@given(st.lists(st.tuples(st.integers(0, 6), st.integers(0, 20), st.integers(0, 3),
                          st.sampled_from(NASTY), st.floats(0, 5, allow_nan=False)),
                max_size=12))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_damaged_messages_never_crash_or_leak(steps: list[tuple[int, int, int, str, float]]
                                              ) -> None:
    gc.collect()
    gc.disable()  # as in the test above: nothing of a fork may be left for the cycle collector
    try:
        _play_damaged(steps)
        left = [type(o).__name__ for o in gc.get_objects(generation=0)
                if type(o) in _PROXY_TYPES]
    finally:
        gc.enable()
    assert left == []


def _play_damaged(steps: list[tuple[int, int, int, str, float]]) -> None:
    core = MidRegistrar(Config(mode=Mode.AOR_THROTTLING, upstream=UPSTREAM, local=(US,),
                               min_expires=5), ids=SeededIds(5))
    for i in range(2):
        _register(core, i, 0.0)
    run = Run(core, UPSTREAM, ack=True)
    now = 1.0
    run.take(core.receive(_invite("INVITE", UPSTREAM), UPSTREAM, now))
    pristine = [_invite("INVITE", UPSTREAM), _invite("CANCEL", UPSTREAM),
                _invite("ACK", UPSTREAM, "t"), _invite("MESSAGE", UPSTREAM),
                _invite("BYE", UPSTREAM, "t").replace(
                    b"Max-Forwards", b"Route: <sip:127.0.0.1:5060;lr>\r\nMax-Forwards")]
    for kind, line, how, nasty, delay in steps:
        now += delay
        run.at(now)
        if kind < len(pristine):
            data, source = pristine[kind], UPSTREAM
        else:
            branch, source = run.branches[(kind - len(pristine)) % len(run.branches)]
            status = (180, 486, 200)[line % 3]
            data = make_response(_request(branch), status, None, to_tag="d").serialize()
        if how < 3:
            data = _mutate(data, line, how, nasty)
        run.take(core.receive(data, source, now))
    run.at(now + 10_000.0)
    assert run.errors == [] and core.stats().internal_errors == 0
    assert core.stats().transactions == 0 and core.next_deadline() is None
