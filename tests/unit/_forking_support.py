"""Drive a MidRegistrar as the main registrar and the devices would, for the forking tests.

Devices register through the real REGISTER path: the REGISTER goes to the core, the relayed
REGISTER (SendUpstream) is answered with a 200 OK built from it, echoing its Contact with
``;expires``, as a simulated main registrar would. Requests toward devices then come from the
main registrar's address, and the devices' answers are built from what the core sent them.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sansmidreg import (
    Action,
    ArmTimer,
    Branch,
    Config,
    Drop,
    Endpoint,
    Fork,
    MidRegistrar,
    Mode,
    Reply,
    SeededIds,
    SendRequest,
    SendUpstream,
)
from sansmidreg.sip import Request, Response, make_response, parse_message

UPSTREAM = Endpoint(host="127.0.0.1", port=5080)
US = Endpoint(host="127.0.0.1", port=5060)
CALLER_VIA = "SIP/2.0/UDP 127.0.0.1:5290;branch=z9hG4bK-caller-1"
SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       b"t=0 0\r\nm=audio 6008 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def config(**overrides: object) -> Config:
    values: dict[str, object] = {"mode": Mode.MIRROR, "upstream": UPSTREAM, "local": (US,),
                                 "min_expires": 5}
    values.update(overrides)
    return Config(**values)  # type: ignore[arg-type]


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request), msg
    return msg


def parse_response(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response), msg
    return msg


def branches(actions: Sequence[Action]) -> list[Branch]:
    """Every branch of every Fork action."""
    return [b for a in actions if isinstance(a, Fork) for b in a.branches]


def replies(actions: Sequence[Action]) -> list[Response]:
    return [parse_response(a.data) for a in actions if isinstance(a, Reply)]


def statuses(actions: Sequence[Action]) -> list[int]:
    return [r.status for r in replies(actions)]


def sent(actions: Sequence[Action], method: str | None = None) -> list[SendRequest]:
    """SendRequest actions (retransmissions, CANCEL, ACK, stateless relays)."""
    out = [a for a in actions if isinstance(a, SendRequest)]
    if method is not None:
        out = [a for a in out if a.data.startswith(method.encode() + b" ")]
    return out


def drops(actions: Sequence[Action]) -> list[str]:
    return [a.reason for a in actions if isinstance(a, Drop)]


def answer(request: bytes, status: int, *, tag: str | None = None,
           headers: Iterable[tuple[str, str]] = (), body: bytes = b"") -> bytes:
    """A device's (or the main registrar's) response to ``request``."""
    req = parse_request(request)
    extra = [("Record-Route", v) for v in req.get_all("record-route")] if 100 < status < 300 else []
    extra += list(headers)
    if body:
        extra.append(("Content-Type", "application/sdp"))
    return make_response(req, status, None, to_tag=tag, headers=extra, body=body).serialize()


def invite(uri: str, *, branch: str = "z9hG4bKkam-1", call_id: str = "call-1", cseq: int = 1,
           method: str = "INVITE", max_forwards: int | None = 69, to_tag: str | None = None,
           extra: Sequence[tuple[str, str]] = (), body: bytes = SDP) -> bytes:
    """A request as the main registrar (Kamailio in the oracle traces) sends it to us."""
    lines = [f"{method} {uri} SIP/2.0",
             "Record-Route: <sip:127.0.0.1:5080;lr>",
             f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch={branch}",
             f"Via: {CALLER_VIA}"]
    if max_forwards is not None:
        lines.append(f"Max-Forwards: {max_forwards}")
    lines += ["From: <sip:caller@example.test>;tag=caller-tag",
              f"To: <sip:bob@example.test>{';tag=' + to_tag if to_tag else ''}",
              f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
              "Contact: <sip:caller@127.0.0.1:5290>"]
    lines += [f"{k}: {v}" for k, v in extra]
    if body and method == "INVITE":
        lines.append("Content-Type: application/sdp")
    else:
        body = b""
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Device:
    """A registered device: where it listens and the id the core gave its contact."""

    contact: str
    source: Endpoint
    ctid: int
    aggregate: str = ""

    @property
    def uri(self) -> str:
        """The Request-URI the main registrar uses to reach this device."""
        return f"sip:bob@127.0.0.1:5060;ctid={self.ctid}"


@dataclass
class Harness:
    """A core, its clock, and the last ArmTimer it asked for."""

    core: MidRegistrar
    now: float = 0.0
    log: list[Action] = field(default_factory=list)
    _reg: int = 0

    @classmethod
    def create(cls, **overrides: object) -> Harness:
        return cls(core=MidRegistrar(config(**overrides), ids=SeededIds(7)))

    def send(self, data: bytes, source: Endpoint = UPSTREAM, at: float | None = None
             ) -> list[Action]:
        if at is not None:
            self.now = at
        actions = self.core.receive(data, source, self.now)
        self.log.extend(actions)
        return [a for a in actions if not isinstance(a, ArmTimer)]

    def advance(self, to: float) -> list[Action]:
        """Fire every deadline up to ``to`` in order (as an adapter's timer would)."""
        out: list[Action] = []
        while (deadline := self.core.next_deadline()) is not None and deadline <= to:
            self.now = max(self.now, deadline)
            out.extend(a for a in self.core.handle_timer(self.now) if not isinstance(a, ArmTimer))
        self.now = max(self.now, to)
        self.log.extend(out)
        return out

    def register(self, contact: str, source: Endpoint, *, user: str = "bob",
                 expires: int = 3600, transport: str = "UDP",
                 extra: Sequence[tuple[str, str]] = ()) -> Device:
        """REGISTER ``contact`` for ``user`` from ``source`` and let the main registrar accept it."""
        self._reg += 1
        n = self._reg
        host = f"[{source.host}]" if ":" in source.host else source.host
        data = (f"REGISTER sip:example.test SIP/2.0\r\n"
                f"Via: SIP/2.0/{transport} {host}:{source.port};branch=z9hG4bKreg{n}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:{user}@example.test>;tag=r{n}\r\n"
                f"To: <sip:{user}@example.test>\r\nCall-ID: reg-{n}\r\nCSeq: 1 REGISTER\r\n"
                f"Contact: {contact}\r\nExpires: {expires}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in extra)
                + "Content-Length: 0\r\n\r\n").encode()
        actions = self.send(data, source)
        relayed = [a for a in actions if isinstance(a, SendUpstream)]
        assert len(relayed) == 1, actions
        req = parse_request(relayed[0].data)
        echoed = []
        for value in req.values("contact"):
            echoed.append(value if ";expires=" in value else f"{value};expires={expires}")
        ok = make_response(req, 200, "OK", to_tag=f"kam{n}",
                           headers=[("Contact", ", ".join(echoed))]).serialize()
        result = self.send(ok, UPSTREAM)
        assert 200 in statuses(result), result
        first = parse_message(ok).contacts.items[0].uri
        ctid = first.param("ctid") or first.user or ""
        return Device(contact=contact, source=source, ctid=int(ctid) if ctid.isdigit() else 0,
                      aggregate=str(first))

    def respond(self, branch: Branch | SendRequest, status: int, *, tag: str | None = None,
                body: bytes = b"", headers: Iterable[tuple[str, str]] = (),
                at: float | None = None) -> list[Action]:
        """The device at ``branch.dest`` answers the request it was sent."""
        data = answer(branch.data, status, tag=tag, body=body, headers=headers)
        return self.send(data, branch.dest, at)
