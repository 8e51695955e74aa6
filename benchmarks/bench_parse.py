# Benchmark of the SIP message layer (issue 2): messages per second for parse, typed parse, and
# parse + edit + serialize of a typical REGISTER and of the upstream 200 OK to it (both recorded
# by tshark in ../shared/oracle/traces/refresh-ctthrottle.txt, @0.000 and @0.004, CRLF), plus the
# absorbed-refresh path of the registrar (parse, typed values, build and serialize a 200 OK).
# In the same run, h11's parse of the equivalent HTTP/1.1 request, and every ratio to it.
# Run: python benchmarks/bench_parse.py  (about 10 s; prints `key: value` lines)
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import emit, h11_request_parse, rates

from sansmidreg.sip import Request, Response, Via, make_response, parse_message

REGISTER = (
    b"REGISTER sip:example.test SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0\r\n"
    b"Max-Forwards: 70\r\n"
    b"From: <sip:alice@example.test>;tag=31595SIPpTag001\r\n"
    b"To: <sip:alice@example.test>\r\n"
    b"Call-ID: 1-31595@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.0.1:5201>\r\n"
    b"Expires: 60\r\n"
    b"User-Agent: sipp-ua-5201\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKc6fc.47846f47.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5201;branch=z9hG4bK-31595-1-0\r\n"
    b"From: <sip:alice@example.test>;tag=31595SIPpTag001\r\n"
    b"To: <sip:alice@example.test>;tag=76829ee16d149679031f95465f3c3d9f.c93fe3cc\r\n"
    b"Call-ID: 1-31595@127.0.0.1\r\n"
    b"CSeq: 1 REGISTER\r\n"
    b"Contact: <sip:alice@127.0.0.1:5060;ctid=4465107924305324267>;expires=600\r\n"
    b"Server: kamailio (5.6.3 (x86_64/linux))\r\n"
    b"Content-Length: 0\r\n"
    b"\r\n"
)

OUR_VIA = Via(transport="UDP", host="127.0.0.1", port=5060,
              params=(("branch", "z9hG4bKc6fc.47846f47.0"),))


def register_parse() -> object:
    return parse_message(REGISTER)


def register_typed() -> object:
    m = parse_message(REGISTER)
    return (m.top_via, m.from_, m.to, m.call_id, m.cseq, m.contacts, m.expires)


def register_roundtrip() -> bytes:
    """What a mirroring mid-registrar does: push our Via, point the Contact at us."""
    m = parse_message(REGISTER)
    contact = m.contacts.items[0]
    uri = contact.uri._replace(host="127.0.0.1", port=5060,
                               params=(("ctid", "4465107924305324267"),))
    new = contact.with_uri(uri).with_param("expires", "600")
    return m.push_via(OUR_VIA).replace_headers("Contact", [str(new)]).serialize()


def ok_parse() -> object:
    return parse_message(OK)


def ok_roundtrip() -> bytes:
    """The relayed 200 OK on its way back: pop our Via, give the device its own Contact."""
    m = parse_message(OK)
    contact = m.contacts.items[0]
    uri = contact.uri._replace(host="127.0.0.1", port=5201, params=())
    new = contact.with_uri(uri).with_param("expires", "60")
    return m.pop_via().replace_headers("Contact", [str(new)]).serialize()


def absorbed_refresh() -> bytes:
    """The registrar's absorbed-refresh path: typed values, then a local 200 OK."""
    m = parse_message(REGISTER)
    assert isinstance(m, Request)
    via, _, _, _, _, contacts, _ = (m.top_via, m.from_, m.to, m.call_id, m.cseq, m.contacts,
                                    m.expires)
    contact = contacts.items[0]
    ok = make_response(m, 200, to_tag="28de.c75b4deb7054206f4d3ed4bee2fea3ce",
                       headers=(("Contact", f"{contact};expires=60"),))
    assert via.branch is not None
    return ok.serialize()


def main() -> None:
    t0 = time.perf_counter()
    # sanity: the measured functions do what they say
    assert isinstance(parse_message(OK), Response)
    assert b"ctid=" in register_roundtrip() and b"Via: SIP/2.0/UDP 127.0.0.1:5060" in (
        register_roundtrip())
    assert ok_roundtrip().count(b"Via:") == 1 and b"SIP/2.0 200 OK" in absorbed_refresh()

    measured = rates({
        "register_parse_per_s": register_parse,
        "register_typed_parse_per_s": register_typed,
        "register_roundtrip_per_s": register_roundtrip,
        "ok_parse_per_s": ok_parse,
        "ok_roundtrip_per_s": ok_roundtrip,
        "absorbed_refresh_per_s": absorbed_refresh,
        "h11_request_parse_per_s": h11_request_parse(),
    })
    h11_rate = measured.pop("h11_request_parse_per_s")
    results = measured
    for key, value in results.items():
        emit(key, value)
    emit("h11_request_parse_per_s", h11_rate)
    emit("parse_ratio_vs_h11", results["register_parse_per_s"] / h11_rate)
    emit("typed_parse_ratio_vs_h11", results["register_typed_parse_per_s"] / h11_rate)
    emit("roundtrip_ratio_vs_h11", results["register_roundtrip_per_s"] / h11_rate)
    emit("ok_parse_ratio_vs_h11", results["ok_parse_per_s"] / h11_rate)
    emit("absorbed_refresh_ratio_vs_h11", results["absorbed_refresh_per_s"] / h11_rate)
    emit("elapsed_s", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
