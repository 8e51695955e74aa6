# Building messages we originate: responses to a request (RFC 3261 §8.2.6.2: Via, From, To,
# Call-ID and CSeq copied, and a 100's Timestamp, §8.2.6.1; a To tag added on non-100 responses
# that lack one) and new requests from header values. The builders emit header lines in the
# usual order and compute Content-Length. Header values are checked for line breaks (ValueError: local misuse).
from __future__ import annotations

from collections.abc import Iterable

from ._errors import SipParseError
from ._grammar import canonical_name
from ._message import Header, Request, Response, _label, reason_phrase

__all__ = ["make_request", "make_response", "response_bytes"]

_COPIED = frozenset(("via", "from", "to", "call-id", "cseq"))
_COPIED_100 = _COPIED | {"timestamp"}  # §8.2.6.1: a 100 copies the request's Timestamp too


_LABELS: dict[str, tuple[str, str]] = {}
"""Header names as given by callers -> (canonical key, label written); a bounded memo."""


def _line(name: str, value: str) -> Header:
    if "\r" in value or "\n" in value:
        raise ValueError(f"header value contains a line break: {value[:40]!r}")
    known = _LABELS.get(name)
    if known is None:
        key = canonical_name(name)
        known = (key, _label(name, key))
        if len(_LABELS) < 1024:
            _LABELS[name] = known
    return (known[0], value, f"{known[1]}: {value}")


def _copied(request: Request, status: int) -> list[Header]:
    """The header lines a response copies from its request (§8.2.6.2; a 100 also its
    Timestamp, §8.2.6.1), in order."""
    names = _COPIED_100 if status == 100 else _COPIED
    return [h for h in request.headers if h[0] in names]


def _has_to_tag(request: Request) -> bool:
    try:
        return request.to.tag is not None
    except SipParseError:  # unparseable To: look for the parameter in the raw text
        value = request.get("to") or ""
        return ";tag=" in value.replace(" ", "").replace("\t", "").lower()


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                  body: bytes = b"") -> Response:
    """A response to ``request``. The Via lines are copied as they are on the request (so a
    received/rport the caller added to the top Via is kept); a To tag is added when ``to_tag``
    is given, the status is not 100 and the To header has none. ``headers`` come after CSeq, in
    order. Works on requests whose From/To/CSeq do not parse (the lines are copied as they are).
    The wire bytes are computed here (``serialize()`` returns them)."""
    out = _copied(request, status)
    if to_tag is not None and status != 100 and not _has_to_tag(request):
        for i, (key, value, raw) in enumerate(out):
            if key == "to":
                value = f"{value};tag={to_tag}"
                out[i] = ("to", value, f"{raw[:raw.index(':')]}: {value}")
                break
    for name, value in headers:
        out.append(_line(name, value))
    length = str(len(body))
    out.append(("content-length", length, "Content-Length: " + length))
    reason = reason or reason_phrase(status)
    if "\r" in reason or "\n" in reason:
        raise ValueError(f"reason phrase contains a line break: {reason[:40]!r}")
    response = Response(status, reason, tuple(out), body)
    start = f"SIP/2.0 {status} {reason}"
    response._raw = "\r\n".join([start, *[h[2] for h in out], "", ""]).encode(
        "utf-8", "surrogateescape") + body
    return response


def response_bytes(request: Request, status: int, reason: str) -> bytes:
    """``make_response(request, status, reason).serialize()`` without building the message, for
    a response that adds nothing to what it copies (a 100 Trying, §8.2.6.1)."""
    if "\r" in reason or "\n" in reason:
        raise ValueError(f"reason phrase contains a line break: {reason[:40]!r}")
    lines = [h[2] for h in _copied(request, status)]
    return "\r\n".join([f"SIP/2.0 {status} {reason}", *lines, "Content-Length: 0", "", ""]
                         ).encode("utf-8", "surrogateescape")


def make_request(method: str, uri: str, headers: Iterable[tuple[str, str]],
                 body: bytes = b"") -> Request:
    """A new request; ``headers`` are (name, value) pairs in wire order."""
    out = [_line(name, value) for name, value in headers]
    out.append(("content-length", str(len(body)), f"Content-Length: {len(body)}"))
    return Request(method, uri, tuple(out), body)
