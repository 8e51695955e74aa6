"""A device that registered with `sansmidreg serve` over TCP is called through that very connection
(RFC 5626 §5.3 / connection reuse): bob has two devices, one over TCP (SIPp ``-t t1``: one
connection, kept open) and one over UDP; a UDP caller's INVITE to Kamailio rings both in parallel
(forked by us in AOR throttling, by Kamailio in contact throttling) and one answers: 200, ACK and
BYE end to end; the other gets CANCEL (487, ACK). Whichever device answers, every request toward
the TCP device (INVITE, ACK, BYE or CANCEL) goes down the connection it registered on: its
Contact names a port where nothing listens, and our recorded trace (``--record``) shows a single
TCP peer, the REGISTER's source. The TCP device then un-registers on that same connection.
On each backend (the anyio one once died here: two tasks writing to its UDP socket at once).

SIPp maps an incoming request to a call by Call-ID alone: the caller uses the TCP device's
registration Call-ID, so that its INVITE reaches the scenario waiting for it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ._harness import (
    Kamailio,
    SippBackground,
    SippProcess,
    free_port,
    free_udp_port,
    run_sipp,
    wait_until,
)
from ._serve import ServePool, serve  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

OUTGOING = 600
# "@0.123 tcp:127.0.0.1:40000 -> tcp:127.0.0.1:5060" then the start line of the message
_BLOCK = re.compile(r"^@\S+ (\S+) -> (\S+)\n([^\n]*)", re.M)
_REGISTERED = re.compile(r"message received \[\d+\] bytes :\n\nSIP/2\.0 200 ")


def _blocks(trace: Path) -> list[tuple[str, str, str]]:
    """(source, destination, method or status) of every message in our recorded trace."""
    out: list[tuple[str, str, str]] = []
    for src, dst, start in _BLOCK.findall(trace.read_text()):
        words = start.split()
        out.append((src, dst, words[1] if start.startswith("SIP/2.0 ") else words[0]))
    return out


def _registered(phone: SippProcess) -> bool:
    """Has ``phone`` received a 200 (its REGISTER's) so far? (its message trace, if any yet)"""
    try:
        text = phone.messages_path.read_text(errors="replace")
    except OSError:
        return False
    return _REGISTERED.search(text) is not None


def _requests(messages: list[str]) -> list[str]:
    """The methods of the requests among SIPp's received messages, in order."""
    return [m.split(" ", 1)[0] for m in messages if not m.startswith("SIP/2.0 ")]


@pytest.mark.parametrize("backend", ["sockets", "anyio", "trio"])
@pytest.mark.parametrize("mode", ["aor-throttling", "contact-throttling"])
@pytest.mark.parametrize("answerer", ["tcp", "udp"])
def test_call_reaches_tcp_device_on_its_connection(
        kamailio: Kamailio, serve: ServePool, sipp_dir: Path, sipp_background: SippBackground,
        tmp_path: Path, mode: str, answerer: str, backend: str) -> None:
    trace = tmp_path / "recorded.txt"
    us = serve.start(f"udp:{kamailio.remote}", mode=mode, backend=backend,
                     extra_args=["--outgoing-expires", str(OUTGOING), "--record", str(trace)])
    user = f"bob-{mode.split('-')[0]}-{answerer}"
    call_id = f"{user}-tcp"
    dead = free_port()  # the TCP device's Contact port: nothing listens there

    tcp_phone = SippProcess("reg_answer_tcp" if answerer == "tcp" else "reg_cancelled_tcp",
                            us.remote, free_port(),
                            {"user": user, "ctport": str(dead), "expires": "60"},
                            workdir=sipp_dir, call_id=call_id, pause_ms=1000, transport="t1",
                            timeout=30)
    sipp_background.procs.append(tcp_phone)  # stopped by PID at teardown
    tcp_phone.start(wait_bound=False)  # (over TCP SIPp binds no UDP port to wait for)
    wait_until(lambda: not tcp_phone.running or _registered(tcp_phone), timeout=10,
               what="the TCP device's REGISTER to be answered 200")
    assert tcp_phone.running, tcp_phone.describe_so_far()

    udp_port = free_udp_port()
    udp_phone = sipp_background.start("uas_cancelled" if answerer == "tcp" else "uas_answer",
                                      None, udp_port, {"user": user}, pause_ms=1000)
    run_sipp("reg_once", us.remote, free_udp_port(),
             {"user": user, "ctport": str(udp_port), "expires": "60", "regcseq": "1"},
             workdir=sipp_dir, call_id=f"{user}-udp").check()

    bindings = kamailio.contacts(user)
    assert all(c.uri.startswith(f"sip:{user}@127.0.0.1:{us.port}") for c in bindings), bindings
    assert len(bindings) == (1 if mode == "aor-throttling" else 2), bindings

    caller = run_sipp("uac_invite", kamailio.remote, free_udp_port(), {"user": user},
                      workdir=sipp_dir, call_id=call_id, timeout=20).check()
    assert 200 in caller.received_statuses()
    assert caller.received_statuses()[-1] == 200  # the BYE's answer

    tcp_result = tcp_phone.wait(timeout=15).check()
    udp_result = udp_phone.wait(timeout=15).check()
    winner, loser = (tcp_result, udp_result) if answerer == "tcp" else (udp_result, tcp_result)
    assert _requests(winner.received()) == ["INVITE", "ACK", "BYE"]
    assert _requests(loser.received()) == ["INVITE", "CANCEL", "ACK"]
    assert tcp_result.received_statuses() == [200, 200]  # REGISTER, then un-REGISTER
    # after the TCP device's un-REGISTER, Kamailio keeps the binding that reaches the UDP one
    left = [c.uri for c in kamailio.contacts(user)]
    if mode == "aor-throttling":
        assert left == [bindings[0].uri], left
    else:
        assert left == [c.uri for c in bindings if c.call_id == f"{user}-udp"], (left, bindings)

    # Every TCP message we exchanged went over the device's one connection.
    blocks = _blocks(trace)
    [flow] = {src for src, _, what in blocks if what == "REGISTER" and src.startswith("tcp:")}
    tcp_peers = {end for src, dst, _ in blocks for end in (src, dst)
                 if end.startswith("tcp:") and end != f"tcp:{us.remote}"}
    assert tcp_peers == {flow}, tcp_peers
    assert flow != f"tcp:127.0.0.1:{dead}"
    to_device = [what for src, dst, what in blocks if dst == flow and not what.isdigit()]
    from_device = [what for src, dst, what in blocks if src == flow and not what.isdigit()]
    expected = ["INVITE", "ACK", "BYE"] if answerer == "tcp" else ["INVITE", "CANCEL", "ACK"]
    assert to_device == expected, blocks
    assert from_device == ["REGISTER", "REGISTER"], blocks
    assert "connect" not in us.log_text().lower(), "we never tried to open a connection"

    stats = us.stats()
    assert stats["REGISTER.received"] == 3
    assert stats["aors"] == 1 and stats["contacts"] == 1  # the UDP device is left
    if mode == "aor-throttling":  # we forked the INVITE to both devices
        assert stats["forked"] == 1 and stats["branches"] == 2
        # each new device is relayed (relay_new_devices); the un-REGISTER of one of two is not
        assert stats["REGISTER.relayed"] == 2 and stats["REGISTER.absorbed"] == 1
    else:  # Kamailio forked: one INVITE per binding, each to its one device
        assert stats["forked"] == 2 and stats["branches"] == 2
        assert stats["REGISTER.relayed"] == 3 and stats["REGISTER.absorbed"] == 0
