# Property tests of the SIP message layer (hypothesis): generated messages and values round-trip
# (parse(serialize(m)) == m, parse(str(v)) == v, fast path == general parser); arbitrary bytes and
# mutated valid messages never raise anything but SipParseError, accessors included; the stream
# framer yields the same messages for every way of splitting its input.
from __future__ import annotations

import ipaddress
import itertools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sansmidreg.sip import (
    KEEPALIVE_PING,
    NameAddr,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    Uri,
    Via,
    make_response,
    parse_message,
)

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"

# -- generators --------------------------------------------------------------------------------------
ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=10)
escapes = st.sampled_from(["%41", "%00", "%2c", "%3B", "%ff", "%20"])
users = st.lists(st.one_of(st.text(ALNUM + "-_.!~*'()&=+$", min_size=1, max_size=6), escapes),
                 min_size=1, max_size=3).map("".join)
labels = st.from_regex(r"[a-z0-9]([a-z0-9\-]{0,6}[a-z0-9])?", fullmatch=True)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(0, 65535))
pchars = st.lists(st.one_of(st.text(ALNUM + "-_.!~*'()[]/:&+$", min_size=1, max_size=6), escapes),
                  min_size=1, max_size=2).map("".join)
uri_params = st.lists(st.tuples(pchars, st.one_of(st.none(), pchars)), max_size=3)
quoted = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E, exclude_characters='"\\'),
                 max_size=10).map(lambda t: f'"{t}"')
gen_values = st.one_of(tokens, quoted, ipv4)
param_names = tokens.filter(lambda t: t.lower() not in {"q", "expires"})  # those have a syntax
header_params = st.lists(st.tuples(param_names, st.one_of(st.none(), gen_values)), max_size=3)


def fmt(params: list[tuple[str, str | None]]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


@st.composite
def sip_uris(draw: st.DrawFn, *, headers: bool = True) -> str:
    scheme = draw(st.sampled_from(["sip", "sips", "SIP"]))
    user = draw(st.one_of(st.none(), users))
    password = draw(st.one_of(st.none(), st.text(ALNUM + "&=+$", max_size=5)))
    host, port = draw(hosts), draw(ports)
    text = f"{scheme}:"
    if user is not None:
        text += user + (f":{password}" if password is not None else "") + "@"
    text += host + ("" if port is None else f":{port}") + fmt(draw(uri_params))
    if headers and draw(st.booleans()):
        names = pchars.filter(lambda p: "&" not in p and "=" not in p)
        pairs = draw(st.lists(st.tuples(names, st.text(ALNUM + ":", max_size=5)),
                              min_size=1, max_size=2))
        text += "?" + "&".join(f"{k}={v}" for k, v in pairs)
    return text


uris = st.one_of(sip_uris(), st.sampled_from(["tel:+1-201-555-0123", "urn:service:sos",
                                              "http://example.com/x?y=1"]))


@st.composite
def name_addrs(draw: st.DrawFn) -> str:
    params = fmt(draw(header_params))
    if draw(st.booleans()):  # addr-spec: no URI parameters or headers, header params after it
        return draw(sip_uris(headers=False)).split(";")[0] + params
    display = draw(st.one_of(st.just(""), quoted.map(lambda q: q + " "),
                             st.lists(tokens, min_size=1, max_size=2).map(lambda w: " ".join(w) + " ")))
    return f"{display}<{draw(uris)}>{params}"


@st.composite
def vias(draw: st.DrawFn) -> str:
    transport = draw(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "ws", "X-NEW"]))
    port = draw(ports)
    params = [("branch", "z9hG4bK" + draw(tokens))] + draw(header_params)
    if draw(st.booleans()):
        params.append(("rport", draw(st.one_of(st.none(), st.integers(1, 65535).map(str)))))
    return f"SIP/2.0/{transport} {draw(hosts)}{'' if port is None else f':{port}'}{fmt(params)}"


def spell(draw: st.DrawFn, name: str, compact: str | None = None) -> str:
    if compact is not None and draw(st.booleans()):
        name = compact
    return "".join(c.upper() if draw(st.booleans()) else c.lower() for c in name)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """A syntactically valid SIP message (every typed accessor must succeed on it)."""
    if draw(st.booleans()):
        method = draw(st.sampled_from(["REGISTER", "INVITE", "OPTIONS", "NEW-METHOD"]))
        start = f"{method} {draw(sip_uris(headers=False))} SIP/2.0"
    else:
        method = draw(st.sampled_from(["REGISTER", "INVITE"]))
        start = f"SIP/2.0 {draw(st.integers(100, 699))} {draw(st.text(ALNUM + ' ', max_size=12))}"
    lines = [f"{spell(draw, 'Via', 'v')}: {', '.join(draw(st.lists(vias(), min_size=1, max_size=2)))}",
             f"{spell(draw, 'From', 'f')}: {draw(name_addrs())};tag={draw(tokens)}",
             f"{spell(draw, 'To', 't')}: {draw(name_addrs())}",
             f"{spell(draw, 'Call-ID', 'i')}: {draw(tokens)}@{draw(hostnames)}",
             f"{spell(draw, 'CSeq')}: {draw(st.integers(0, 2**32 - 1))} {method}",
             f"{spell(draw, 'Max-Forwards')}: {draw(st.integers(0, 255))}"]
    if draw(st.booleans()):
        star = draw(st.booleans()) and method == "REGISTER"
        contacts = ["*"] if star else draw(st.lists(name_addrs(), min_size=1, max_size=3))
        lines.append(f"{spell(draw, 'Contact', 'm')}: {', '.join(contacts)}")
        lines.append(f"Expires: {0 if star else draw(st.integers(0, 2**32 - 1))}")
    for name in draw(st.lists(st.sampled_from(["Route", "Record-Route", "Path"]), max_size=2)):
        lines.append(f"{name}: <{draw(sip_uris(headers=False))};lr>")
    if draw(st.booleans()):
        lines.append(f"{spell(draw, 'Supported', 'k')}: {', '.join(draw(st.lists(tokens, max_size=3)))}")
    for _ in range(draw(st.integers(0, 2))):
        value = draw(st.text(st.characters(min_codepoint=0x20, exclude_categories=["Cs"]),
                             max_size=20)).strip()
        lines.append(f"X-{draw(tokens)}: {value}")
    order = draw(st.permutations(range(len(lines))))
    lines = [lines[i] for i in order]
    body = draw(st.binary(max_size=40))
    lines.append(f"{spell(draw, 'Content-Length', 'l')}: {len(body)}")
    if draw(st.booleans()):  # fold one line after its colon (RFC 3261 §7.3.1)
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i].replace(": ", ":\r\n ", 1)
    return ("\r\n".join([start, *lines, "", ""])).encode() + body


def exercise(msg: Request | Response) -> None:
    """Touch every accessor; only SipParseError may come out."""
    for name in ("top_via", "vias", "from_", "to", "call_id", "cseq", "contacts", "expires",
                 "min_expires", "max_forwards", "path", "route", "record_route",
                 "content_length", "uri"):
        try:
            value = getattr(msg, name, None)
        except SipParseError:
            continue
        if isinstance(value, NameAddr):
            value = (value,)
        if isinstance(value, tuple):
            for item in value:
                str(item)
                if isinstance(item, NameAddr):
                    item.uri.key()
                    item.uri.equivalent(item.uri)
                    for prop in ("q", "expires_seconds", "instance", "reg_id", "tag"):
                        try:
                            getattr(item, prop)
                        except SipParseError:
                            pass
    try:
        for contact in msg.contacts:
            str(contact)
    except SipParseError:
        pass
    msg.option_tags("supported")
    msg.defects()
    again = parse_message(msg.serialize())  # what we emit, we parse back, equal
    assert again == msg
    if isinstance(msg, Request):
        reply = make_response(msg, 400, to_tag="t").serialize()
        assert isinstance(parse_message(reply), Response)


# -- round trips ----------------------------------------------------------------------------------------
@SETTINGS
@given(messages())
def test_generated_messages_round_trip(data: bytes) -> None:
    m = parse_message(data)
    assert m.serialize() == data  # unchanged input is re-emitted byte for byte
    again = parse_message(m.serialize())
    assert again == m
    # every typed value of a valid message parses, and equally after the round trip
    values = (m.vias, m.from_, m.to, m.call_id, m.cseq, m.contacts, m.expires, m.max_forwards,
              m.path, m.route, m.record_route, m.defects())
    assert values == (again.vias, again.from_, again.to, again.call_id, again.cseq,
                      again.contacts, again.expires, again.max_forwards, again.path,
                      again.route, again.record_route, again.defects())
    assert not {"bad-via", "bad-from", "bad-to", "bad-cseq", "bad-contact"} & set(m.defects())
    exercise(m)


@SETTINGS
@given(messages())
def test_serialize_without_top_via_is_pop_via(data: bytes) -> None:
    # the relay fast path writes from the received bytes; it must mean what pop_via() means
    m = parse_message(data)
    fast = parse_message(m.serialize_without_top_via())
    slow = parse_message(m.pop_via().serialize())
    assert fast.vias == slow.vias == m.vias[1:]
    others = [(k, v) for k, v, _ in m.headers if k != "via"]
    assert [(k, v) for k, v, _ in fast.headers if k != "via"] == others
    assert fast.body == slow.body == m.body


@SETTINGS
@given(st.one_of(name_addrs(), name_addrs().map(lambda t: t + ";tag=\"x,y\""),
                 st.text(ALNUM + ' <>;:@="\\,', max_size=30)))
def test_check_address_agrees_with_the_parsed_address(text: str) -> None:
    data = (f"INVITE sip:b@example.test SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
            f"From: {text}\r\nTo: {text}\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
            f"Content-Length: 0\r\n\r\n").encode()
    try:
        m = parse_message(data)
    except SipParseError:
        return
    for key, attr in (("from", "from_"), ("to", "to")):
        try:
            getattr(m, attr)
            parsed = True
        except SipParseError:
            parsed = False
        fresh = parse_message(data)
        try:
            fresh.check_address(key)
            checked = True
        except SipParseError:
            checked = False
        assert checked == parsed, (key, text)


@SETTINGS
@given(uris)
def test_uri_round_trip(text: str) -> None:
    u = Uri.parse(text)
    assert Uri.parse(str(u)) == u == Uri.parse_general(text)
    assert u.equivalent(Uri.parse(str(u)))
    if ":" in u.host:
        assert ipaddress.IPv6Address(u.host)


@SETTINGS
@given(name_addrs())
def test_name_addr_round_trip(text: str) -> None:
    a = NameAddr.parse(text)
    assert NameAddr.parse(str(a)) == a == NameAddr.parse_general(text)


@SETTINGS
@given(vias())
def test_via_round_trip(text: str) -> None:
    v = Via.parse(text)
    assert Via.parse(str(v)) == v == Via.parse_general(text)


# -- garbage never raises anything but SipParseError ------------------------------------------------
def check_garbage(data: bytes) -> None:
    try:
        msg = parse_message(data)
    except SipParseError:
        return
    exercise(msg)


SIPISH = st.sampled_from([b"SIP/2.0", b"REGISTER", b"sip:", b"sips:", b"\r\n", b"\n", b"\r", b" ",
                          b"\t", b":", b";", b",", b"<", b">", b'"', b"\\", b"@", b"=", b"?", b"&",
                          b"%", b"%4", b"[", b"]", b"Via", b"v", b"From", b"To", b"Contact", b"m",
                          b"Content-Length", b"l", b"CSeq", b"Call-ID", b"Expires", b"0", b"9",
                          b"99999999999", b"*", b"tag", b"branch", b"z9hG4bK", b"\x00", b"\xff",
                          b"\xc3\xa9", b"a", b"example.com", b"::1", b"Route", b"Path"])


@SETTINGS
@given(st.binary(max_size=400))
def test_arbitrary_bytes(data: bytes) -> None:
    check_garbage(data)


@SETTINGS
@given(st.lists(SIPISH, max_size=80).map(b"".join))
def test_sip_like_garbage(data: bytes) -> None:
    check_garbage(data)
    check_garbage(b"OPTIONS sip:x@y SIP/2.0\r\n" + data)


SEEDS = [p.read_bytes() for p in sorted(DATA.glob("*.dat"))]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.one_of(st.sampled_from(SEEDS), messages())))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "dup", "delete"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[i:]
        elif op == "insert":
            data[i:i] = draw(st.one_of(st.binary(min_size=1, max_size=6), SIPISH))
        else:
            lines = bytes(data).split(b"\r\n")
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup":
                lines.insert(j, lines[j])
            else:
                del lines[j]
            data = bytearray(b"\r\n".join(lines))
    return bytes(data)


@SETTINGS
@given(mutated())
def test_mutated_messages(data: bytes) -> None:
    check_garbage(data)


# -- the stream framer ------------------------------------------------------------------------------------
@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    parts: list[bytes] = []
    expected: list[bytes] = []
    for _ in range(draw(st.integers(1, 3))):
        gap = draw(st.sampled_from([b"", b"\r\n", KEEPALIVE_PING]))
        parts.append(gap)
        if gap == KEEPALIVE_PING:
            expected.append(KEEPALIVE_PING)
        msg = draw(messages())
        parts.append(msg)
        expected.append(msg)
    return b"".join(parts), expected


def feed_chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    framer = StreamFramer()
    out: list[bytes] = []
    bounds = [0, *sorted(cuts), len(data)]
    for a, b in itertools.pairwise(bounds):
        out.extend(framer.feed(data[a:b]))
    return out


@settings(SETTINGS, max_examples=150)
@given(streams(), st.data())
def test_framer_split_independent(stream: tuple[bytes, list[bytes]], data: st.DataObject) -> None:
    raw, expected = stream
    assert feed_chunks(raw, []) == expected
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert feed_chunks(raw, cuts) == expected
    for framed in expected:
        if framed != KEEPALIVE_PING:
            assert parse_message(framed, stream=True).serialize() == framed


@SETTINGS
@given(st.lists(st.one_of(st.binary(max_size=40), SIPISH), max_size=30).map(b"".join),
       st.lists(st.integers(0, 400), max_size=6))
def test_framer_garbage(raw: bytes, cuts: list[int]) -> None:
    framer = StreamFramer(max_size=300)
    bounds = [0, *sorted(c for c in cuts if c <= len(raw)), len(raw)]
    try:
        for a, b in itertools.pairwise(bounds):
            for framed in framer.feed(raw[a:b]):
                if framed != KEEPALIVE_PING:
                    check_garbage(framed)
    except SipParseError:
        pass
