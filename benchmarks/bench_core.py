# Benchmark of the registrar core (issue 3, deliverable 7), contact-throttling mode, every figure
# through MidRegistrar.receive()/handle_timer() with real bytes:
# - first_registration_per_s: a device's first REGISTER relayed upstream plus the main
#   registrar's 200 OK applied and answered (the core's CPU time for both, per device);
# - absorbed_refresh_per_s: refreshes answered locally with 100k registered contacts, in random
#   order over the 100k, each parsed, decided and answered with serialized bytes;
# - bytes_per_contact_100k / _1m: RSS delta (not tracemalloc: the figure an operator sees)
#   of building the table through the real path, per contact, transactions already ended;
# - throughput_1m_vs_10k: absorbed rate with 1M contacts / with 10k;
# - expire_100k_seconds: one handle_timer() call expiring 100k contacts (each one's upstream
#   de-REGISTER built and sent);
# - h11_request_parse_per_s (benchmarks/_common.py) measured in the same run, and the ratio.
# Rates are medians of several runs in process CPU time. Run: python benchmarks/bench_core.py
# (about 2-3 minutes, ~3 GB of memory for the 1M table). `--quick` skips the 1M table.
from __future__ import annotations

import gc
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, h11_request_parse_per_s

from sansmidreg import Config, Endpoint, MidRegistrar, Mode, Reply, SeededIds

CONFIG = Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=86400, max_expires=86400,
                max_aors=2_000_000)
UPSTREAM = CONFIG.upstream
DEVICE_EXPIRES = 7200
CHUNK = 500
STEP = 0.002
"""Virtual seconds between two first registrations (500/s: 1M devices in 2000 s)."""
_clock = time.process_time


def _host(i: int) -> str:
    return f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"


def register(i: int, cseq: int, tag: str) -> bytes:
    """Device i's REGISTER (a SIPp-like phone behind its own address)."""
    h = _host(i)
    return (f"REGISTER sip:example.test SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {h}:5060;branch=z9hG4bK{tag}{i}x{cseq};rport\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: <sip:u{i}@example.test>;tag=f{i}\r\n"
            f"To: <sip:u{i}@example.test>\r\n"
            f"Call-ID: {i}-reg@{h}\r\n"
            f"CSeq: {cseq} REGISTER\r\n"
            f"Contact: <sip:u{i}@{h}:5060>\r\n"
            f"Expires: {DEVICE_EXPIRES}\r\n"
            f"User-Agent: bench-phone/1.0\r\n"
            f"Content-Length: 0\r\n\r\n").encode()


def source(i: int) -> Endpoint:
    return Endpoint(host=_host(i), port=5060)


def upstream_ok(relayed: bytes) -> bytes:
    """The main registrar's 200 OK to a relayed REGISTER (Via stack, From, To with a tag,
    Call-ID, CSeq, the Contact with its ;expires), cut from the relayed bytes."""
    via0 = relayed.index(b"\r\nVia: ") + 2
    mf = relayed.index(b"\r\nMax-Forwards")
    frm = relayed.index(b"\r\nFrom: ") + 2
    to_end = relayed.index(b"\r\nCall-ID")
    ct = relayed.index(b"\r\nContact: ") + 2
    ct_end = relayed.index(b"\r\n", ct)
    return b"".join((b"SIP/2.0 200 OK\r\n", relayed[via0:mf + 2], relayed[frm:to_end],
                     b";tag=mr1", relayed[to_end:ct], relayed[ct:ct_end],
                     b"\r\nServer: bench-main-registrar\r\nContent-Length: 0\r\n\r\n"))


def build(core: MidRegistrar, n: int, *, freeze: bool = False) -> tuple[float, float]:
    """Register devices 0..n-1 through the real path, one at a time, STEP virtual seconds apart
    (so that only the transactions of the last 32 s are alive, as in a real deployment), with
    handle_timer() ticks in between; (the core's seconds for it all, the virtual time at the
    end). With ``freeze``, gc.freeze() every 50k devices keeps CPython's full collections from
    re-walking the table built so far (what a long-running server embedding the core would do
    too); the 1M build uses it to stay within a couple of minutes."""
    spent = 0.0
    clock = _clock  # CPU time: other processes on the machine do not count
    receive = core.receive
    now = 0.0
    for i in range(n):
        request = register(i, 1, "r")
        src = source(i)
        t0 = clock()
        relayed = receive(request, src, now)[0]
        t1 = clock()
        answer = upstream_ok(relayed.data)  # type: ignore[union-attr]
        t2 = clock()
        receive(answer, UPSTREAM, now)
        if i % 500 == 499:
            core.handle_timer(now)
            if freeze and i % 50_000 == 49_999:
                gc.freeze()
        spent += (t1 - t0) + (clock() - t2)
        now += STEP
    t0 = clock()
    now += 40.0
    core.handle_timer(now)  # the last server (timer J) and client (timer K) transactions end
    return spent + clock() - t0, now


def absorbed_rate(core: MidRegistrar, population: int, count: int, runs: int, now: float,
                  rng: random.Random) -> float:
    """Median refreshes/s answered locally, ``count`` random devices per run. Requests are
    built in chunks of CHUNK just before they are fed (a datagram that just arrived is in the
    cache; the contacts it refreshes, picked at random over the population, are not)."""
    results = []
    before = core.stats()
    receive = core.receive
    for run in range(runs):
        chosen = rng.sample(range(population), count)
        cseq = 2 + run
        spent = 0.0
        for start in range(0, count, CHUNK):
            requests = [(register(i, cseq, "a"), source(i)) for i in chosen[start:start + CHUNK]]
            t0 = _clock()
            for data, src in requests:
                receive(data, src, now)
            spent += _clock() - t0
        results.append(count / spent)
        now += 1.0
    after = core.stats()
    assert after.registers_absorbed - before.registers_absorbed == runs * count, after
    assert after.registers_relayed == before.registers_relayed
    return statistics.median(results)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def table(n: int, *, freeze: bool = False) -> tuple[MidRegistrar, float, int, float]:
    """A core holding n contacts: (core, first-registration seconds, RSS delta bytes, now)."""
    gc.collect()
    before = rss_bytes()
    core = MidRegistrar(CONFIG, ids=SeededIds(7))
    spent, now = build(core, n, freeze=freeze)
    gc.collect()
    stats = core.stats()
    assert stats.contacts == n and stats.transactions == 0, stats
    return core, spent, rss_bytes() - before, now


def main() -> None:
    quick = "--quick" in sys.argv
    rng = random.Random(1)
    t_start = time.perf_counter()
    h11 = [h11_request_parse_per_s()]

    core, _, _, now = table(10_000)
    rate_10k = absorbed_rate(core, 10_000, 10_000, 5, now, rng)
    del core

    core, spent, rss, now = table(100_000)
    first = 100_000 / spent
    rate_100k = absorbed_rate(core, 100_000, 100_000, 5, now, rng)
    h11.append(h11_request_parse_per_s())
    t0 = _clock()
    # every device expired (7200 s after its last refresh), every upstream binding alive (86400 s)
    actions = core.handle_timer(now + DEVICE_EXPIRES + 10.0)
    expire = _clock() - t0
    assert core.stats().contacts == 0 and core.stats().deregisters_sent == 100_000
    assert sum(1 for a in actions if not isinstance(a, Reply)) >= 100_000
    del core, actions
    gc.collect()

    h11_rate = statistics.median(h11)
    emit("h11_request_parse_per_s", h11_rate)
    emit("first_registration_per_s", first)
    emit("absorbed_refresh_per_s", rate_100k)
    emit("absorbed_ratio_vs_h11", rate_100k / h11_rate)
    emit("absorbed_refresh_10k_per_s", rate_10k)
    emit("bytes_per_contact_100k", rss / 100_000)
    emit("expire_100k_seconds", expire)
    if not quick:
        core, spent, rss, now = table(1_000_000, freeze=True)
        emit("first_registration_1m_per_s", 1_000_000 / spent)
        emit("bytes_per_contact_1m", rss / 1_000_000)
        rate_1m = absorbed_rate(core, 1_000_000, 100_000, 5, now, rng)
        emit("absorbed_refresh_1m_per_s", rate_1m)
        emit("throughput_1m_vs_10k", rate_1m / rate_10k)
    emit("memory_method", "rss_delta")
    emit("gc_freeze_during_1m_build", "yes" if not quick else "n/a")
    emit("elapsed_s", time.perf_counter() - t_start)


if __name__ == "__main__":
    main()
