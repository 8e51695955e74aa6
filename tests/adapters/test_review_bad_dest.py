"""Destinations the network writes: a response to a request we relayed statelessly goes to the
Via below ours (RFC 3261 §16.11, RFC 3581), which the sender chose. One unsolicited datagram from
anyone, with a Via naming port 70000 (``rport=70000``), a host that is no name at all
(``a..b``) or port 0, made the core emit a Reply to that place; the adapters passed it to the
socket, which raised OverflowError / UnicodeError / gaierror outside the errors they caught, and
the whole server died (sockets: serve_forever raised; anyio on asyncio: the UDP transport was
closed and its loop raised BrokenResourceError; trio: the task raised). A destination the sockets
cannot take is now refused with a log line and the server keeps serving, on every backend."""

from __future__ import annotations

import logging

import pytest

from sansmidreg import Config, Endpoint, MidRegistrar, Mode, SeededIds
from sansmidreg_adapters._common import ServerOptions

from ._support import LISTEN_UDP_TCP, LOOPBACK, Udp, ok_for, register, serving, status

# below our Via (what the core believes is its address: 127.0.0.1:5060), one bad Via each
BAD_VIAS = (
    "SIP/2.0/UDP 127.0.0.1:5070;rport=70000;branch=z9hG4bKa1",  # OverflowError
    "SIP/2.0/UDP a..b:5070;branch=z9hG4bKa2",  # UnicodeError (trio), gaierror
    "SIP/2.0/UDP 127.0.0.1:5070;received=a..b;branch=z9hG4bKa3",
    "SIP/2.0/UDP 127.0.0.1:5070;rport=0;branch=z9hG4bKa4",  # EINVAL
    "SIP/2.0/TCP 127.0.0.1:5070;rport=99999999999999999999;branch=z9hG4bKa5",
    "SIP/2.0/TCP a..b:5070;branch=z9hG4bKa6",  # sockets: connect_ex raised gaierror
)


def stray_response(via: str, n: int) -> bytes:
    return (
        "SIP/2.0 200 OK\r\n"
        f"Via: SIP/2.0/UDP {LOOPBACK}:5060;branch=z9hG4bKslreview{n}\r\n"
        f"Via: {via}\r\n"
        "From: <sip:a@example.test>;tag=1\r\nTo: <sip:b@example.test>;tag=2\r\n"
        f"Call-ID: review-{n}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n"
    ).encode()



def test_responses_to_bad_places_are_refused(backend: str, peers: tuple[Udp, Udp],
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sansmidreg")
    upstream, phone = peers
    config = Config(mode=Mode.CONTACT_THROTTLING, upstream=upstream.endpoint,
                    local=(Endpoint(host=LOOPBACK, port=5060),))
    core = MidRegistrar(config, ids=SeededIds(5))
    with serving(backend, core, ServerOptions(listen=LISTEN_UDP_TCP)) as (udp, _tcp):
        attacker = Udp()
        try:
            for n, via in enumerate(BAD_VIAS):
                attacker.send(stray_response(via, n), udp)
        finally:
            attacker.close()
        # still serving: a REGISTER is relayed and its answer comes back
        phone.send(register("alice", 1, phone.port), udp)
        request, addr = upstream.recv()
        upstream.send(ok_for(request), addr)
        assert status(phone.recv()[0]) == 200
    refused = [r.getMessage() for r in caplog.records if "cannot send to" in r.getMessage()]
    assert len(refused) == len(BAD_VIAS), refused
