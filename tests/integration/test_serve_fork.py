"""AOR throttling through `sansmidreg serve`: two SIPp devices register for bob; Kamailio holds
ONE binding (pointing at us); an INVITE sent to Kamailio for bob is forked by us to both devices
in parallel: the first answers (200, then ACK and BYE along the Record-Route), the other rings
and gets CANCEL (it answers 487, which we ACK).

Needs the forking proxy (src/sansmidreg/_forking.py, issue 4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._harness import Kamailio, SippBackground, free_udp_port, run_sipp
from ._serve import ServePool, serve  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["sockets"])
def test_invite_forks_to_both_devices(kamailio: Kamailio, serve: ServePool, sipp_dir: Path,
                                      sipp_background: SippBackground, backend: str) -> None:
    us = serve.start(f"udp:{kamailio.remote}", mode="aor-throttling", backend=backend,
                     extra_args=["--outgoing-expires", "600"])
    answers, rings = free_udp_port(), free_udp_port()
    winner = sipp_background.start("uas_answer", None, answers, {"user": "bob"}, pause_ms=1000)
    loser = sipp_background.start("uas_cancelled", None, rings, {"user": "bob"})
    for port in (answers, rings):
        keys = {"user": "bob", "ctport": str(port), "expires": "60", "regcseq": "1"}
        run_sipp("reg_once", us.remote, free_udp_port(), keys, workdir=sipp_dir,
                 call_id=f"bob-{port}").check()
    [binding] = kamailio.contacts("bob")  # one binding for the AOR ...
    assert f"@127.0.0.1:{us.port}" in binding.uri  # ... and it is us

    caller = run_sipp("uac_invite", kamailio.remote, free_udp_port(), {"user": "bob"},
                      workdir=sipp_dir, timeout=20)
    caller.check()
    assert 200 in caller.received_statuses()
    winner_result = winner.wait(timeout=15)
    winner_result.check()
    assert [m.split(" ", 1)[0] for m in winner_result.received()] == ["INVITE", "ACK", "BYE"]
    loser_result = loser.wait(timeout=15)
    loser_result.check()
    assert [m.split(" ", 1)[0] for m in loser_result.received()] == ["INVITE", "CANCEL", "ACK"]
    stats = us.stats()
    assert stats["forked"] >= 1 and stats["branches"] >= 2
