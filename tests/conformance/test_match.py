# Unit tests of the semantic matcher (sansmidreg.conformance._match): what must be equal, what is
# captured (and only when both sides invented it), what is ignored, lifetimes within 1 s, route
# hops with default ports, the input rewrite, and the byte comparison of --strict.
from __future__ import annotations

import pytest

from sansmidreg.conformance import Captures, InputLog, compare_bytes, compare_messages
from sansmidreg.conformance._match import message_diff


def msg(text: str) -> bytes:
    head, _, body = text.strip("\n").partition("\n\n")
    lines = head.split("\n")
    if body:
        body = body.replace("\n", "\r\n") + "\r\n"
    return ("\r\n".join(lines) + f"\r\nContent-Length: {len(body)}\r\n\r\n" + body).encode()


REGISTER_UP = """REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}
Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-ua-1
Max-Forwards: 69
From: <sip:alice@example.test>;tag=ua-tag
To: <sip:alice@example.test>
Call-ID: ua-call-1
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:5060;ctid={ctid}>;expires=600
Expires: 600
User-Agent: phone"""

UA_REGISTER = """REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-ua-1
Max-Forwards: 70
From: <sip:alice@example.test>;tag=ua-tag
To: <sip:alice@example.test>
Call-ID: ua-call-1
CSeq: 1 REGISTER
Contact: <sip:alice@127.0.0.1:5201>
Expires: 60
User-Agent: phone"""

LOCAL_OK = """SIP/2.0 200 OK
Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-ua-1
From: <sip:alice@example.test>;tag=ua-tag
To: <sip:alice@example.test>;tag={totag}
Call-ID: ua-call-1
CSeq: 1 REGISTER
Contact: {contacts}
Server: {server}"""


@pytest.fixture
def log() -> InputLog:
    log = InputLog()
    log.add(msg(UA_REGISTER))
    return log


def up(branch: str = "z9hG4bKtheirs.1", ctid: str = "4465107924305324267") -> bytes:
    return msg(REGISTER_UP.format(branch=branch, ctid=ctid))


def ok(totag: str = "28de.aaaa", contacts: str = "<sip:alice@127.0.0.1:5201>;expires=60",
       server: str = "OpenSIPS (3.6.8)") -> bytes:
    return msg(LOCAL_OK.format(totag=totag, contacts=contacts, server=server))


def test_identical_messages_match(log: InputLog) -> None:
    assert compare_messages(up(), up(), Captures(), log) == []


def test_generated_values_are_captured_and_committed(log: InputLog) -> None:
    caps = Captures()
    ours = up("z9hG4bK1234abcd", "777")
    assert compare_messages(up(), ours, caps, log) == []
    assert caps.forward == {"z9hG4bKtheirs.1": "z9hG4bK1234abcd", "4465107924305324267": "777"}
    assert caps.kinds["4465107924305324267"] == "Contact ;ctid="
    # consistent afterwards: the same recorded ctid must be our same value
    assert compare_messages(up("z9hG4bKt.2"), up("z9hG4bKo.2", "777"), caps, log) == []
    diffs = compare_messages(up("z9hG4bKt.3"), up("z9hG4bKo.3", "778"), caps, log)
    assert [d.what for d in diffs] == ["Contact set"]


def test_capture_is_one_to_one(log: InputLog) -> None:
    caps = Captures()
    assert compare_messages(up("z9hG4bKa.1", "1111"), up("z9hG4bKo.1", "9999"), caps, log) == []
    # another recorded ctid cannot stand for our 9999 too
    diffs = compare_messages(up("z9hG4bKa.2", "2222"), up("z9hG4bKo.2", "9999"), caps, log)
    assert diffs and diffs[0].what == "Contact set"


def test_nothing_is_committed_when_the_messages_differ(log: InputLog) -> None:
    caps = Captures()
    bad = up("z9hG4bKo.1", "777").replace(b"CSeq: 1", b"CSeq: 2")
    assert [d.what for d in compare_messages(up(), bad, caps, log)] == ["CSeq"]
    assert len(caps) == 0
    assert compare_messages(up(), bad, caps, log, lenient=True)
    assert len(caps) == 2  # a documented deviation still captures what it can


def test_relayed_values_are_compared_literally(log: InputLog) -> None:
    # the UA's Call-ID and From tag were seen in an input: never captured
    other = up().replace(b"Call-ID: ua-call-1", b"Call-ID: something-else")
    assert [d.what for d in compare_messages(up(), other, Captures(), log)] == ["Call-ID"]
    other = up().replace(b"tag=ua-tag", b"tag=our-own-tag")
    assert [d.what for d in compare_messages(up(), other, Captures(), log)] == ["From tag"]


def test_a_relayed_value_of_ours_cannot_stand_for_a_generated_one(log: InputLog) -> None:
    # the trace has a To tag the recorded system invented; ours is the UA's own tag: no capture
    diffs = compare_messages(ok("28de.aaaa"), ok("ua-tag"), Captures(), log)
    assert [d.what for d in diffs] == ["To tag"]


def test_local_reply_tag_captured_and_peer_only_header_ignored(log: InputLog) -> None:
    caps = Captures()
    ours = ok("0123456789abcdef", server="sansmidreg")
    assert compare_messages(ok(), ours, caps, log) == []
    assert caps.forward["28de.aaaa"] == "0123456789abcdef"
    # Server of our own is no difference either way
    assert compare_messages(ok(), ok("0123456789abcdef").replace(b"Server: OpenSIPS (3.6.8)\r\n",
                                                                 b""), caps, log) == []


def test_relayed_peer_header_must_be_kept(log: InputLog) -> None:
    log.add(msg("SIP/2.0 200 OK\nServer: kamailio (5.6.3)\nCall-ID: x"))
    relayed = ok(server="kamailio (5.6.3)")
    stripped = relayed.replace(b"Server: kamailio (5.6.3)\r\n", b"")
    diffs = compare_messages(relayed, stripped, Captures(), log)
    assert [d.what for d in diffs] == ["Server"]


def test_contact_set_order_lifetime_and_q(log: InputLog) -> None:
    a = "<sip:alice@127.0.0.1:5201>;expires=60"
    b = "<sip:alice@127.0.0.1:5202>;q=0.5;expires=58"
    caps = Captures()
    assert compare_messages(ok(contacts=f"{a}, {b}"), ok(contacts=f"{b}, {a}"), caps, log) == []
    # one second apart: two clocks
    assert compare_messages(ok(contacts=a), ok(contacts=a.replace("60", "59")), caps, log) == []
    for wrong in (a.replace("60", "58"), a + ";q=0.7", "<sip:alice@127.0.0.1:5203>;expires=60",
                  f"{a}, {b}", "<sip:alice@127.0.0.1>;expires=60"):
        diffs = compare_messages(ok(contacts=a), ok(contacts=wrong), caps, log)
        assert [d.what for d in diffs] == ["Contact set"], wrong


def test_contact_uris_compare_per_rfc3261_19_1_4(log: InputLog) -> None:
    a = "<sip:alice@127.0.0.1:5201;transport=udp>;expires=60"
    same = "<sip:alice@127.0.0.1:5201;TRANSPORT=UDP>;expires=60"
    assert compare_messages(ok(contacts=a), ok(contacts=same), Captures(), log) == []
    missing = "<sip:alice@127.0.0.1:5201>;expires=60"
    assert compare_messages(ok(contacts=a), ok(contacts=missing), Captures(), log)


def test_star_and_expires_header(log: InputLog) -> None:
    star = up().replace(b"Contact: <sip:alice@127.0.0.1:5060;ctid=4465107924305324267>;"
                        b"expires=600", b"Contact: *")
    assert [d.what for d in compare_messages(star, up(), Captures(), log)] == ["Contact"]
    assert compare_messages(star, star, Captures(), log) == []
    other = up().replace(b"Expires: 600", b"Expires: 60")
    assert [d.what for d in compare_messages(up(), other, Captures(), log)] == ["Expires"]
    gone = up().replace(b"Expires: 600\r\n", b"")
    assert [d.what for d in compare_messages(up(), gone, Captures(), log)] == ["Expires"]


def test_via_stack(log: InputLog) -> None:
    short = up().replace(b"Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-ua-1\r\n", b"")
    assert [d.what for d in compare_messages(up(), short, Captures(), log)] == ["Via count"]
    stamped = up().replace(b"branch=z9hG4bK-ua-1", b"branch=z9hG4bK-ua-1;received=10.0.0.1")
    assert [d.what for d in compare_messages(up(), stamped, Captures(), log)] == [
        "Via #2 parameters"]
    moved = up().replace(b"127.0.0.1:5201;branch", b"127.0.0.1:5299;branch")
    assert [d.what for d in compare_messages(up(), moved, Captures(), log)] == ["Via #2"]


def test_routes_treat_an_absent_port_as_the_default(log: InputLog) -> None:
    base = up().replace(b"User-Agent: phone", b"Record-Route: <sip:127.0.0.1;lr;ftag=x>")
    ours = base.replace(b"<sip:127.0.0.1;lr;ftag=x>", b"<sip:127.0.0.1:5060;lr>")
    assert compare_messages(base, ours, Captures(), log) == []
    other = base.replace(b"<sip:127.0.0.1;lr;ftag=x>", b"<sip:127.0.0.1:5062;lr>")
    assert [d.what for d in compare_messages(base, other, Captures(), log)] == ["Record-Route"]


def test_other_headers_body_and_start_line(log: InputLog) -> None:
    extra = up().replace(b"User-Agent: phone", b"User-Agent: phone\r\nX-Trace: 1")
    assert [d.what for d in compare_messages(up(), extra, Captures(), log)] == ["X-Trace"]
    mf = up().replace(b"Max-Forwards: 69", b"Max-Forwards: 70")
    assert [d.what for d in compare_messages(up(), mf, Captures(), log)] == ["Max-Forwards"]
    assert [d.what for d in compare_messages(ok(), ok().replace(b"200 OK", b"202 Accepted"),
                                             Captures(), log)] == ["status"]
    # a reason phrase is free text (RFC 3261 §21)
    assert compare_messages(ok(), ok().replace(b"200 OK", b"200 Fine"), Captures(), log) == []
    assert [d.what for d in compare_messages(up(), ok(), Captures(), log)] == ["start line"]
    with_body = msg("MESSAGE sip:a@b SIP/2.0\nVia: SIP/2.0/UDP h:1;branch=z9hG4bKx\n"
                    "From: <sip:a@b>;tag=1\nTo: <sip:a@b>\nCall-ID: c\nCSeq: 1 MESSAGE\n\nhello")
    assert [d.what for d in compare_messages(with_body, with_body.replace(b"hello", b"hellp"),
                                             Captures(), log)] == ["body"]


def test_missing_headers_on_both_sides_are_equal(log: InputLog) -> None:
    bare = ok().replace(b"Call-ID: ua-call-1\r\n", b"")
    assert compare_messages(bare, bare, Captures(), log) == []
    assert [d.what for d in compare_messages(ok(), bare, Captures(), log)] == ["Call-ID"]


def test_unparseable_messages_compare_as_bytes(log: InputLog) -> None:
    assert compare_messages(b"junk", b"junk", Captures(), log) == []
    assert compare_messages(b"junk", b"junk2", Captures(), log)[0].what == "line 1"


def test_rewrite_replaces_whole_tokens_in_the_header_section_only() -> None:
    caps = Captures()
    caps.bind("branch", "z9hG4bKc6fc.47846f47.0", "z9hG4bKours")
    caps.bind("ctid", "4465107924305324267", "77")
    data = msg("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc6fc.47846f47.0\n"
               "Contact: <sip:a@h;ctid=4465107924305324267>;expires=600, "
               "<sip:a@h;ctid=44651079243053242670>\n\nctid=4465107924305324267")
    out = caps.rewrite(data)
    assert b"branch=z9hG4bKours\r\n" in out
    assert b"<sip:a@h;ctid=77>;expires=600" in out
    assert b"ctid=44651079243053242670" in out  # a longer token is another value
    assert out.endswith(b"ctid=4465107924305324267\r\n")  # the body is not touched


def test_input_log_seen_matches_whole_tokens() -> None:
    log = InputLog()
    log.add(b"Call-ID: abc-123@host\r\nTo: <sip:x>;tag=76.c9")
    assert log.seen("abc-123@host") and log.seen("76.c9")
    assert not log.seen("abc-12") and not log.seen("76.c") and not log.seen("zzz")


def test_strict_byte_comparison_and_diff() -> None:
    assert compare_bytes(b"a\r\nb", b"a\r\nb") == []
    [diff] = compare_bytes(b"a\r\nb\r\nc", b"a\r\nB\r\nc")
    assert diff.what == "line 2" and "'b'" in diff.expected and "'B'" in diff.got
    assert compare_bytes(b"a", b"a\r\n")[0].what == "length"
    text = message_diff(b"A\r\nB\r\n", b"A\r\nC\r\n")
    assert "-B" in text and "+C" in text
