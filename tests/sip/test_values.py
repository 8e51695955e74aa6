# Typed header values: Uri (RFC 3261 §19.1, §19.1.4 comparison), NameAddr (§20.10, §25.1),
# Via (§20.42, RFC 3581), CSeq (§20.16), ContactList (§10.2.2) and the lexical helpers.
from __future__ import annotations

import dataclasses

import pytest

from sansmidreg.sip import (
    ContactList,
    CSeq,
    NameAddr,
    SipParseError,
    Uri,
    Via,
    canonical_name,
    format_params,
    is_token,
    parse_host_port,
    parse_params,
    quote,
    split_commas,
    split_list,
    unescape,
    unquote,
)


# -- URIs -------------------------------------------------------------------------------------------
def test_uri_parts() -> None:
    u = Uri.parse("sips:alice:secret@atlanta.com:5061;transport=tcp;lr?subject=hi&priority=urgent")
    assert (u.scheme, u.user, u.password, u.host, u.port) == (
        "sips", "alice", "secret", "atlanta.com", 5061)
    assert u.params == (("transport", "tcp"), ("lr", None))
    assert u.headers == (("subject", "hi"), ("priority", "urgent"))
    assert u.is_sip and u.opaque is None
    assert u.param("transport") == "tcp" and u.param("lr") == "" and u.param("maddr") is None
    assert u.host_port == "atlanta.com:5061"


def test_uri_minimal_and_case() -> None:
    u = Uri.parse("SIP:Alice@Example.COM;Transport=TCP")
    assert u.scheme == "sip"  # scheme and parameter names are case-insensitive
    assert u.user == "Alice" and u.host == "Example.COM"  # kept as written
    assert u.params == (("transport", "TCP"),)
    assert Uri.parse("sip:example.com") == Uri(scheme="sip", host="example.com")
    assert Uri.parse("  sip:example.com  ") == Uri(scheme="sip", host="example.com")


@pytest.mark.parametrize(("text", "host", "port", "host_port"), [
    ("sip:[2001:db8::10]", "2001:db8::10", None, "[2001:db8::10]"),
    ("sip:alice@[2001:db8::10]:5070;transport=tcp", "2001:db8::10", 5070, "[2001:db8::10]:5070"),
    ("sip:[::ffff:192.0.2.1]:5060", "::ffff:192.0.2.1", 5060, "[::ffff:192.0.2.1]:5060"),
    ("sip:192.0.2.1:0", "192.0.2.1", 0, "192.0.2.1:0"),
    ("sip:host_with_underscore.example", "host_with_underscore.example", None,
     "host_with_underscore.example"),
    ("sip:fqdn.example.com.", "fqdn.example.com.", None, "fqdn.example.com."),
])
def test_uri_hosts(text: str, host: str, port: int | None, host_port: str) -> None:
    u = Uri.parse(text)
    assert (u.host, u.port, u.host_port) == (host, port, host_port)
    assert str(u) == text


@pytest.mark.parametrize("text", [
    "", "sip", "sip:", "sip:@example.com", "sip:alice@", "sip:example.com:65536",
    "sip:example.com:", "sip:example.com:5o60", "sip:al ice@example.com", "sip:example.com;",
    "sip:example.com;;lr", "sip:example.com;transport=", "sip:example.com?", "sip:example.com?x",
    "sip:host-", "sip:-host", "<sip:example.com>", "1sip:example.com", "sip:[2001:db8::1",
    "sip:[2001:zz::1]", "sip:[2001:db8::1]x", "sip:a%zzb@example.com", "sip:a@b@example.com",
    "tel:", "mailto:a b@example.com", "sip:exa mple.com", "sip:example.com;a=b c",
    "http://example.com/<x>", "sip:user@host;%zz",
])
def test_uri_errors(text: str) -> None:
    with pytest.raises(SipParseError) as err:
        Uri.parse(text)
    assert err.value.status == 400


@pytest.mark.parametrize("text", [
    "tel:+1-201-555-0123", "urn:service:sos", "mailto:alice@example.com",
    "http://www.example.com/path?q=1#frag", "isbn:2983792873", "soap.beep://192.0.2.103:3002",
])
def test_uri_opaque(text: str) -> None:
    u = Uri.parse(text)
    assert not u.is_sip and u.opaque == text.partition(":")[2]
    assert str(u) == text and u.host == "" and u.params == ()


@pytest.mark.parametrize("text", [
    "sip:alice@atlanta.com", "sip:alice@atlanta.com:5060;transport=udp;lr",
    "sips:+1-212-555-1212:1234@gateway.com;user=phone",
    "sip:%61lice@atlanta.com;maddr=239.255.255.1;ttl=15",
    "sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
    "sip:alice;day=tuesday@atlanta.com", "sip:user;par=u%40example.net@example.com",
    ("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
    "(doesn't-it)@example.com"),
    "sip:[2001:db8::10]:5070;maddr=[2001:db8::1]", "sip:alice@example.com;ob;+sip.x=[::1]",
    "sip:alice@example.com?Route=%3Csip:sip.example.com%3E",
])
def test_uri_round_trip_and_fast_path_agrees(text: str) -> None:
    u = Uri.parse(text)
    assert str(u) == text
    assert Uri.parse_general(text) == u
    assert Uri.parse(str(u)) == u


def test_uri_edits() -> None:
    u = Uri.parse("sip:alice@example.com;transport=tcp;lr")
    assert str(u.with_param("transport", "udp")) == "sip:alice@example.com;transport=udp;lr"
    assert str(u.with_param("ob", None)) == "sip:alice@example.com;transport=tcp;lr;ob"
    assert str(u.without_param("lr")) == "sip:alice@example.com;transport=tcp"
    assert str(u.with_params(())) == "sip:alice@example.com"
    assert str(u._replace(host="192.0.2.1", port=5080)) == (
        "sip:alice@192.0.2.1:5080;transport=tcp;lr")
    h = Uri.parse("sip:a@b.example?x=1")
    assert h.without_headers() == Uri(scheme="sip", user="a", host="b.example")


def test_uri_is_immutable_and_typed_equality() -> None:
    u = Uri.parse("sip:alice@example.com")
    with pytest.raises(AttributeError):
        u.host = "x"  # type: ignore[misc]
    assert u == Uri(scheme="sip", user="alice", host="example.com")
    assert hash(u) == hash(Uri(scheme="sip", user="alice", host="example.com"))
    assert u != tuple(u)
    assert u != Via(transport="UDP", host="example.com")
    assert not dataclasses.is_dataclass(u)


# RFC 3261 §19.1.4: "the following URIs are equivalent"
@pytest.mark.parametrize(("a", "b"), [
    ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com;security=on"),
    ("sip:carol@chicago.com;newparam=5", "sip:carol@chicago.com;security=on"),
    ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
     "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
    ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
     "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
    ("sip:[2001:db8::1]:5060", "sip:[2001:DB8:0::1]:5060"),
    ("tel:+1-201-555-0123", "tel:+1-201-555-%30123"),
])
def test_uri_equivalent(a: str, b: str) -> None:
    ua, ub = Uri.parse(a), Uri.parse(b)
    assert ua.equivalent(ub) and ub.equivalent(ua)


# RFC 3261 §19.1.4: "the following URIs are not equivalent"
@pytest.mark.parametrize(("a", "b"), [
    ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
    ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
    ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
    ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
    ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
    ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "sip:atlanta.com"),
    ("sip:alice:pw@atlanta.com", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;maddr=1.2.3.4", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com;user=phone", "sip:alice@atlanta.com"),
    ("sip:alice@atlanta.com", "tel:alice"),
])
def test_uri_not_equivalent(a: str, b: str) -> None:
    ua, ub = Uri.parse(a), Uri.parse(b)
    assert not ua.equivalent(ub) and not ub.equivalent(ua)


def test_uri_key() -> None:
    assert Uri.parse("sip:%61lice@AtLanTa.CoM;transport=tcp").key() == "sip:alice@atlanta.com:"
    assert Uri.parse("sip:alice@atlanta.com:5070").key() == "sip:alice@atlanta.com:5070"
    assert Uri.parse("tel:+1%32").key() == "tel:+12"


def test_parse_host_port() -> None:
    assert parse_host_port("example.com") == ("example.com", None)
    assert parse_host_port("192.0.2.1:5060") == ("192.0.2.1", 5060)
    assert parse_host_port("[::1]:5070") == ("::1", 5070)
    for bad in ("", ":5060", "[::1]5060", "host:", "host:70000", "a b"):
        with pytest.raises(SipParseError):
            parse_host_port(bad)


# -- name-addr / addr-spec --------------------------------------------------------------------------
def test_name_addr_forms() -> None:
    a = NameAddr.parse('"Alice Smith" <sip:alice@example.com:5070;transport=tcp>;tag=1928301774')
    assert a.display == '"Alice Smith"' and a.display_name == "Alice Smith"
    assert str(a.uri) == "sip:alice@example.com:5070;transport=tcp" and a.angle
    assert a.tag == "1928301774" and a.params == (("tag", "1928301774"),)
    b = NameAddr.parse("Alice Smith <sip:alice@example.com>")
    assert b.display == "Alice Smith" and b.params == ()
    c = NameAddr.parse("sip:alice@example.com;tag=88;expires=30")  # addr-spec: header params
    assert not c.angle and c.uri.params == () and c.tag == "88" and c.expires == "30"
    d = NameAddr.parse("<sips:[2001:db8::1]:5061>")
    assert d.uri.host == "2001:db8::1" and d.uri.port == 5061 and d.display is None
    e = NameAddr.parse('"Quote \\" and \\\\ backslash" <sip:a@b.example>')
    assert e.display_name == 'Quote " and \\ backslash'
    f = NameAddr.parse("  Müller  <sip:m@example.de>  ;  tag = x  ")
    assert f.display == "Müller" and f.tag == "x"
    g = NameAddr.parse("<tel:+1-201-555-0123>")
    assert not g.uri.is_sip and g.uri.opaque == "+1-201-555-0123"


def test_name_addr_params() -> None:
    a = NameAddr.parse('<sip:a@192.0.2.1:5060;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-'
                       '8000-AABBCCDDEEFF>";reg-id=1;q=0.5;expires=3600;methods="INVITE, BYE"')
    assert a.instance == "<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>"
    assert a.reg_id == 1 and a.q == 0.5 and a.expires == "3600" and a.expires_seconds == 3600
    assert a.param("methods") == '"INVITE, BYE"' and a.uri.param("ob") == ""
    assert str(a) == ('<sip:a@192.0.2.1:5060;ob>;+sip.instance="<urn:uuid:00000000-0000-1000-'
                      '8000-AABBCCDDEEFF>";reg-id=1;q=0.5;expires=3600;methods="INVITE, BYE"')
    quoted = NameAddr.parse('<sip:a@b.example>;x="a;b,c";y')
    assert quoted.params == (("x", '"a;b,c"'), ("y", None))


@pytest.mark.parametrize(("q", "value"), [
    ("0", 0.0), ("1", 1.0), ("0.5", 0.5), ("0.123", 0.123), ("1.000", 1.0), ("0.", 0.0)])
def test_q_values(q: str, value: float) -> None:
    assert NameAddr.parse(f"<sip:a@b.example>;q={q}").q == value


@pytest.mark.parametrize("q", ["1.5", "1.001", "abc", ".5", "0.1234", "2", "-0", "nan", "1e0"])
def test_bad_q_values(q: str) -> None:
    with pytest.raises(SipParseError):
        NameAddr.parse(f"<sip:a@b.example>;q={q}").q  # noqa: B018


def test_contact_expires_and_reg_id() -> None:
    assert NameAddr.parse("<sip:a@b.example>").expires_seconds is None
    assert NameAddr.parse("<sip:a@b.example>;expires=0").expires_seconds == 0
    assert NameAddr.parse("<sip:a@b.example>;expires=" + "9" * 5000).expires_seconds == 2**32 - 1
    with pytest.raises(SipParseError):
        NameAddr.parse("<sip:a@b.example>;expires=soon").expires_seconds  # noqa: B018
    assert NameAddr.parse("<sip:a@b.example>;reg-id=x").reg_id is None
    assert NameAddr.parse("<sip:a@b.example>;reg-id=\"2\"").reg_id is None  # quoted
    assert NameAddr.parse("<sip:a@b.example>;reg-id=0").reg_id is None


def test_name_addr_edits_and_str() -> None:
    a = NameAddr.parse("<sip:alice@example.com>;tag=1;expires=60")
    assert str(a.with_param("expires", "0")) == "<sip:alice@example.com>;tag=1;expires=0"
    assert str(a.with_param("q", "0.1")) == "<sip:alice@example.com>;tag=1;expires=60;q=0.1"
    assert str(a.without_param("tag")) == "<sip:alice@example.com>;expires=60"
    assert str(a.with_params(())) == "<sip:alice@example.com>"
    assert str(a.with_uri(Uri.parse("sip:x@y.example"))) == "<sip:x@y.example>;tag=1;expires=60"
    spec = NameAddr.parse("sip:alice@example.com;tag=1")
    assert str(spec) == "sip:alice@example.com;tag=1"
    # an addr-spec whose URI gains parameters must get <> (§20.10)
    with_uri_param = spec.with_uri(spec.uri.with_param("transport", "tcp"))
    assert str(with_uri_param) == "<sip:alice@example.com;transport=tcp>;tag=1"
    assert NameAddr(uri=Uri.parse("sip:a@b.example")) == NameAddr.parse("<sip:a@b.example>")


@pytest.mark.parametrize("text", [
    "", "<sip:a@b.example", '"unterminated <sip:a@b.example>', "Bell, A <sip:a@b.example>",
    "<sip:a@b.example> junk", "< sip:a@b.example>", "<sip:a@b.example >",
    "sip:a@b.example?Route=x", "sip:a@b.example;;tag=1", "<sip:a@b.example>;",
    "<sip:a@b.example>;tag=", "<sip:a@b.example>;ta g=1", '"a" b <sip:a@b.example>',
    "<sip:a@b.example>;tag=a b", "a@b.example", "<>", "sip:a b@c.example",
    '<sip:a@b.example>;x="unterminated',
])
def test_name_addr_errors(text: str) -> None:
    with pytest.raises(SipParseError) as err:
        NameAddr.parse(text)
    assert err.value.status == 400


@pytest.mark.parametrize("text", [
    "<sip:alice@example.test>;tag=31595SIPpTag001", "<sip:alice@127.0.0.1:5201>",
    '"Alice" <sip:alice@example.com>;tag=x;expires=60', "Alice <sip:a@b.example;lr>",
    "sip:alice@example.com;tag=1", "sip:alice@example.com", '<sip:a@b.example>;x="y z";q=1',
])
def test_name_addr_fast_path_agrees(text: str) -> None:
    assert NameAddr.parse(text) == NameAddr.parse_general(text)


# -- Via --------------------------------------------------------------------------------------------
def test_via_basic() -> None:
    v = Via.parse("SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "192.0.2.1", 5060)
    assert v.branch == "z9hG4bK776asdhds" and v.rport == "" and v.received is None
    assert v.sent_by == "192.0.2.1:5060"
    assert str(v) == "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport"
    assert Via.parse_general(str(v)) == v


def test_via_received_rport() -> None:  # RFC 3261 §18.2.1, RFC 3581 §4
    v = Via.parse("SIP/2.0/UDP phone.example.com;branch=z9hG4bK1;rport")
    stamped = v.with_param("received", "203.0.113.7").with_param("rport", "40123")
    assert stamped.received == "203.0.113.7" and stamped.rport == "40123"
    assert str(stamped) == (
        "SIP/2.0/UDP phone.example.com;branch=z9hG4bK1;rport=40123;received=203.0.113.7")
    assert str(stamped.without_param("received")) == (
        "SIP/2.0/UDP phone.example.com;branch=z9hG4bK1;rport=40123")
    v6 = Via.parse("SIP/2.0/TCP [2001:db8::9]:5070;branch=z9hG4bK2;received=2001:db8::10")
    assert v6.host == "2001:db8::9" and v6.sent_by == "[2001:db8::9]:5070"
    assert v6.received == "2001:db8::10"


def test_via_lws_and_case() -> None:
    v = Via.parse("sip / 2.0 / udp  host.example.com : 5062 ;  branch = z9hG4bKx ; ttl=1")
    assert (v.protocol, v.transport, v.host, v.port) == ("SIP/2.0", "UDP", "host.example.com", 5062)
    assert v.params == (("branch", "z9hG4bKx"), ("ttl", "1"))
    assert str(v) == "SIP/2.0/UDP host.example.com:5062;branch=z9hG4bKx;ttl=1"
    assert Via.parse("SIP/2.0/UNKNOWN t4.example.com").transport == "UNKNOWN"


@pytest.mark.parametrize("text", [
    "", "SIP/2.0/UDP", "SIP/2.0 UDP host", "SIP/2.0/UDP host;", "SIP/2.0/UDP host;;branch=1",
    "SIP/2.0/UDP host:99999", "SIP/2.0/UDP ho st", "SIP/2.0/UDP host;branch=a b",
    "SIP//UDP host", "SIP/2.0/ host", "SIP/2.0/UDP [::1", "SIP/2.0/U,DP host",
])
def test_via_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        Via.parse(text)


# -- CSeq -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seq", "method"), [
    ("1 REGISTER", 1, "REGISTER"), ("0 INVITE", 0, "INVITE"),
    ("4294967295 REGISTER", 2**32 - 1, "REGISTER"), ("0009 INVITE", 9, "INVITE"),
    ("000000000000001 ACK", 1, "ACK"), ("7\tOPTIONS", 7, "OPTIONS"),
    ("  12   NEW-METHOD ", 12, "NEW-METHOD"),
])
def test_cseq(text: str, seq: int, method: str) -> None:
    c = CSeq.parse(text)
    assert (c.seq, c.method) == (seq, method) and c == CSeq(seq=seq, method=method)
    assert str(c) == f"{seq} {method}"


@pytest.mark.parametrize("text", [
    "4294967296 REGISTER", "36893488147419103232 REGISTER", "1", "REGISTER", "-1 INVITE",
    "1 INV ITE", "\u0661 INVITE", "1 INV/ITE", "", "9" * 5000 + " INVITE", "1.5 INVITE",
])
def test_cseq_errors(text: str) -> None:
    with pytest.raises(SipParseError):
        CSeq.parse(text)


# -- Contact list -----------------------------------------------------------------------------------
def test_contact_list() -> None:
    star = ContactList.parse_values(["*"])
    assert star.star and not star.items and bool(star) and str(star) == "*" and len(star) == 0
    many = ContactList.parse_values(['<sip:a@x.example>, "B, b" <sip:b@y.example>;q=0.1',
                                     "sip:c@z.example"])
    assert [str(c.uri) for c in many] == ["sip:a@x.example", "sip:b@y.example", "sip:c@z.example"]
    assert len(many) == 3 and many.items[1].display_name == "B, b"
    empty = ContactList.parse_values([])
    assert not empty and empty == ContactList()
    assert many == ContactList.parse_values([str(many)])
    assert repr(star) == "ContactList(star=True, items=())"
    with pytest.raises(AttributeError):
        star.star = False  # type: ignore[misc]


@pytest.mark.parametrize("lines", [
    ["*", "<sip:a@x.example>"], ["*, <sip:a@x.example>"], ["*", "*"], ["*;expires=0"],
    ["<sip:a@x.example>,"], [""], [",<sip:a@x.example>"], ["<sip:a@x.example>,,<sip:b@x.example>"],
])
def test_contact_list_errors(lines: list[str]) -> None:
    with pytest.raises(SipParseError):
        ContactList.parse_values(lines)


# -- lexical helpers --------------------------------------------------------------------------------
def test_split() -> None:
    assert split_commas('a, "b,c" , <sip:d,e@f.example>,,') == [
        "a", '"b,c"', "<sip:d,e@f.example>"]
    assert split_commas("") == [] and split_commas(" x ") == ["x"]
    assert split_list("a , b") == ["a", "b"]
    for bad in ("", "a,", ",a", "a,,b", ' "a,b'):
        with pytest.raises(SipParseError):
            split_list(bad)


def test_params() -> None:
    assert parse_params(";a=1 ; B ;c=\"x;y\"") == (("a", "1"), ("b", None), ("c", '"x;y"'))
    assert parse_params("") == ()
    assert format_params((("a", "1"), ("b", None))) == ";a=1;b"
    for bad in (";", ";;a", "a;", "a=", "a b=1", "=1", 'a="x'):
        with pytest.raises(SipParseError):
            parse_params(bad)


def test_quoting_and_escapes() -> None:
    assert unquote('"a \\"b\\" \\\\"') == 'a "b" \\'
    assert unquote("token") == "token"
    assert unquote(quote('say "hi" \\o/')) == 'say "hi" \\o/'
    assert unescape("%61lice%20%41") == "alice A" and unescape("plain") == "plain"
    assert unescape("%C3%A9") == "é" and unescape("%FF") == "\udcff"
    for bad in ("%", "%4", "%zz", "a%g0"):
        with pytest.raises(SipParseError):
            unescape(bad)


def test_header_names() -> None:
    compact = {"i": "call-id", "m": "contact", "e": "content-encoding", "l": "content-length",
               "c": "content-type", "f": "from", "s": "subject", "k": "supported", "t": "to",
               "v": "via"}
    for short, full in compact.items():  # RFC 3261 §7.3.3
        assert canonical_name(short) == canonical_name(short.upper()) == full
    assert canonical_name("CALL-ID") == "call-id" and canonical_name("X-Foo") == "x-foo"
    assert is_token("REGISTER") and is_token("!%*_+`'~.-") and not is_token("a b")
    assert not is_token("")
