"""End-to-end REGISTER load (issue 5 §4): SIPp -> `sansmidreg serve --backend sockets` (contact
throttling, long outgoing_expires) -> Kamailio, and in the same run SIPp -> Kamailio directly as
the reference. Loopback only, every process stopped by PID, under 5 minutes.

Each series ramps the offered rate in steps of STEP_SECONDS (refresh steps: at most POOL
REGISTERs, so at least 1 s) until more than 1% of the REGISTERs fail (no 200 within 2 s; SIPp
does not retransmit). A step's rate is what was served: successful REGISTERs / wall time of the
SIPp run; a series' sustained rate is the best step at <= 1% failures.
Series: Kamailio's first registrations (fresh users each step: the reference); our first
registrations (relayed: fresh users); our absorbed refreshes (a pre-registered pool, refreshed
with the same Call-IDs and a higher CSeq each step). Users come from an injection CSV file.

Prints `key: value` lines (DESIGN.md §7), the floor check, and the in-process rate of the core
alone on the same absorbed refreshes (what the adapter and the OS add is the difference).
``--profile`` also runs one refresh load under cProfile and prints where the server's time goes.

    python benchmarks/bench_e2e.py [--profile]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]
SCENARIO: Final = REPO / "interop" / "scenarios" / "reg_bench.xml"
KAMAILIO_CFG: Final = REPO / "interop" / "kamailio-main.cfg"
LOOPBACK: Final = "127.0.0.1"
STEP_SECONDS: Final = 2.0
MAX_FAIL: Final = 0.01
RATES: Final = (1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000, 11000, 12000,
                14000, 16000, 18000, 20000, 22000, 25000, 30000, 35000, 40000, 45000, 50000)
POOL: Final = 50000
BUDGET: Final = 270.0  # seconds: stop ramping when the whole run would pass 5 minutes


def tool(name: str) -> str:
    found = shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/sbin") if os.access(p := f"{d}/{name}", os.X_OK)), None)
    if found is None:
        sys.exit(f"bench_e2e: {name} is not installed (apt-get install kamailio sip-tester)")
    return found


def free_port() -> int:
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind((LOOPBACK, 0))
            port: int = udp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind((LOOPBACK, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def answers_options(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.settimeout(0.3)
        me = sock.getsockname()[1]
        sock.sendto((f"OPTIONS sip:{LOOPBACK}:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {LOOPBACK}:{me}"
                     f";branch=z9hG4bKbench{me}{time.monotonic_ns()}\r\nMax-Forwards: 70\r\n"
                     f"From: <sip:bench@{LOOPBACK}>;tag=b\r\nTo: <sip:{LOOPBACK}:{port}>\r\n"
                     f"Call-ID: bench-{me}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
                     ).encode(), (LOOPBACK, port))
        try:
            return sock.recv(65535).startswith(b"SIP/2.0 ")
        except (TimeoutError, ConnectionRefusedError):
            return False


class Proc:
    """A process in its own session, stopped by PID (SIGTERM, then SIGKILL to its group)."""

    def __init__(self, argv: list[str], log: Path, cwd: Path) -> None:
        self.log = log
        with open(log, "wb") as out:
            self.popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, cwd=cwd,
                                          start_new_session=True)

    def wait_ready(self, port: int, what: str, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while not answers_options(port):
            if self.popen.poll() is not None or time.monotonic() > end:
                self.stop()
                sys.exit(f"bench_e2e: {what} did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


@dataclass(frozen=True)
class Step:
    offered: int
    calls: int
    ok: int
    failed: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.ok / self.seconds

    @property
    def fail_ratio(self) -> float:
        return (self.calls - self.ok) / self.calls


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.sipp = tool("sipp")
        self.started = time.monotonic()
        self.files = 0

    def users(self, prefix: str, count: int) -> Path:
        self.files += 1
        path = self.work / f"users-{self.files}.csv"
        path.write_text("SEQUENTIAL\n" + "".join(f"{prefix}{i}\n" for i in range(count)))
        return path

    def run_sipp(self, target: int, users: Path, *, rate: int, calls: int, cid: str, cseq: int,
                 port: int) -> Step:
        argv = [self.sipp, f"{LOOPBACK}:{target}", "-sf", str(SCENARIO), "-inf", str(users),
                "-key", "cseq", str(cseq), "-cid_str", cid, "-m", str(calls), "-r", str(rate),
                "-l", "200000", "-i", LOOPBACK, "-p", str(port), "-mi", LOOPBACK, "-ci", LOOPBACK,
                "-nostdin", "-timeout", "60s", "-timeout_error", "-buff_size", str(1 << 23)]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=self.work, capture_output=True, text=True, timeout=90,
                              check=False)
        seconds = time.monotonic() - started
        ok = _count(done.stdout, "Successful call")
        failed = _count(done.stdout, "Failed call")
        if ok + failed == 0:
            sys.exit(f"bench_e2e: SIPp failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
        return Step(rate, calls, ok, failed, seconds)

    def settle(self, port: int, timeout: float = 40.0) -> None:
        """Wait until a server has worked off its backlog (an overloaded step leaves queued
        datagrams and retransmissions behind): two OPTIONS answered within 50 ms in a row."""
        end, quick = time.monotonic() + timeout, 0
        while quick < 2 and time.monotonic() < end:
            started = time.monotonic()
            answered = answers_options(port)
            quick = quick + 1 if answered and time.monotonic() - started < 0.05 else 0
            time.sleep(0.1)

    def ramp(self, name: str, target: int, *, fresh: bool, port: int,
             pool: Path | None = None) -> float:
        """Offer RATES in turn; return the best served rate of the steps with <= 1% failures."""
        best, cseq = 0.0, 1
        for step_no, rate in enumerate(RATES):
            if time.monotonic() - self.started > BUDGET:
                print(f"# {name}: time budget reached")
                break
            calls = int(rate * STEP_SECONDS) if fresh else min(int(rate * STEP_SECONDS), POOL)
            if fresh:
                users, cid = self.users(f"{name[:1]}{step_no}u", calls), f"{name[:1]}{step_no}-%u"
            else:
                assert pool is not None  # (a step lasts at least POOL / rate >= 1 s)
                users, cid, cseq = pool, "pool-%u", cseq + 1
            step = self.run_sipp(target, users, rate=rate, calls=calls, cid=cid, cseq=cseq,
                                 port=port)
            print(f"# {name}: offered {rate}/s -> served {step.rate:.0f}/s, "
                  f"{100 * step.fail_ratio:.2f}% failed ({step.calls - step.ok} of {step.calls})")
            if step.fail_ratio > MAX_FAIL:
                break
            best = max(best, step.rate)
        self.settle(target)
        return best


def _count(screen: str, label: str) -> int:
    rows = re.findall(rf"^\s*{label}\s*\|[^|]*\|\s*(\d+)", screen, re.M)
    return int(rows[-1]) if rows else 0


def core_only_rate(users: int = 20000) -> float:
    """The core alone, in process: absorbed refreshes per second (no sockets)."""
    from sansmidreg import Config, Endpoint, MidRegistrar, Mode, SeededIds, SendUpstream

    up = Endpoint(host=LOOPBACK, port=5080)
    core = MidRegistrar(Config(mode=Mode.CONTACT_THROTTLING, outgoing_expires=3600, upstream=up,
                               local=(Endpoint(host=LOOPBACK, port=5060),)), ids=SeededIds(1))
    phone = Endpoint(host=LOOPBACK, port=5999)

    def register(i: int, cseq: int) -> bytes:
        return (f"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch="
                f"z9hG4bK{i}x{cseq}\r\nMax-Forwards: 70\r\nFrom: <sip:u{i}@example.test>;tag=t{i}"
                f"\r\nTo: <sip:u{i}@example.test>\r\nCall-ID: c{i}\r\nCSeq: {cseq} REGISTER\r\n"
                f"Contact: <sip:u{i}@127.0.0.1:5999>\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
                ).encode()

    now = 1.0
    for i in range(users):  # first registrations, answered 200 by a fake main registrar
        actions = core.receive(register(i, 1), phone, now)
        relayed = [a for a in actions if isinstance(a, SendUpstream)]
        if len(relayed) != 1:
            raise RuntimeError(f"the core did not relay a first REGISTER: {actions!r}")
        head = relayed[0].data.split(b"\r\n\r\n")[0].split(b"\r\n")
        keep = [h for h in head[1:] if h.split(b":")[0].lower() in
                (b"via", b"from", b"to", b"call-id", b"cseq", b"contact")]
        answer = b"SIP/2.0 200 OK\r\n" + b"\r\n".join(
            h + b";tag=k" if h.lower().startswith(b"to:") else h for h in keep)
        core.receive(answer + b"\r\nContent-Length: 0\r\n\r\n", up, now)
    messages = [register(i, 2) for i in range(users)]
    now = 2.0
    started = time.perf_counter()
    for message in messages:
        core.receive(message, phone, now)
    rate = users / (time.perf_counter() - started)
    assert core.stats().registers_absorbed == users
    return rate


_PROFILED_SERVE: Final = """\
import cProfile, signal, sys
from sansmidreg_adapters.cli import main
profiler = cProfile.Profile()
signal.signal(signal.SIGUSR2, lambda *_: profiler.enable())  # profile from here on
try:
    main(sys.argv[2:])
finally:
    profiler.disable()
    profiler.dump_stats(sys.argv[1])
"""


def _group(filename: str, function: str) -> str | None:
    """Which part of the server a profiled function belongs to (None: its caller's part)."""
    if "sansmidreg_adapters" in filename or filename.endswith("selectors.py"):
        return "adapter"
    if "/sansmidreg/" in filename:
        return "core"
    if "'sendto'" in function or "'recvfrom'" in function:
        return "socket syscalls"
    if "'poll'" in function:
        return "idle (epoll wait)"
    return None


def profile(bench: Bench, kamailio: int, seconds: float = 4.0, rate: int = 6000) -> None:
    """Serve absorbed refreshes at a fixed rate with cProfile on; print where the time goes
    (functions of other modules and builtins are charged to the part that called them)."""
    import pstats

    port, out, script = free_port(), bench.work / "serve.prof", bench.work / "profiled.py"
    script.write_text(_PROFILED_SERVE)
    server = Proc([sys.executable, str(script), str(out), "serve", "--listen",
                   f"udp:{LOOPBACK}:{port}", "--upstream", f"{LOOPBACK}:{kamailio}",
                   "--mode", "contact-throttling", "--outgoing-expires", "3600",
                   "--log-level", "warning"], bench.work / "serve-profile.log", bench.work)
    server.wait_ready(port, "sansmidreg serve (profiled)")
    calls = int(rate * seconds)
    pool = bench.users("prof", calls)
    phone = free_port()
    bench.run_sipp(port, pool, rate=2000, calls=calls, cid="prof-%u", cseq=1, port=phone)
    os.kill(server.popen.pid, signal.SIGUSR2)
    step = bench.run_sipp(port, pool, rate=rate, calls=calls, cid="prof-%u", cseq=2, port=phone)
    server.stop()
    stats = pstats.Stats(str(out))
    raw = stats.stats  # type: ignore[attr-defined]
    groups: dict[str, float] = {"core": 0.0, "adapter": 0.0, "socket syscalls": 0.0,
                                "idle (epoll wait)": 0.0, "other": 0.0}
    for (filename, _line, function), (_cc, _nc, tottime, _ct, callers) in raw.items():
        group = _group(filename, function)
        if group is not None:
            groups[group] += tottime
            continue
        weights = {_group(c[0], c[2]) or "other": 0.0 for c in callers}
        for caller, (_, _, caller_tt, _) in callers.items():
            weights[_group(caller[0], caller[2]) or "other"] += caller_tt
        total = sum(weights.values())
        for name, weight in weights.items():
            groups[name] += tottime * (weight / total if total else 1 / len(weights))
    busy = sum(v for k, v in groups.items() if not k.startswith("idle")) or 1.0
    print(f"# profile: absorbed refreshes, {step.rate:.0f}/s served under cProfile (offered "
          f"{rate}/s, {100 * step.fail_ratio:.1f}% failed)")
    for name, spent in groups.items():
        share = "" if name.startswith("idle") else f", {100 * spent / busy:.0f}% of busy time"
        print(f"# profile: {name}: {spent:.2f} s{share}")
        if not name.startswith("idle"):
            print(f"profile_{name.split()[0]}_share: {spent / busy:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--profile", action="store_true", help="also profile the server")
    args = parser.parse_args()
    kamailio_bin = tool("kamailio")
    work = Path(tempfile.mkdtemp(prefix="smr-bench-", dir="/tmp"))
    bench = Bench(work)
    kam_port, us_port = free_port(), free_port()
    rundir = work / "kam"
    rundir.mkdir()
    kamailio = Proc([kamailio_bin, "-DD", "-E", "-f", str(KAMAILIO_CFG), "-Y", str(rundir),
                     "-m", "512", "-A", f"MAIN_PORT={kam_port}",
                     "-A", f'CTL_SOCK="unix:{rundir}/ctl.sock"'], work / "kamailio.log", rundir)
    procs = [kamailio]
    try:
        kamailio.wait_ready(kam_port, "kamailio")
        server = Proc([sys.executable, "-m", "sansmidreg_adapters.cli", "serve", "--listen",
                       f"udp:{LOOPBACK}:{us_port}", "--upstream", f"{LOOPBACK}:{kam_port}",
                       "--mode", "contact-throttling", "--outgoing-expires", "3600",
                       "--backend", "sockets", "--log-level", "warning"],
                      work / "serve.log", work)
        procs.append(server)
        server.wait_ready(us_port, "sansmidreg serve")
        direct = bench.ramp("kamailio-direct", kam_port, fresh=True, port=free_port())
        first = bench.ramp("first-via-us", us_port, fresh=True, port=free_port())
        phone = free_port()
        pool = bench.users("pool", POOL)
        pre_rate = max(1000, min(4000, int(first * 0.6)))
        for attempt in range(3):  # the refresh series needs every pool user registered
            step = bench.run_sipp(us_port, pool, rate=pre_rate, calls=POOL, cid="pool-%u",
                                  cseq=1, port=phone)
            print(f"# pool: {step.ok} of {POOL} users registered through us at {pre_rate}/s")
            bench.settle(us_port)
            if step.ok == POOL:
                break
            pre_rate //= 2  # again, slower: registered ones are absorbed, the rest relayed
        absorbed = bench.ramp("absorbed-via-us", us_port, fresh=False, port=phone, pool=pool)
        if args.profile:
            profile(bench, kam_port)
    finally:
        for proc in reversed(procs):
            proc.stop()
    core_rate = core_only_rate()
    print(f"absorbed_refresh_rate_via_us: {absorbed:.0f}")
    print(f"first_registration_rate_via_us: {first:.0f}")
    print(f"kamailio_direct_rate: {direct:.0f}")
    print(f"absorbed_ratio_vs_kamailio: {absorbed / direct:.2f}" if direct else
          "absorbed_ratio_vs_kamailio: nan")
    print(f"first_registration_ratio_vs_kamailio: {first / direct:.2f}" if direct else
          "first_registration_ratio_vs_kamailio: nan")
    print(f"core_only_absorbed_rate: {core_rate:.0f}")
    print(f"floor_met: {'yes' if direct and absorbed >= direct else 'no'}"
          " (absorbed refreshes through us >= Kamailio's direct first registrations)")
    print(f"elapsed_seconds: {time.monotonic() - bench.started:.0f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
