"""A TCP peer that connects and resets at once (SO_LINGER 0): by the time the server accepts the
connection it is already gone, and asking for its peer address fails (ENOTCONN). The anyio
adapter (remote_address: TypedAttributeLookupError) and the trio adapter (getpeername: OSError)
let that escape their accept loops, and the whole server died; now such a connection is closed
and forgotten and the server keeps serving, on every backend."""

from __future__ import annotations

import socket
import struct
import time


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

RESETS = 300


def connect_and_reset(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.settimeout(TIMEOUT)
    try:
        sock.connect((LOOPBACK, port))
    finally:
        sock.close()  # RST: the server may accept a connection already reset


def test_connections_reset_before_accept(backend: str, peers: tuple[Udp, Udp]) -> None:
    upstream, phone = peers
    core = make_core(upstream.endpoint)
    with serving(backend, core, ServerOptions(listen=LISTEN_UDP_TCP)) as (udp, tcp):
        for _ in range(RESETS):
            connect_and_reset(tcp.port)
        time.sleep(0.3)
        phone.send(register("alice", 1, phone.port), udp)
        request, addr = upstream.recv()
        upstream.send(ok_for(request), addr)
        assert status(phone.recv()[0]) == 200
        with socket.create_connection((LOOPBACK, tcp.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"\r\n\r\n")  # TCP still served: a CRLF ping is answered
            assert sock.recv(16) == b"\r\n"
