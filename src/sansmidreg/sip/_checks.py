# Message.defects(): the sanity checks a registrar or proxy applies to a message that parsed
# (RFC 3261 §8.1.1 mandatory headers, §8.2.2-§8.2.3, §10.3 steps 3 and 6, §16.3; RFC 4475 §3.2
# and §3.3), reported as stable flag strings in a fixed order instead of raising, so that a caller
# can answer 400 (or 416, or tolerate RFC 2543 leftovers) with a precise reason.
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from ._errors import SipParseError

if TYPE_CHECKING:
    from ._message import Message

__all__ = ["DEFECTS", "RFC2543_DEFECTS", "message_defects"]

DEFECTS: Final[dict[str, str]] = {
    "bad-request-uri": "the Request-URI is malformed or carries ?headers (400)",
    "unsupported-uri-scheme": "the Request-URI is not a sip:/sips: URI (416)",
    "missing-via": "no Via header",
    "bad-via": "a Via value is malformed",
    "empty-branch": "the top Via branch is the bare magic cookie z9hG4bK (RFC 4475 §3.2.1)",
    "rfc2543-branch": "the top Via has no branch starting with z9hG4bK (RFC 2543 client)",
    "missing-from": "no From header",
    "duplicate-from": "two different From headers (RFC 4475 §3.3.8)",
    "bad-from": "the From value is malformed",
    "missing-from-tag": "From has no tag (RFC 2543 client, §8.1.1.3)",
    "missing-to": "no To header",
    "duplicate-to": "two different To headers",
    "bad-to": "the To value is malformed",
    "to-not-sip": "REGISTER whose To is not a sip:/sips: address-of-record (§10.3 step 3)",
    "missing-call-id": "no Call-ID header",
    "duplicate-call-id": "two different Call-ID headers",
    "bad-call-id": "the Call-ID is not word[@word]",
    "missing-cseq": "no CSeq header",
    "duplicate-cseq": "two different CSeq headers",
    "bad-cseq": "the CSeq is malformed or above 2**32-1",
    "cseq-method-mismatch": "the CSeq method is not the request method (RFC 4475 §3.1.2.17)",
    "missing-max-forwards": "a request without Max-Forwards (RFC 2543 client, §8.1.1.6)",
    "duplicate-max-forwards": "two different Max-Forwards headers",
    "bad-max-forwards": "Max-Forwards is not a number in 0..255",
    "bad-contact": "a Contact value, its q, or its expires parameter is malformed",
    "star-contact-needs-expires-0": "REGISTER with Contact: * and no Expires: 0 (§10.3 step 6)",
    "duplicate-expires": "two different Expires headers",
    "bad-expires": "the Expires header is not delta-seconds",
    "bad-route": "a Route value is malformed",
    "bad-record-route": "a Record-Route value is malformed",
    "bad-path": "a Path value is malformed",
}
"""Every flag ``Message.defects()`` may report, with what it means."""

RFC2543_DEFECTS: Final = frozenset({"rfc2543-branch", "missing-from-tag", "missing-max-forwards"})
"""Flags an RFC 2543 client produces (RFC 4475 §3.4.1); an element may choose to tolerate them."""


def _fails(access: Callable[[], object]) -> bool:
    try:
        access()
    except SipParseError:
        return True
    return False


def _single(msg: Message, out: list[str], key: str, flag: str,
            access: Callable[[], object], *, required: bool = True) -> bool:
    """Check a single-valued header; True when it is present and valid."""
    idx = msg._index()
    if key not in idx:
        if required:
            out.append("missing-" + flag)
        return False
    if msg._rep and key in msg._dupset():
        out.append("duplicate-" + flag)
        return False
    if _fails(access):
        out.append("bad-" + flag)
        return False
    return True


def message_defects(msg: Message) -> tuple[str, ...]:
    """The flags of DEFECTS that apply to ``msg``, in DEFECTS order."""
    from ._message import Request

    out: list[str] = []
    method = msg.method if isinstance(msg, Request) else None
    if isinstance(msg, Request):
        try:
            _ = msg.uri
        except SipParseError as exc:
            out.append("unsupported-uri-scheme" if exc.status == 416 else "bad-request-uri")
    if not msg.has("via"):
        out.append("missing-via")
    elif _fails(lambda: msg.vias):
        out.append("bad-via")
    else:
        branch = msg.top_via.branch
        if branch is None or not branch.startswith("z9hG4bK"):
            out.append("rfc2543-branch")
        elif branch == "z9hG4bK":
            out.append("empty-branch")
    if _single(msg, out, "from", "from", lambda: msg.from_) and msg.from_.tag is None:
        out.append("missing-from-tag")
    if _single(msg, out, "to", "to", lambda: msg.to) and method == "REGISTER" and (
            not msg.to.uri.is_sip):
        out.append("to-not-sip")
    _single(msg, out, "call-id", "call-id", lambda: msg.call_id)
    if _single(msg, out, "cseq", "cseq", lambda: msg.cseq) and method is not None and (
            msg.cseq.method != method):
        out.append("cseq-method-mismatch")
    _single(msg, out, "max-forwards", "max-forwards", lambda: msg.max_forwards,
            required=method is not None)
    expires_ok = _single(msg, out, "expires", "expires", lambda: msg.expires, required=False)
    try:
        contacts = msg.contacts
        for c in contacts.items:
            _ = (c.q, c.expires_seconds)  # validates them
    except SipParseError:
        out.append("bad-contact")
    else:
        if method == "REGISTER" and contacts.star and not (expires_ok and msg.expires == 0):
            out.append("star-contact-needs-expires-0")
    for key, flag in (("route", "bad-route"), ("record-route", "bad-record-route"),
                      ("path", "bad-path")):
        try:
            msg._addresses(key)
        except SipParseError:
            out.append(flag)
    order = list(DEFECTS)
    out.sort(key=order.index)
    return tuple(out)
