"""The raw-sockets adapter: SocketServer.serve_forever in a thread, blocking loopback peers with a
timeout (port 0 everywhere), stop() from the test thread. Also the recorder hook and the log
lines, which are shared by every adapter (``_common.py``)."""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from sansmidreg import Endpoint, MidRegistrar
from sansmidreg.conformance._trace import parse_trace
from sansmidreg_adapters._common import ListenError, ServerOptions
from sansmidreg_adapters.record import TraceRecorder
from sansmidreg_adapters.sockets import SocketServer

from ._support import (
    LISTEN_UDP_TCP,
    LOOPBACK,
    Messages,
    TIMEOUT,
    Udp,
    header,
    make_core,
    ok_for,
    register,
    serving,
    status,
)


@pytest.fixture
def upstream() -> Iterator[Udp]:
    peer = Udp()
    yield peer
    peer.close()


@pytest.fixture
def phone() -> Iterator[Udp]:
    peer = Udp()
    yield peer
    peer.close()


def read_message(sock: socket.socket, messages: Messages) -> bytes:
    while (message := messages.pop()) is None:
        messages.feed(sock.recv(65536))
    return message


def test_udp_relay_retransmit_absorb(upstream: Udp, phone: Udp,
                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sansmidreg")
    core = make_core(upstream.endpoint, t1=0.05)
    with serving("sockets", core, ServerOptions(listen=LISTEN_UDP_TCP)) as (udp, _tcp):
        phone.send(register("alice", 1, phone.port), udp)
        request, addr = upstream.recv()
        again, _ = upstream.recv()  # timer E fired: the one deadline works
        assert again == request
        upstream.send(ok_for(request), addr)
        assert status(phone.recv()[0]) == 200
        phone.send(register("alice", 2, phone.port), udp)
        reply = phone.recv()[0]
        assert status(reply) == 200 and header(reply, "CSeq") == "2 REGISTER"
    assert core.stats().registers_absorbed == 1
    lines = [r.getMessage() for r in caplog.records]
    assert any("alice" in line and "relayed to" in line for line in lines)
    assert any("alice" in line and "absorbed" in line for line in lines)


def test_tcp_phone_gets_pong_and_reply_on_its_connection(upstream: Udp) -> None:
    core = make_core(upstream.endpoint)
    with serving("sockets", core, ServerOptions(listen=LISTEN_UDP_TCP)) as (_udp, tcp):
        with socket.create_connection((LOOPBACK, tcp.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"\r\n\r\n")
            assert sock.recv(16) == b"\r\n"
            sock.sendall(register("bob", 1, sock.getsockname()[1], transport="TCP"))
            request, addr = upstream.recv()
            upstream.send(ok_for(request), addr)
            reply = read_message(sock, Messages())
            assert status(reply) == 200 and header(reply, "Call-ID") == "call-bob"


def test_tcp_upstream_connection_is_reused(phone: Udp) -> None:
    with socket.create_server((LOOPBACK, 0)) as registrar:
        registrar.settimeout(TIMEOUT)
        up = Endpoint(transport="tcp", host=LOOPBACK, port=registrar.getsockname()[1])
        with serving("sockets", make_core(up), ServerOptions(listen=LISTEN_UDP_TCP)) as (
            udp, _tcp,
        ):
            for user in ("dave", "erin"):
                phone.send(register(user, 1, phone.port), udp)
            conn, _ = registrar.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                messages = Messages()
                for _ in range(2):
                    conn.sendall(ok_for(read_message(conn, messages)))
                replies = [phone.recv()[0] for _ in range(2)]
                assert sorted(header(r, "Call-ID") or "" for r in replies) == [
                    "call-dave", "call-erin"]
                registrar.settimeout(0.2)
                with pytest.raises(TimeoutError):
                    registrar.accept()  # no second connection: the first one was reused


def test_record_writes_a_trace_of_every_message(upstream: Udp, phone: Udp) -> None:
    core = make_core(upstream.endpoint)
    server = SocketServer(core, ServerOptions(listen=LISTEN_UDP_TCP))
    server.close()  # only to learn two free ports for the trace header
    text = io.StringIO()
    listen = server.addresses
    recorder = TraceRecorder(text, core.config, listen, title="two REGISTERs")
    with serving("sockets", core, ServerOptions(listen=listen, recorder=recorder)) as (udp, _):
        phone.send(register("frank", 1, phone.port), udp)
        request, addr = upstream.recv()
        upstream.send(ok_for(request), addr)
        phone.recv()
        phone.send(register("frank", 2, phone.port), udp)
        phone.recv()
    trace = parse_trace(text.getvalue())
    assert trace.title == "two REGISTERs"
    assert ("mode", "contact-throttling") in trace.config
    us = f"127.0.0.1:{udp.port}"
    route = [(str(b.src), str(b.dst)) for b in trace.blocks]
    ph, up = f"127.0.0.1:{phone.port}", f"127.0.0.1:{upstream.port}"
    assert route == [(ph, us), (us, up), (up, us), (us, ph), (ph, us), (us, ph)]
    assert [trace.is_expectation(b) for b in trace.blocks] == [False, True, False, True,
                                                                False, True]
    assert trace.blocks[0].data == register("frank", 1, phone.port)


def test_stats_are_logged_periodically_and_on_request(
    upstream: Udp, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sansmidreg")
    core: MidRegistrar = make_core(upstream.endpoint)
    options = ServerOptions(listen=LISTEN_UDP_TCP, stats_interval=0.2)
    server = SocketServer(core, options)
    server.log_stats()
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        thread.join(1.5)
    finally:
        server.stop()
        thread.join(TIMEOUT)
    stats = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stats:")]
    assert len(stats) >= 2
    assert "REGISTER received=0" in stats[0] and "drops=none" in stats[0]


def test_port_in_use_and_tls_are_clear_errors(upstream: Udp) -> None:
    core = make_core(upstream.endpoint)
    taken = Endpoint(host=LOOPBACK, port=upstream.port)
    with pytest.raises(ListenError, match=f"127.0.0.1:{upstream.port}: (?i:address already in)"):
        SocketServer(core, ServerOptions(listen=(taken,)))
    with pytest.raises(ListenError, match="TLS needs --backend anyio or trio"):
        SocketServer(core, ServerOptions(listen=(Endpoint(transport="tls", host=LOOPBACK,
                                                          port=0),)))
