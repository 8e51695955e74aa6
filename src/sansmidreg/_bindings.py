# The location table: AOR -> contacts, and the upstream registration state behind them.
#
# Invariants (checked by tests/property/test_registrar_machine.py):
# - every live Contact is reachable from `aors[contact.aor]` and, by id, from `by_ctid`;
# - an Aor with no contact and no pending work is removed (no dangling empty AORs, OpenSIPS #1449);
# - contact ids are unique among live contacts and stable over refreshes of the same binding.
#
# Memory matters (DESIGN.md: <= 1 KiB per contact at 1M contacts): Contact, Upstream and Aor are
# slotted classes holding strings and numbers only; URIs are kept as text and parsed when needed;
# what can be derived is not stored (a contact's lifetime = expires_at - updated_at, an upstream
# binding's refreshed_at = expires_at - granted); the rarely set contact details (q, +sip.instance,
# reg-id, methods, Path) share one optional tuple; values many bindings repeat (the Request-URI,
# granted lifetimes, a From URI equal to the To URI) are shared, not copied; a contact is its own
# entry in the deadline heap (no handle object); an AOR's contacts are a tuple (most have one).
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from ._actions import Endpoint

__all__ = ["Aor", "Contact", "LocationTable", "Upstream", "shared"]

_SHARED: dict[object, Any] = {}
_SHARED_MAX: Final = 4096


def shared(value: Any) -> Any:
    """One object for a value many bindings repeat (bounded: past the limit, the value itself)."""
    found = _SHARED.get(value)
    if found is not None:
        return found
    if len(_SHARED) < _SHARED_MAX:
        _SHARED[value] = value
    return value


class Upstream:
    """What the main registrar holds for us: one binding (a contact in contact-throttling mode,
    the aggregate contact of an AOR in AOR mode), and what a de-REGISTER of it needs
    (OPENSIPS-BEHAVIOUR.md §0.3: F, T, ru, CID, Seq, Con, expO, LRTs).

    Stored compactly: the To URI as the AOR key plus a shared tail when it is ``sip:`` + key +
    tail (the usual case), the From URI only when it differs from the To URI, the Contact the main
    registrar returned (Con) only when it differs from the one we sent (``None``: rebuild it)."""

    __slots__ = ("aor", "_to", "_from", "request_uri", "call_id", "cseq", "contact_uri",
                 "granted", "expires_at")

    def __init__(self, *, aor: str, from_uri: str, to_uri: str, request_uri: str, call_id: str,
                 cseq: int, contact_uri: str | None, granted: int, refreshed_at: float) -> None:
        self.aor = aor
        prefix = "sip:" + aor
        tail = to_uri[len(prefix):]
        self._to: str = shared(tail) if to_uri.startswith(prefix) and (
            not tail or tail[0] == "@") else to_uri
        self._from = None if from_uri == to_uri else from_uri
        self.request_uri: str = shared(request_uri)
        self.call_id = call_id
        self.cseq = cseq
        self.contact_uri = contact_uri
        self.granted: int = shared(granted)  # expO: lifetime the main registrar granted (s)
        self.expires_at = refreshed_at + granted

    @property
    def to_uri(self) -> str:
        """T: the To URI of the last relayed REGISTER."""
        to = self._to
        return to if to.startswith(("sip:", "sips:")) else f"sip:{self.aor}{to}"

    @property
    def from_uri(self) -> str:
        """F: the From URI of the last relayed REGISTER."""
        return self.to_uri if self._from is None else self._from

    @property
    def refreshed_at(self) -> float:
        """LRTs: time of its last 2xx."""
        return self.expires_at - self.granted


class Contact:
    """One device binding kept locally."""

    __slots__ = ("aor", "uri", "ctid", "expires_at", "call_id", "cseq", "updated_at",
                 "registered_at", "source", "upstream", "timer", "details")

    def __init__(self, *, aor: str, uri: str, ctid: int, source: Endpoint) -> None:
        self.aor = aor
        self.uri = uri  # the device's Contact URI, as it wrote it (inside <>)
        self.ctid = ctid
        self.expires_at = 0.0
        self.call_id = ""
        self.cseq = 0
        self.updated_at = 0.0
        self.registered_at = 0.0
        self.source = source
        self.upstream: Upstream | None = None  # contact-throttling / mirror: its upstream binding
        self.timer: Any = None  # its own entry in the deadline heap (DeadlineHeap.schedule_self)
        self.details: tuple[str | None, str | None, int | None, frozenset[str] | None,
                            tuple[str, ...]] | None = None
        """(q, instance, reg_id, methods, path), or None when all are unset (the usual case)."""

    def __lt__(self, other: object) -> bool:
        return False  # equal heap keys: leave the order to the heap (deterministic)

    @property
    def lifetime(self) -> int:
        """e_local of the last update (seconds)."""
        return int(self.expires_at - self.updated_at + 0.5)

    @property
    def q(self) -> str | None:
        """As written, e.g. "0.5"."""
        return None if self.details is None else self.details[0]

    @property
    def q_value(self) -> float:
        """``q`` as a number; none (or unreadable) counts as 1.0 (RFC 3261 §20.10)."""
        details = self.details
        q = None if details is None else details[0]
        if q is None:
            return 1.0
        try:
            return float(q)
        except ValueError:
            return 1.0

    @property
    def instance(self) -> str | None:
        return None if self.details is None else self.details[1]

    @property
    def reg_id(self) -> int | None:
        return None if self.details is None else self.details[2]

    @property
    def methods(self) -> frozenset[str] | None:
        return None if self.details is None else self.details[3]

    @property
    def path(self) -> tuple[str, ...]:
        return () if self.details is None else self.details[4]

    def set_details(self, q: str | None, instance: str | None, reg_id: int | None,
                    methods: frozenset[str] | None, path: tuple[str, ...]) -> None:
        self.details = None if (q is None and instance is None and reg_id is None
                                and methods is None and not path) else (
            q, instance, reg_id, methods, path)

    def remaining(self, now: float) -> int:
        """Whole seconds of life left (what a UA is told in ;expires=)."""
        left = self.expires_at - now
        return int(left + 0.5) if left > 0 else 0


class Aor:
    """An address-of-record with its contacts (few: a tuple, most AORs have one)."""

    __slots__ = ("key", "contacts", "upstream", "pending")

    def __init__(self, key: str) -> None:
        self.key = key
        self.contacts: tuple[Contact, ...] = ()
        self.upstream: Upstream | None = None  # AOR-throttling: the aggregate binding
        self.pending = 0  # relayed REGISTERs in flight (keeps an empty Aor alive)

    def live(self, now: float) -> list[Contact]:
        return [c for c in self.contacts if c.expires_at > now]

    def find(self, uri: str) -> Contact | None:
        """The contact registered with exactly this URI text (fast path; see uri_match)."""
        for c in self.contacts:
            if c.uri == uri:
                return c
        return None


class LocationTable:
    """AOR records and the contact-id index."""

    __slots__ = ("aors", "by_ctid", "contact_count", "inflight")

    def __init__(self) -> None:
        self.aors: dict[str, Aor] = {}
        self.by_ctid: dict[int, Contact] = {}
        self.contact_count = 0
        self.inflight: dict[tuple[str, str], list[int]] = {}
        """(AOR key, Contact URI) of a device not yet bound locally -> [the contact id its
        relayed REGISTER carries upstream, how many such REGISTERs are in flight]: a second
        REGISTER of the same device before the first is answered reuses the id, so that the
        main registrar sees one binding (and its CSeq check orders them), not two."""

    def claim(self, aor: str, uri: str, ctid: int) -> int:
        """The contact id of a device's relayed REGISTER: one already in flight, else ``ctid``."""
        slot = self.inflight.get((aor, uri))
        if slot is None:
            self.inflight[(aor, uri)] = [ctid, 1]
            return ctid
        slot[1] += 1
        return slot[0]

    def release(self, aor: str, uri: str) -> None:
        slot = self.inflight.get((aor, uri))
        if slot is not None:
            slot[1] -= 1
            if slot[1] <= 0:
                del self.inflight[(aor, uri)]

    def get_or_create(self, key: str) -> Aor:
        aor = self.aors.get(key)
        if aor is None:
            aor = self.aors[key] = Aor(key)
        return aor

    def add(self, aor: Aor, contact: Contact) -> None:
        aor.contacts = (*aor.contacts, contact)
        self.by_ctid[contact.ctid] = contact
        self.contact_count += 1

    def remove(self, contact: Contact) -> None:
        aor = self.aors.get(contact.aor)
        if aor is not None and contact in aor.contacts:
            aor.contacts = tuple(c for c in aor.contacts if c is not contact)
            self.contact_count -= 1
            if self.by_ctid.get(contact.ctid) is contact:
                del self.by_ctid[contact.ctid]
            self.discard_if_empty(aor)

    def discard_if_empty(self, aor: Aor) -> None:
        if not aor.contacts and aor.pending == 0 and aor.upstream is None:
            if self.aors.get(aor.key) is aor:
                del self.aors[aor.key]

    def contacts(self) -> Iterator[Contact]:
        for aor in self.aors.values():
            yield from aor.contacts
