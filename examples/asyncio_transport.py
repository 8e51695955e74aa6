"""Build your own transport: sansmidreg on plain asyncio UDP (DatagramProtocol + loop.call_at).

    python examples/asyncio_transport.py 127.0.0.1:5060 127.0.0.1:5080 contact-throttling

The whole adapter contract: bytes in -> core.receive(); the deadline passes -> core.handle_timer();
execute every action it returns. The core never reads a clock: we hand it loop.time(), never
going backwards, and fire the timer with max(deadline, clock) so an early wake-up is not lost.
"""

from __future__ import annotations

import asyncio
import sys
from typing import assert_never, cast

from sansmidreg import (Action, ArmTimer, Config, Drop, Endpoint, Fork, MidRegistrar, Mode,
                        Reply, SendRequest, SendUpstream, SystemIds, parse_endpoint)


class MidRegistrarProtocol(asyncio.DatagramProtocol):
    def __init__(self, core: MidRegistrar) -> None:
        self.core, self.loop = core, asyncio.get_running_loop()
        self.transport: asyncio.DatagramTransport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.now = 0.0

    def clock(self, at_least: float = 0.0) -> float:
        self.now = max(self.now, self.loop.time(), at_least)
        return self.now

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        source = Endpoint(host=addr[0], port=addr[1])
        self.execute(self.core.receive(data, source, self.clock()))

    def on_timer(self, deadline: float) -> None:
        self.timer = None
        self.execute(self.core.handle_timer(self.clock(deadline)))

    def execute(self, actions: list[Action]) -> None:
        for action in actions:
            match action:
                case SendUpstream(data=data, dest=dest) | Reply(data=data, dest=dest):
                    self.send(data, dest)
                case SendRequest(data=data, dest=dest):
                    self.send(data, dest)
                case Fork(branches=branches):
                    for branch in branches:
                        self.send(branch.data, branch.dest)
                case ArmTimer(at=at):  # only the latest one counts: one timer, re-armed
                    if self.timer is not None:
                        self.timer.cancel()
                    self.timer = None if at is None else self.loop.call_at(at, self.on_timer, at)
                case Drop(reason=reason, detail=detail):
                    print(f"dropped ({reason}): {detail}", file=sys.stderr)
                case _:
                    assert_never(action)

    def send(self, data: bytes, dest: Endpoint) -> None:
        if dest.transport == "udp" and self.transport is not None:  # this example: UDP only
            self.transport.sendto(data, (dest.host, dest.port))


async def serve(listen: Endpoint, upstream: Endpoint, mode: Mode) -> None:
    core = MidRegistrar(Config(mode=mode, local=(listen,), upstream=upstream), ids=SystemIds())
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        lambda: MidRegistrarProtocol(core), local_addr=(listen.host, listen.port))
    try:
        await asyncio.Future()  # serve until cancelled
    finally:
        transport.close()


if __name__ == "__main__":
    listen_arg, upstream_arg, mode_arg = (sys.argv[1:] + ["", "", ""])[:3]
    asyncio.run(serve(parse_endpoint(listen_arg or "127.0.0.1:5060"),
                      parse_endpoint(upstream_arg or "127.0.0.1:5080"),
                      Mode.parse(mode_arg or "mirror")))
