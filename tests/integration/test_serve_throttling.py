"""Contact throttling through `sansmidreg serve` (sockets backend) against Kamailio:
refreshes are absorbed (Kamailio receives far fewer REGISTERs than the phone sends), and a
device that stops refreshing is de-registered upstream by us, long before the main registrar's
own (outgoing_expires) expiry would have removed it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ._harness import Kamailio, SippBackground, free_udp_port, run_sipp
from ._serve import ServePool, serve  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


def _registers_seen(kamailio: Kamailio, call_id: str) -> int:
    return sum(1 for line in kamailio.script_log()
               if line.startswith("MAIN: REGISTER ") and f"(ci={call_id})" in line)


def test_refreshes_are_absorbed(kamailio: Kamailio, serve: ServePool,
                                sipp_background: SippBackground) -> None:
    us = serve.start(f"udp:{kamailio.remote}", mode="contact-throttling",
                     extra_args=["--outgoing-expires", "600"])
    phone = free_udp_port()
    sipp = sipp_background.start("reg_periodic", us.remote, phone,
                                 {"user": "gina", "ctport": str(phone), "expires": "60"},
                                 call_id="gina-1", pause_ms=200)
    sipp.wait(timeout=20).check()
    assert sipp.wait().received_statuses().count(200) == 8  # the phone: 8 REGISTERs, 8 x 200
    assert _registers_seen(kamailio, "gina-1") == 2  # the main registrar: first + un-REGISTER
    stats = us.stats()
    assert stats["REGISTER.received"] == 8
    assert stats["REGISTER.absorbed"] == 6 and stats["REGISTER.relayed"] == 2
    assert len(us.debug_lines("absorbed (answered locally)")) == 6
    assert kamailio.contacts("gina") == []


def test_silent_device_is_deregistered_upstream(kamailio: Kamailio, serve: ServePool,
                                                sipp_dir: Path) -> None:
    """dave has two devices; the one registered for 5 s goes silent: we send Kamailio a
    de-REGISTER for it when its 5 s are up (Kamailio alone would keep it for outgoing_expires,
    20 s); the other device stays."""
    us = serve.start(f"udp:{kamailio.remote}", mode="contact-throttling",
                     extra_args=["--outgoing-expires", "20", "--min-expires", "5"])
    silent, staying = free_udp_port(), free_udp_port()
    for port, expires in ((silent, "5"), (staying, "60")):
        keys = {"user": "dave", "ctport": str(port), "expires": expires, "regcseq": "1"}
        run_sipp("reg_once", us.remote, port, keys, workdir=sipp_dir,
                 call_id=f"dave-{port}").check()
    registered = time.monotonic()
    before = kamailio.contacts("dave")
    assert len(before) == 2
    assert all(c.expires is not None and 15 <= c.expires <= 20 for c in before)

    after = kamailio.wait_for_contacts("dave", lambda cs: len(cs) == 1, timeout=15,
                                       what="the silent device's binding to go")
    took = time.monotonic() - registered
    assert took < 12, f"removed after {took:.1f} s: Kamailio's own expiry, not our de-REGISTER"
    assert after[0].call_id == f"dave-{staying}"
    stats = us.stats()
    assert stats["de-REGISTER.sent"] == 1 and stats["de-REGISTER.failed"] == 0
    deregisters = [line for line in kamailio.script_log()
                   if line.startswith("MAIN: REGISTER ") and f"(ci=dave-{silent})" in line]
    assert len(deregisters) == 2  # the relayed registration, then our de-REGISTER
    assert f"from 127.0.0.1:{us.port}" in deregisters[-1]
