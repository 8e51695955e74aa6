# Benchmark of the forking proxy (issue 4): forks per second for a 3-contact AOR in AOR
# throttling mode. One fork is the whole call set-up seen by the mid-registrar: INVITE in, 100
# Trying up and 3 branches out; 100 from two devices, 180 + 200 from the third (both relayed);
# CANCEL to the other two, their 200 and 487, our 2 ACKs; then every timer (D, K, L, M) fired so
# that all transactions are terminated (checked). Eighteen messages, nine of them received. The
# INVITE is parsed. The devices' eight answers are handled as they would be in production, by
# Proxy.absorb, from their start line, top Via, CSeq (and To, Content-Length) without a full
# parse: the six that go nowhere (two 100, two 200 to our CANCELs, two 487 after the 200 went
# up) and the 180 and 200, relayed as the bytes that came less our Via value.
# The timed loop holds nothing but the core's calls: the devices' answers quote branch ids the
# core invents, so each round first plays its calls on a twin core (same config, same seed, same
# history, hence the same ids) to write down the inputs, then times the measured core fed those
# inputs; both must end in the same state (checked), so the measured core did the same work.
# In the same run, h11's request parse rate and the ratio (floor: 0.25), measured in alternating
# rounds (median of the per-round ratios): the reference is the one of benchmarks/_common.py (h11
# parsing the HTTP/1.1 equivalent of a typical REGISTER), repeated here so this script stands
# alone. Run: python benchmarks/bench_fork.py  (about 25 s; prints `key: value` lines)
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import h11

from sansmidreg import (
    Action,
    Config,
    Endpoint,
    Fork,
    MidRegistrar,
    Mode,
    SeededIds,
    SendRequest,
    SendUpstream,
)
from sansmidreg.sip import Request, make_response, parse_message

HTTP_REQUEST = (
    b"POST /example.test HTTP/1.1\r\n"
    b"Host: example.test\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.test>;tag=31595SIPpTag001\r\n"
    b"To: <sip:alice@example.test>\r\n"
    b"Call-ID: 1-31595@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.0.1:5201>\r\n"
    b"Expires: 60\r\n"
    b"User-Agent: sipp-ua-5201\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

UPSTREAM = Endpoint(host="127.0.0.1", port=5080)
US = Endpoint(host="127.0.0.1", port=5060)
LIFETIME = 10**9  # the devices stay registered whatever the benchmark's clock does
FLOOR = 0.25
ROUNDS = 15

INVITE = (
    "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n"
    "Record-Route: <sip:127.0.0.1:5080;lr;ftag=1692SIPpTag001>\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKcc5f.{n}.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5290;branch=z9hG4bK-1692-{n}-0\r\n"
    "Max-Forwards: 69\r\n"
    "From: <sip:caller@example.test>;tag=1692SIPpTag001\r\n"
    "To: <sip:bob@example.test>\r\n"
    "Call-ID: {n}-1692@127.0.0.1\r\n"
    "CSeq: 1 INVITE\r\n"
    "Contact: <sip:caller@127.0.0.1:5290>\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length:   129\r\n\r\n"
    "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    "t=0 0\r\nm=audio 6008 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
)
# a device's response: the three Vias of the branch it got, its To tag (as SIPp writes them)
RESPONSE = (
    "SIP/2.0 {status}\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}, "
    "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKcc5f.{n}.0, "
    "SIP/2.0/UDP 127.0.0.1:5290;branch=z9hG4bK-1692-{n}-0\r\n"
    "{rr}"
    "From: <sip:caller@example.test>;tag=1692SIPpTag001\r\n"
    "To: <sip:bob@example.test>{tag}\r\n"
    "Call-ID: {n}-1692@127.0.0.1\r\n"
    "CSeq: 1 {method}\r\n"
    "{contact}"
    "Content-Length: 0\r\n\r\n"
)
RR = ("Record-Route: <sip:127.0.0.1:5060;lr>, "
      "<sip:127.0.0.1:5080;lr;ftag=1692SIPpTag001>\r\n")
CANCEL_OK = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
    "From: <sip:caller@example.test>;tag=1692SIPpTag001\r\n"
    "To: <sip:bob@example.test>;tag=x\r\n"
    "Call-ID: {n}-1692@127.0.0.1\r\n"
    "CSeq: 1 CANCEL\r\n"
    "Content-Length: 0\r\n\r\n"
)


def make_core() -> MidRegistrar:
    core = MidRegistrar(Config(mode=Mode.AOR_THROTTLING, upstream=UPSTREAM, local=(US,),
                               outgoing_expires=LIFETIME, max_expires=0,
                               default_expires=LIFETIME), ids=SeededIds(1))
    for i in range(3):
        src = Endpoint(host="127.0.0.1", port=5251 + i)
        register = (f"REGISTER sip:example.test SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{src.port};branch=z9hG4bKreg{i}\r\n"
                    f"Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=r{i}\r\n"
                    f"To: <sip:bob@example.test>\r\nCall-ID: reg{i}\r\nCSeq: 1 REGISTER\r\n"
                    f"Contact: <sip:bob@127.0.0.1:{5201 + i}>\r\nExpires: {LIFETIME}\r\n"
                    f"Content-Length: 0\r\n\r\n").encode()
        (up,) = [a for a in core.receive(register, src, 0.0) if isinstance(a, SendUpstream)]
        relayed = parse_message(up.data)
        assert isinstance(relayed, Request)
        ok = make_response(relayed, 200, "OK", to_tag=f"k{i}",
                           headers=[("Contact", relayed.values("contact")[0])])
        core.receive(ok.serialize(), UPSTREAM, 0.0)
    core.handle_timer(100.0)  # the REGISTER transactions end
    assert core.stats().contacts == 3 and core.stats().transactions == 0
    return core


Input = tuple[bytes | None, Endpoint, float]
"""One call of the core: (datagram, source, now), or (None, _, now) for handle_timer."""


class Call:
    """One call set-up through the core, at its own time slot; ``record`` (when given) gets the
    core calls it made, in order."""

    def __init__(self, core: MidRegistrar) -> None:
        self.core = core
        self.n = 0
        self.now = 200.0
        self.record: list[Input] | None = None

    def __call__(self) -> None:
        core = self.core
        if self.record is not None:
            core = _Recorder(core, self.record)  # type: ignore[assignment]
        self.n += 1
        n = b"%d" % self.n
        now = self.now = self.now + 60.0
        actions = core.receive(_INVITE % (n, n, n), UPSTREAM, now)
        fork = actions[1]
        assert isinstance(fork, Fork) and len(fork.branches) == 3
        (a, b, c) = fork.branches
        ba, bb, bc = _branch(a.data), _branch(b.data), _branch(c.data)
        for branch, dest in ((bb, b.dest), (bc, c.dest)):
            core.receive(_response(n, branch, b"100 Trying", b""), dest, now)
        core.receive(_response(n, ba, b"180 Ringing", b";tag=a", rr=True), a.dest, now)
        answered = core.receive(_response(n, ba, b"200 OK", b";tag=a", rr=True), a.dest, now)
        cancels = [x for x in answered if isinstance(x, SendRequest)]
        assert len(cancels) == 2
        for branch, dest in ((bb, b.dest), (bc, c.dest)):
            core.receive(_CANCEL_OK % (branch, n), dest, now)
            core.receive(_response(n, branch, b"487 Request Terminated", b";tag=z"), dest, now)
        core.handle_timer(now + 40.0)  # D, K, L, M: every transaction of this call ends


class _Recorder:
    """A core that writes down every call made to it."""

    def __init__(self, core: MidRegistrar, record: list[Input]) -> None:
        self.core = core
        self.record = record

    def receive(self, data: bytes, source: Endpoint, now: float) -> list[Action]:
        self.record.append((data, source, now))
        return self.core.receive(data, source, now)

    def handle_timer(self, now: float) -> list[Action]:
        self.record.append((None, UPSTREAM, now))
        return self.core.handle_timer(now)


def replay(core: MidRegistrar, inputs: list[Input]) -> None:
    """Feed ``inputs`` to ``core`` (the timed part: nothing but the core's own calls)."""
    receive = core.receive
    handle_timer = core.handle_timer
    for data, source, now in inputs:
        if data is None:
            handle_timer(now)
        else:
            receive(data, source, now)


# the templates as bytes with %-slots, so that building the 9 inputs costs the harness little
_INVITE = INVITE.replace("{n}", "%s").encode()
_RESPONSE = (RESPONSE.replace("{status}", "%s").replace("{branch}", "%s").replace("{n}", "%s")
             .replace("{rr}", "%s").replace("{tag}", "%s").replace("{method}", "INVITE")
             .replace("{contact}", "%s").encode())
_CANCEL_OK = CANCEL_OK.replace("{branch}", "%s").replace("{n}", "%s").encode()
_RR = RR.encode()
_CONTACT = b"Contact: <sip:bob@127.0.0.1:5201>\r\n"


def _branch(data: bytes) -> bytes:
    start = data.index(b"branch=", data.index(b"\r\nVia:")) + 7
    return data[start:data.index(b"\r\n", start)]


def _response(n: bytes, branch: bytes, status: bytes, tag: bytes, rr: bool = False) -> bytes:
    return _RESPONSE % (status, branch, n, n, _RR if rr else b"", tag, n,
                        _CONTACT if rr else b"")


def rate(fn: Callable[[], object], *, run_time: float) -> float:
    """Calls of ``fn`` per second over about ``run_time`` seconds (batch size calibrated)."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= run_time / 4:
            break
        n *= 4
    n = max(1, int(n * run_time / elapsed))
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def h11_parse() -> object:
    """The reference: a new h11 server connection parsing one request."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(HTTP_REQUEST)
    event = conn.next_event()
    assert isinstance(event, h11.Request)
    return event


def emit(key: str, value: float | int | str) -> None:
    if isinstance(value, float):
        value = f"{value:.0f}" if value >= 100 else f"{value:.3f}"
    print(f"{key}: {value}", flush=True)


def timed_forks(twin: Call, core: MidRegistrar, count: int) -> float:
    """Forks per second of ``core`` over ``count`` calls recorded on ``twin`` first."""
    inputs: list[Input] = []
    twin.record = inputs
    for _ in range(count):
        twin()
    t0 = time.perf_counter()
    replay(core, inputs)
    elapsed = time.perf_counter() - t0
    assert core.stats() == twin.core.stats(), "the measured core diverged from its twin"
    return count / elapsed


def main() -> None:
    core = make_core()
    twin = Call(make_core())
    count = max(100, int(0.4 * timed_forks(twin, core, 200)))  # about 0.4 s per round
    assert core.stats().transactions == 0, core.stats()
    # the machine is shared: measure the fork and the reference in alternating rounds and take
    # the median of the per-round ratios, so a load change hits both sides of a ratio alike
    forks: list[float] = []
    refs: list[float] = []
    ratios: list[float] = []
    for _ in range(ROUNDS):
        forks.append(timed_forks(twin, core, count))
        refs.append(rate(h11_parse, run_time=0.4))
        ratios.append(forks[-1] / refs[-1])
    stats = core.stats()
    assert stats.transactions == 0 and stats.internal_errors == 0
    assert (core.next_deadline() or 0.0) >= LIFETIME  # only the contacts' expiry is left
    ratio = statistics.median(ratios)
    emit("forks_per_s", statistics.median(forks))
    emit("messages_per_fork", 18)
    emit("messages_received_per_fork", 9)
    emit("messages_parsed_per_fork", 1)
    emit("h11_request_parse_per_s", statistics.median(refs))
    emit("fork_ratio_vs_h11", ratio)
    emit("fork_ratio_floor", FLOOR)
    emit("fork_ratio_ok", "yes" if ratio >= FLOOR else "no")


if __name__ == "__main__":
    main()
