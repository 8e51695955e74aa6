"""SIPp phones straight to the Kamailio main registrar, no mid-registrar: proves the harness
(ports, start/stop, ``ul.dump`` parsing, foreground and background SIPp) and records the baseline
behaviour of the main registrar that the mid-registrar tests build on."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._harness import Kamailio, SippBackground, UlContact, free_udp_port, run_sipp

pytestmark = pytest.mark.integration


def test_reg_once_then_unregister(kamailio: Kamailio, sipp_dir: Path) -> None:
    phone = free_udp_port()
    keys = {"user": "alice", "ctport": str(phone), "expires": "60", "regcseq": "1"}
    run_sipp("reg_once", kamailio.remote, phone, keys, workdir=sipp_dir, call_id="alice-1").check()

    [contact] = kamailio.contacts("alice")
    assert contact.uri == f"sip:alice@127.0.0.1:{phone}"
    assert contact.expires is not None and 55 <= contact.expires <= 60
    assert contact.call_id == "alice-1"
    assert contact.cseq == 1
    assert contact.user_agent == f"sipp-ua-{phone}"
    assert contact.socket == f"udp:127.0.0.1:{kamailio.port}"

    keys |= {"expires": "0", "regcseq": "2"}
    run_sipp("reg_once", kamailio.remote, phone, keys, workdir=sipp_dir, call_id="alice-1").check()
    assert kamailio.contacts("alice") == []
    assert "alice" not in kamailio.ul_dump()


def test_two_aors_are_kept_apart(kamailio: Kamailio, sipp_dir: Path) -> None:
    for user, expires in (("bob", "120"), ("carol", "30")):
        phone = free_udp_port()
        keys = {"user": user, "ctport": str(phone), "expires": expires, "regcseq": "1"}
        run_sipp("reg_once", kamailio.remote, phone, keys, workdir=sipp_dir).check()
    table = kamailio.ul_dump()
    assert set(table) == {"bob", "carol"}
    [bob] = table["bob"].contacts
    [carol] = table["carol"].contacts
    assert bob.expires is not None and 115 <= bob.expires <= 120
    assert carol.expires is not None and 25 <= carol.expires <= 30


def test_refresh_then_unregister(kamailio: Kamailio, sipp_background: SippBackground) -> None:
    """reg_refresh_unreg: CSeq 1..3 with Expires 30 (pauses of 1 s), then CSeq 4 Expires 0."""
    phone = free_udp_port()
    sipp = sipp_background.start(
        "reg_refresh_unreg",
        kamailio.remote,
        phone,
        {"user": "dave", "expires": "30"},
        call_id="dave-1",
        pause_ms=1000,
    )
    seen: dict[int, UlContact] = {}

    def record(contacts: list[UlContact]) -> bool:
        for contact in contacts:
            if contact.cseq is not None:
                seen.setdefault(contact.cseq, contact)
        return 3 in seen

    kamailio.wait_for_contacts("dave", record, timeout=15, what="the second refresh (CSeq 3)")
    sipp.wait(timeout=15)
    sipp_result = sipp.stop()
    sipp_result.check()
    assert sipp_result.received_statuses().count(200) == 4

    assert seen.keys() >= {1, 3}
    for contact in seen.values():
        assert contact.uri == f"sip:dave@127.0.0.1:{phone}"
        assert contact.call_id == "dave-1"
        assert contact.expires is not None and 25 <= contact.expires <= 30
    assert kamailio.contacts("dave") == []


def test_invite_reaches_registered_uas(
    kamailio: Kamailio, sipp_dir: Path, sipp_background: SippBackground
) -> None:
    uas_port = free_udp_port()
    uas = sipp_background.start("uas_answer", None, uas_port, {"user": "erin"}, pause_ms=200)
    register_from = free_udp_port()
    keys = {"user": "erin", "ctport": str(uas_port), "expires": "60", "regcseq": "1"}
    run_sipp("reg_once", kamailio.remote, register_from, keys, workdir=sipp_dir).check()

    caller = free_udp_port()
    uac = run_sipp("uac_invite", kamailio.remote, caller, {"user": "erin"}, workdir=sipp_dir)
    uac.check()
    uas_result = uas.wait(timeout=15)
    uas_result.check()

    [invite] = [m for m in uas_result.received() if m.startswith("INVITE ")]
    assert invite.startswith(f"INVITE sip:erin@127.0.0.1:{uas_port} SIP/2.0")
    assert f"Record-Route: <sip:127.0.0.1:{kamailio.port};lr" in invite
    assert [m.split(" ", 1)[0] for m in uas_result.received()] == ["INVITE", "ACK", "BYE"]
    assert 200 in uac.received_statuses()
    script = kamailio.script_log()
    assert any(line.startswith("MAIN: INVITE sip:erin@example.test ") for line in script)
    assert f"MAIN: lookup -> sip:erin@127.0.0.1:{uas_port} (+branches)" in script


def test_invite_to_unknown_user_is_404(kamailio: Kamailio, sipp_dir: Path) -> None:
    caller = free_udp_port()
    uac = run_sipp(
        "uac_invite_reject", kamailio.remote, caller, {"user": "nobody"}, workdir=sipp_dir
    )
    uac.check()
    assert uac.received_statuses()[-1] == 404


def test_busy_uas_rejection_is_relayed(
    kamailio: Kamailio, sipp_dir: Path, sipp_background: SippBackground
) -> None:
    uas_port = free_udp_port()
    uas = sipp_background.start("uas_busy", None, uas_port, {"user": "frank"}, pause_ms=100)
    keys = {"user": "frank", "ctport": str(uas_port), "expires": "60", "regcseq": "1"}
    run_sipp("reg_once", kamailio.remote, free_udp_port(), keys, workdir=sipp_dir).check()

    uac = run_sipp(
        "uac_invite_reject", kamailio.remote, free_udp_port(), {"user": "frank"}, workdir=sipp_dir
    )
    uac.check()
    assert uac.received_statuses()[-1] == 486
    uas.wait(timeout=15).check()
