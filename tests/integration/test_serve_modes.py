"""SIPp phones -> `sansmidreg serve` -> Kamailio: register, refresh, un-register in each mode,
on each backend, over UDP and TCP; Kamailio's location table (``ul.dump``) checked at each step.

What the main registrar must see:
* mirror: the device's own lifetime, one binding per device, its Contact rewritten to us
  (``;ctid=``), every REGISTER relayed;
* contact throttling: one binding per device with our ``outgoing_expires``; refreshes inside the
  window absorbed (Kamailio keeps CSeq 1);
* AOR throttling: one binding for the AOR, pointing at us, with ``outgoing_expires``.
After the un-REGISTER, Kamailio has nothing left for the AOR.
"""

from __future__ import annotations

import pytest

from ._harness import Kamailio, SippBackground, SippProcess, UlContact, free_port
from ._serve import Serve, ServePool, serve  # noqa: F401 - the fixture

pytestmark = pytest.mark.integration

OUTGOING = 600


def _register_refresh_unregister(kamailio: Kamailio, us: Serve, sipp_background: SippBackground,
                                 user: str, *, transport: str = "u1",
                                 scenario: str = "reg_refresh_unreg") -> dict[int, UlContact]:
    """reg_refresh_unreg (Expires 30, 1 s pauses: CSeq 1..3, then CSeq 4 Expires 0) through us;
    return what Kamailio held for ``user`` while it ran, by the CSeq Kamailio saw."""
    phone = free_port()
    sipp = SippProcess(scenario, us.remote, phone, {"user": user, "expires": "30"},
                       workdir=sipp_background.workdir, call_id=f"{user}-1", pause_ms=1000,
                       transport=transport)
    sipp_background.procs.append(sipp)  # stopped by PID at teardown
    sipp.start(wait_bound=False)  # (over TCP SIPp binds no UDP port to wait for)
    seen: dict[int, UlContact] = {}

    def record(contacts: list[UlContact]) -> bool:
        for contact in contacts:
            if contact.cseq is not None:
                seen.setdefault(contact.cseq, contact)
        return not sipp.running

    kamailio.wait_for_contacts(user, record, timeout=20, what="the phone to finish")
    sipp.wait(timeout=10).check()
    assert sipp.wait().received_statuses().count(200) == 4
    assert kamailio.contacts(user) == [], "the un-REGISTER reached the main registrar"
    return seen


def _is_us(contact: UlContact, us: Serve, user: str) -> None:
    assert contact.uri.startswith(f"sip:{user}@127.0.0.1:{us.port};ctid="), contact.uri
    assert contact.call_id == f"{user}-1"


@pytest.mark.parametrize("backend", ["sockets", "anyio", "trio"])
def test_contact_throttling_on_each_backend(kamailio: Kamailio, serve: ServePool,
                                            sipp_background: SippBackground,
                                            backend: str) -> None:
    us = serve.start(f"udp:{kamailio.remote}", mode="contact-throttling", backend=backend,
                     extra_args=["--outgoing-expires", str(OUTGOING)])
    seen = _register_refresh_unregister(kamailio, us, sipp_background, f"ct-{backend}")
    assert set(seen) == {1}, "refreshes absorbed: Kamailio only ever saw CSeq 1"
    _is_us(seen[1], us, f"ct-{backend}")
    assert seen[1].expires is not None and OUTGOING - 10 <= seen[1].expires <= OUTGOING
    stats = us.stats()
    assert stats["REGISTER.received"] == 4
    assert stats["REGISTER.absorbed"] == 2 and stats["REGISTER.relayed"] == 2


def test_mirror_relays_everything(kamailio: Kamailio, serve: ServePool,
                                  sipp_background: SippBackground) -> None:
    us = serve.start(f"udp:{kamailio.remote}", mode="mirror")
    seen = _register_refresh_unregister(kamailio, us, sipp_background, "mirror")
    assert 3 in seen, "refreshes relayed: Kamailio saw CSeq 3"
    for contact in seen.values():
        _is_us(contact, us, "mirror")
        assert contact.expires is not None and 20 <= contact.expires <= 30
    assert us.stats()["REGISTER.relayed"] == 4


def test_aor_throttling_one_binding_for_the_aor(kamailio: Kamailio, serve: ServePool,
                                               sipp_background: SippBackground) -> None:
    us = serve.start(f"udp:{kamailio.remote}", mode="aor-throttling",
                     extra_args=["--outgoing-expires", str(OUTGOING)])
    seen = _register_refresh_unregister(kamailio, us, sipp_background, "aor")
    assert set(seen) == {1}
    [binding] = {c.uri for c in seen.values()}
    assert binding.startswith("sip:aor") and f"@127.0.0.1:{us.port}" in binding, binding
    assert seen[1].expires is not None and OUTGOING - 10 <= seen[1].expires <= OUTGOING
    assert us.stats()["REGISTER.absorbed"] == 2


@pytest.mark.parametrize("upstream_transport", ["udp", "tcp"])
def test_phone_over_tcp(kamailio: Kamailio, serve: ServePool, sipp_background: SippBackground,
                        upstream_transport: str) -> None:
    """The phone registers over TCP (replies on its connection); we reach Kamailio over UDP or
    over one reused TCP connection."""
    us = serve.start(f"{upstream_transport}:{kamailio.remote}", mode="contact-throttling",
                     extra_args=["--outgoing-expires", str(OUTGOING)])
    user = f"tcp-{upstream_transport}"
    seen = _register_refresh_unregister(kamailio, us, sipp_background, user, transport="t1",
                                        scenario="reg_refresh_unreg_tcp")
    assert set(seen) == {1}
    assert seen[1].uri.startswith(f"sip:{user}@127.0.0.1:{us.port};ctid="), seen[1].uri
    assert seen[1].socket == f"{upstream_transport}:127.0.0.1:{kamailio.port}"
