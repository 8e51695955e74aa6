# StreamFramer: SIP over TCP/TLS (RFC 3261 §18.3), CRLF keep-alives (RFC 5626 §3.5.1, §4.4.1).
from __future__ import annotations

import pytest

from sansmidreg.sip import KEEPALIVE_PING, SipParseError, StreamFramer, parse_message

MSG1 = (b"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5201;branch=z9hG4bK1\r\n"
        b"Call-ID: a@b\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")
MSG2 = (b"MESSAGE sip:bob@example.test SIP/2.0\r\nv: SIP/2.0/TCP 127.0.0.1:5201;branch=z9hG4bK2\r\n"
        b"l: 12\r\n\r\nhi\r\n\r\nthere!")  # the body holds an empty line
MSG3 = b"SIP/2.0 200 OK\r\nContent-Length   :  3\r\n\r\nabc"


def feed_all(chunks: list[bytes], max_size: int = 65535) -> list[bytes]:
    framer = StreamFramer(max_size)
    out: list[bytes] = []
    for chunk in chunks:
        out.extend(framer.feed(chunk))
    return out


def test_whole_messages() -> None:
    assert feed_all([MSG1 + MSG2 + MSG3]) == [MSG1, MSG2, MSG3]
    for data in (MSG1, MSG2, MSG3):
        assert parse_message(data, stream=True).serialize() == data


def test_every_split_point() -> None:
    stream = MSG1 + KEEPALIVE_PING + MSG2 + b"\r\n" + MSG3
    expected = [MSG1, KEEPALIVE_PING, MSG2, MSG3]
    for i in range(len(stream) + 1):
        assert feed_all([stream[:i], stream[i:]]) == expected, i
    assert feed_all([bytes([b]) for b in stream]) == expected


def test_keepalives() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == [] and framer.buffered == 2  # a ping may be arriving
    assert framer.feed(b"\r\n") == [KEEPALIVE_PING] and framer.buffered == 0
    assert framer.feed(b"\r\n" + MSG1) == [MSG1]  # a pong before a message is swallowed
    assert framer.feed(b"\n\n\n\n") == []  # stray bare line ends are dropped
    assert framer.feed(KEEPALIVE_PING * 2) == [KEEPALIVE_PING, KEEPALIVE_PING]


def test_waits_for_the_body() -> None:
    framer = StreamFramer()
    assert framer.feed(MSG2[:-3]) == [] and framer.buffered == len(MSG2) - 3
    assert framer.feed(MSG2[-3:] + MSG1[:10]) == [MSG2]
    assert framer.buffered == 10


@pytest.mark.parametrize("head", [
    b"OPTIONS sip:x SIP/2.0\r\n\r\n",  # Content-Length is mandatory on a stream
    b"OPTIONS sip:x SIP/2.0\r\nContent-Length: -1\r\n\r\n",
    b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\n",
    b"OPTIONS sip:x SIP/2.0\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
])
def test_unframeable(head: bytes) -> None:
    framer = StreamFramer()
    with pytest.raises(SipParseError):
        framer.feed(head)
    with pytest.raises(SipParseError):  # stays failed: close the connection
        framer.feed(MSG1)


def test_size_limits() -> None:
    framer = StreamFramer(max_size=100)
    assert framer.feed(b"X" * 100) == []
    with pytest.raises(SipParseError) as err:
        framer.feed(b"X")  # a header section that never ends
    assert err.value.status == 513
    big = b"MESSAGE sip:x SIP/2.0\r\nContent-Length: 200\r\n\r\n"
    with pytest.raises(SipParseError) as err:
        StreamFramer(max_size=100).feed(big)
    assert err.value.status == 513


def test_folded_lines() -> None:
    data = b"OPTIONS sip:x SIP/2.0\r\nSubject: a\r\n l: 99\r\nContent-Length: 1\r\n\r\nZ"
    assert feed_all([data]) == [data]  # a continuation line is not a header
    folded = b"OPTIONS sip:x SIP/2.0\r\nContent-Length:\r\n\t 2\r\n\r\nZZ"
    assert feed_all([folded]) == [folded] and parse_message(folded, stream=True).body == b"ZZ"


def test_drip_feed() -> None:
    big = (b"MESSAGE sip:x SIP/2.0\r\nX-Pad: " + b"p" * 20000 + b"\r\nContent-Length: 3\r\n\r\n"
           b"abc")
    framer = StreamFramer()
    out: list[bytes] = []
    for i in range(0, len(big), 7):
        out.extend(framer.feed(big[i:i + 7]))
    assert out == [big]
