# Messages (RFC 3261 §7, §18.3, §20): parsing, header access, typed accessors, limits,
# serialization (Content-Length always right), edits that touch only what they change, the
# builders, and Message.defects().
from __future__ import annotations

import pytest

from sansmidreg.sip import (
    DEFECTS,
    Request,
    Response,
    SipParseError,
    Via,
    make_request,
    make_response,
    parse_message,
    reason_phrase,
)

REGISTER = (
    "REGISTER sip:example.test SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@example.test>;tag=31595SIPpTag001\r\n"
    "To: <sip:alice@example.test>\r\n"
    "Call-ID: 1-31595@127.0.0.1\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:alice@127.0.0.1:5201>\r\n"
    "Expires: 60\r\n"
    "User-Agent: sipp-ua-5201\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def req(text: str = REGISTER, **kwargs: int | bool) -> Request:
    msg = parse_message(text.encode(), **kwargs)  # type: ignore[arg-type]
    assert isinstance(msg, Request)
    return msg


def lines_of(msg: Request | Response) -> list[str]:
    return msg.serialize().decode().split("\r\n")


def edited(before: list[str], after: list[str]) -> tuple[list[str], list[str]]:
    """(lines only in before, lines only in after), order-preserving."""
    return [x for x in before if x not in after], [x for x in after if x not in before]


# -- parsing ----------------------------------------------------------------------------------------
def test_request_fields() -> None:
    m = req()
    assert (m.method, m.uri_text, m.version) == ("REGISTER", "sip:example.test", "SIP/2.0")
    assert m.uri.host == "example.test" and m.body == b""
    assert len(m.headers) == 10 and m.headers[0] == (
        "via", "SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0",
        "Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0")
    assert m.top_via.branch == "z9hG4bK-31595-1-0" and m.from_.tag == "31595SIPpTag001"
    assert m.to.tag is None and m.call_id == "1-31595@127.0.0.1"
    assert (m.cseq.seq, m.cseq.method) == (1, "REGISTER")
    assert [str(c) for c in m.contacts] == ["<sip:alice@127.0.0.1:5201>"]
    assert m.expires == 60 and m.max_forwards == 70 and m.content_length == 0
    assert m.min_expires is None and m.path == () and m.route == () and m.record_route == ()
    assert m.defects() == ()
    assert m.serialize() == REGISTER.encode()
    assert repr(m) == "<Request 'REGISTER sip:example.test SIP/2.0' (10 headers)>"


def test_response_fields() -> None:
    m = parse_message(b"SIP/2.0 423 Interval Too Brief\r\nMin-Expires: 3600\r\n"
                      b"Via: SIP/2.0/UDP h.example;branch=z9hG4bK1\r\nCSeq: 2 REGISTER\r\n\r\n")
    assert isinstance(m, Response)
    assert (m.status, m.reason, m.version) == (423, "Interval Too Brief", "SIP/2.0")
    assert m.min_expires == 3600 and m.cseq.method == "REGISTER"
    assert m.with_status(200).start_line() == "SIP/2.0 200 OK"
    assert parse_message(b"SIP/2.0 180\r\n\r\n").reason == ""  # type: ignore[union-attr]


def test_case_insensitive_and_compact_names() -> None:
    m = req("INVITE sip:b@x.example SIP/2.0\r\nv: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
            "VIA: SIP/2.0/TCP b.example;branch=z9hG4bK2\r\nf: <sip:a@x.example>;tag=1\r\n"
            "t: sip:b@x.example\r\ni: abc@x\r\nCSEQ: 1 INVITE\r\nm: <sip:a@a.example>\r\n"
            "k: path, outbound\r\nMAX-forwards: 1\r\ns: hello\r\nc: text/plain\r\n"
            "e: gzip\r\no: presence\r\nu: dialog\r\nl: 5\r\n\r\nhello")
    assert [v.host for v in m.vias] == ["a.example", "b.example"]
    assert m.from_.tag == "1" and str(m.to.uri) == "sip:b@x.example" and m.call_id == "abc@x"
    assert m.get("Call-ID") == m.get("i") == m.get("CALL-ID") == "abc@x"
    assert m.has("SUPPORTED") and m.option_tags("supported") == {"path", "outbound"}
    assert m.get("subject") == "hello" and m.get("Content-Type") == "text/plain"
    assert m.get("content-encoding") == "gzip" and m.get("event") == "presence"
    assert m.get("allow-events") == "dialog" and m.body == b"hello"
    assert m.get_all("via") == ["SIP/2.0/UDP a.example;branch=z9hG4bK1",
                                "SIP/2.0/TCP b.example;branch=z9hG4bK2"]
    assert m.get("x-missing") is None and not m.has("x-missing")


def test_folded_lines() -> None:
    text = ("REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP\r\n  h.example;\r\n"
            "\tbranch=z9hG4bK1\r\nSubject: first\r\n second\r\nTo: <sip:a@x.example>\r\n"
            "From: <sip:a@x.example>\r\n ;tag=9\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n"
            "Content-Length: 0\r\n\r\n")
    m = req(text)
    assert m.top_via.host == "h.example" and m.top_via.branch == "z9hG4bK1"
    assert m.get("subject") == "first second" and m.from_.tag == "9"
    assert m.headers[0][2] == "Via: SIP/2.0/UDP\r\n  h.example;\r\n\tbranch=z9hG4bK1"
    assert m.serialize() == text.encode()  # folding kept when forwarded
    with pytest.raises(SipParseError):
        parse_message(b"OPTIONS sip:a@b.example SIP/2.0\r\n folded: first\r\n\r\n")


def test_multi_value_line_vs_one_value_per_line() -> None:
    one = req("REGISTER sip:r.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1, "
              "SIP/2.0/TCP b.example;branch=z9hG4bK2\r\nContact: <sip:x@a.example>, "
              "<sip:y@b.example>;q=0.5\r\nRoute: <sip:p1.example;lr>,<sip:p2.example;lr>\r\n"
              "Path: <sip:e1.example;lr>, <sip:e2.example;lr>\r\n\r\n")
    many = req("REGISTER sip:r.example SIP/2.0\r\nVia: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
               "Via: SIP/2.0/TCP b.example;branch=z9hG4bK2\r\nContact: <sip:x@a.example>\r\n"
               "Contact: <sip:y@b.example>;q=0.5\r\nRoute: <sip:p1.example;lr>\r\n"
               "Route: <sip:p2.example;lr>\r\nPath: <sip:e1.example;lr>\r\n"
               "Path: <sip:e2.example;lr>\r\n\r\n")
    for m in (one, many):
        assert [v.host for v in m.vias] == ["a.example", "b.example"]
        assert m.top_via.host == "a.example"
        assert [c.uri.user for c in m.contacts] == ["x", "y"]
        assert [r.uri.host for r in m.route] == ["p1.example", "p2.example"]
        assert [p.uri.host for p in m.path] == ["e1.example", "e2.example"]
        assert len(m.values("via")) == 2
    assert one.vias == many.vias and one.contacts == many.contacts


def test_leading_crlf_and_bare_lf() -> None:
    m = req("\r\n\r\n" + REGISTER)
    assert m.method == "REGISTER" and m.serialize() == REGISTER.encode()
    lf = req(REGISTER.replace("\r\n", "\n"))  # liberal: bare LF line ends
    assert lf == req() and lf.serialize() == REGISTER.encode()
    mixed = req(REGISTER.replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\n"))
    assert mixed.max_forwards == 70
    body = req(REGISTER.replace("Content-Length: 0\r\n\r\n", "Content-Length: 6\n\nab\r\n\r\n"))
    assert body.body == b"ab\r\n\r\n"


@pytest.mark.parametrize(("data", "status"), [
    (b"", 400), (b"\r\n\r\n", 400), (b"garbage", 400), (b"REGISTER sip:x SIP/2.0 extra\r\n\r\n", 400),
    (b"REGISTER  sip:x SIP/2.0\r\n\r\n", 400), (b"REGISTER sip:x SIP/2.0 \r\n\r\n", 400),
    (b"REG@ISTER sip:x SIP/2.0\r\n\r\n", 400), (b"REGISTER sip:x HTTP/1.1\r\n\r\n", 400),
    (b"REGISTER sip:x SIP/3.0\r\n\r\n", 505), (b"SIP/2.1 200 OK\r\n\r\n", 505),
    (b"SIP/2.0 099 Low\r\n\r\n", 400), (b"SIP/2.0 700 High\r\n\r\n", 400),
    (b"SIP/2.0 2000 OK\r\n\r\n", 400), (b"SIP/2.0 abc OK\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nNo colon here\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nBad Name: x\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\n: x\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nX: a\rb\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nX: a\x00b\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 5\r\n\r\nabc", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nContent-Length: five\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 400),
    (b"OPTIONS sip:x SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\nab", 400),
])
def test_parse_errors(data: bytes, status: int) -> None:
    with pytest.raises(SipParseError) as err:
        parse_message(data)
    assert err.value.status == status and isinstance(err.value, ValueError)


def test_quoted_nul_is_allowed() -> None:  # RFC 4475 §3.1.1.2
    m = parse_message(b'OPTIONS sip:x@y.example SIP/2.0\r\nTo: "a\\\x00b" <sip:x@y.example>\r\n\r\n')
    assert m.to.display_name == "a\x00b"


def test_size_and_header_limits() -> None:
    data = REGISTER.encode()
    assert parse_message(data, max_size=len(data)).method == "REGISTER"  # type: ignore[union-attr]
    with pytest.raises(SipParseError) as err:
        parse_message(data, max_size=len(data) - 1)
    assert err.value.status == 513
    assert parse_message(data, max_headers=10)
    with pytest.raises(SipParseError) as err:
        parse_message(data, max_headers=9)
    assert err.value.status == 513
    many = b"OPTIONS sip:x SIP/2.0\r\n" + b"X-A: 1\r\n" * 300 + b"\r\n"
    with pytest.raises(SipParseError):
        parse_message(many)  # default: 256 header lines


def test_content_length_framing() -> None:
    base = "MESSAGE sip:x@y.example SIP/2.0\r\nCall-ID: c\r\n"
    no_cl = parse_message((base + "\r\nhello world").encode())
    assert no_cl.body == b"hello world" and no_cl.content_length is None  # datagram: the rest
    short = parse_message((base + "Content-Length: 5\r\n\r\nhello world").encode())
    assert short.body == b"hello"  # RFC 3261 §18.3: extra octets discarded
    same = parse_message((base + "Content-Length: 5\r\nl: 5\r\n\r\nhello").encode())
    assert same.body == b"hello"
    with pytest.raises(SipParseError):
        parse_message((base + "\r\nhello").encode(), stream=True)
    assert parse_message((base + "\r\n").encode(), stream=True).body == b""


def test_content_length_fixed_on_output() -> None:
    m = req()
    with_body = m.with_body(b"v=0\r\n")
    assert with_body.serialize().endswith(b"Content-Length: 5\r\n\r\nv=0\r\n")
    compact = req(REGISTER.replace("Content-Length: 0", "l: 0")).with_body(b"abc")
    assert b"\r\nl: 3\r\n\r\nabc" in compact.serialize()
    missing = req(REGISTER.replace("Content-Length: 0\r\n", ""))
    assert missing.serialize().endswith(b"User-Agent: sipp-ua-5201\r\nContent-Length: 0\r\n\r\n")
    doubled = req(REGISTER.replace("Content-Length: 0\r\n", "Content-Length: 0\r\nl: 0\r\n"))
    assert doubled.serialize().count(b"Content-Length") == 1 and b"l: 0" not in doubled.serialize()
    stale = Request("OPTIONS", "sip:x", (("content-length", "99", "Content-Length: 99"),), b"ab")
    assert stale.serialize() == b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 2\r\n\r\nab"
    assert bytes(stale) == stale.serialize()


def test_round_trip_equality() -> None:
    m = req()
    assert parse_message(m.serialize()) == m and hash(parse_message(m.serialize())) == hash(m)
    assert m != m.with_body(b"x") and m != parse_message(b"SIP/2.0 200 OK\r\n\r\n")
    assert m.__eq__(object()) is NotImplemented


# -- typed accessors --------------------------------------------------------------------------------
def test_missing_and_bad_values() -> None:
    bare = req("OPTIONS sip:x@y.example SIP/2.0\r\n\r\n")
    for access in ("top_via", "from_", "to", "call_id", "cseq"):
        with pytest.raises(SipParseError) as err:
            getattr(bare, access)
        assert err.value.status == 400 and "missing" in err.value.reason
    assert bare.vias == () and not bare.contacts and bare.expires is None
    assert bare.max_forwards is None and bare.content_length is None
    bad = req("OPTIONS sip:x@y.example SIP/2.0\r\nCall-ID: a b\r\nExpires: soon\r\n"
              "Max-Forwards: 256\r\nMin-Expires: -1\r\n\r\n")
    for access in ("call_id", "expires", "max_forwards", "min_expires"):
        with pytest.raises(SipParseError):
            getattr(bad, access)
    huge = req("OPTIONS sip:x@y.example SIP/2.0\r\nExpires: " + "9" * 5000 + "\r\n\r\n")
    assert huge.expires == 2**32 - 1


def test_duplicates() -> None:
    same = req(REGISTER.replace("Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nMax-Forwards: 70\r\n"))
    assert same.max_forwards == 70 and same.defects() == ()  # identical repeats are tolerated
    other = req(REGISTER.replace("Expires: 60\r\n", "Expires: 60\r\nExpires: 0\r\n"))
    with pytest.raises(SipParseError):
        other.expires  # noqa: B018
    assert other.defects() == ("duplicate-expires",)
    assert other.contacts.items[0].uri.user == "alice"  # other values still readable


def test_request_uri() -> None:
    m0 = req()
    assert m0.uri is m0.uri and m0.uri == req().uri
    m = req(REGISTER.replace("sip:example.test", "tel:+12015550123", 1))
    with pytest.raises(SipParseError) as err:
        m.uri  # noqa: B018
    assert err.value.status == 416
    assert m.defects() == ("unsupported-uri-scheme",)


def test_defects_for_register() -> None:
    star = req(REGISTER.replace("<sip:alice@127.0.0.1:5201>", "*"))
    assert star.defects() == ("star-contact-needs-expires-0",)
    assert req(REGISTER.replace("<sip:alice@127.0.0.1:5201>", "*").replace(
        "Expires: 60", "Expires: 0")).defects() == ()
    assert req(REGISTER.replace("<sip:alice@127.0.0.1:5201>", "<sip:a@b.example>;q=7")
               ).defects() == ("bad-contact",)
    assert req(REGISTER.replace("To: <sip:alice@example.test>", "To: <tel:+1234>")
               ).defects() == ("to-not-sip",)
    assert req(REGISTER.replace("1 REGISTER", "1 INVITE")).defects() == ("cseq-method-mismatch",)
    assert req(REGISTER.replace("Max-Forwards: 70\r\n", "")).defects() == ("missing-max-forwards",)
    assert req(REGISTER.replace("Expires: 60", "Expires: x")).defects() == ("bad-expires",)
    assert req(REGISTER + "").with_body(b"").defects() == ()
    routed = req(REGISTER.replace("Expires: 60\r\n", "Expires: 60\r\nRoute: x y\r\nPath: <\r\n"
                                  "Record-Route: ,\r\n"))
    assert routed.defects() == ("bad-route", "bad-record-route", "bad-path")
    assert set(DEFECTS) >= {"missing-via", "bad-via", "bad-call-id"}


# -- edits ------------------------------------------------------------------------------------------
def test_push_and_pop_via_touch_only_their_line() -> None:
    m = req()
    ours = Via(transport="UDP", host="127.0.0.1", port=5060, params=(("branch", "z9hG4bKus"),))
    pushed = m.push_via(ours)
    assert edited(lines_of(m), lines_of(pushed)) == (
        [], ["Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKus"])
    assert lines_of(pushed)[1] == "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKus"
    assert pushed.top_via == ours and len(pushed.vias) == 2
    assert pushed.pop_via().serialize() == m.serialize()
    two = req(REGISTER.replace("branch=z9hG4bK-31595-1-0", "branch=z9hG4bK1, SIP/2.0/TCP "
                               "b.example;branch=z9hG4bK2").replace("Via:", "v:"))
    popped = two.pop_via()
    assert edited(lines_of(two), lines_of(popped))[1] == ["v: SIP/2.0/TCP b.example;branch=z9hG4bK2"]
    with pytest.raises(SipParseError):
        req("OPTIONS sip:x SIP/2.0\r\n\r\n").pop_via()
    assert req("OPTIONS sip:x SIP/2.0\r\n\r\n").push_via("SIP/2.0/UDP h").headers[0][0] == "via"


def test_replace_top_via_keeps_the_rest() -> None:
    m = req()
    stamped = m.replace_top_via(m.top_via.with_param("received", "192.0.2.9"))
    assert edited(lines_of(m), lines_of(stamped)) == (
        ["Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0"],
        ["Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0;received=192.0.2.9"])
    assert stamped.top_via.received == "192.0.2.9"


def test_header_edits_touch_only_what_they_change() -> None:
    m = req()
    contact = m.contacts.items[0]
    new = contact.with_uri(contact.uri._replace(port=5060)).with_param("expires", "600")
    rewritten = m.replace_headers("Contact", [str(new)])
    assert edited(lines_of(m), lines_of(rewritten)) == (
        ["Contact: <sip:alice@127.0.0.1:5201>"], ["Contact: <sip:alice@127.0.0.1:5060>;expires=600"])
    assert lines_of(rewritten).index("Contact: <sip:alice@127.0.0.1:5060>;expires=600") == 7
    assert rewritten.contacts.items[0] == new and m.contacts.items[0] == contact  # m unchanged
    assert edited(lines_of(m), lines_of(m.remove_headers("user-agent", "expires"))) == (
        ["Expires: 60", "User-Agent: sipp-ua-5201"], [])
    assert m.remove_headers("path") is m
    added = m.add_header("path", "<sip:edge.example;lr>")
    assert edited(lines_of(m), lines_of(added)) == ([], ["Path: <sip:edge.example;lr>"])
    assert lines_of(m.add_header("X-First", "1", first=True))[1] == "X-First: 1"
    inserted = m.insert_before("Supported", "path", before="content-length")
    assert lines_of(inserted)[-4:] == ["Supported: path", "Content-Length: 0", "", ""]
    assert lines_of(m.insert_before("X", "1", before="nothing"))[-3] == "X: 1"
    assert lines_of(m.replace_headers("expires", ["0"]))[8] == "Expires: 0"
    assert lines_of(m.replace_headers("contact", ["*"], display="m"))[7] == "m: *"
    assert not m.replace_headers("contact", []).has("contact")
    assert m.replace_headers("Path", ["<sip:a.example;lr>"]).path[0].uri.host == "a.example"


def test_start_line_edits() -> None:
    m = req()
    assert lines_of(m.with_uri("sip:upstream.example:5080"))[0] == (
        "REGISTER sip:upstream.example:5080 SIP/2.0")
    assert m.with_uri(m.uri._replace(port=5080)).uri.port == 5080
    assert lines_of(m.with_method("OPTIONS"))[0] == "OPTIONS sip:example.test SIP/2.0"
    assert lines_of(m.with_method("OPTIONS"))[1:] == lines_of(m)[1:]


def test_edits_reject_line_breaks() -> None:
    m = req()
    with pytest.raises(ValueError):
        m.add_header("X", "a\r\nInjected: 1")
    with pytest.raises(ValueError):
        m.replace_headers("X", ["a\nb"])
    with pytest.raises(ValueError):
        m.insert_before("X", "a\r", before="via")
    with pytest.raises(ValueError):
        m.with_uri("sip:a b")
    with pytest.raises(ValueError):
        m.with_method("BAD METHOD")
    with pytest.raises(ValueError):
        make_response(m, 200, headers=[("X", "a\r\nb")])


# -- builders ---------------------------------------------------------------------------------------
def test_make_response() -> None:
    m = req(REGISTER.replace("Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0\r\n",
                             "v: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK1\r\n"
                             "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0\r\n"))
    ok = make_response(m, 200, to_tag="abc", headers=[("Contact", "<sip:a@b.example>;expires=60"),
                                                      ("date", "today")])
    assert lines_of(ok) == [
        "SIP/2.0 200 OK", "v: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK1",
        "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0",
        "From: <sip:alice@example.test>;tag=31595SIPpTag001",
        "To: <sip:alice@example.test>;tag=abc", "Call-ID: 1-31595@127.0.0.1", "CSeq: 1 REGISTER",
        "Contact: <sip:a@b.example>;expires=60", "Date: today", "Content-Length: 0", "", ""]
    assert ok.to.tag == "abc" and ok.cseq == m.cseq and parse_message(ok.serialize()) == ok
    trying = make_response(m, 100, to_tag="abc")
    assert trying.reason == "Trying" and trying.to.tag is None
    tagged = req(REGISTER.replace("To: <sip:alice@example.test>", "To: <sip:alice@example.test>"
                                  ";tag=old"))
    assert make_response(tagged, 200, to_tag="new").to.tag == "old"
    quoted = req(REGISTER.replace("To: <sip:alice@example.test>",
                                  'To: "x;tag=y" <sip:alice@example.test;tag=z>'))
    assert make_response(quoted, 486, "Busy", to_tag="t").to.tag == "t"
    with_body = make_response(m, 200, body=b"hello")
    assert with_body.serialize().endswith(b"Content-Length: 5\r\n\r\nhello")
    broken_to = req(REGISTER.replace("To: <sip:alice@example.test>", "To: <sip:broken"))
    assert make_response(broken_to, 400, to_tag="t").get("to") == "<sip:broken;tag=t"


def test_make_request_and_reasons() -> None:
    r = make_request("REGISTER", "sip:registrar.example", [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK9"), ("call-id", "x@y"),
        ("cseq", "5 REGISTER"), ("max-forwards", "70")], body=b"")
    assert lines_of(r) == ["REGISTER sip:registrar.example SIP/2.0",
                           "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK9", "Call-ID: x@y",
                           "CSeq: 5 REGISTER", "Max-Forwards: 70", "Content-Length: 0", "", ""]
    assert r.cseq.seq == 5 and r.max_forwards == 70
    assert reason_phrase(423) == "Interval Too Brief" and reason_phrase(499) == "Bad Request"
    assert reason_phrase(299) == "OK" and reason_phrase(999) == "Unknown"


def test_response_bytes_are_make_response_serialized() -> None:
    from sansmidreg.sip import make_response, response_bytes
    req = parse_message(b"INVITE sip:bob@example.test SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1"
                        b"\r\nv: SIP/2.0/TCP b;branch=z9hG4bK2\r\nMax-Forwards: 70\r\n"
                        b"f: <sip:a@example.test>;tag=1\r\nTo: <sip:bob@example.test>\r\n"
                        b"Call-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
    assert isinstance(req, Request)
    assert response_bytes(req, 100, "Trying") == make_response(req, 100, "Trying").serialize()


def test_single_values_maps_each_header_once_or_says_none() -> None:
    head = (b"REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
            b"f: <sip:a@example.test>;tag=1\r\nTo: <sip:a@example.test>\r\nCall-ID: x\r\n"
            b"CSeq: 1 REGISTER\r\n")
    plain = parse_message(head + b"Content-Length: 0\r\n\r\n")
    values = plain.single_values()
    assert values is not None
    assert values["from"] == "<sip:a@example.test>;tag=1" and values["cseq"] == "1 REGISTER"
    assert set(values) == {"via", "from", "to", "call-id", "cseq", "content-length"}
    twice = parse_message(head + b"Contact: <sip:a@h1>\r\nContact: <sip:a@h2>\r\n"
                          b"Content-Length: 0\r\n\r\n")
    assert twice.single_values() is None  # two Contact lines
    edited = plain.add_header("Contact", "<sip:a@h1>").add_header("Contact", "<sip:a@h2>")
    assert edited.single_values() is None  # an edited message says the same
