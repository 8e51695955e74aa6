# Building messages we originate: responses to a request (RFC 3261 §8.2.6.2: Via, From, To,
# Call-ID and CSeq copied, a To tag added on non-100 responses) and new requests from header
# values. The builders emit header lines in the usual order and compute Content-Length.
from __future__ import annotations

from collections.abc import Iterable

from ._message import Header, Request, Response, reason_phrase
from ._grammar import DISPLAY_NAMES, canonical_name

__all__ = ["make_request", "make_response"]

_COPIED = ("via", "from", "to", "call-id", "cseq")


def _line(name: str, value: str) -> Header:
    key = canonical_name(name)
    label = DISPLAY_NAMES.get(key, name) if name.islower() else name
    return (key, value, f"{label}: {value}")


def make_response(request: Request, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                  body: bytes = b"") -> Response:
    """A response to ``request``. The Via lines are copied as they are on the request (so a
    received/rport the caller added to the top Via is kept); a To tag is added when ``to_tag``
    is given and the To header has none. ``headers`` come after CSeq, in order."""
    out: list[Header] = []
    for header in request.headers:
        key = header[0]
        if key in _COPIED:
            if key == "to" and to_tag is not None and status != 100 and ";tag=" not in (
                    header[1].replace(" ", "").lower()):
                value = f"{header[1]};tag={to_tag}"
                header = ("to", value, f"{header[2][:header[2].index(':')]}: {value}")
            out.append(header)
    for name, value in headers:
        out.append(_line(name, value))
    out.append(("content-length", str(len(body)), f"Content-Length: {len(body)}"))
    return Response(status, reason or reason_phrase(status), tuple(out), body)


def make_request(method: str, uri: str, headers: Iterable[tuple[str, str]],
                 body: bytes = b"") -> Request:
    """A new request; ``headers`` are (name, value) pairs in wire order."""
    out = [_line(name, value) for name, value in headers]
    out.append(("content-length", str(len(body)), f"Content-Length: {len(body)}"))
    return Request(method, uri, tuple(out), body)
