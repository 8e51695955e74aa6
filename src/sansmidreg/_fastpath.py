# The absorbed-refresh fast path (contact throttling, and AOR throttling with the conservative
# window of DESIGN.md §5.1): the one REGISTER a mid-registrar answers most -- a device refreshing
# its single, plain Contact inside the throttle window -- decided and answered without building
# the typed values the general path needs for everything else.
#
# Contract: `absorb_fast` returns exactly the actions the general path (MidRegistrar._receive ->
# Registrar.handle) would return for the same input and state, byte for byte, or None to let the
# general path run. It only ever says yes to a request whose every header the general path would
# accept with the same meaning: each value is matched by a conservative regex (a subset of the
# RFC 3261 grammar that the SIP layer parses to the same parts -- lower-case parameter names,
# ports without leading zeros, no escapes -- so that the stored Contact text equals `str(Uri)`
# and the top Via re-serializes to itself); anything else -- a header that matters to a registrar
# (Require, Proxy-Require, Path, Supported), a repeated header, Contact parameters other than
# `expires`, a retransmission, a decision other than "absorb" (relay, 400, 423 ...) -- goes the
# general way. tests/unit/test_register_fastpath.py runs both paths on the same traffic and
# compares their bytes.
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from ._actions import Action, Endpoint, new_reply
from ._config import Mode
from ._context import reply_tag
from ._register_reply import contact_list_value
from .sip import Request

if TYPE_CHECKING:
    from ._registrar import Registrar

__all__ = ["absorb_fast"]

# RFC 3261 §25.1, conservatively: user = unreserved / user-unreserved (no escapes), a host name
# or IPv4 address, a port 1..65535 without leading zeros, lower-case parameter names.
_USER: Final = r"[A-Za-z0-9\-_.!~*'()&=+$,]{1,64}"
_HOST: Final = r"[A-Za-z0-9](?:[A-Za-z0-9\-.]{0,62}[A-Za-z0-9])?"
_PORTNUM: Final = (r"(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}"
                   r"|[1-9][0-9]{0,3})")
_PORT: Final = f"(?::{_PORTNUM})?"
_PNAME: Final = r"[a-z0-9\-_.!~*'()&+$]+"
_PARAMS: Final = rf"(?:;{_PNAME}(?:=[A-Za-z0-9\-_.!~*'()&+$\[\]/:]+)?)*"
_TOKEN: Final = r"[A-Za-z0-9\-.!%*_+`'~]+"

_TO: Final = re.compile(f"<sips?:({_USER})@({_HOST}){_PORT}{_PARAMS}>")
_FROM: Final = re.compile(f"<sips?:{_USER}@{_HOST}{_PORT}{_PARAMS}>;tag={_TOKEN}")
_CONTACT: Final = re.compile(f"<(sips?:{_USER}@{_HOST}{_PORT}{_PARAMS})>(?:;expires=([0-9]{{1,9}}))?")
_REQUEST_URI: Final = re.compile(f"sips?:(?:{_USER}@)?{_HOST}{_PORT}{_PARAMS}")
_CSEQ: Final = re.compile(r"([0-9]{1,9}) REGISTER")
_MAX_FORWARDS: Final = re.compile(r"25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9][0-9]?")  # 1..255
_DIGITS: Final = re.compile(r"[0-9]{1,9}")
_CALL_ID: Final = re.compile(f"{_TOKEN}(?:@{_TOKEN})?")  # RFC 3261 §25.1 callid, conservatively
# The top Via (RFC 3261 §20.42; RFC 3581): canonical (it re-serializes to itself), a branch with
# the magic cookie, no `received`, and `rport` (a flag) only as the last parameter.
_VPARAM: Final = rf";(?!rport\b|received\b|branch\b){_PNAME}(?:=[A-Za-z0-9\-_.!~*'()&+$]+)?"
_VIA: Final = re.compile(
    f"SIP/2\\.0/(UDP|TCP|TLS) (({_HOST})(?::({_PORTNUM}))?)((?:{_VPARAM})*)"
    f";branch=(z9hG4bK{_TOKEN})((?:{_VPARAM})*)(;rport)?")

_COPIED: Final = frozenset(("via", "from", "to", "call-id", "cseq"))
_GENERAL: Final = frozenset(("require", "proxy-require", "path", "supported"))
"""Headers that make a REGISTER the general path's business."""


def absorb_fast(reg: Registrar, req: Request, source: Endpoint, now: float) -> list[Action] | None:
    """The general path's answer to an absorbable refresh (contact throttling, or AOR throttling
    with the conservative window), or None."""
    headers = req.headers
    first = headers[0]
    top = first[1] if first[0] == "via" else req.get("via")
    via = _VIA.fullmatch(top or "")
    values = req.single_values()
    if via is None or values is None or not _GENERAL.isdisjoint(values):
        return None  # no or odd Via, repeated lines (a Via stack too: the general way), Path ...
    get = values.get
    to = _TO.fullmatch(get("to") or "")
    if to is None:
        return None
    ctx = reg.ctx
    cfg = ctx.cfg
    user = to.group(1)
    aor_key = f"{user}@{to.group(2).lower()}" if cfg.use_domain else user
    if not cfg.case_sensitive:
        aor_key = aor_key.lower()
    aor = ctx.table.aors.get(aor_key)
    if aor is None:
        return None  # a first registration: relayed
    contact = _CONTACT.fullmatch(get("contact") or "")
    cseq = _CSEQ.fullmatch(get("cseq") or "")
    if contact is None or cseq is None:
        return None
    if (not _MAX_FORWARDS.fullmatch(get("max-forwards") or "")
            or not _FROM.fullmatch(get("from") or "") or not _REQUEST_URI.fullmatch(req.uri_text)):
        return None
    expires_text = get("expires")
    if expires_text is not None and not _DIGITS.fullmatch(expires_text):
        return None
    uri_text = contact.group(1)
    call_id = get("call-id") or ""
    if len(uri_text) > 255 or not _CALL_ID.fullmatch(call_id):
        return None
    servers = ctx.txns.servers
    if servers and (via.group(6), via.group(2), "REGISTER") in servers:
        return None  # a retransmission of a REGISTER we relayed
    # -- the lifetime (§3.7) and the contact-throttling decision (§1.2 b) -------------------------
    raw = contact.group(2)
    e_in = int(raw) if raw is not None else (
        int(expires_text) if expires_text is not None else cfg.default_expires)
    if e_in < cfg.min_expires or e_in == 0:
        if e_in == 0 or cfg.compat != "opensips":
            return None  # relay (un-REGISTER) or 423
        e_in = cfg.min_expires
    elif cfg.max_expires and e_in > cfg.max_expires:
        e_in = cfg.max_expires
    for found in aor.contacts:  # Aor.find
        if found.uri == uri_text:
            break
    else:
        return None
    if found.expires_at <= now:
        return None
    up = aor.upstream if cfg.mode is Mode.AOR_THROTTLING else found.upstream
    if up is None or now + e_in >= up.expires_at:
        return None  # the upstream binding would end first (§1.2 b; §1.3 b with DESIGN.md §5.1)
    if cfg.pin_absorb_source:
        pinned = found.source
        if (pinned.port != source.port or pinned.host != source.host
                or pinned.transport != source.transport or pinned.flow != source.flow):
            return None
    seq = int(cseq.group(1))
    if found.call_id == call_id and seq <= found.cseq and (
            seq < found.cseq or not (cfg.allow_dup_cseq or now - found.updated_at < 20.0)):
        return None  # 400 Invalid CSeq number (Registrar._cseq_ok)
    # -- absorb (Registrar.refresh) ----------------------------------------------------------------
    stats = ctx.stats
    stats.registers_received += 1
    found.expires_at = expires_at = now + e_in
    found.call_id = call_id
    found.cseq = seq
    found.updated_at = now
    found.details = None
    timer = found.timer
    if timer is None or timer[0] > expires_at:
        reg.schedule_expiry(found)
    if up.call_id == call_id and seq > up.cseq:
        up.cseq = seq
    stats.registers_absorbed += 1
    # -- the 200 OK of RFC 3261 §10.3 step 8, as Registrar._ok / make_response write it -----------
    rport = via.group(8) is not None
    if rport:  # stamp_via: rport and received, even when it equals the sent-by (RFC 3581 §4)
        top = f"{top}={source.port};received={source.host}"
    elif via.group(3) != source.host:  # received (RFC 3261 §18.2.1)
        top = f"{top};received={source.host}"
    else:
        top = None
    token = reply_tag(via.group(6), call_id, get("cseq") or "")  # as request_tag
    lines = ["SIP/2.0 200 OK"]
    for key, value, line in headers:
        if key in _COPIED:
            if key == "to":
                line = f"{line[:line.index(':')]}: {value};tag={token}"
            elif key == "via" and top is not None:
                line = f"{line[:line.index(':')]}: {top}"
            lines.append(line)
    if len(aor.contacts) == 1:  # contact_list_value of one contact, just refreshed
        lines.append(f"Contact: <{uri_text}>;expires={e_in}")
    else:
        lines.append("Contact: " + contact_list_value(aor, now))
    lines.append("Content-Length: 0\r\n\r\n")
    data = "\r\n".join(lines).encode("utf-8", "surrogateescape")
    if rport or source.is_reliable:  # RFC 3581 §4 / the same connection
        return [new_reply(data, source)]
    port = via.group(4)
    via_port = int(port) if port else (5061 if via.group(1) == "TLS" else 5060)
    dest = source if via_port == source.port else Endpoint(
        transport=source.transport, host=source.host, port=via_port)
    return [new_reply(data, dest)]
