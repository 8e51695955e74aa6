"""Bad network input at the adapter level (issue 5 §5), for every backend: oversized datagrams,
a TCP peer that sends garbage or never finishes a message, a peer that opens many connections,
a peer that disconnects mid-message. Each time the server keeps serving the others and what it
holds stays within the configured limits.

Every backend runs in a background thread (tests/adapters/_support.py); the peers are blocking
loopback sockets with a timeout, so each test is bounded in time."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from sansmidreg import Endpoint, MidRegistrar
from sansmidreg_adapters._common import ServerOptions

from ._support import (
    LISTEN_UDP_TCP,
    LOOPBACK,
    TIMEOUT,
    Udp,
    make_core,
    ok_for,
    register,
    serving,
    status,
)

MAX_MESSAGE = 4096


class World:
    """A main registrar, a phone and the server between them."""

    def __init__(self, backend: str, **options: object) -> None:
        self.upstream = Udp()
        self.phone = Udp()
        self.core: MidRegistrar = make_core(self.upstream.endpoint, max_message_size=MAX_MESSAGE)
        self.options = ServerOptions(listen=LISTEN_UDP_TCP, **options)  # type: ignore[arg-type]
        self.backend = backend
        self.udp = self.tcp = Endpoint(host=LOOPBACK, port=0)
        self._count = 0

    def registers_and_refreshes(self, user: str) -> None:
        """The service still works: a first REGISTER is relayed, a refresh absorbed."""
        self._count += 1
        self.phone.send(register(user, 1, self.phone.port), self.udp)
        request, addr = self.upstream.recv()
        assert request.startswith(b"REGISTER ")
        self.upstream.send(ok_for(request), addr)
        assert status(self.phone.recv()[0]) == 200
        self.phone.send(register(user, 2, self.phone.port), self.udp)
        assert status(self.phone.recv()[0]) == 200

    def connect(self) -> socket.socket:
        sock = socket.create_connection((LOOPBACK, self.tcp.port), timeout=TIMEOUT)
        return sock

    def pings(self) -> bool:
        """A new connection is accepted and its CRLF ping answered (retried while the server
        is still reaping closed connections; bounded by TIMEOUT)."""
        end = time.monotonic() + TIMEOUT
        while True:
            with self.connect() as sock:
                try:
                    sock.sendall(b"\r\n\r\n")
                    if sock.recv(16) == b"\r\n":
                        return True
                except ConnectionError:
                    pass
            assert time.monotonic() < end, "no connection served"
            time.sleep(0.05)

    def close(self) -> None:
        self.upstream.close()
        self.phone.close()


def run(world: World) -> Iterator[World]:
    try:
        with serving(world.backend, world.core, world.options) as addresses:
            world.udp, world.tcp = addresses
            yield world
    finally:
        world.close()


@pytest.fixture
def world(backend: str) -> Iterator[World]:
    yield from run(World(backend, idle_timeout=1.0, max_connections=8))


def closed_by_server(sock: socket.socket) -> bool:
    """Wait (bounded) until the server closes ``sock``."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def test_oversized_datagrams_are_refused_and_service_goes_on(world: World) -> None:
    huge = register("mallory", 1, world.phone.port).replace(
        b"Content-Length: 0\r\n\r\n", b"X-Pad: " + b"a" * 60000 + b"\r\nContent-Length: 0\r\n\r\n")
    world.phone.send(huge, world.udp)
    world.phone.send(b"\xff" * 65000, world.udp)
    answer = world.phone.recv()[0]  # the readable one is answered 513, the junk dropped
    assert status(answer) == 513
    world.registers_and_refreshes("alice")
    stats = world.core.stats()
    assert stats.registers_relayed == 1


def test_tcp_garbage_closes_that_connection_only(world: World) -> None:
    good = world.connect()
    bad = world.connect()
    bad.sendall(b"\x00\x01\x02 this is not SIP\r\n\r\n")
    assert closed_by_server(bad)
    good.sendall(b"\r\n\r\n")  # a CRLF ping on the healthy connection is still answered
    assert good.recv(16) == b"\r\n"
    world.registers_and_refreshes("bob")
    good.close()
    bad.close()


def test_message_that_never_ends_is_cut_off(world: World) -> None:
    slow = world.connect()
    slow.sendall(b"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:9;branch=z9")
    big = world.connect()
    big.sendall(b"REGISTER sip:example.test SIP/2.0\r\nX-Junk: " + b"j" * (MAX_MESSAGE + 10))
    assert closed_by_server(big)  # over max_message_size without an end: closed at once
    world.registers_and_refreshes("carol")
    started = time.monotonic()
    assert closed_by_server(slow)  # never finished: closed when idle_timeout passes
    assert time.monotonic() - started < TIMEOUT
    slow.close()
    big.close()


def test_many_connections_are_capped(world: World) -> None:
    socks = [world.connect() for _ in range(12)]
    time.sleep(0.2)
    alive = 0
    for sock in socks:
        sock.settimeout(0.3)
        try:
            alive += sock.recv(1) != b""
        except TimeoutError:
            alive += 1  # still open: the server kept it
        except ConnectionResetError:
            pass
    assert alive <= 8  # max_connections
    world.registers_and_refreshes("dave")
    for sock in socks:
        sock.close()
    assert world.pings()  # the slots come back: a new connection is served


def test_disconnect_mid_message(world: World) -> None:
    for _ in range(20):
        sock = world.connect()
        sock.sendall(register("erin", 1, 5999, transport="TCP")[:60])
        sock.close()
    world.registers_and_refreshes("erin")
    # the half messages were never delivered to the core
    assert world.core.stats().registers_received == 2
    assert world.pings()  # no connection was kept for them: a new one is served
