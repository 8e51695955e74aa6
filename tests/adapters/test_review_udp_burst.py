"""A burst of REGISTERs over UDP (phones re-registering after an outage) must reach the core:
the adapters ask for large socket buffers for exactly this. anyio's UDP socket on asyncio keeps
received datagrams in a queue of 100 (a deque with maxlen) and silently throws the oldest away
when the server falls behind, whatever the kernel buffer holds: 3000 REGISTERs sent at once,
~300-400 never reached the core (every other backend: none). Datagrams the kernel itself drops
(its buffer full: /proc/net/udp counts them) are not the adapter's loss and are allowed for."""

from __future__ import annotations

import sys
import time

import pytest

from sansmidreg_adapters._common import ServerOptions

from ._support import LISTEN_UDP_TCP, LOOPBACK, Udp, make_core, register, serving

BURST = 3000


def kernel_drops(port: int) -> int:
    """Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:``port``."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/udp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1] == local:
                return int(fields[-1])
    raise AssertionError(f"no UDP socket on {LOOPBACK}:{port}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net/udp")
def test_a_burst_of_registers_reaches_the_core(backend: str, peers: tuple[Udp, Udp]) -> None:
    upstream, phone = peers
    core = make_core(upstream.endpoint)
    with serving(backend, core, ServerOptions(listen=LISTEN_UDP_TCP)) as (udp, _tcp):
        messages = [register(f"u{i}", 1, phone.port) for i in range(BURST)]
        for message in messages:  # as fast as the phone can
            phone.send(message, udp)
        deadline = time.monotonic() + 10.0
        seen = -1
        while (now := core.stats().registers_received) != seen:  # until it settles
            assert time.monotonic() < deadline
            seen = now
            time.sleep(0.5)
        dropped = kernel_drops(udp.port)
    assert seen == BURST - dropped, f"{BURST - dropped - seen} lost in the adapter"
