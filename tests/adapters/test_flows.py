"""Connection reuse toward devices, on every backend: a device that registered over TCP gets the
main registrar's INVITE on its own connection (flow), and its answer goes back upstream."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from sansmidreg import Endpoint, MidRegistrar
from sansmidreg_adapters._common import ServerOptions

from ._support import (
    BACKENDS,
    LISTEN_UDP_TCP,
    LOOPBACK,
    TIMEOUT,
    Messages,
    Udp,
    make_core,
    ok_for,
    register,
    serving,
    status,
)


def read_message(sock: socket.socket, messages: Messages) -> bytes:
    while (message := messages.pop()) is None:
        messages.feed(sock.recv(65536))
    return message


@contextmanager
def serving_tcp_device(backend: str, core: MidRegistrar,
                       upstream: Udp) -> Iterator[tuple[socket.socket, str, Endpoint]]:
    """Serve; register bob over TCP (the main registrar answers 200); yield the device's
    connection, the binding the main registrar got (its Contact URI) and our UDP address."""
    with serving(backend, core, ServerOptions(listen=LISTEN_UDP_TCP)) as (udp, tcp):
        with socket.create_connection((LOOPBACK, tcp.port), timeout=TIMEOUT) as device:
            port = device.getsockname()[1]
            device.sendall(register("bob", 1, port, transport="TCP"))
            relayed, addr = upstream.recv()
            contact = re.search(rb"^Contact: <([^>]+)>", relayed, re.M)
            assert contact is not None
            upstream.send(ok_for(relayed), addr)
            assert status(read_message(device, Messages())) == 200
            yield device, contact.group(1).decode(), udp


@pytest.mark.parametrize("backend", BACKENDS)
def test_invite_reaches_a_tcp_device_on_its_connection(backend: str) -> None:
    upstream = Udp()
    try:
        core = make_core(upstream.endpoint)
        with serving_tcp_device(backend, core, upstream) as (device, binding, udp):
            invite = (
                f"INVITE {binding} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {LOOPBACK}:{upstream.port};branch=z9hG4bKinvite1\r\n"
                "Max-Forwards: 70\r\n"
                "From: <sip:caller@example.test>;tag=caller1\r\n"
                "To: <sip:bob@example.test>\r\n"
                "Call-ID: invite-1\r\n"
                "CSeq: 1 INVITE\r\n"
                f"Contact: <sip:caller@{LOOPBACK}:{upstream.port}>\r\n"
                "Content-Length: 0\r\n\r\n").encode()
            upstream.send(invite, udp)
            messages = Messages()
            request = read_message(device, messages)
            assert request.startswith(b"INVITE sip:bob@127.0.0.1:"), request[:80]
            vias = re.findall(rb"^Via: (.*)$", request, re.M)
            busy = (b"SIP/2.0 486 Busy Here\r\n"
                    + b"".join(b"Via: " + v.rstrip(b"\r") + b"\r\n" for v in vias)
                    + b"From: <sip:caller@example.test>;tag=caller1\r\n"
                    + b"To: <sip:bob@example.test>;tag=bob1\r\nCall-ID: invite-1\r\n"
                    + b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
            device.sendall(busy)
            while (answer := upstream.recv()[0]).startswith(b"SIP/2.0 1"):
                pass  # 100 Trying
            assert status(answer) == 486
    finally:
        upstream.close()
