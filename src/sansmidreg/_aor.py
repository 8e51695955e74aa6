# Address-of-record naming: the AOR key of a To URI (OPENSIPS-BEHAVIOUR.md §3.1) and the
# aggregate contact's user part in AOR-throttling mode, with its reverse (§1.3 a, §1.3 i).
from __future__ import annotations

from .sip import Uri, unescape

__all__ = ["aggregate_user", "aor_of", "aor_from_aggregate"]


def aor_of(uri: Uri, *, use_domain: bool, case_sensitive: bool) -> str:
    """The AOR key of a To URI (OPENSIPS-BEHAVIOUR.md §3.1): user (percent-decoded), plus
    ``@host`` with use_domain; the domain is lower-cased, the user too when not case-sensitive."""
    user = unescape(uri.user or "")
    key = f"{user}@{uri.host.lower()}" if use_domain else user
    return key if case_sensitive else key.lower()


def aggregate_user(aor: str, at_escape: str) -> str:
    """The user part of the AOR-mode aggregate contact: the AOR with every character that is not
    unreserved percent-encoded, and its '@' written as ``at_escape`` (§1.3 a)."""
    out = []
    for ch in aor:
        if ch.isascii() and (ch.isalnum() or ch in "-_.!~*'()&=+$,;?/"):
            out.append(ch)
        elif ch == "@":
            out.append(at_escape)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def aor_from_aggregate(user: str, at_escape: str) -> str:
    """The AOR an aggregate contact's user part names: percent-decoded, then the first
    ``at_escape`` (when it is not a %-escape) turned back into '@' (§1.3 i)."""
    decoded = unescape(user)
    if at_escape != "%40" and "@" not in decoded:
        decoded = decoded.replace(at_escape, "@", 1)
    return decoded
