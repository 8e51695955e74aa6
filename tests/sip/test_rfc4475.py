# RFC 4475 torture messages (tests/data/rfc4475, byte-exact copies of the RFC's Appendix A
# archive; INDEX.md says what the RFC expects of each). One test per message, each asserting the
# specific values or errors the RFC points out. Section numbers are the RFC's.
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from sansmidreg.sip import (
    KEEPALIVE_PING,
    RFC2543_DEFECTS,
    Request,
    Response,
    SipParseError,
    StreamFramer,
    Uri,
    make_response,
    parse_message,
    unescape,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "rfc4475"


def raw(name: str) -> bytes:
    return (DATA / f"{name}.dat").read_bytes()


def request(name: str) -> Request:
    msg = parse_message(raw(name))
    assert isinstance(msg, Request)
    return msg


def response(name: str) -> Response:
    msg = parse_message(raw(name))
    assert isinstance(msg, Response)
    return msg


def parse_error(name: str) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        parse_message(raw(name))
    return info.value


# -- the corpus ------------------------------------------------------------------------------------
def test_checksums() -> None:
    sums = (DATA / "SHA256SUMS").read_text().split("\n")
    entries = [line.split() for line in sums if line.strip()]
    assert len(entries) == 50
    for digest, name in entries:
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
    assert sorted(p.name for p in DATA.glob("*.dat")) == sorted(name for _, name in entries)


def test_every_message_has_a_test() -> None:
    module = sys.modules[__name__]
    for path in DATA.glob("*.dat"):
        assert hasattr(module, f"test_{path.stem}"), path.name


# -- §3.1.1 valid messages -------------------------------------------------------------------------
def test_wsinv() -> None:  # §3.1.1.1 A Short Tortuous INVITE
    m = request("wsinv")
    assert m.method == "INVITE"
    assert m.uri.host == "chair-dnrc.example.com" and m.uri.param("unknownparam") == ""
    # "TO :" folded, addr-spec with LWS around ';' and '='
    assert str(m.to.uri) == "sip:vivekg@chair-dnrc.example.com" and m.to.tag == "1918181833n"
    assert not m.to.angle
    # quoted display name with escaped backslash and quote, params folded over two lines
    assert m.from_.display == '"J Rosenberg \\\\\\""'
    assert m.from_.display_name == 'J Rosenberg \\"'
    assert m.from_.tag == "98asjd8"
    assert m.max_forwards == 68  # leading zeros
    assert m.call_id == "wsinv.ndaksdj@192.0.2.1"
    assert m.content_length == 150 and len(m.body) == 150
    assert (m.cseq.seq, m.cseq.method) == (9, "INVITE")  # "0009" folded before the method
    assert [(v.protocol, v.transport, v.host, v.branch) for v in m.vias] == [
        ("SIP/2.0", "UDP", "192.0.2.2", "390skdjuw"),
        ("SIP/2.0", "TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("SIP/2.0", "UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.get("subject") == ""  # "s :" compact form, empty value
    assert m.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"  # opaque, kept as is
    [route] = m.route
    assert route.uri.params == (("lr", None), ("unknownwith", "value"), ("unknown-no-value", None))
    [contact] = m.contacts.items
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert contact.q == 0.33
    assert m.defects() == ("rfc2543-branch",)  # the top Via has no z9hG4bK branch
    assert m.serialize() == raw("wsinv")  # forwarded byte for byte


def test_intmeth() -> None:  # §3.1.1.2 Wide Range of Valid Characters
    m = request("intmeth")
    assert m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.uri.host == "example.com"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"  # quoted-pairs, NUL included
    assert m.to.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.from_.display == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromparam''~+*_!.-%") == '"работающий"'
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.cseq.method == m.method and m.cseq.seq == 139122385
    assert m.max_forwards == 255
    assert m.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert m.defects() == ()
    assert m.serialize() == raw("intmeth")


def test_esc01() -> None:  # §3.1.1.3 Valid Use of the % Escaping Mechanism
    m = request("esc01")
    assert m.uri.user == "sips%3Auser%40example.com"  # kept escaped as written
    assert unescape(m.uri.user) == "sips:user@example.com" and m.uri.host == "example.net"
    assert m.to.uri.equivalent(Uri.parse("sip:user@example.com"))
    assert unescape(m.from_.uri.user or "") == "I have spaces"
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"  # compact "i"
    assert m.get("content-type") == "application/sdp"  # compact "C"
    [contact] = m.contacts.items  # folded Contact
    assert contact.uri.param("lr") == ""  # %6C%72 is "lr"
    assert contact.uri.param("name") == "v%61lue%25%34%31"
    # unescape once: the value is "value%41", not "valueA"
    assert contact.uri.equivalent(Uri.parse("sip:caller@host5.example.net;lr;name=value%2541"))
    assert not contact.uri.equivalent(Uri.parse("sip:caller@host5.example.net;lr;name=valueA"))
    assert m.defects() == ()


def test_escnull() -> None:  # §3.1.1.4 Escaped Nulls in URIs
    m = request("escnull")
    assert m.method == "REGISTER"
    assert unescape(m.to.uri.user or "") == "null-\x00-null"  # not truncated at the NUL
    assert m.from_.tag == "839923423"
    first, second = m.contacts.items
    assert unescape(first.uri.user or "") == "\x00"
    assert unescape(second.uri.user or "") == "\x00\x00"
    assert first.uri.key() != second.uri.key() and not first.uri.equivalent(second.uri)
    assert m.content_length == 0  # "L:0"
    assert m.defects() == ()


def test_esc02() -> None:  # §3.1.1.5 Use of % When It Is Not an Escape
    m = request("esc02")
    assert m.method == "RE%47IST%45R" and m.method != "REGISTER"
    assert m.cseq.method == "RE%47IST%45R"
    assert m.to.display_name == "%Z%45" and m.from_.display_name == "%Z%45"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"
    assert [str(c.uri) for c in m.contacts] == [
        "sip:alias1@host1.example.com", "sip:alias3@host3.example.com"]
    assert m.get("C%6Fntact") == "<sip:alias2@host2.example.com>"  # an unknown header
    assert m.defects() == ()


def test_lwsdisp() -> None:  # §3.1.1.6 No LWS between Display Name and <
    m = request("lwsdisp")
    assert m.from_.display == "caller" and str(m.from_.uri) == "sip:caller@example.com"
    assert m.from_.tag == "323"
    assert m.defects() == ()


def test_longreq() -> None:  # §3.1.1.7 Long Values in Header Fields
    data = raw("longreq")
    assert len(data) == 3515
    m = request("longreq")
    assert m.to.display_name is not None and m.to.display_name.startswith("I have a user name")
    assert m.to.uri.port == 6000
    assert m.to.uri.param("longparamnamenamenamenamenamenamenamenamenamenamenamenamenamenamename"
                          "namenamenamenamenamenamenamenamenamename") == "shortvalue"
    assert m.from_.tag == "1" + "298" * 50 + "2424"
    assert m.from_.param("unknownvaluelessparamnameparamnameparamnameparamnameparamnameparamname"
                         "paramnameparamnameparamnameparamname") == ""
    assert m.call_id.startswith("longreq.onereally") and m.call_id.endswith("longcallid")
    vias = m.vias  # every spelling of Via: v V ViA VIa VIA via viA vIa vIA, LWS before ':'
    assert len(vias) == 34
    assert [v.host for v in vias[:3]] == ["sip33.example.com", "sip32.example.com",
                                          "sip31.example.com"]
    assert vias[-1].received == "192.0.2.5" and (vias[-1].branch or "").startswith("verylong")
    assert m.contacts.items[0].uri.user == "amazinglylongcallername" * 5
    assert m.defects() == ("rfc2543-branch",)
    assert m.serialize() == data


def test_dblreq() -> None:  # §3.1.1.8 Extra Trailing Octets in a UDP Datagram
    m = request("dblreq")
    assert m.method == "REGISTER" and m.body == b""
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"  # compact "I"
    assert str(m.contacts.items[0].uri) == "sip:j.user@host.example.com"
    out = m.serialize()
    assert b"INVITE" not in out and out.endswith(b"Content-Length: 0\r\n\r\n")
    assert m.defects() == ()


def test_semiuri() -> None:  # §3.1.1.9 Semicolon-Separated Parameters in URI User Part
    m = request("semiuri")
    assert m.uri.user == "user;par=u%40example.net" and m.uri.host == "example.com"
    assert m.uri.params == ()
    assert m.values("accept") == ["application/sdp", "application/pkcs7-mime", "multipart/mixed",
                                  "multipart/signed", "message/sip", "message/sipfrag"]
    assert m.defects() == ()


def test_transports() -> None:  # §3.1.1.10 Varied and Unknown Transport Types
    m = request("transports")
    assert [v.transport for v in m.vias] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"
    assert m.defects() == ()


def test_mpart01() -> None:  # §3.1.1.11 Multipart MIME Message
    m = request("mpart01")
    assert m.content_length == 553 and len(m.body) == 553
    assert b"\x00" in m.body and b"\n" in m.body  # binary part framed by Content-Length only
    assert m.get("content-type") == "multipart/mixed;boundary=7a9cbec02ceef655"
    assert m.top_via.rport == ""  # rport flag (RFC 3581)
    assert m.serialize() == raw("mpart01")
    assert m.defects() == ()


def test_unreason() -> None:  # §3.1.1.12 Unusual Reason Phrase
    m = response("unreason")
    assert m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert len(m.body) == 154
    assert m.serialize() == raw("unreason")
    assert m.defects() == ()


def test_noreason() -> None:  # §3.1.1.13 Empty Reason Phrase
    m = response("noreason")
    assert (m.status, m.reason) == (100, "")
    assert m.serialize() == raw("noreason")
    assert m.defects() == ()


# -- §3.1.2 invalid messages -----------------------------------------------------------------------
def test_badinv01() -> None:  # §3.1.2.1 Extraneous Header Field Separators
    m = request("badinv01")
    with pytest.raises(SipParseError) as via:
        m.top_via  # noqa: B018
    with pytest.raises(SipParseError) as contact:
        m.contacts  # noqa: B018
    assert via.value.status == contact.value.status == 400
    assert m.defects() == ("bad-via", "bad-contact")


def test_clerr() -> None:  # §3.1.2.2 Content Length Larger Than Message
    assert parse_error("clerr").status == 400
    framer = StreamFramer()  # on a stream: wait for the rest
    assert framer.feed(raw("clerr")) == [] and framer.buffered == len(raw("clerr"))


def test_ncl() -> None:  # §3.1.2.3 Negative Content-Length
    assert parse_error("ncl").status == 400
    with pytest.raises(SipParseError):
        StreamFramer().feed(raw("ncl"))  # unrecoverable on a stream


def test_scalar02() -> None:  # §3.1.2.4 Request Scalar Fields with Overlarge Values
    m = request("scalar02")
    with pytest.raises(SipParseError) as cseq:
        m.cseq  # 36893488147419103232 > 2**32-1  # noqa: B018
    assert cseq.value.status == 400
    with pytest.raises(SipParseError):
        m.max_forwards  # 300 > 255  # noqa: B018
    assert m.expires == 2**32 - 1  # saturated: the registrar clamps it to its maximum
    assert m.contacts.items[0].expires_seconds == 2**32 - 1
    assert m.defects() == ("bad-cseq", "bad-max-forwards")


def test_scalarlg() -> None:  # §3.1.2.5 Response Scalar Fields with Overlarge Values
    m = response("scalarlg")
    assert m.status == 503
    with pytest.raises(SipParseError):
        m.cseq  # noqa: B018
    assert m.get("retry-after") == "949302838503028349304023988"  # kept raw
    assert m.get("warning") == '1812 overture "In Progress"'
    assert m.defects() == ("bad-cseq",)


def test_quotbal() -> None:  # §3.1.2.6 Unterminated Quoted String in Display Name
    m = request("quotbal")
    with pytest.raises(SipParseError) as err:
        m.to  # noqa: B018
    assert err.value.status == 400
    assert m.defects() == ("bad-to",)


def test_ltgtruri() -> None:  # §3.1.2.7 <> Enclosing Request-URI
    m = request("ltgtruri")
    assert m.uri_text == "<sip:user@example.com>"
    with pytest.raises(SipParseError) as err:
        m.uri  # noqa: B018
    assert err.value.status == 400
    assert m.defects() == ("bad-request-uri", "rfc2543-branch")


def test_lwsruri() -> None:  # §3.1.2.8 Malformed SIP Request-URI (embedded LWS)
    err = parse_error("lwsruri")
    assert err.status == 400 and "request line" in err.reason


def test_lwsstart() -> None:  # §3.1.2.9 Multiple SP Separating Request-Line Elements
    assert parse_error("lwsstart").status == 400


def test_trws() -> None:  # §3.1.2.10 SP Characters at End of Request-Line
    assert parse_error("trws").status == 400


def test_escruri() -> None:  # §3.1.2.11 Escaped Headers in SIP Request-URI
    m = request("escruri")
    with pytest.raises(SipParseError) as err:
        m.uri  # noqa: B018
    assert err.value.status == 400
    uri = Uri.parse(m.uri_text)  # a liberal element could drop the headers, never apply them
    assert uri.headers == (("Route", "%3Csip:example.com%3E"),)
    assert str(uri.without_headers()) == "sip:user@example.com"
    assert not m.has("route")
    assert m.defects() == ("bad-request-uri",)


def test_baddate() -> None:  # §3.1.2.12 Invalid Time Zone in Date Header Field
    m = request("baddate")
    assert m.get("date") == "Fri, 01 Jan 2010 16:00:00 EST"  # not interpreted: forwarded as is
    assert m.defects() == ()


def test_regbadct() -> None:  # §3.1.2.13 Failure to Enclose name-addr URI in <>
    m = request("regbadct")
    with pytest.raises(SipParseError) as err:
        m.contacts  # noqa: B018
    assert err.value.status == 400
    assert m.defects() == ("bad-contact",)


def test_badaspec() -> None:  # §3.1.2.14 Spaces within addr-spec
    m = request("badaspec")
    assert m.from_.display_name == "Bell, Alexander"  # the quoted comma is fine
    with pytest.raises(SipParseError) as err:
        m.to  # "< sip:t.watson@example.org >"  # noqa: B018
    assert err.value.status == 400
    assert m.defects() == ("bad-to",)


def test_baddn() -> None:  # §3.1.2.15 Non-token Characters in Display Name
    data = raw("baddn")
    assert data.endswith(b"l: 0\r\n")  # the archive has no empty line after the headers
    m = request("baddn")
    with pytest.raises(SipParseError):
        m.from_  # noqa: B018
    with pytest.raises(SipParseError):
        m.to  # noqa: B018
    assert m.defects() == ("bad-from", "bad-to")
    assert m.serialize() == data + b"\r\n"


def test_badvers() -> None:  # §3.1.2.16 Unknown Protocol Version
    assert parse_error("badvers").status == 505


def test_mismatch01() -> None:  # §3.1.2.17 Start Line and CSeq Method Mismatch
    m = request("mismatch01")
    assert (m.method, m.cseq.method) == ("OPTIONS", "INVITE")
    assert m.defects() == ("cseq-method-mismatch",)


def test_mismatch02() -> None:  # §3.1.2.18 Unknown Method with CSeq Method Mismatch
    m = request("mismatch02")
    assert (m.method, m.cseq.method) == ("NEWMETHOD", "INVITE")
    assert m.defects() == ("cseq-method-mismatch",)


def test_bigcode() -> None:  # §3.1.2.19 Overlarge Response Code
    err = parse_error("bigcode")
    assert err.status == 400 and "status code" in err.reason


# -- §3.2 transaction layer, §3.3 application layer ------------------------------------------------
def test_badbranch() -> None:  # §3.2.1 Missing Transaction Identifier
    m = request("badbranch")
    assert m.top_via.branch == "z9hG4bK"
    assert m.defects() == ("empty-branch",)


def test_insuf() -> None:  # §3.3.1 Missing Required Header Fields
    m = request("insuf")
    for access in ("from_", "to", "call_id"):
        with pytest.raises(SipParseError):
            getattr(m, access)
    assert m.defects() == ("missing-from", "missing-to", "missing-call-id",
                           "missing-max-forwards")
    reply = make_response(m, 400, to_tag="x")  # still answerable: Via and CSeq are there
    assert reply.serialize().startswith(b"SIP/2.0 400 Bad Request\r\nCSeq: 193942 INVITE\r\n")


def test_unkscm() -> None:  # §3.3.2 Request-URI with Unknown Scheme
    m = request("unkscm")
    with pytest.raises(SipParseError) as err:
        m.uri  # noqa: B018
    assert err.value.status == 416
    uri = Uri.parse(m.uri_text)
    assert (uri.scheme, uri.opaque, uri.is_sip) == (
        "nobodyknowsthisscheme", "totallyopaquecontent", False)
    assert m.to.uri.is_sip  # never route on To instead
    assert m.defects() == ("unsupported-uri-scheme",)


def test_novelsc() -> None:  # §3.3.3 Request-URI with Known but Atypical Scheme
    m = request("novelsc")
    with pytest.raises(SipParseError) as err:
        m.uri  # noqa: B018
    assert err.value.status == 416
    assert Uri.parse(m.uri_text).scheme == "soap.beep"
    assert m.defects() == ("unsupported-uri-scheme",)


def test_unksm2() -> None:  # §3.3.4 Unknown URI Schemes in Header Fields
    m = request("unksm2")
    assert (m.to.uri.scheme, m.to.uri.opaque) == ("isbn", "2983792873")
    assert str(m.from_.uri) == "http://www.example.com" and m.from_.tag == "3234233"
    assert (m.contacts.items[0].uri.scheme, m.contacts.items[0].uri.opaque) == (
        "name", "John_Smith")
    assert m.defects() == ("to-not-sip",)  # a registrar answers 400


def test_bext01() -> None:  # §3.3.5 Proxy-Require and Require
    m = request("bext01")
    assert m.option_tags("require") == {"nothingsupportsthis", "nothingsupportsthiseither"}
    assert m.option_tags("Proxy-Require") == {"noproxiessupportthis",
                                              "nordoanyproxiessupportthis"}
    assert m.top_via.transport == "TLS"
    assert m.defects() == ()


def test_invut() -> None:  # §3.3.6 Unknown Content-Type
    m = request("invut")
    assert m.get("content-type") == "application/unknownformat"
    assert m.body.startswith(b"<audio>") and len(m.body) == 40
    assert m.defects() == ()


def test_regaut01() -> None:  # §3.3.7 Unknown Authorization Scheme
    m = request("regaut01")
    assert m.get("authorization") == "NoOneKnowsThisScheme opaque-data=here"
    assert m.content_length == 0  # "Content-Length:0"
    assert m.defects() == ()
    assert m.serialize() == raw("regaut01")


def test_multi01() -> None:  # §3.3.8 Multiple Values in Single Value Required Fields
    m = request("multi01")
    for access in ("from_", "to", "call_id", "cseq", "max_forwards"):
        with pytest.raises(SipParseError) as err:
            getattr(m, access)
        assert err.value.status == 400
    assert len(m.contacts) == 2  # Contact may repeat
    assert m.defects() == ("duplicate-from", "duplicate-to", "duplicate-call-id",
                           "duplicate-cseq", "duplicate-max-forwards")


def test_mcl01() -> None:  # §3.3.9 Multiple Content-Length Values
    err = parse_error("mcl01")
    assert err.status == 400 and "Content-Length" in err.reason
    with pytest.raises(SipParseError):
        StreamFramer().feed(raw("mcl01"))


def test_bcast() -> None:  # §3.3.10 200 OK Response with Broadcast Via Header Field Value
    m = response("bcast")
    assert [v.host for v in m.vias] == ["192.0.2.198", "255.255.255.255"]
    assert m.pop_via().top_via.host == "255.255.255.255"  # the proxy must not send there
    assert m.defects() == ()


def test_zeromf() -> None:  # §3.3.11 Max-Forwards of Zero
    m = request("zeromf")
    assert m.max_forwards == 0  # a proxy answers 483; not a defect of the message
    assert m.defects() == ()


def test_cparam01() -> None:  # §3.3.12 REGISTER with a Contact Header Parameter
    m = request("cparam01")
    [c] = m.contacts.items
    assert not c.angle and c.params == (("unknownparam", None),)
    assert c.uri.params == ()  # a contact-param, not a URI parameter
    assert str(c.uri) == "sip:+19725552222@gw1.example.net"
    assert m.defects() == ()


def test_cparam02() -> None:  # §3.3.13 REGISTER with a url-parameter
    m = request("cparam02")
    [c] = m.contacts.items
    assert c.uri.params == (("unknownparam", None),) and c.params == ()
    assert str(c) == "<sip:+19725552222@gw1.example.net;unknownparam>"
    assert m.defects() == ()


def test_regescrt() -> None:  # §3.3.14 REGISTER with a URL Escaped Header
    m = request("regescrt")
    [c] = m.contacts.items  # compact "M"
    assert c.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    assert str(c) == "<sip:user@example.com?Route=%3Csip:sip.example.com%3E>"  # kept in bindings
    assert m.content_length == 0  # "L:0"
    assert m.defects() == ()


def test_sdp01() -> None:  # §3.3.15 Unacceptable Accept Offering
    m = request("sdp01")
    assert m.values("accept") == ["text/nobodyKnowsThis"]
    assert m.defects() == ()


# -- §3.4 backward compatibility ---------------------------------------------------------------------
def test_inv2543() -> None:  # §3.4.1 INVITE with RFC 2543 Syntax
    m = request("inv2543")
    assert m.top_via.branch is None and m.from_.tag is None and m.max_forwards is None
    assert m.content_length is None and m.body.startswith(b"v=0")  # body: rest of the datagram
    assert m.record_route[0].uri.param("maddr") == "ss1.example.com"
    assert m.to.params == (("user", "phone"),)  # addr-spec: header parameter
    assert m.defects() == ("rfc2543-branch", "missing-from-tag", "missing-max-forwards")
    assert set(m.defects()) <= RFC2543_DEFECTS


# -- the extra archive member -----------------------------------------------------------------------
def test_test() -> None:  # not described in the RFC: must only not crash
    err = parse_error("test")
    assert err.status == 400 and "Foobar roobar" in err.reason
    [framed] = StreamFramer().feed(raw("test"))  # framing only needs Content-Length (18)
    assert framed == raw("test")
    with pytest.raises(SipParseError):
        parse_message(framed, stream=True)
    assert StreamFramer().feed(b"\r\n\r\n" + raw("test"))[0] == KEEPALIVE_PING
