"""The anyio adapter sends over its UDP socket from several tasks at once (each TCP connection's
reader, the UDP loop, the timer): anyio's UDP socket takes one writer at a time and raised
BusyResourceError for a second one, which ended the whole server (seen in
tests/integration/test_serve_fork_tcp.py: a device's message over TCP relayed over UDP while the
UDP loop was relaying another). Every message must go out and the server keep serving."""

from __future__ import annotations

import socket

import anyio
import anyio.abc
import pytest

from sansmidreg import Endpoint
from sansmidreg_adapters._common import ServerOptions
from sansmidreg_adapters.anyio_backend import AnyioServer

from ._support import LISTEN_UDP_TCP, LOOPBACK, header, make_core, register

pytestmark = pytest.mark.anyio

PHONES = 6


async def test_udp_relays_from_several_connections_at_once() -> None:
    """Six TCP phones' REGISTERs are readable at the same moment (sent with no await between
    them): their six reader tasks relay them to the main registrar over the one UDP socket
    together; all six arrive, and the server still answers a seventh afterwards."""
    with anyio.fail_after(5):
        async with await anyio.create_udp_socket(local_host=LOOPBACK) as upstream:
            up_port = upstream.extra(anyio.abc.SocketAttribute.local_port)
            server = AnyioServer(make_core(Endpoint(host=LOOPBACK, port=up_port)),
                                 ServerOptions(listen=LISTEN_UDP_TCP))
            phones: list[socket.socket] = []
            try:
                async with anyio.create_task_group() as tg:
                    _udp, tcp = await tg.start(server.run)
                    for _ in range(PHONES + 1):  # the kernel completes these connects
                        phones.append(socket.create_connection((LOOPBACK, tcp.port), 2.0))
                    await anyio.sleep(0.2)  # accepted: every reader task waits for data
                    for i, phone in enumerate(phones[:PHONES]):  # no await in between
                        port = phone.getsockname()[1]
                        phone.sendall(register(f"u{i}", 1, port, transport="TCP"))
                    relayed: set[str | None] = set()
                    while len(relayed) < PHONES:
                        data, _ = await upstream.receive()
                        relayed.add(header(data, "Call-ID"))
                    assert relayed == {f"call-u{i}" for i in range(PHONES)}
                    last = phones[PHONES]
                    last.sendall(register("late", 1, last.getsockname()[1], transport="TCP"))
                    data, _ = await upstream.receive()
                    assert header(data, "Call-ID") == "call-late"
                    server.stop()
            finally:
                for phone in phones:
                    phone.close()
