# sansmidreg.sip: the SIP message layer (RFC 3261 §7, §19, §20, §25; RFC 3581; RFC 4475).
# Parse a datagram into Request | Response, read typed values lazily, edit, serialize; frame a
# TCP stream. Lossless: what we do not interpret is re-emitted byte for byte. The only exception
# raised on bad input is SipParseError (a ValueError) with the status a server should answer.
from ._build import make_request, make_response, response_bytes
from ._checks import DEFECTS, RFC2543_DEFECTS
from ._errors import SipParseError
from ._framing import KEEPALIVE_PING, StreamFramer
from ._grammar import (
    Params,
    canonical_name,
    format_params,
    is_token,
    parse_params,
    quote,
    split_commas,
    split_list,
    unescape,
    unquote,
)
from ._message import Header, Message, Request, Response, reason_phrase
from ._parse import parse_message
from ._uri import Uri, parse_host_port
from ._values import ContactList, CSeq, NameAddr, Via

__all__ = [
    "DEFECTS",
    "KEEPALIVE_PING",
    "RFC2543_DEFECTS",
    "CSeq",
    "ContactList",
    "Header",
    "Message",
    "NameAddr",
    "Params",
    "Request",
    "Response",
    "SipParseError",
    "StreamFramer",
    "Uri",
    "Via",
    "canonical_name",
    "format_params",
    "is_token",
    "make_request",
    "make_response",
    "response_bytes",
    "parse_host_port",
    "parse_message",
    "parse_params",
    "quote",
    "reason_phrase",
    "split_commas",
    "split_list",
    "unescape",
    "unquote",
]
