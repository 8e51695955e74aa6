"""The anyio adapter on asyncio and on trio (the ``anyio_backend`` fixture): started with
`await task_group.start(server.run)`, loopback only, port 0, `fail_after` on every test."""

from __future__ import annotations

import logging

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener

from sansmidreg import Endpoint
from sansmidreg_adapters._common import ListenError, ServerOptions
from sansmidreg_adapters.anyio_backend import AnyioServer

from ._support import (
    LISTEN_UDP_TCP,
    LOOPBACK,
    Messages,
    header,
    make_core,
    ok_for,
    register,
    status,
)
from .conftest import Tls

pytestmark = pytest.mark.anyio


async def udp_peer() -> anyio.abc.UDPSocket:
    return await anyio.create_udp_socket(local_host=LOOPBACK)


def port_of(sock: anyio.abc.UDPSocket) -> int:
    return sock.extra(anyio.abc.SocketAttribute.local_port)


async def read_message(stream: anyio.abc.ByteReceiveStream, messages: Messages) -> bytes:
    while (message := messages.pop()) is None:
        messages.feed(await stream.receive())
    return message


async def test_udp_relay_retransmit_absorb(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sansmidreg")
    with anyio.fail_after(5):
        async with await udp_peer() as upstream, await udp_peer() as phone:
            core = make_core(Endpoint(host=LOOPBACK, port=port_of(upstream)), t1=0.05)
            server = AnyioServer(core, ServerOptions(listen=LISTEN_UDP_TCP))
            async with anyio.create_task_group() as tg:
                udp, _tcp = await tg.start(server.run)
                await phone.sendto(register("alice", 1, port_of(phone)), LOOPBACK, udp.port)
                request, (host, port) = await upstream.receive()
                again, _ = await upstream.receive()  # timer E fired: the deadline works
                assert again == request
                await upstream.sendto(ok_for(request), host, port)
                assert status((await phone.receive())[0]) == 200
                await phone.sendto(register("alice", 2, port_of(phone)), LOOPBACK, udp.port)
                reply = (await phone.receive())[0]
                assert status(reply) == 200 and header(reply, "CSeq") == "2 REGISTER"
                assert core.stats().registers_absorbed == 1
                server.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert any("alice" in line and "relayed to" in line for line in lines)
    assert any("alice" in line and "absorbed" in line for line in lines)


async def test_tcp_phone_gets_pong_and_reply_on_its_connection() -> None:
    with anyio.fail_after(5):
        async with await udp_peer() as upstream:
            core = make_core(Endpoint(host=LOOPBACK, port=port_of(upstream)))
            server = AnyioServer(core, ServerOptions(listen=LISTEN_UDP_TCP))
            async with anyio.create_task_group() as tg:
                _udp, tcp = await tg.start(server.run)
                async with await anyio.connect_tcp(LOOPBACK, tcp.port) as stream:
                    await stream.send(b"\r\n\r\n")
                    assert await stream.receive() == b"\r\n"
                    local = stream.extra(anyio.abc.SocketAttribute.local_port)
                    await stream.send(register("bob", 1, local, transport="TCP"))
                    request, (host, port) = await upstream.receive()
                    await upstream.sendto(ok_for(request), host, port)
                    reply = await read_message(stream, Messages())
                    assert status(reply) == 200 and header(reply, "Call-ID") == "call-bob"
                server.stop()


async def test_tls_phone(tls: Tls) -> None:
    with anyio.fail_after(5):
        async with await udp_peer() as upstream:
            core = make_core(Endpoint(host=LOOPBACK, port=port_of(upstream)))
            listen = (Endpoint(host=LOOPBACK, port=0),
                      Endpoint(transport="tls", host=LOOPBACK, port=0))
            server = AnyioServer(core, ServerOptions(listen=listen, tls_server=tls.server()))
            async with anyio.create_task_group() as tg:
                _udp, tls_ep = await tg.start(server.run)
                async with await anyio.connect_tcp(LOOPBACK, tls_ep.port, tls=True,
                                                   ssl_context=tls.client(),
                                                   tls_standard_compatible=False) as stream:
                    await stream.send(register("carol", 1, 5061, transport="TLS"))
                    request, (host, port) = await upstream.receive()
                    await upstream.sendto(ok_for(request), host, port)
                    assert status(await read_message(stream, Messages())) == 200
                server.stop()


async def test_tcp_upstream_connection_is_reused() -> None:
    with anyio.fail_after(5):
        async with await anyio.create_tcp_listener(local_host=LOOPBACK) as registrar, \
                await udp_peer() as phone:
            up_port = registrar.extra(anyio.abc.SocketAttribute.local_port)
            up = Endpoint(transport="tcp", host=LOOPBACK, port=up_port)
            server = AnyioServer(make_core(up), ServerOptions(listen=LISTEN_UDP_TCP))
            accepted: list[anyio.abc.SocketStream] = []
            got_one = anyio.Event()

            async def registrar_side(stream: anyio.abc.SocketStream) -> None:
                async with stream:
                    accepted.append(stream)
                    got_one.set()
                    messages = Messages()
                    for _ in range(2):
                        await stream.send(ok_for(await read_message(stream, messages)))
                    await anyio.sleep_forever()

            async with anyio.create_task_group() as registrar_tasks:
                registrar_tasks.start_soon(registrar.serve, registrar_side)
                async with anyio.create_task_group() as tg:
                    udp, _tcp = await tg.start(server.run)
                    for user in ("dave", "erin"):
                        await phone.sendto(register(user, 1, port_of(phone)), LOOPBACK, udp.port)
                    replies = [(await phone.receive())[0] for _ in range(2)]
                    assert sorted(header(r, "Call-ID") or "" for r in replies) == [
                        "call-dave", "call-erin"]
                    await got_one.wait()
                    assert len(accepted) == 1  # both REGISTERs went over one connection
                    server.stop()
                registrar_tasks.cancel_scope.cancel()


async def test_port_in_use_is_a_clear_error() -> None:
    with anyio.fail_after(5):
        async with await udp_peer() as taken:
            core = make_core(Endpoint(host=LOOPBACK, port=5080))
            server = AnyioServer(core, ServerOptions(
                listen=(Endpoint(host=LOOPBACK, port=port_of(taken)),)))
            with pytest.raises(ListenError, match="(?i)address already in use"):
                await server.run()


async def test_tls_upstream(tls: Tls) -> None:
    """We open a TLS connection to the main registrar (tls_client) and relay over it."""
    with anyio.fail_after(5):
        async with await anyio.create_tcp_listener(local_host=LOOPBACK) as tcp, \
                await udp_peer() as phone:
            registrar = TLSListener(tcp, tls.server(), standard_compatible=False)
            up_port = tcp.extra(anyio.abc.SocketAttribute.local_port)
            up = Endpoint(transport="tls", host=LOOPBACK, port=up_port)
            options = ServerOptions(listen=LISTEN_UDP_TCP, tls_client=tls.client())
            server = AnyioServer(make_core(up), options)

            async def registrar_side(stream: anyio.abc.ByteStream) -> None:
                async with stream:
                    request = await read_message(stream, Messages())
                    assert (header(request, "Via") or "").startswith("SIP/2.0/TLS ")
                    await stream.send(ok_for(request))
                    await anyio.sleep_forever()

            async with anyio.create_task_group() as registrar_tasks:
                registrar_tasks.start_soon(registrar.serve, registrar_side)
                async with anyio.create_task_group() as tg:
                    udp, _tcp = await tg.start(server.run)
                    await phone.sendto(register("gail", 1, port_of(phone)), LOOPBACK, udp.port)
                    assert status((await phone.receive())[0]) == 200
                    server.stop()
                registrar_tasks.cancel_scope.cancel()
