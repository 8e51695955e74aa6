# Reading wire bytes back in tests: parse what the core sent and look at headers and Contact
# parameters, so that assertions are about what goes on the wire, not about internals.
from __future__ import annotations

from sansmidreg.sip import Message, Request, Response, parse_message

__all__ = ["contact_expires", "contacts", "request", "response", "status"]


def request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request), f"not a request: {data[:60]!r}"
    return msg


def response(data: bytes) -> Response:
    msg = parse_message(data)
    assert isinstance(msg, Response), f"not a response: {data[:60]!r}"
    return msg


def status(data: bytes) -> int:
    return response(data).status


def contacts(msg: Message | bytes) -> list[tuple[str, str | None]]:
    """(URI text, ;expires value) of every Contact of a message, in order."""
    if isinstance(msg, bytes):
        msg = parse_message(msg)
    return [(str(item.uri), item.expires) for item in msg.contacts.items]


def contact_expires(msg: Message | bytes, uri: str) -> int | None:
    """The ;expires a message gives ``uri`` (None when it is not listed)."""
    for text, expires in contacts(msg):
        if text == uri:
            assert expires is not None and expires.isdigit(), f"{uri} listed without ;expires"
            return int(expires)
    return None
