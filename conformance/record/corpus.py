"""The corpus: one definition per trace (name, title = what it proves, mode and config, and the
steps the phones take). ``record_corpus.py`` records them; ``--list`` prints them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from phones import Driver

BASE = {"outgoing_expires": "600", "min_expires": "5", "max_expires": "3600",
        "default_expires": "3600", "use_domain": "false", "record_route": "true"}


@dataclass(frozen=True)
class Spec:
    name: str
    title: str
    mode: str
    drive: Callable[[Driver], None]
    config: Mapping[str, str] = field(default_factory=dict)
    tolerance: float | None = None
    settle: float = 1.0
    """Seconds recorded after the last step (late retransmissions, timers)."""

    def pairs(self) -> list[tuple[str, str]]:
        merged = {"mode": self.mode, **BASE, **self.config}
        return list(merged.items())


SPECS: list[Spec] = []


def spec(name: str, title: str, mode: str, **kwargs: object) -> Callable[
        [Callable[[Driver], None]], Callable[[Driver], None]]:
    def register(drive: Callable[[Driver], None]) -> Callable[[Driver], None]:
        SPECS.append(Spec(name, title, mode, drive, **kwargs))  # type: ignore[arg-type]
        return drive
    return register


# == mirror ===================================================================================

@spec("mirror-refresh",
      "mirror: the first REGISTER is relayed with its contact replaced by a ;ctid= contact of ours "
      "and the device's own expiry (a); each refresh is relayed too, under the same ctid (c); "
      "the 200 OK goes back with the device's own contact and lifetime, without the main "
      "registrar's Expires (f); the un-REGISTER is relayed with ;expires=0 and the binding goes "
      "(d)",
      "mirror")
def _mirror_refresh(d: Driver) -> None:
    d.sipp("reg_refresh_unreg", 5201, {"user": "alice", "expires": "60"}, call_id="alice-1",
           pause_ms=1000)


@spec("mirror-expire",
      "mirror: a binding that is not refreshed expires locally at its own deadline and nothing "
      "is sent upstream -- the main registrar's copy has the same lifetime (e); a query "
      "afterwards is answered locally with no binding",
      "mirror", settle=0.5)
def _mirror_expire(d: Driver) -> None:
    d.sipp("reg_once", 5211, {"user": "dave", "ctport": "5211", "expires": "5", "regcseq": "1"},
           call_id="dave-1")
    d.sleep(6.5)
    d.sipp("reg_query", 5211, {"user": "dave", "regcseq": "2"}, call_id="dave-1")


@spec("mirror-star",
      "mirror: two bindings of one AOR; a query is answered locally listing every live binding "
      "(RFC 3261 §10.3 step 8); Expires: 0 and ;expires=0 removals are relayed under the "
      "binding's ctid, a removal of a contact we no longer hold under a new one (d); Contact: * "
      "is relayed unchanged and its 2xx removes every local binding; the last query lists none",
      "mirror")
def _mirror_star(d: Driver) -> None:
    d.sipp("star_unreg", 5241, {"user": "carol"}, call_id="carol-1", pause_ms=1000)


@spec("mirror-upstream-error",
      "mirror: the main registrar refuses a REGISTER (403): the refusal is relayed to the device "
      "unchanged and no binding is kept (g); a query then lists none",
      "mirror")
def _mirror_upstream_error(d: Driver) -> None:
    d.sipp("reg_expect_error", 5203,
           {"user": "mallory", "ctport": "5203", "expires": "60", "regcseq": "1"},
           call_id="mallory-1")
    d.sipp("reg_query", 5203, {"user": "mallory", "regcseq": "2"}, call_id="mallory-1")


@spec("mirror-auth",
      "mirror: the main registrar's 401 challenges pass through untouched and every "
      "authenticated retry is relayed with its credentials (h): register, refresh, un-register",
      "mirror")
def _mirror_auth(d: Driver) -> None:
    d.sipp("reg_auth", 5204, {"user": "secure1", "ctport": "5204", "expires": "60"},
           call_id="secure1-1", pause_ms=1000, extra_args=("-au", "secure1", "-ap", "secret"))


@spec("mirror-timeout",
      "mirror: the main registrar never answers: our relayed REGISTER is retransmitted (Timer E, "
      "t1=0.1 s) until Timer F and the device gets 408 Request Timeout (g; RFC 3261 §16.7 step "
      "6); the device's own retransmissions are absorbed by our server transaction (§17.2.2)",
      "mirror", config={"t1": "0.1"}, settle=1.5)
def _mirror_timeout(d: Driver) -> None:
    d.sipp("reg_expect_error", 5205,
           {"user": "blackhole", "ctport": "5205", "expires": "60", "regcseq": "1"},
           call_id="blackhole-1")


@spec("mirror-path",
      "mirror: Path (RFC 3327): the edge proxy's Path is not relayed upstream -- we are the "
      "path -- and, the REGISTER saying Supported: path, the stored Path is echoed in the 200 OK; "
      "refresh and removal alike",
      "mirror")
def _mirror_path(d: Driver) -> None:
    d.sipp("reg_path", 5206, {"user": "edge1", "ctport": "5207", "expires": "60"},
           call_id="edge1-1", pause_ms=1000)


_RAW_REGISTER = """REGISTER sip:example.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-raw-{n}
Max-Forwards: 70
From: <sip:{user}@example.test>;tag=raw-{user}
To: <sip:{user}@example.test>
Call-ID: raw-{user}-1
CSeq: {n} REGISTER
Contact: <sip:{user}@127.0.0.1:{port}>
Expires: 60
Content-Length: 0"""


def _raw(n: int, user: str, *, drop: tuple[str, ...] = (), set_: dict[str, str] | None = None,
         start: str | None = None) -> str:
    lines = _RAW_REGISTER.replace("{n}", str(n)).replace("{user}", user).split("\n")
    out = [start or lines[0]]
    replaced = dict(set_ or {})
    for line in lines[1:]:
        name = line.split(":", 1)[0]
        if name in drop:
            continue
        if name in replaced:
            line = f"{name}: {replaced.pop(name)}"
        out.append(line)
    out[-1:-1] = [f"{k}: {v}" for k, v in replaced.items()]
    return "\n".join(out)


@spec("mirror-retransmission",
      "mirror: a REGISTER retransmitted (same branch) after our final answer gets that answer "
      "again from our server transaction and is not relayed a second time (RFC 3261 §17.2.2); "
      "the next REGISTER (new branch, CSeq + 1) is relayed",
      "mirror")
def _mirror_retransmission(d: Driver) -> None:
    phone = d.raw(5208)
    first = _raw(1, "lena")
    assert phone.send(first), "no answer to the first REGISTER"
    assert phone.send(first), "no answer to the retransmission"
    assert phone.send(_raw(2, "lena", set_={"Expires": "0"})), "no answer to the removal"


@spec("mirror-bad-requests",
      "bad input: refused REGISTERs are answered locally and never relayed -- garbage and a "
      "stray response are dropped; no Call-ID, CSeq method mismatch, bad Expires, bad Contact, "
      "Contact: * without Expires: 0 and an empty AOR user get 400; Max-Forwards: 0 gets 483; "
      "Require: an unknown extension gets 420 with Unsupported; a tel: Request-URI gets 416; "
      "Expires below min_expires gets 423 with Min-Expires",
      "mirror")
def _mirror_bad_requests(d: Driver) -> None:
    phone = d.raw(5209)
    assert not phone.send_bytes(b"hello, is anybody there?\r\n\r\n")
    assert not phone.send("SIP/2.0 200 OK\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnone\n"
                          "From: <sip:x@example.test>;tag=1\nTo: <sip:x@example.test>;tag=2\n"
                          "Call-ID: stray-1\nCSeq: 1 REGISTER\nContent-Length: 0")
    cases = [
        _raw(1, "mike", drop=("Call-ID",)),
        _raw(2, "mike", set_={"CSeq": "2 INVITE"}),
        _raw(3, "mike", set_={"Expires": "soon"}),
        _raw(4, "mike", set_={"Contact": "<sip:mike@127.0.0.1:5209;>>"}),
        _raw(5, "mike", set_={"Contact": "*", "Expires": "60"}),
        _raw(6, "mike", set_={"To": "<sip:example.test>"}),
        _raw(7, "mike", set_={"Max-Forwards": "0"}),
        _raw(8, "mike", set_={"Require": "frobnication"}),
        _raw(9, "mike", start="REGISTER tel:+15551234 SIP/2.0"),
        _raw(10, "mike", set_={"Expires": "2"}),
    ]
    for text in cases:
        assert phone.send(text), f"no answer to {text!r}"


# == contact throttling =======================================================================

@spec("ctthrottle-refresh",
      "contact throttling: the first REGISTER is relayed with outgoing_expires=600 under a "
      ";ctid= contact of ours (a) and its 200 OK gives the device its own 60 s (f); two "
      "refreshes inside the upstream window are answered locally with a 200 of our own (b); the "
      "un-REGISTER is relayed with ;expires=0 (d)",
      "contact-throttling")
def _ct_refresh(d: Driver) -> None:
    d.sipp("reg_refresh_unreg", 5201, {"user": "alice", "expires": "60"}, call_id="alice-1",
           pause_ms=1000)


@spec("ctthrottle-window",
      "contact throttling with outgoing_expires=20, refreshes of 10 s every 4 s: a refresh is "
      "absorbed while the device's binding would end before the upstream one and relayed as soon "
      "as it would outlive it (b, c: at 12 s and 24 s), so no local binding outlives its "
      "upstream binding; the un-REGISTER is relayed",
      "contact-throttling", config={"outgoing_expires": "20"})
def _ct_window(d: Driver) -> None:
    d.sipp("reg_periodic", 5213, {"user": "erin", "ctport": "5213", "expires": "10"},
           call_id="erin-1", pause_ms=4000)


@spec("ctthrottle-expire",
      "contact throttling: a device stops refreshing; at the exact end of its binding we "
      "de-register it upstream ourselves -- its Call-ID, CSeq + 1, a new From tag, Contact "
      "<ctid>;expires=0, no Expires header (e) -- while the other device stays registered; then "
      "that one un-registers (d)",
      "contact-throttling", settle=0.5)
def _ct_expire(d: Driver) -> None:
    d.sipp("reg_once", 5231, {"user": "dave", "ctport": "5231", "expires": "5", "regcseq": "1"},
           call_id="dave-a")
    d.sipp("reg_once", 5232, {"user": "dave", "ctport": "5232", "expires": "60", "regcseq": "1"},
           call_id="dave-b")
    d.sleep(6.0)
    d.sipp("reg_once", 5232, {"user": "dave", "ctport": "5232", "expires": "0", "regcseq": "2"},
           call_id="dave-b")


@spec("ctthrottle-star",
      "contact throttling: two bindings; a query is answered locally with both (RFC 3261 §10.3 "
      "step 8); Expires: 0 and ;expires=0 removals are relayed (d); Contact: * is relayed "
      "unchanged and its 2xx removes every binding without any de-REGISTER of ours (OpenSIPS "
      "sends redundant ones); the last query lists none",
      "contact-throttling")
def _ct_star(d: Driver) -> None:
    d.sipp("star_unreg", 5241, {"user": "carol"}, call_id="carol-1", pause_ms=1000)


@spec("ctthrottle-auth",
      "contact throttling: the 401 challenge passes through untouched and the authenticated "
      "REGISTER is relayed (h); the refresh inside the window is absorbed; the un-REGISTER is "
      "relayed, challenged and relayed again with credentials",
      "contact-throttling")
def _ct_auth(d: Driver) -> None:
    d.sipp("reg_auth", 5214, {"user": "secure2", "ctport": "5214", "expires": "60"},
           call_id="secure2-1", pause_ms=1000, extra_args=("-au", "secure2", "-ap", "secret"))


@spec("ctthrottle-upstream-error",
      "contact throttling: a REGISTER the main registrar refuses (403) is relayed back unchanged "
      "and leaves no binding (g), so the device's next attempt is relayed again, not absorbed",
      "contact-throttling")
def _ct_upstream_error(d: Driver) -> None:
    for cseq in ("1", "2"):
        d.sipp("reg_expect_error", 5203,
               {"user": "mallory", "ctport": "5203", "expires": "60", "regcseq": cseq},
               call_id="mallory-1")


@spec("ctthrottle-cseq",
      "contact throttling: a refresh inside the window whose CSeq is lower than the binding's "
      "(same Call-ID) is refused locally with 400 (RFC 3261 §10.3 step 7; b.2); the next higher "
      "CSeq is absorbed; the un-REGISTER is relayed",
      "contact-throttling")
def _ct_cseq(d: Driver) -> None:
    keys = {"user": "frank", "ctport": "5215", "expires": "60"}
    d.sipp("reg_once", 5215, keys | {"regcseq": "5"}, call_id="frank-1")
    # SIPp mistakes "CSeq" in the reason phrase "Invalid CSeq number" for the CSeq header and
    # aborts: this one REGISTER is sent by the raw sender (same Call-ID, CSeq 3)
    phone = d.raw(5215)
    answer = phone.send(_raw(3, "frank").replace("Call-ID: raw-frank-1", "Call-ID: frank-1")
                        .replace("tag=raw-frank", "tag=frank-raw"))
    assert answer and answer[0].startswith(b"SIP/2.0 400 "), answer
    phone.close()
    d.sipp("reg_once", 5215, keys | {"regcseq": "6"}, call_id="frank-1")
    d.sipp("reg_once", 5215, keys | {"regcseq": "7", "expires": "0"}, call_id="frank-1")


@spec("ctthrottle-deregister-retransmit",
      "contact throttling: our own de-REGISTER of an expired device is a real client "
      "transaction -- unanswered, it is retransmitted (Timer E, t1=0.1 s) until Timer F and the "
      "failure is counted (DESIGN.md §5.5; OpenSIPS sends it once)",
      "contact-throttling", config={"t1": "0.1"}, settle=0.5)
def _ct_deregister_retransmit(d: Driver) -> None:
    d.sipp("reg_once", 5216, {"user": "flaky", "ctport": "5216", "expires": "5", "regcseq": "1"},
           call_id="flaky-1")
    d.sleep(5.0 + 6.4 + 0.5)


@spec("ctthrottle-two-contacts",
      "contact throttling: one REGISTER binding two contacts gets one ctid per contact upstream "
      "(a) and its 200 OK lists both with their q values; the refresh of both is absorbed (b); "
      "removing both with Expires: 0 is relayed (d)",
      "contact-throttling")
def _ct_two_contacts(d: Driver) -> None:
    d.sipp("reg_two_contacts", 5217,
           {"user": "gina", "ctport": "5218", "ctport2": "5219", "expires": "60"},
           call_id="gina-1", pause_ms=1000)


@spec("ctthrottle-interval-too-brief",
      "contact throttling: a lifetime below min_expires is refused locally with 423 Interval Too "
      "Brief and Min-Expires: 5 (RFC 3261 §10.3 step 7; OpenSIPS clamps it silently); the retry "
      "with 5 s is relayed with outgoing_expires, the removal too",
      "contact-throttling")
def _ct_interval_too_brief(d: Driver) -> None:
    keys = {"user": "hank", "ctport": "5220"}
    d.sipp("reg_expect_error", 5220, keys | {"expires": "2", "regcseq": "1"}, call_id="hank-1")
    d.sipp("reg_once", 5220, keys | {"expires": "5", "regcseq": "2"}, call_id="hank-1")
    d.sipp("reg_once", 5220, keys | {"expires": "0", "regcseq": "3"}, call_id="hank-1")


# == AOR throttling ===========================================================================

@spec("aorthrottle-refresh",
      "AOR throttling: the main registrar sees one aggregate contact <sip:alice@us> with "
      "outgoing_expires=600 (a) and its 200 OK gives the device its own 60 s, never the "
      "upstream lifetime (f); refreshes inside the window are absorbed (b); the last contact's "
      "un-REGISTER is relayed with the aggregate contact at expires 0 (d)",
      "aor-throttling")
def _aor_refresh(d: Driver) -> None:
    d.sipp("reg_refresh_unreg", 5201, {"user": "alice", "expires": "60"}, call_id="alice-1",
           pause_ms=1000)


@spec("aorthrottle-upstream-error",
      "AOR throttling: a REGISTER the main registrar refuses (403) is relayed back unchanged "
      "and leaves no binding and no aggregate (g), so the device's next attempt is relayed "
      "again, not absorbed",
      "aor-throttling")
def _aor_upstream_error(d: Driver) -> None:
    for cseq in ("1", "2"):
        d.sipp("reg_expect_error", 5203,
               {"user": "mallory", "ctport": "5203", "expires": "60", "regcseq": cseq},
               call_id="mallory-1")


def _two_devices(d: Driver, user: str) -> None:
    a = {"user": user, "ctport": "5221", "expires": "60"}
    b = {"user": user, "ctport": "5222", "expires": "60"}
    d.sipp("reg_once", 5221, a | {"regcseq": "1"}, call_id=f"{user}-a")
    d.sipp("reg_once", 5222, b | {"regcseq": "1"}, call_id=f"{user}-b")
    d.sipp("reg_once", 5221, a | {"regcseq": "2"}, call_id=f"{user}-a")
    d.sipp("reg_once", 5221, a | {"regcseq": "3", "expires": "0"}, call_id=f"{user}-a")
    d.sipp("reg_once", 5222, b | {"regcseq": "2", "expires": "0"}, call_id=f"{user}-b")


@spec("aorthrottle-two-devices",
      "AOR throttling: a second device of a registered AOR is relayed so that the main "
      "registrar authenticates it (DESIGN.md §5.2; OpenSIPS absorbs it); a refresh inside the "
      "window is absorbed (b); removing one of two devices is answered locally, removing the "
      "last one is relayed with the aggregate contact at expires 0 (d)",
      "aor-throttling")
def _aor_two_devices(d: Driver) -> None:
    _two_devices(d, "ivan")


@spec("aorthrottle-two-devices-opensips",
      "AOR throttling with compat=opensips: the second device of a registered AOR is absorbed "
      "without the main registrar ever seeing it (OpenSIPS's choice, issues #2536/#3193); "
      "removing one of two devices is answered locally, the last one is relayed (d)",
      "aor-throttling", config={"compat": "opensips"})
def _aor_two_devices_opensips(d: Driver) -> None:
    _two_devices(d, "ivan")


@spec("aorthrottle-expire",
      "AOR throttling: a device that stops refreshing leaves silently while another is still "
      "live (e); when the last one expires we de-register the aggregate contact upstream "
      "ourselves (its Call-ID, CSeq + 1, a new From tag, expires=0)",
      "aor-throttling", settle=0.5)
def _aor_expire(d: Driver) -> None:
    d.sipp("reg_once", 5223, {"user": "judy", "ctport": "5223", "expires": "5", "regcseq": "1"},
           call_id="judy-a")
    d.sipp("reg_once", 5224, {"user": "judy", "ctport": "5224", "expires": "8", "regcseq": "1"},
           call_id="judy-b")
    d.sleep(9.0)


@spec("aorthrottle-star",
      "AOR throttling: two devices; a query is answered locally with both (RFC 3261 §10.3 step "
      "8); removing one of them (Expires: 0, ;expires=0) is answered locally; Contact: * is "
      "relayed unchanged and its 2xx removes every binding without a de-REGISTER of ours; the "
      "last query lists none",
      "aor-throttling")
def _aor_star(d: Driver) -> None:
    d.sipp("star_unreg", 5241, {"user": "carol"}, call_id="carol-1", pause_ms=1000)


@spec("aorthrottle-window",
      "AOR throttling with outgoing_expires=20, refreshes of 10 s every 4 s: absorbed while the "
      "device's binding ends before the aggregate's upstream binding, relayed as soon as it "
      "would outlive it (b, c); the un-REGISTER of the last contact is relayed (d)",
      "aor-throttling", config={"outgoing_expires": "20"})
def _aor_window(d: Driver) -> None:
    d.sipp("reg_periodic", 5213, {"user": "erin", "ctport": "5213", "expires": "10"},
           call_id="erin-1", pause_ms=4000)


@spec("aorthrottle-auth",
      "AOR throttling: the 401 challenge passes through untouched and the authenticated "
      "REGISTER is relayed with the aggregate contact (h); the refresh inside the window is "
      "absorbed; the un-REGISTER of the last contact is relayed, challenged and relayed again",
      "aor-throttling")
def _aor_auth(d: Driver) -> None:
    d.sipp("reg_auth", 5214, {"user": "secure3", "ctport": "5214", "expires": "60"},
           call_id="secure3-1", pause_ms=1000, extra_args=("-au", "secure3", "-ap", "secret"))


# == requests from the main registrar toward the devices (i) ==================================

def _fork(d: Driver) -> None:
    # one device answers after 2 s, the other is busy after 0.5 s (ACK / BYE end the call)
    _fork_call(d, (("uas_answer", 2000), ("uas_busy", 500)),
               lambda: d.caller("bob", 5290, call_id="call-1"))


@spec("mirror-fork",
      "mirror: bob's two devices register; the main registrar forks a call to their two ;ctid= "
      "contacts and we relay each INVITE to its one device (i), Record-Routing ourselves; 180s, "
      "the 486 of the busy one (ACKed hop by hop) and the 200 of the other go back; ACK and BYE "
      "follow the Record-Route through us; both un-register",
      "mirror", settle=0.5)
def _mirror_fork(d: Driver) -> None:
    _fork(d)


@spec("ctthrottle-fork",
      "contact throttling: bob's two devices register; the main registrar forks a call to their "
      "two ;ctid= contacts and we relay each INVITE to its one device (i), Record-Routing "
      "ourselves; 180s, the busy device's 486 (ACKed hop by hop) and the other's 200 go back; "
      "ACK and BYE follow the Record-Route; both un-register",
      "contact-throttling", settle=0.5)
def _ct_fork(d: Driver) -> None:
    _fork(d)


@spec("aorthrottle-fork",
      "AOR throttling: bob's two devices register behind one aggregate contact; the main "
      "registrar sends ONE INVITE to it and we fork it in parallel to both devices (i); the "
      "busy one's 486 is absorbed (ACKed by us), the 200 of the other goes back and the "
      "transaction ends; ACK and BYE follow the Record-Route; both un-register",
      "aor-throttling", settle=0.5)
def _aor_fork(d: Driver) -> None:
    _fork(d)


# == forking: a call that ends unanswered, or answered by the other device (i) ==============
# Two devices of bob (contacts 127.0.0.1:5201 and :5202, each registered from another port,
# 5251 and 5252, as in the OpenSIPS traces); the caller on 5290 calls bob through the main
# registrar; each device's SIPp scenario says how it answers.

@dataclass(frozen=True)
class Device:
    """One of bob's devices in a fork trace: a SIPp UAS scenario (``-d pause_ms``, extra keys)
    or, for ``SILENT``, a bound UDP socket that never answers anything."""

    scenario: str
    pause_ms: int | None = None
    keys: Mapping[str, str] = field(default_factory=dict)


SILENT = "silent"


def _fork_call(d: Driver, devices: tuple[tuple[str, int | None] | Device,
                                         tuple[str, int | None] | Device],
               call: Callable[[], object], *, linger: float = 0.0) -> None:
    """Bob's two devices answer on 5201 and 5202 (registered from 5251 and 5252); ``call``
    makes the call; ``linger`` seconds pass after it (and after both devices are done) before
    both un-register."""
    for device, port in zip(devices, (5201, 5202), strict=True):
        if not isinstance(device, Device):
            device = Device(*device)
        if device.scenario == SILENT:
            d.raw(port)
        else:
            d.uas(device.scenario, port, {"user": "bob", **device.keys},
                  pause_ms=device.pause_ms)
    for port, ctport in ((5251, "5201"), (5252, "5202")):
        d.sipp("reg_once", port, {"user": "bob", "ctport": ctport, "expires": "60",
                                  "regcseq": "1"}, call_id=f"bob-{ctport}")
    d.sleep(0.5)
    call()
    d.close()  # both devices done (their ACKs seen)
    d.sleep(linger)
    for port, ctport in ((5251, "5201"), (5252, "5202")):
        d.sipp("reg_once", port, {"user": "bob", "ctport": ctport, "expires": "0",
                                  "regcseq": "2"}, call_id=f"bob-{ctport}")


def _cancelled_call(d: Driver) -> None:
    _fork_call(d, (("uas_ring_cancel", None), ("uas_ring_cancel", None)),
               lambda: d.caller("bob", 5290, call_id="call-1", cancel_after_ms=1000))


@spec("aorthrottle-fork-cancel",
      "AOR throttling: the main registrar's ONE INVITE is forked to bob's two devices (i) and "
      "both ring (180s relayed); the caller CANCELs: the main registrar CANCELs its branch to "
      "us, we answer that CANCEL 200 at once and CANCEL both devices (RFC 3261 §16.10), each "
      "answers 200 and 487, we ACK each 487 hop by hop, and only when both branches are done "
      "ONE 487 goes upstream (§16.7 step 6), which the main registrar ACKs; both un-register",
      "aor-throttling", settle=0.5)
def _aor_fork_cancel(d: Driver) -> None:
    _cancelled_call(d)


@spec("aorthrottle-fork-busy",
      "AOR throttling: the main registrar's ONE INVITE is forked to bob's two devices (i); both "
      "ring and both answer 486 Busy Here, half a second apart: we ACK each 486 hop by hop, "
      "hold the first while the other branch is pending, and send exactly one 486 upstream -- "
      "the first one received (§16.7 step 6: best class, then arrival order) -- once both are "
      "done; the main registrar ACKs it; both un-register",
      "aor-throttling", settle=0.5)
def _aor_fork_busy(d: Driver) -> None:
    _fork_call(d, (("uas_busy", 500), ("uas_busy", 1000)),
               lambda: d.caller("bob", 5290, call_id="call-1", reject=True))


@spec("aorthrottle-fork-decline",
      "AOR throttling: the main registrar's ONE INVITE is forked to bob's two devices (i); both "
      "ring, then one answers 603 Decline: we ACK the 603 and, a 6xx ending the search, CANCEL "
      "the other, still ringing, device (RFC 3261 §16.7 step 5); it answers 200 and 487, which "
      "we ACK; the 603 -- a 6xx beats the 487 (step 6) -- goes upstream once both branches are "
      "done and the main registrar ACKs it; both un-register",
      "aor-throttling", settle=0.5)
def _aor_fork_decline(d: Driver) -> None:
    _fork_call(d, (("uas_decline", 1000), ("uas_ring_cancel", None)),
               lambda: d.caller("bob", 5290, call_id="call-1", reject=True))


@spec("ctthrottle-fork-cancel",
      "contact throttling: bob's two devices register from other ports than their Contacts "
      "(5251 -> 5201, 5252 -> 5202, as in the OpenSIPS traces); the main registrar forks the "
      "call to their two ;ctid= contacts and we relay each INVITE to the Contact address, not "
      "the REGISTER source (i); both ring; the caller CANCELs, the main registrar CANCELs both "
      "of its branches, we answer each CANCEL 200 and CANCEL that one device hop by hop "
      "(RFC 3261 §16.10), ACK its 487 and relay the 487 upstream; both un-register",
      "contact-throttling", settle=0.5)
def _ct_fork_cancel(d: Driver) -> None:
    _cancelled_call(d)


@spec("aorthrottle-fork-completed-elsewhere",
      "AOR throttling: the main registrar's ONE INVITE is forked to bob's two devices (i); both "
      "ring, one answers 200: the 200 goes upstream at once and the other, still ringing, "
      "device is CANCELled with Reason: SIP;cause=200;text=\"Call completed elsewhere\" "
      "(RFC 3261 §16.7 step 10, RFC 3326); its 200 to the CANCEL and its 487 (ACKed by us) stay "
      "here; ACK and BYE follow the Record-Route to the answering device; both un-register",
      "aor-throttling", settle=0.5)
def _aor_fork_completed_elsewhere(d: Driver) -> None:
    _fork_call(d, (("uas_answer", 1000), ("uas_ring_cancel", None)),
               lambda: d.caller("bob", 5290, call_id="call-1"))


# == Timer C, a CANCEL crossing a 2xx, a non-INVITE fork (i) ================================

@spec("aorthrottle-fork-timer-c",
      "AOR throttling, Timer C of 2 s: the main registrar's ONE INVITE is forked to bob's two "
      "devices (i); both ring (180); one rings on and on, the other sends 183 after 1.5 s -- a "
      "provisional other than 100 resets its branch's Timer C (RFC 3261 §16.7 step 2) -- and "
      "answers 200 after 3 s; 2 s after its 180 the Timer C of the device that only rang fires "
      "and we CANCEL that branch (§16.8), it answers 200 and 487, we ACK the 487 and hold it "
      "(the other branch is pending); the 200 goes upstream at once (§16.7 step 5) and is the "
      "caller's answer; ACK and BYE follow the Record-Route; both un-register",
      "aor-throttling", config={"timer_c": "2"}, settle=0.5)
def _aor_fork_timer_c(d: Driver) -> None:
    _fork_call(d, (("uas_ring_cancel", None), ("uas_ring_progress_answer", 1500)),
               lambda: d.caller("bob", 5290, call_id="call-1"))


@spec("aorthrottle-fork-timer-c-unanswered",
      "AOR throttling, Timer C of 2 s, t1=0.1 s: the main registrar's ONE INVITE is forked to "
      "bob's two devices (i); one rings (180) and never answers, the other never answers at "
      "all (our INVITE is retransmitted to it, Timer A); when Timer C fires, the branch without "
      "a provisional counts as 408 -- no CANCEL may be sent before a provisional (RFC 3261 "
      "§16.8, §9.1) -- and the ringing one is CANCELled (§16.8), answers 200 and 487 and we "
      "ACK it; both branches done, ONE final goes upstream: the device's 487 (§16.7 step 6: "
      "both 4xx; of the two we prefer a response received to the 408 we stand in for), which "
      "the main registrar ACKs; the silent branch's INVITE is retransmitted until Timer B "
      "(64*T1); both un-register",
      "aor-throttling", config={"timer_c": "2", "t1": "0.1"}, settle=0.5)
def _aor_fork_timer_c_unanswered(d: Driver) -> None:
    # the caller has its 487 about 2 s after the INVITE; Timer B of the silent branch ends 6.4 s
    # after it: linger until then, so that the un-REGISTERs come after the last retransmission
    _fork_call(d, (("uas_ring_cancel", None), Device(SILENT)),
               lambda: d.caller("bob", 5290, call_id="call-1", reject=True), linger=5.0)


@spec("aorthrottle-fork-cancel-2xx-race",
      "AOR throttling: the main registrar's ONE INVITE is forked to bob's two devices (i); "
      "both ring; the caller CANCELs and the main registrar CANCELs its branch to us, which we "
      "answer 200 at once while CANCELling both devices (RFC 3261 §16.10); one device's 200 OK "
      "to the INVITE crosses our CANCEL (it answers the INVITE 200, then the CANCEL 200): a 2xx "
      "is relayed upstream even after a CANCEL (§16.7 step 5; §9.1: the CANCEL then has no "
      "effect), the call is up and its ACK and BYE follow the Record-Route end to end; the "
      "other device answers 200 and 487, which we ACK and keep (a final after the 2xx is not "
      "relayed); both un-register",
      "aor-throttling", settle=0.5)
def _aor_fork_cancel_2xx_race(d: Driver) -> None:
    _fork_call(d, (("uas_ring_cancel", None), ("uas_answer_crossing_cancel", None)),
               lambda: d.caller("bob", 5290, call_id="call-1",
                                scenario_name="uac_invite_cancel_answered", pause_ms=1000))


@spec("aorthrottle-fork-message",
      "AOR throttling, a non-INVITE fork: the main registrar's ONE MESSAGE to the aggregate "
      "contact is forked to bob's two devices (i), without Record-Route; first MESSAGE: one "
      "device answers 480 at once and is held, the other's 200 300 ms later goes upstream at "
      "once (RFC 3261 §16.7 step 5) and the 480 never does; second MESSAGE (same Call-ID, "
      "CSeq 2): 503 at once, 486 300 ms later: once both are done ONE final goes upstream, "
      "the 486 (§16.7 step 6: the lowest class, 4xx before the 503); nothing is CANCELled "
      "or ACKed (non-INVITE); both un-register",
      "aor-throttling", settle=0.5)
def _aor_fork_message(d: Driver) -> None:
    quick = Device("uas_message_unavailable")  # 480, then 503, each at once
    slow = Device("uas_message_answer_busy", 300)  # 200, then 486, each after 300 ms
    _fork_call(d, (quick, slow),
               lambda: d.caller("bob", 5290, call_id="msg-1", scenario_name="uac_message_twice",
                                pause_ms=500))
