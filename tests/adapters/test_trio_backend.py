"""The trio adapter on trio (pytest-trio): `await nursery.start(server.run)`, loopback only,
port 0, `fail_after` on every test; a MockClock (running at real speed, jumped by the test) for
the deadline that is minutes away."""

from __future__ import annotations

import logging
import socket

import pytest
import trio
import trio.testing

from sansmidreg import Endpoint, Mode
from sansmidreg_adapters._common import ListenError, ServerOptions
from sansmidreg_adapters.trio_backend import TrioServer

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


async def udp_peer() -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind((LOOPBACK, 0))
    return sock


def port_of(sock: trio.socket.SocketType) -> int:
    port: int = sock.getsockname()[1]
    return port


async def read_message(stream: trio.abc.Stream, messages: Messages) -> bytes:
    while (message := messages.pop()) is None:
        messages.feed(await stream.receive_some(65536))
    return message


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(rate=1.0)


@pytest.mark.trio
async def test_udp_relay_retransmit_absorb() -> None:
    with trio.fail_after(5):
        with await udp_peer() as upstream, await udp_peer() as phone:
            core = make_core(Endpoint(host=LOOPBACK, port=port_of(upstream)), t1=0.05)
            server = TrioServer(core, ServerOptions(listen=LISTEN_UDP_TCP))
            async with trio.open_nursery() as nursery:
                udp, _tcp = await nursery.start(server.run)
                to_us = (LOOPBACK, udp.port)
                await phone.sendto(register("alice", 1, port_of(phone)), to_us)
                request, addr = await upstream.recvfrom(65536)
                again, _ = await upstream.recvfrom(65536)  # timer E fired: the deadline works
                assert again == request
                await upstream.sendto(ok_for(request), addr)
                assert status((await phone.recvfrom(65536))[0]) == 200
                await phone.sendto(register("alice", 2, port_of(phone)), to_us)
                reply = (await phone.recvfrom(65536))[0]
                assert status(reply) == 200 and header(reply, "CSeq") == "2 REGISTER"
                assert core.stats().registers_absorbed == 1
                server.stop()


@pytest.mark.trio
async def test_tcp_phone_gets_pong_and_reply_on_its_connection() -> None:
    with trio.fail_after(5):
        with await udp_peer() as upstream:
            core = make_core(Endpoint(host=LOOPBACK, port=port_of(upstream)))
            server = TrioServer(core, ServerOptions(listen=LISTEN_UDP_TCP))
            async with trio.open_nursery() as nursery:
                _udp, tcp = await nursery.start(server.run)
                stream = await trio.open_tcp_stream(LOOPBACK, tcp.port)
                await stream.send_all(b"\r\n\r\n")
                assert await stream.receive_some(16) == b"\r\n"
                local = stream.socket.getsockname()[1]
                await stream.send_all(register("bob", 1, local, transport="TCP"))
                request, addr = await upstream.recvfrom(65536)
                await upstream.sendto(ok_for(request), addr)
                reply = await read_message(stream, Messages())
                assert status(reply) == 200 and header(reply, "Call-ID") == "call-bob"
                await stream.aclose()
                server.stop()


@pytest.mark.trio
async def test_tls_phone(tls: Tls) -> None:
    with trio.fail_after(5):
        with await udp_peer() as upstream:
            core = make_core(Endpoint(host=LOOPBACK, port=port_of(upstream)))
            listen = (Endpoint(host=LOOPBACK, port=0),
                      Endpoint(transport="tls", host=LOOPBACK, port=0))
            server = TrioServer(core, ServerOptions(listen=listen, tls_server=tls.server()))
            async with trio.open_nursery() as nursery:
                _udp, tls_ep = await nursery.start(server.run)
                stream = await trio.open_ssl_over_tcp_stream(LOOPBACK, tls_ep.port,
                                                             ssl_context=tls.client())
                await stream.send_all(register("carol", 1, 5061, transport="TLS"))
                request, addr = await upstream.recvfrom(65536)
                await upstream.sendto(ok_for(request), addr)
                assert status(await read_message(stream, Messages())) == 200
                await stream.aclose()
                server.stop()


@pytest.mark.trio
async def test_tcp_upstream_connection_is_reused() -> None:
    with trio.fail_after(5):
        [registrar] = await trio.open_tcp_listeners(0, host=LOOPBACK)
        with await udp_peer() as phone:
            up = Endpoint(transport="tcp", host=LOOPBACK, port=registrar.socket.getsockname()[1])
            server = TrioServer(make_core(up), ServerOptions(listen=LISTEN_UDP_TCP))
            async with trio.open_nursery() as nursery:
                udp, _tcp = await nursery.start(server.run)
                for user in ("dave", "erin"):
                    await phone.sendto(register(user, 1, port_of(phone)), (LOOPBACK, udp.port))
                conn = await registrar.accept()
                messages = Messages()
                for _ in range(2):
                    await conn.send_all(ok_for(await read_message(conn, messages)))
                replies = [(await phone.recvfrom(65536))[0] for _ in range(2)]
                assert sorted(header(r, "Call-ID") or "" for r in replies) == [
                    "call-dave", "call-erin"]
                with trio.move_on_after(0.2) as nothing:
                    await (await registrar.accept()).aclose()  # no second connection
                assert nothing.cancelled_caught
                await conn.aclose()
                server.stop()
        await registrar.aclose()


@pytest.mark.trio
async def test_silent_device_deregistered_when_its_contact_expires(
    clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="sansmidreg")
    with await udp_peer() as upstream, await udp_peer() as phone:
        core = make_core(Endpoint(host=LOOPBACK, port=port_of(upstream)),
                         mode=Mode.CONTACT_THROTTLING, outgoing_expires=3600)
        server = TrioServer(core, ServerOptions(listen=LISTEN_UDP_TCP))
        async with trio.open_nursery() as nursery:
            with trio.fail_after(5):  # (a deadline on the mock clock: one per side of the jump)
                udp, _tcp = await nursery.start(server.run)
                await phone.sendto(register("frank", 1, port_of(phone), expires=600),
                                   (LOOPBACK, udp.port))
                request, addr = await upstream.recvfrom(65536)
                await upstream.sendto(ok_for(request), addr)
                assert status((await phone.recvfrom(65536))[0]) == 200
            clock.jump(601)  # ten minutes without a refresh
            with trio.fail_after(5):
                deregister, _ = await upstream.recvfrom(65536)
                assert deregister.startswith(b"REGISTER ")
                assert ";expires=0" in (header(deregister, "Contact") or "")
                server.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert any("relayed to" in line and "frank" in line for line in lines)
    assert any(line.startswith("de-REGISTER") for line in lines)


@pytest.mark.trio
async def test_port_in_use_is_a_clear_error() -> None:
    with trio.fail_after(5), await udp_peer() as taken:
        core = make_core(Endpoint(host=LOOPBACK, port=5080))
        server = TrioServer(core, ServerOptions(
            listen=(Endpoint(host=LOOPBACK, port=port_of(taken)),)))
        with pytest.raises(ListenError, match="(?i)address already in use"):
            await server.run()


@pytest.mark.trio
async def test_tls_upstream(tls: Tls) -> None:
    """We open a TLS connection to the main registrar (tls_client) and relay over it."""
    with trio.fail_after(5):
        [tcp] = await trio.open_tcp_listeners(0, host=LOOPBACK)
        registrar = trio.SSLListener(tcp, tls.server())
        with await udp_peer() as phone:
            up = Endpoint(transport="tls", host=LOOPBACK, port=tcp.socket.getsockname()[1])
            options = ServerOptions(listen=LISTEN_UDP_TCP, tls_client=tls.client())
            server = TrioServer(make_core(up), options)
            async with trio.open_nursery() as nursery:
                udp, _tcp = await nursery.start(server.run)
                await phone.sendto(register("gail", 1, port_of(phone)), (LOOPBACK, udp.port))
                conn = await registrar.accept()
                request = await read_message(conn, Messages())
                assert (header(request, "Via") or "").startswith("SIP/2.0/TLS ")
                await conn.send_all(ok_for(request))
                assert status((await phone.recvfrom(65536))[0]) == 200
                await conn.aclose()
                server.stop()
        await registrar.aclose()
