# Upstream traffic reduction (issue 3, deliverable 8): 10k simulated UAs refreshing every 60 s
# (Expires 120, random phases, 3 devices per AOR, 5% churn per hour: a device leaves -- half of
# them with an un-REGISTER, half silently -- and a new one joins its AOR) for 3 simulated hours,
# through a real MidRegistrar core and the simulated RFC 3261 main registrar of tests/sim, on a
# virtual clock (every core deadline fired at its time), with real bytes both ways.
#
# Printed per mode: UA REGISTERs per hour, REGISTERs we sent upstream per hour (relays and our
# own de-REGISTERs), and the share absorbed, counted after a 60 s warm-up in which every device
# registers for the first time. Invariant (a) of issue 3 (every live local contact reachable
# through an upstream binding that lives as long) is checked every simulated minute:
# `invariant_violations` must be 0. Mirror mode relays every REGISTER by definition, so it is
# simulated for a shorter time (printed) to keep the run short. The modes run in parallel
# processes. Run: python benchmarks/bench_reduction.py (a few minutes).
from __future__ import annotations

import heapq
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import emit
from sim import Invariants, SimMainRegistrar

from sansmidreg import (
    Action,
    Config,
    Endpoint,
    MidRegistrar,
    Mode,
    Reply,
    SeededIds,
    SendUpstream,
)

UAS = 10_000
PER_AOR = 3
HOURS = 3.0
MIRROR_HOURS = 0.25
REFRESH = 60.0
DEVICE_EXPIRES = 120
CHURN_PER_HOUR = 0.05
WARMUP = 60.0


@dataclass(slots=True)
class Device:
    index: int
    user: str
    endpoint: Endpoint
    call_id: str
    cseq: int = 0
    alive: bool = True

    def register(self, expires: int) -> bytes:
        self.cseq += 1
        host, port = self.endpoint.host, self.endpoint.port
        return (f"REGISTER sip:example.test SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{self.index}x{self.cseq};rport\r\n"
                f"Max-Forwards: 70\r\n"
                f"From: <sip:{self.user}@example.test>;tag=f{self.index}\r\n"
                f"To: <sip:{self.user}@example.test>\r\n"
                f"Call-ID: {self.call_id}\r\n"
                f"CSeq: {self.cseq} REGISTER\r\n"
                f"Contact: <sip:{self.user}@{host}:{port}>\r\n"
                f"Expires: {expires}\r\n"
                f"Content-Length: 0\r\n\r\n").encode()


@dataclass(slots=True)
class World:
    """A core, the simulated main registrar and the devices on one virtual clock."""

    config: Config
    core: MidRegistrar
    registrar: SimMainRegistrar
    now: float = 0.0
    ua_registers: int = 0
    upstream: int = 0
    replies_not_ok: int = 0
    counting: bool = False
    events: list[tuple[float, int, str, Device | None]] = field(default_factory=list)
    seq: int = 0

    def at(self, when: float, kind: str, device: Device | None = None) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, kind, device))

    def send(self, device: Device, expires: int) -> None:
        if self.counting:
            self.ua_registers += 1
        self.execute(self.core.receive(device.register(expires), device.endpoint, self.now))

    def execute(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, SendUpstream):
                if self.counting:
                    self.upstream += 1
                answer = self.registrar.receive(action.data, self.now)
                if answer is not None:
                    self.execute(self.core.receive(answer, self.registrar.endpoint, self.now))
            elif isinstance(action, Reply) and not action.data.startswith(b"SIP/2.0 200 "):
                self.replies_not_ok += 1


def simulate(mode_name: str) -> dict[str, float]:
    mode = Mode(mode_name)
    hours = MIRROR_HOURS if mode is Mode.MIRROR else HOURS
    rng = random.Random(2024)
    config = Config(mode=mode, outgoing_expires=3600, max_expires=3600, min_expires=10,
                    max_aors=100_000)
    world = World(config=config, core=MidRegistrar(config, ids=SeededIds(5)),
                  registrar=SimMainRegistrar(expires_header=False))
    invariants = Invariants()
    devices: list[Device] = []

    def new_device(user: str) -> Device:
        i = len(devices)
        endpoint = Endpoint(host=f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", port=5060)
        device = Device(index=i, user=user, endpoint=endpoint, call_id=f"{i}-reg@{endpoint.host}")
        devices.append(device)
        return device

    for i in range(UAS):
        world.at(rng.uniform(0.0, REFRESH), "refresh", new_device(f"u{i // PER_AOR}"))
    end = hours * 3600.0
    for _ in range(int(UAS * CHURN_PER_HOUR * hours)):
        world.at(rng.uniform(WARMUP, end), "churn")
    t = REFRESH
    while t <= end:
        world.at(t, "check")
        t += REFRESH
    world.at(WARMUP, "count")

    started = time.process_time()
    core = world.core
    while world.events:
        deadline = core.next_deadline()
        if deadline is not None and deadline <= world.events[0][0]:
            world.now = max(world.now, deadline)
            world.execute(core.handle_timer(world.now))
            continue
        when, _, kind, device = heapq.heappop(world.events)
        if when > end:
            break
        world.now = when
        if kind == "refresh":
            assert device is not None
            if device.alive:
                world.send(device, DEVICE_EXPIRES)
                world.at(when + REFRESH, "refresh", device)
        elif kind == "churn":
            leaving = rng.choice(devices)
            while not leaving.alive:
                leaving = rng.choice(devices)
            leaving.alive = False
            if rng.random() < 0.5:
                world.send(leaving, 0)
            world.at(when + rng.uniform(0.0, REFRESH), "refresh", new_device(leaving.user))
        elif kind == "check":
            invariants.reachable(world)
        elif kind == "count":
            world.counting = True
    counted_hours = (end - WARMUP) / 3600.0
    return {
        "hours": hours,
        "ua_per_hour": world.ua_registers / counted_hours,
        "upstream_per_hour": world.upstream / counted_hours,
        "violations": float(len(invariants.violations)),
        "not_ok": float(world.replies_not_ok),
        "cpu_s": time.process_time() - started,
        "internal_errors": float(core.stats().internal_errors),
    }


def main() -> None:
    t0 = time.perf_counter()
    modes = [Mode.MIRROR, Mode.CONTACT_THROTTLING, Mode.AOR_THROTTLING]
    jobs = 1 if "--serial" in sys.argv else 3
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        results = dict(zip(modes, pool.map(simulate, [m.value for m in modes])))
    violations = 0.0
    for mode, r in results.items():
        key = mode.value.replace("-", "_")
        emit(f"ua_registers_per_hour_{key}", r["ua_per_hour"])
        emit(f"upstream_registers_per_hour_{key}", r["upstream_per_hour"])
        emit(f"absorbed_pct_{key}", 100.0 * (1.0 - r["upstream_per_hour"] / r["ua_per_hour"]))
        emit(f"simulated_hours_{key}", r["hours"])
        emit(f"cpu_seconds_{key}", r["cpu_s"])
        violations += r["violations"] + r["internal_errors"] + r["not_ok"]
    emit("invariant_violations", int(violations))
    emit("elapsed_s", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
