# Simulated user agents: REGISTER builders (Call-ID, CSeq, Contact, Expires header or ;expires
# param, Path, +sip.instance/reg-id, Supported/Require, credentials) and the UA's view of what it
# was told (the 2xx it got, when it thinks its contact expires).
#
# A SimUA never touches the core: it makes bytes and reads bytes. `register()` builds the next
# request (CSeq + 1, a fresh branch), `retransmit()` sends the last one again unchanged (RFC 3261
# §17.1.2.2), `on_response()` records an answer and returns the bytes of an automatic follow-up
# (the authenticated retry after a 401/407) when one is due.
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from sansmidreg import Endpoint
from sansmidreg.sip import Request, Response, SipParseError, parse_message

__all__ = ["Answer", "ExpiresStyle", "SimUA"]

ExpiresStyle = Literal["header", "param", "both", "none"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A final response a UA received, with the request it answered."""

    at: float
    response: Response
    asked: int | None
    """The lifetime the UA asked for its own contact (None for a query or Contact: *)."""
    cseq: int


@dataclass(slots=True)
class _Sent:
    data: bytes
    branch: str
    cseq: int
    asked: int | None
    answered: bool = False
    authorized: bool = False


@dataclass(slots=True)
class SimUA:
    """One device registering ``contact_uri`` for ``sip:user@domain``."""

    user: str
    port: int
    host: str = "127.0.0.1"
    domain: str = "example.test"
    transport: Literal["udp", "tcp"] = "udp"
    contact_user: str | None = None
    call_id: str = ""
    instance: str | None = None
    reg_id: int | None = None
    auto_auth: bool = True
    """Answer a 401/407 with an authenticated retry (same Call-ID, CSeq + 1)."""
    user_agent: str = "sim-ua"
    cseq: int = 0
    from_tag: str = ""
    answers: list[Answer] = field(default_factory=list)
    provisionals: int = 0
    registered_until: float | None = None
    """When the UA believes its own contact expires (from the last 2xx), None if unregistered."""
    _branches: int = 0
    _last: _Sent | None = None
    _sent: dict[str, _Sent] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.call_id:
            self.call_id = f"{self.user}-{self.port}@{self.host}"
        if not self.from_tag:
            self.from_tag = f"t{self.port}"

    # -- identity --------------------------------------------------------------------------------
    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(transport=self.transport, host=self.host, port=self.port)

    @property
    def aor_uri(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact_uri(self) -> str:
        tparam = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{self.contact_user or self.user}@{self.host}:{self.port}{tparam}"

    def restart(self, call_id: str) -> None:
        """The device reboots: a new Call-ID and CSeq from 1 (RFC 3261 §10.2.4)."""
        self.call_id = call_id
        self.cseq = 0

    # -- requests --------------------------------------------------------------------------------
    def register(self, expires: int | None = 60, *, style: ExpiresStyle = "header",
                 contacts: Sequence[str] | None = None, star: bool = False,
                 query: bool = False, path: Sequence[str] = (), supported: Sequence[str] = (),
                 require: Sequence[str] = (), max_forwards: int | None = 70,
                 authorization: str | None = None, q: str | None = None,
                 extra_headers: Sequence[tuple[str, str]] = (), cseq: int | None = None,
                 request_uri: str | None = None) -> bytes:
        """The next REGISTER of this device.

        :param expires: the lifetime asked (None: say nothing, the registrar's default applies).
        :param style: where the lifetime goes: ``Expires`` header, ``;expires`` param, both
            (the param wins, RFC 3261 §10.2.1.1) or neither.
        :param contacts: Contact values to send instead of the device's own contact.
        :param star: send ``Contact: *`` (with ``Expires: 0`` unless ``expires`` says else).
        :param query: send no Contact at all (a binding query).
        :param cseq: force this CSeq (default: the next one).
        """
        self.cseq = self.cseq + 1 if cseq is None else cseq
        self._branches += 1
        branch = f"z9hG4bK{self.user}{self.port}x{self._branches}"
        lines = [
            f"REGISTER {request_uri or 'sip:' + self.domain} SIP/2.0",
            f"Via: SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={branch};rport",
        ]
        if max_forwards is not None:
            lines.append(f"Max-Forwards: {max_forwards}")
        lines += [
            f"From: <{self.aor_uri}>;tag={self.from_tag}",
            f"To: <{self.aor_uri}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} REGISTER",
        ]
        lines += [f"Path: {p}" for p in path]
        if supported:
            lines.append(f"Supported: {', '.join(supported)}")
        if require:
            lines.append(f"Require: {', '.join(require)}")
        asked: int | None = None
        if star:
            lines.append("Contact: *")
            lines.append(f"Expires: {0 if expires is None else expires}")
        elif not query:
            values = list(contacts) if contacts is not None else [self._own_contact(q)]
            if expires is not None and style in ("param", "both"):
                values = [f"{v};expires={expires}" for v in values]
            lines.append(f"Contact: {', '.join(values)}")
            if expires is not None and style in ("header", "both"):
                lines.append(f"Expires: {expires}")
            asked = expires
        if authorization is not None:
            lines.append(f"Authorization: {authorization}")
        lines += [f"{name}: {value}" for name, value in extra_headers]
        lines += [f"User-Agent: {self.user_agent}", "Content-Length: 0", "", ""]
        data = "\r\n".join(lines).encode()
        sent = _Sent(data=data, branch=branch, cseq=self.cseq, asked=asked,
                     authorized=authorization is not None)
        self._last = sent
        self._sent[branch] = sent
        return data

    def _own_contact(self, q: str | None) -> str:
        value = f"<{self.contact_uri}>"
        if q is not None:
            value += f";q={q}"
        if self.instance is not None:
            value += f';+sip.instance="{self.instance}"'
        if self.reg_id is not None:
            value += f";reg-id={self.reg_id}"
        return value

    def retransmit(self) -> bytes:
        """The last request again, byte for byte (a retransmission, RFC 3261 §17.1.2.2)."""
        if self._last is None:
            raise ValueError("nothing sent yet")
        return self._last.data

    @property
    def awaiting(self) -> bool:
        """True while the last request has no final response."""
        return self._last is not None and not self._last.answered

    @property
    def last_branch(self) -> str | None:
        return None if self._last is None else self._last.branch

    # -- responses -------------------------------------------------------------------------------
    def on_response(self, data: bytes, now: float) -> bytes | None:
        """Record an answer; returns an automatic follow-up request (authenticated retry)."""
        try:
            msg = parse_message(data)
        except SipParseError:
            return None
        if not isinstance(msg, Response):
            return None
        try:
            branch = msg.top_via.branch or ""
        except SipParseError:
            return None
        sent = self._sent.get(branch)
        if sent is None:
            return None
        if msg.status < 200:
            self.provisionals += 1
            return None
        if sent.answered:
            return None  # a retransmitted final response
        sent.answered = True
        self.answers.append(Answer(at=now, response=msg, asked=sent.asked, cseq=sent.cseq))
        if 200 <= msg.status < 300 and sent is self._last:
            self.registered_until = self._own_expiry(msg, now)
        if msg.status in (401, 407) and self.auto_auth and not sent.authorized and (
                sent is self._last):
            return self._authenticated_retry(sent)
        return None

    def _own_expiry(self, msg: Response, now: float) -> float | None:
        own = self.contact_uri
        try:
            for item in msg.contacts.items:
                if str(item.uri) == own:
                    raw = item.expires
                    if raw is not None and raw.isdigit():
                        return now + int(raw) if int(raw) > 0 else None
        except SipParseError:
            return None
        return None

    def _authenticated_retry(self, sent: _Sent) -> bytes:
        request = parse_message(sent.data)
        assert isinstance(request, Request)
        self.cseq += 1
        self._branches += 1
        branch = f"z9hG4bK{self.user}{self.port}x{self._branches}"
        out = request.replace_headers("cseq", [f"{self.cseq} REGISTER"]).replace_headers(
            "via", [f"SIP/2.0/{self.transport.upper()} {self.host}:{self.port};branch={branch};rport"])
        out = out.add_header("Authorization", f'Digest username="{self.user}", response="ok"')
        data = out.serialize()
        retry = _Sent(data=data, branch=branch, cseq=self.cseq, asked=sent.asked, authorized=True)
        self._last = retry
        self._sent[branch] = retry
        return data

    @property
    def last_answer(self) -> Answer:
        if not self.answers:
            raise AssertionError(f"{self.user}:{self.port} got no final response")
        return self.answers[-1]
