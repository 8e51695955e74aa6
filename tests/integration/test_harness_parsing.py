"""The harness's own pure parts (no Kamailio or SIPp needed): ``kamcmd`` output parsing, SIPp
message-trace parsing, scenario lookup, port choice."""

from __future__ import annotations

import socket
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from ._harness import (
    KAMAILIO_CFG,
    SCENARIOS_DIR,
    HarnessError,
    SippResult,
    ephemeral_range,
    free_port,
    free_udp_port,
    parse_kamcmd_tree,
    parse_ul_dump,
    scenario_path,
)
from ._serve import Serve

# Trimmed from a real `kamcmd ul.dump` of Kamailio 5.6.3 (two AORs, bob with two contacts), with
# one contact made permanent and given a Path to cover those fields.
UL_DUMP = """\
{
\tDomains: {
\t\tDomain: {
\t\t\tDomain: location
\t\t\tSize: 1024
\t\t\tAoRs: {
\t\t\t\tInfo: {
\t\t\t\t\tAoR: carol
\t\t\t\t\tHashID: 1864284022
\t\t\t\t\tContacts: {
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:carol@127.0.0.1:37740
\t\t\t\t\t\t\tExpires: 60
\t\t\t\t\t\t\tQ: -1
\t\t\t\t\t\t\tCall-ID: 1-9069@127.0.0.1
\t\t\t\t\t\t\tCSeq: 1
\t\t\t\t\t\t\tUser-Agent: sipp-ua-37740
\t\t\t\t\t\t\tReceived: [not set]
\t\t\t\t\t\t\tPath: [not set]
\t\t\t\t\t\t\tSocket: udp:127.0.0.1:49095
\t\t\t\t\t\t\tRuid: uloc-6b09bc52-2363-2
\t\t\t\t\t\t\tInstance: [not set]
\t\t\t\t\t\t\tReg-Id: 0
\t\t\t\t\t\t}
\t\t\t\t\t}
\t\t\t\t}
\t\t\t\tInfo: {
\t\t\t\t\tAoR: bob
\t\t\t\t\tHashID: 7222211
\t\t\t\t\tContacts: {
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:bob@127.0.0.1:48249;ctid=7
\t\t\t\t\t\t\tExpires: 120
\t\t\t\t\t\t\tQ: 0.5
\t\t\t\t\t\t\tCall-ID: 1-9067@127.0.0.1
\t\t\t\t\t\t\tCSeq: 12
\t\t\t\t\t\t\tUser-Agent: sipp-ua-48249
\t\t\t\t\t\t\tReceived: sip:127.0.0.1:5060
\t\t\t\t\t\t\tPath: <sip:127.0.0.1:5060;lr>
\t\t\t\t\t\t\tSocket: udp:127.0.0.1:49095
\t\t\t\t\t\t\tRuid: uloc-6b09bc52-2363-1
\t\t\t\t\t\t\tInstance: <urn:uuid:00000000-0000-1000-8000-000000000001>
\t\t\t\t\t\t\tReg-Id: 1
\t\t\t\t\t\t}
\t\t\t\t\t\tContact: {
\t\t\t\t\t\t\tAddress: sip:bob@127.0.0.1:59296
\t\t\t\t\t\t\tExpires: permanent
\t\t\t\t\t\t\tQ: -1
\t\t\t\t\t\t\tCall-ID: 1-9068@127.0.0.1
\t\t\t\t\t\t\tCSeq: 1
\t\t\t\t\t\t\tUser-Agent: sipp-ua-59296
\t\t\t\t\t\t\tReceived: [not set]
\t\t\t\t\t\t\tPath: [not set]
\t\t\t\t\t\t\tSocket: udp:127.0.0.1:49095
\t\t\t\t\t\t\tRuid: uloc-6b09bc52-2362-2
\t\t\t\t\t\t\tInstance: [not set]
\t\t\t\t\t\t\tReg-Id: 0
\t\t\t\t\t\t}
\t\t\t\t\t}
\t\t\t\t}
\t\t\t}
\t\t\tStats: {
\t\t\t\tRecords: 2
\t\t\t\tMax-Slots: 1
\t\t\t}
\t\t}
\t}
}
"""

EMPTY_UL_DUMP = """\
{
\tDomains: {
\t\tDomain: {
\t\t\tDomain: location
\t\t\tSize: 1024
\t\t\tAoRs: {
\t\t\t}
\t\t\tStats: {
\t\t\t\tRecords: 0
\t\t\t\tMax-Slots: 0
\t\t\t}
\t\t}
\t}
}
"""


def test_ul_dump_is_parsed() -> None:
    table = parse_ul_dump(UL_DUMP)
    assert list(table) == ["carol", "bob"]
    [carol] = table["carol"].contacts
    assert carol.uri == "sip:carol@127.0.0.1:37740"
    assert (carol.expires, carol.expires_raw) == (60, "60")
    assert (carol.call_id, carol.cseq, carol.q) == ("1-9069@127.0.0.1", 1, "-1")
    assert (carol.received, carol.path, carol.instance) == (None, None, None)
    assert carol.socket == "udp:127.0.0.1:49095"
    assert carol.user_agent == "sipp-ua-37740"

    first, second = table["bob"].contacts
    assert first.uri == "sip:bob@127.0.0.1:48249;ctid=7"
    assert (first.expires, first.cseq, first.q, first.reg_id) == (120, 12, "0.5", 1)
    assert first.received == "sip:127.0.0.1:5060"
    assert first.path == "<sip:127.0.0.1:5060;lr>"
    assert first.instance == "<urn:uuid:00000000-0000-1000-8000-000000000001>"
    assert first.fields["Ruid"] == "uloc-6b09bc52-2363-1"
    assert (second.expires, second.expires_raw) == (None, "permanent")


def test_empty_ul_dump() -> None:
    assert parse_ul_dump(EMPTY_UL_DUMP) == {}


def test_kamcmd_tree_keeps_order_and_repeated_keys() -> None:
    tree = parse_kamcmd_tree("{\n\ta: 1\n\tb: {\n\t\tc: x: y\n\t}\n\ta: 2\n}\n")
    assert tree == [("a", "1"), ("b", [("c", "x: y")]), ("a", "2")]
    assert parse_kamcmd_tree("kamailio 5.6.3 (x86_64/linux) \n") == [
        ("", "kamailio 5.6.3 (x86_64/linux)")
    ]


@pytest.mark.parametrize("text", ["{\n\ta: {\n}\n", "}\n"])
def test_kamcmd_tree_rejects_unbalanced_braces(text: str) -> None:
    with pytest.raises(HarnessError):
        parse_kamcmd_tree(text)


# The two header forms SIPp 3.6 writes in a -trace_msg file.
TRACE = """\
----------------------------------------------- 2026-11-27 17:22:22.266381
UDP message sent (100 bytes):

INVITE sip:frank@example.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:51587;branch=z9hG4bK-8984-1-0
Content-Length: 0


----------------------------------------------- 2026-11-27 17:22:22.267037
UDP message received [297] bytes :

SIP/2.0 100 Trying
Via: SIP/2.0/UDP 127.0.0.1:51587;branch=z9hG4bK-8984-1-0
Content-Length: 0


----------------------------------------------- 2026-11-27 17:22:22.371837
UDP message received [246] bytes :

SIP/2.0 486 Busy Here
Content-Length: 0


----------------------------------------------- 2026-11-27 17:22:22.371887
UDP message sent (274 bytes):

ACK sip:frank@example.test SIP/2.0
Content-Length: 0

"""


def test_sipp_trace_is_split_into_messages() -> None:
    result = SippResult(
        argv=("sipp",), returncode=0, timed_out=False, output="", errors="", messages=TRACE
    )
    assert result.ok
    assert result.received_statuses() == [100, 486]
    assert [m.splitlines()[0] for m in result.sent()] == [
        "INVITE sip:frank@example.test SIP/2.0",
        "ACK sip:frank@example.test SIP/2.0",
    ]
    assert result.received()[1] == "SIP/2.0 486 Busy Here\nContent-Length: 0"


def test_failed_sipp_result_check_raises_with_details() -> None:
    result = SippResult(
        argv=("sipp", "-sf", "x.xml"),
        returncode=1,
        timed_out=False,
        output="Failed call 1",
        errors="unexpected 404",
        messages="",
    )
    with pytest.raises(AssertionError, match="unexpected 404"):
        result.check()


def test_scenarios_are_shipped_and_well_formed() -> None:
    names = {p.stem for p in SCENARIOS_DIR.glob("*.xml")}
    assert names >= {
        "reg_once",
        "reg_periodic",
        "reg_refresh_unreg",
        "star_unreg",
        "uac_invite",
        "uac_invite_reject",
        "uas_answer",
        "uas_busy",
    }
    for name in names:
        root = ET.parse(scenario_path(name)).getroot()
        assert root.tag == "scenario"
    assert scenario_path("reg_once.xml") == scenario_path("reg_once")
    with pytest.raises(HarnessError):
        scenario_path("no_such_scenario")
    assert KAMAILIO_CFG.is_file()


def test_free_ports_are_free_on_loopback_and_not_repeated() -> None:
    ports = [free_port() for _ in range(5)] + [free_udp_port() for _ in range(5)]
    assert len(set(ports)) == len(ports)
    low, high = ephemeral_range()
    if low > 10000 or high < 65535:  # some ports lie outside it: only those are handed out
        assert not any(low <= port <= high for port in ports), (ports, low, high)
    for port in ports[:5]:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", port))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", port))


def test_serve_starts_again_on_a_new_port_when_its_port_was_taken(tmp_path: Path) -> None:
    # what CI once hit: another socket took serve's port between free_port() and its bind
    serve = Serve(tmp_path, f"udp:127.0.0.1:{free_udp_port()}", mode="aor-throttling")
    taken = serve.port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as thief:
        thief.bind(("127.0.0.1", taken))
        try:
            serve.start()
            assert serve.port != taken
            assert "Address already in use" in (tmp_path / f"serve-{taken}.log").read_text()
        finally:
            code = serve.stop()
    assert code == 0
