# Message.pop_via splices the wire bytes of a message it knows the bytes of (the relay path);
# the result must be exactly what re-serialising the edited headers gives.
from __future__ import annotations

import pytest

from sansmidreg.sip import Request, Response, make_request, make_response, parse_message

CASES = [
    b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa, "
    b"SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKb\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKc\r\n"
    b"From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>;tag=2\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n"
    b"Content-Length: 0\r\n\r\n",
    b"SIP/2.0 200\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP b;branch=z9hG4bK2"
    b"\r\nContent-Length: 0\r\n\r\n",
    b"SIP/2.0 200 OK\r\nv: SIP/2.0/UDP a;branch=z9hG4bK1 ,SIP/2.0/UDP b\r\nContent-Length: 2"
    b"\r\nX: y\r\n\r\nab",
    b"SIP/2.0 200 OK\r\nX: SIP/2.0/UDP a;branch=z9hG4bK1\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1"
    b"\r\nVia: c\r\n\r\n",
    b"SIP/2.0 487 Request Terminated\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
    b" ;received=1.2.3.4\r\nVia: SIP/2.0/UDP b\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("data", CASES)
def test_pop_via_bytes_equal_a_fresh_serialisation(data: bytes) -> None:
    msg = parse_message(data)
    assert isinstance(msg, Response)
    while msg.has("via"):
        popped = msg.pop_via()
        fresh = Response(popped.status, popped.reason, popped.headers, popped.body,
                         popped.version)
        assert popped.serialize() == fresh.serialize()
        msg = popped


def test_pop_via_on_built_messages() -> None:
    request = make_request("INVITE", "sip:b@h", [("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"),
                                                 ("Via", "SIP/2.0/UDP b;branch=z9hG4bK2"),
                                                 ("From", "<sip:a@h>;tag=1"), ("To", "<sip:b@h>"),
                                                 ("Call-ID", "c"), ("CSeq", "1 INVITE")],
                           body=b"xy")
    response = make_response(request, 180, to_tag="t")
    popped = response.pop_via()
    assert popped.serialize() == Response(popped.status, popped.reason, popped.headers,
                                          popped.body).serialize()
    assert request.serialize()  # caches the bytes; the splice then applies to a request too
    again = request.pop_via()
    assert again.serialize() == Request(again.method, again.uri_text, again.headers,
                                        again.body).serialize()
