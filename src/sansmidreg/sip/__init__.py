# sansmidreg.sip: the SIP message layer (RFC 3261 §7, §19, §20, §25; RFC 3581; RFC 4475).
# Parse a datagram into Request | Response, read typed values lazily, edit, serialize; frame a
# TCP stream. Lossless: what we do not interpret is re-emitted byte for byte.
from ._build import make_request, make_response
from ._errors import SipParseError
from ._framing import KEEPALIVE_PING, StreamFramer
from ._grammar import Params, canonical_name, format_params, parse_params, split_commas, unescape, unquote
from ._message import Header, Message, Request, Response, parse_message, reason_phrase
from ._uri import Uri, parse_host_port
from ._values import ContactList, CSeq, NameAddr, Via

__all__ = [
    "KEEPALIVE_PING",
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
    "make_request",
    "make_response",
    "parse_host_port",
    "parse_message",
    "parse_params",
    "reason_phrase",
    "split_commas",
    "unescape",
    "unquote",
]
